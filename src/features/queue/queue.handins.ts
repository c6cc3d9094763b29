// Gathers the hand-ins of concurrent agents into shared statements (handins.queries.ts),
// the way a database gathers commits: a request goes out at once when its lane is idle;
// requests that arrive while the lane's statement is in flight wait for it and then go out
// together. Alone on a quiet server an agent waits for nothing; under load the statements
// grow with the load instead of their number. A lane is one pool of one organization (its
// agents can share a claim) and one claim mode.
import type { Queryable } from '../../platform/db/index.js';
import { handIn, type HandIn, type HandInOutcome } from './handins.queries.js';

/** Agents per statement: enough for any pool this machine serves, small enough to plan quickly. */
const MAX_BATCH = 64;
/**
 * A request that moves this many jobs (handed in plus asked for) already spreads a
 * statement's fixed cost over them: it goes out on its own at once. Gathered, such
 * requests would only queue behind each other, one statement at a time where PostgreSQL
 * could run several (claims of 50 ran slower that way).
 */
const ALONE_FROM_JOBS = 16;
/**
 * Statements in flight per lane. One keeps batches as large as the load makes them; the
 * pool's other connections still serve other lanes, claims and everything else. Two
 * measured no better in the queue bench (bench/README.md).
 */
const IN_FLIGHT_PER_LANE = 1;

export interface HandInRequest extends HandIn {
  orgId: string;
  poolId: string;
  start: boolean;
  leaseSeconds: number;
}

interface Waiting {
  request: HandInRequest;
  resolve(outcome: HandInOutcome): void;
  reject(error: unknown): void;
}

interface Lane {
  waiting: Waiting[];
  inFlight: number;
}

export interface HandIns {
  submit(request: HandInRequest): Promise<HandInOutcome>;
}

export function createHandIns(db: Queryable): HandIns {
  const lanes = new Map<string, Lane>();

  function pump(key: string, lane: Lane): void {
    while (lane.inFlight < IN_FLIGHT_PER_LANE && lane.waiting.length > 0) {
      const batch = takeBatch(lane.waiting);
      lane.inFlight += 1;
      void run(batch).finally(() => {
        lane.inFlight -= 1;
        if (lane.waiting.length > 0) pump(key, lane);
        else if (lane.inFlight === 0) lanes.delete(key);
      });
    }
  }

  async function run(batch: Waiting[]): Promise<void> {
    try {
      // A lane's requests share their claim mode and lease (its key): the first one's serve all.
      const outcomes = await handIn(
        db,
        batch.map((w) => w.request),
        batch[0]!.request,
      );
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (error) {
      if (batch.length === 1) return batch[0]!.reject(error);
      // The statement is atomic, so nothing of it applied: each request goes again on its
      // own, and one request's bad input fails only that request.
      await Promise.all(
        batch.map((w) =>
          runAlone(w.request).then(
            (outcome) => w.resolve(outcome),
            (soloError: unknown) => w.reject(soloError),
          ),
        ),
      );
    }
  }

  async function runAlone(request: HandInRequest): Promise<HandInOutcome> {
    const [outcome] = await handIn(db, [request], request);
    return outcome!;
  }

  return {
    submit(request) {
      if (request.completions.length + request.max >= ALONE_FROM_JOBS) return runAlone(request);
      const key = `${request.orgId}/${request.poolId}/${request.start}/${request.leaseSeconds}`;
      const lane = lanes.get(key) ?? { waiting: [], inFlight: 0 };
      lanes.set(key, lane);
      const promise = new Promise<HandInOutcome>((resolve, reject) => lane.waiting.push({ request, resolve, reject }));
      pump(key, lane);
      return promise;
    },
  };
}

/**
 * The oldest waiting requests, up to MAX_BATCH and one per agent (a statement counts each
 * agent's slots once); an agent's second request waits for the next statement.
 */
function takeBatch(waiting: Waiting[]): Waiting[] {
  const batch: Waiting[] = [];
  const agents = new Set<string>();
  for (let i = 0; i < waiting.length && batch.length < MAX_BATCH;) {
    const w = waiting[i]!;
    if (agents.has(w.request.agentId)) {
      i += 1;
      continue;
    }
    agents.add(w.request.agentId);
    batch.push(w);
    waiting.splice(i, 1);
  }
  return batch;
}
