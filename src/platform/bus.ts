// The event bus. Services publish after their transaction commits; subscribers (long-poll
// claims, WebSocket streams, cache invalidation) listen by topic. Without Redis it is
// in-process; with Redis every replica's events reach every other replica.
//
// Organization topics (`org:<id>`, which carry every domain event) are also an ordered,
// bounded history that all replicas share, so a client stream can resume on any replica.
// With Redis one script appends each event to its organization's Redis stream (the stream
// id is the event's id) and publishes it on that organization's channel, so every replica
// sees the same order and ids; a replica subscribes only to the channels of organizations
// it has subscribers for. Other topics share one channel and reach local subscribers first.
// While Redis is unreachable everything is delivered locally only; see NOTICE for how the
// streams learn about what they may have missed. The Redis implementation is in bus.redis.ts.

export interface BusEvent<T = unknown> {
  /** Routing key, e.g. `org:<id>`, `auth`, `ledger`. */
  topic: string;
  /** What happened, e.g. `project.created`. */
  type: string;
  data: T;
  at: string;
  /**
   * Org topics: the event's place in its organization's history, the same on every replica
   * (`<ms>-<n>`, ordered). Starts with `L` when the event was delivered on this replica only
   * (Redis unreachable); such ids cannot be resumed from. Absent on other topics and on
   * LIVE_ONLY_TYPES.
   */
  id?: string;
}

export type BusHandler = (event: BusEvent) => void;

/**
 * Topic conventions (see docs/architecture.md, "Events"):
 * - `org:<orgId>` carries every domain event of an organization (projects, jobs, runs,
 *   agents, approvals, deployments, artifacts). Its `data` names the ids the event concerns
 *   (`project_id`, `run_id`, `job_id`, `agent_id`, `pool_id`, `approval_id`, …) so the
 *   client streams can route it to narrower topics without a second publish.
 * - internal topics, never shown to clients: `auth` (credential cache invalidation),
 *   `ledger` (sequencer nudges and checkpoints), `queue:<poolId>` (long-poll wake-ups).
 */
export function orgTopic(orgId: string): string {
  return `org:${orgId}`;
}

export const isOrgTopic = (topic: string): boolean => topic.startsWith('org:');

/** Publishes a domain event on its organization's topic; call it after the commit. */
export function publishOrgEvent(bus: Bus, orgId: string, type: string, data: Record<string, unknown>): void {
  bus.publish(orgTopic(orgId), type, { org_id: orgId, ...data });
}

/** High-volume types delivered live but kept out of the history (a job's log has its own store, read by offset). */
export const LIVE_ONLY_TYPES: ReadonlySet<string> = new Set(['job.log']);

/**
 * The bus's own notices on org topics, for subscribers that ask for them (`{ notices: true }`):
 * - `bus.interrupted`: events from other replicas stopped arriving (Redis connection lost);
 * - `bus.resumed`: they arrive again; what was published meanwhile is in `history()`;
 * - `bus.gap` (in the history, with an id): a replica delivered events of this organization
 *   locally only while it could not reach Redis, so subscribers elsewhere missed them.
 * `bus.start` entries only mark where an empty history begins; they are never delivered.
 */
export const NOTICE = { interrupted: 'bus.interrupted', resumed: 'bus.resumed', gap: 'bus.gap', start: 'bus.start' } as const;
export const isNotice = (type: string) => type.startsWith('bus.');

export interface SubscribeOptions {
  notices?: boolean;
}

export interface HistoryOptions {
  /** Events kept per organization (approximately, with Redis). */
  size: number;
  /** An organization's history is dropped after this long without events (Redis). */
  ttlMs: number;
}
export const DEFAULT_HISTORY: HistoryOptions = { size: 1000, ttlMs: 86_400_000 };

export interface Bus {
  readonly kind: 'memory' | 'redis';
  publish(topic: string, type: string, data: unknown): void;
  /** `topic` is exact, or a prefix ending in `*` (e.g. `org:*`). Returns unsubscribe. */
  subscribe(topic: string, handler: BusHandler, options?: SubscribeOptions): () => void;
  /** Resolves once events of `topic` published anywhere reach this subscription (at once when in-process or degraded). */
  ready(topic: string): Promise<void>;
  /** Org topics: the events after `afterId`, oldest first; null when `afterId` is no longer retained. */
  history(topic: string, afterId: string): Promise<BusEvent[] | null>;
  /** Org topics: the id a new subscriber starts after (the newest retained entry). */
  position(topic: string): Promise<string>;
  /** Whether cross-replica delivery works right now. */
  status(): { ok: boolean; detail: string };
  close(): Promise<void>;
}

/** Orders two history ids (`<ms>-<n>`); ids from different histories are not comparable. */
export function compareEventIds(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('-').map(Number);
  const [bm = 0, bn = 0] = b.split('-').map(Number);
  return am - bm || an - bn;
}

