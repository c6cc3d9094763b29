// Enqueue one job or a batch, atomically. Each job may carry an idempotency key: a retried
// request with the same key and the same body gets the job it created the first time
// (and nothing new); the same key with a different body is a conflict.
import { createHash, randomUUID } from 'node:crypto';
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { transactionWithEffects } from '../../platform/effects.js';
import { BadRequestError, ConflictError } from '../../platform/errors.js';
import { canonicalJson } from '../ledger/merkle/jcs.js';
import { existingProjectIds, findJobs, findPoolIdsByName } from './jobs.queries.js';
import {
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_SECONDS,
  jobEventData,
  presentJob,
  priorityRank,
  tagsToArray,
  type JobRow,
  type JobView,
  type Priority,
  type RetryRules,
} from './queue.model.js';
import { claimIdempotencyKeys, findIdempotencyKeys, insertJobs, type NewJob } from './queue.queries.js';

type Deps = Pick<AppDeps, 'db' | 'bus' | 'queue'>;

export interface EnqueueInput {
  name?: string;
  pool: string;
  priority?: Priority;
  project_id?: string | null;
  tags?: Record<string, string>;
  commands: string[];
  env?: Record<string, string>;
  artifacts?: string[];
  timeout_seconds?: number;
  run_at?: string;
  delay_seconds?: number;
  max_attempts?: number;
  retry?: Partial<RetryRules>;
  idempotency_key?: string;
}

/** What pipelines add when they enqueue a step's job. */
export interface JobOrigin {
  run_id?: string;
  step_key?: string;
  /** A job waiting for an approval or a concurrency slot starts `blocked`. */
  blocked?: boolean;
}

export interface EnqueueResult {
  jobs: JobView[];
  /** Per input: false when an idempotency key returned an earlier job. */
  created: boolean[];
}

function requestHash(input: EnqueueInput): Buffer {
  const { idempotency_key: _key, ...rest } = input;
  return createHash('sha256')
    .update(canonicalJson(rest) ?? '')
    .digest();
}

function runAtOf(input: EnqueueInput, index: number, now: number): Date {
  if (input.run_at !== undefined && input.delay_seconds !== undefined) {
    throw new BadRequestError(`Job ${index}: give run_at or delay_seconds, not both.`, 'conflicting_schedule');
  }
  if (input.delay_seconds !== undefined) return new Date(now + input.delay_seconds * 1000);
  return input.run_at !== undefined ? new Date(input.run_at) : new Date(now);
}