/** Monotonic `<ms>-<n>` ids for the in-process history and for degraded (`L…`) deliveries. */
export class IdClock {
  private ms = 0;
  private n = 0;
  next(prefix = ''): string {
    const now = Date.now();
    if (now > this.ms) [this.ms, this.n] = [now, 0];
    else this.n++;
    return `${prefix}${this.ms}-${this.n}`;
  }
}

type Entry = { handler: BusHandler; notices: boolean };
type Watch = (key: string, isPrefix: boolean, present: boolean) => void;

export class LocalRouter {
  private exact = new Map<string, Set<Entry>>();
  private prefixes = new Map<string, Set<Entry>>();
  constructor(private readonly watch?: Watch) {}

  add(topic: string, handler: BusHandler, notices = false): () => void {
    const isPrefix = topic.endsWith('*');
    const map = isPrefix ? this.prefixes : this.exact;
    const key = isPrefix ? topic.slice(0, -1) : topic;
    let set = map.get(key);
    if (!set) {
      map.set(key, (set = new Set()));
      this.watch?.(key, isPrefix, true);
    }
    const entry = { handler, notices };
    set.add(entry);
    return () => {
      if (!set.delete(entry) || set.size > 0) return;
      map.delete(key);
      this.watch?.(key, isPrefix, false);
    };
  }

  deliver(event: BusEvent, onError: (error: unknown) => void, only?: 'exact' | 'prefix'): void {
    const notice = isNotice(event.type);
    const call = (entry: Entry) => {
      if (notice && !entry.notices) return;
      try {
        entry.handler(event);
      } catch (error) {
        onError(error);
      }
    };
    if (only !== 'prefix') this.exact.get(event.topic)?.forEach(call);
    if (only === 'exact') return;
    for (const [prefix, entries] of this.prefixes) {
      if (event.topic.startsWith(prefix)) entries.forEach(call);
    }
  }

  /** A notice to every subscription of an org topic (its topic is the subscription's own key). */
  notify(type: string, onError: (error: unknown) => void): void {
    const at = new Date().toISOString();
    for (const [key, entries] of [...this.exact, ...this.prefixes]) {
      if (!isOrgTopic(key) && !'org:'.startsWith(key)) continue;
      for (const entry of entries) {
        if (!entry.notices) continue;
        try {
          entry.handler({ topic: key, type, data: {}, at });
        } catch (error) {
          onError(error);
        }
      }
    }
  }
}

/** In-process history: a bounded list per org topic, least recently written topics dropped first. */
class MemoryHistory {
  private streams = new Map<string, { floor: string; events: BusEvent[] }>();
  constructor(
    private readonly size: number,
    private readonly clock: IdClock,
    private readonly maxTopics = 10_000,
  ) {}

  private stream(topic: string) {
    let stream = this.streams.get(topic);
    if (stream) this.streams.delete(topic);
    // `floor` is where a complete history starts: a fresh id for a new topic, then the id of the last event trimmed.
    else stream = { floor: this.clock.next(), events: [] };
    this.streams.set(topic, stream);
    if (this.streams.size > this.maxTopics) this.streams.delete(this.streams.keys().next().value!);
    return stream;
  }

  append(event: BusEvent): string {
    const stream = this.stream(event.topic);
    event.id = this.clock.next();
    stream.events.push(event);
    if (stream.events.length > this.size) stream.floor = stream.events.shift()!.id!;
    return event.id;
  }

  after(topic: string, afterId: string): BusEvent[] | null {
    const stream = this.streams.get(topic);
    if (!stream) return null;
    if (afterId === stream.floor) return [...stream.events];
    const index = stream.events.findIndex((e) => e.id === afterId);
    return index < 0 ? null : stream.events.slice(index + 1);
  }

  position(topic: string): string {
    const stream = this.stream(topic);
    return stream.events.at(-1)?.id ?? stream.floor;
  }
}

export type Logger = { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

export function createMemoryBus(log?: Logger, history: HistoryOptions = DEFAULT_HISTORY): Bus {
  const router = new LocalRouter();
  const stored = new MemoryHistory(history.size, new IdClock());
  return {
    kind: 'memory',
    publish(topic, type, data) {
      const event: BusEvent = { topic, type, data, at: new Date().toISOString() };
      if (isOrgTopic(topic) && !LIVE_ONLY_TYPES.has(type)) stored.append(event);
      router.deliver(event, (error) => log?.error({ err: error, topic }, 'bus subscriber failed'));
    },
    subscribe: (topic, handler, options) => router.add(topic, handler, options?.notices),
    ready: async () => {},
    history: async (topic, afterId) => stored.after(topic, afterId),
    position: async (topic) => stored.position(topic),
    status: () => ({ ok: true, detail: 'in-process' }),
    async close() {},
  };
}