export async function enqueueJobs(
  deps: Deps,
  auth: AuthContext,
  inputs: readonly (EnqueueInput & JobOrigin)[],
): Promise<EnqueueResult> {
  const keys = inputs.map((i) => i.idempotency_key).filter((k): k is string => k !== undefined);
  if (new Set(keys).size !== keys.length) {
    throw new BadRequestError('Two jobs of the batch share an idempotency key.', 'duplicate_idempotency_key');
  }
  const pools = await findPoolIdsByName(deps.db, auth.orgId, [...new Set(inputs.map((i) => i.pool))]);
  const unknownPool = inputs.find((i) => !pools.has(i.pool));
  if (unknownPool) throw new BadRequestError(`There is no pool named "${unknownPool.pool}".`, 'unknown_pool');
  const projectIds = [...new Set(inputs.map((i) => i.project_id).filter((p): p is string => !!p))];
  const projects = await existingProjectIds(deps.db, auth.orgId, projectIds);
  const unknownProject = projectIds.find((p) => !projects.has(p));
  if (unknownProject) throw new BadRequestError(`There is no project ${unknownProject}.`, 'unknown_project');

  const now = Date.now();
  const prepared = inputs.map((input, index) => {
    const job = buildNewJob(auth, pools.get(input.pool)!, input, runAtOf(input, index, now), now);
    return { input, job, hash: input.idempotency_key !== undefined ? requestHash(input) : undefined };
  });

  const withKeys = prepared.some((p) => p.hash);
  // Without idempotency keys an enqueue is one statement (jobs and their audit events);
  // with keys, the keys are claimed first in the same transaction.
  const outcome = withKeys
    ? await transactionWithEffects(deps.db, async (tx, after) => {
        const taken = await claimIdempotencyKeys(
          tx,
          auth.orgId,
          prepared.filter((p) => p.hash).map((p) => ({ key: p.input.idempotency_key!, jobId: p.job.id, requestHash: p.hash! })),
        );
        const earlier = taken.size ? await findIdempotencyKeys(tx, auth.orgId, [...taken]) : new Map();
        for (const p of prepared) {
          const previous = p.input.idempotency_key ? earlier.get(p.input.idempotency_key) : undefined;
          if (previous && !previous.requestHash.equals(p.hash!)) {
            throw new ConflictError(
              `Idempotency key "${p.input.idempotency_key}" was used for a different job.`,
              'idempotency_key_reused',
              { job_id: previous.jobId },
            );
          }
        }
        const fresh = prepared.filter((p) => !p.input.idempotency_key || !taken.has(p.input.idempotency_key));
        const inserted = await insertJobs(
          tx,
          auth,
          fresh.map((p) => p.job),
        );
        after.add(() => publishEnqueued(deps, inserted));
        const replayed = taken.size
          ? await findJobs(
              tx,
              auth.orgId,
              [...earlier.values()].map((e) => e.jobId),
            )
          : [];
        return { inserted, replayed, earlier };
      })
    : await (async () => {
        const inserted = await insertJobs(
          deps.db,
          auth,
          prepared.map((p) => p.job),
        );
        publishEnqueued(deps, inserted);
        return { inserted, replayed: [] as JobRow[], earlier: new Map<string, { jobId: string; requestHash: Buffer }>() };
      })();

  const byId = new Map<string, JobRow>([...outcome.inserted, ...outcome.replayed].map((j) => [j.id, j]));
  const jobs: JobView[] = [];
  const created: boolean[] = [];
  for (const p of prepared) {
    const previous = p.input.idempotency_key ? outcome.earlier.get(p.input.idempotency_key) : undefined;
    jobs.push(presentJob(byId.get(previous?.jobId ?? p.job.id)!));
    created.push(!previous);
  }
  return { jobs, created };
}

/** The row of a new job, defaults applied (enqueue, and the run engine's command steps). */
export function buildNewJob(
  auth: AuthContext,
  poolId: string,
  input: EnqueueInput & JobOrigin,
  runAt: Date,
  now = Date.now(),
): NewJob {
  return {
    id: randomUUID(),
    org_id: auth.orgId,
    pool_id: poolId,
    project_id: input.project_id ?? null,
    run_id: input.run_id ?? null,
    step_key: input.step_key ?? null,
    name: input.name ?? input.commands[0]?.slice(0, 200) ?? 'job',
    priority: priorityRank(input.priority ?? 'NORMAL'),
    state: input.blocked ? 'blocked' : runAt.getTime() > now ? 'scheduled' : 'queued',
    required_tags: tagsToArray(input.tags),
    payload: { commands: input.commands, env: input.env ?? {}, artifacts: input.artifacts ?? [] },
    timeout_seconds: input.timeout_seconds ?? DEFAULT_TIMEOUT_SECONDS,
    max_attempts: input.max_attempts ?? DEFAULT_MAX_ATTEMPTS,
    retry: { ...DEFAULT_RETRY, ...input.retry },
    created_by: `${auth.actor.type}:${auth.actor.id}`,
    run_at: runAt.toISOString(),
  };
}

/** After the commit: one bus event per job, and one wake-up per pool for the claimable ones. */
export function publishEnqueued(deps: Pick<AppDeps, 'bus' | 'queue'>, jobs: readonly JobRow[]): void {
  for (const job of jobs) publishOrgEvent(deps.bus, job.org_id, `job.${job.state}`, jobEventData(job));
  deps.queue.wakeups.notifyReady(jobs.filter((j) => j.state === 'queued'));
}
