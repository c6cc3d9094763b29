// Job logs: agents append chunks at byte offsets (ordered, idempotent on retry, capped per
// attempt); users read a range, the tail, or the whole log as text. Chunks live in
// PostgreSQL, so every replica serves every log, and they are published live on the bus.
// Appending is not audited: a log line is output, not a mutation of record.
import { Readable } from 'node:stream';
import type { AuthContext } from '../../platform/auth.js';
import { publishOrgEvent } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { AppError, BadRequestError, ConflictError, NotFoundError } from '../../platform/errors.js';
import { findJob } from '../queue/jobs.queries.js';
import { FINAL_STATES, type JobRow } from '../queue/queue.model.js';
import { withLeasedJob } from './lease-fence.js';
import {
  appendChunk,
  chunkLengthAt,
  findLogHead,
  lockLogHead,
  readChunks,
  readLogRange,
  type LeasedJob,
} from './logs.queries.js';
import { fitWholeChars, partialCharAtStart, wholeCharsAtLeastOne } from './logs.utf8.js';

/** Largest chunk an agent may send, and largest range one read returns. */
export const LOG_CHUNK_MAX_BYTES = 1_048_576;
/** The append route's body limit: a full chunk plus room for JSON escapes (ANSI colours are \u001b). */
export const LOG_BODY_LIMIT_BYTES = 2 * 1_048_576;

type Deps = Pick<AppDeps, 'db' | 'bus' | 'config'>;

export interface AppendInput {
  lease_token: string;
  offset: number;
  data: string;
}

export interface AppendAnswer {
  size: number;
  truncated: boolean;
  cancel_requested: boolean;
}

export const truncationMarker = (keptBytes: number) => `\n[cairn: log truncated at ${keptBytes} bytes]\n`;

/**
 * Appends a chunk to the log of the job's current attempt. `offset` must be the log's size
 * (a new chunk), or the offset of a stored chunk of the same length (a retry: answered, not
 * stored twice). Past the cap the chunk is cut, a marker line added, and the log closed.
 */
export async function appendLog(deps: Deps, auth: AuthContext, jobId: string, input: AppendInput): Promise<AppendAnswer> {
  const bytes = Buffer.from(input.data, 'utf8');
  if (bytes.length > LOG_CHUNK_MAX_BYTES) {
    throw new AppError(
      413,
      'log_chunk_too_large',
      'Payload too large',
      `A log chunk holds at most ${LOG_CHUNK_MAX_BYTES} bytes.`,
    );
  }
  return withLeasedJob(deps, auth, jobId, input.lease_token, async (tx, job, after) => {
    const head = await lockLogHead(tx, job);
    const answer = (h: { size: number; truncated: boolean }) => ({
      size: h.size,
      truncated: h.truncated,
      cancel_requested: job.cancel_requested,
    });
    if (head.truncated) return answer(head); // the log is closed: later output is dropped

    if (input.offset !== head.size) {
      const stored = input.offset < head.size ? await chunkLengthAt(tx, job.id, job.attempt, input.offset) : undefined;
      if (bytes.length > 0 && stored === bytes.length) return answer(head);
      throw new ConflictError(
        `The log of attempt ${job.attempt} has ${head.size} bytes; send the chunk at offset ${head.size}.`,
        'log_offset_mismatch',
        { expected_offset: head.size },
      );
    }
    if (bytes.length === 0) return answer(head);

    const room = Math.max(0, deps.config.jobLogMaxBytes - head.size);
    let data = bytes;
    const truncated = bytes.length > room;
    if (truncated) {
      const kept = fitWholeChars(bytes, room);
      data = Buffer.concat([bytes.subarray(0, kept), Buffer.from(truncationMarker(head.size + kept))]);
    }
    const offset = head.size;
    const updated = await appendChunk(tx, job, offset, data, truncated);
    after.add(() => publishLogEvent(deps, job, offset, data));
    return answer(updated);
  });
}

function publishLogEvent(deps: Deps, job: LeasedJob, offset: number, data: Buffer): void {
  publishOrgEvent(deps.bus, job.org_id, 'job.log', {
    job_id: job.id,
    attempt: job.attempt,
    offset,
    data: data.toString('utf8'),
    project_id: job.project_id,
    run_id: job.run_id,
  });
}

export interface ReadQuery {
  attempt?: number;
  offset?: number;
  limit?: number;
  tail?: number;
}

/** Has the attempt ended? (The job moved on to a later attempt, waits for a retry, or finished.) */
function attemptFinished(job: JobRow, attempt: number): boolean {
  if ((FINAL_STATES as readonly string[]).includes(job.state)) return true;
  if (job.attempt !== attempt) return job.attempt > attempt;
  return job.state !== 'claimed' && job.state !== 'running';
}

async function resolveAttempt(deps: Pick<AppDeps, 'db'>, auth: AuthContext, jobId: string, attempt: number | undefined) {
  const job = await findJob(deps.db, auth.orgId, jobId);
  if (!job) throw new NotFoundError('Job');
  // Before its first claim a job is about to run attempt 1: its (empty) log is readable.
  const latest = Math.max(job.attempt, 1);
  const wanted = attempt ?? latest;
  if (wanted > latest) throw new NotFoundError(`Attempt ${wanted} of this job`, 'attempt_not_found');
  const head = await findLogHead(deps.db, auth.orgId, jobId, wanted);
  return { job, attempt: wanted, size: head?.size ?? 0, truncated: head?.truncated ?? false };
}

/**
 * A range of the log as text: from `offset` (default 0) at most `limit` bytes, or the last
 * `tail` bytes. Ranges snap to characters: the start moves forward past a split character,
 * the end back before one (`offset`/`next_offset` say where the answer really lies).
 */
export async function readLog(deps: Pick<AppDeps, 'db'>, auth: AuthContext, jobId: string, q: ReadQuery) {
  if (q.tail !== undefined && q.offset !== undefined) {
    throw new BadRequestError('Ask for either `tail` or `offset`, not both.', 'conflicting_parameters');
  }
  const log = await resolveAttempt(deps, auth, jobId, q.attempt);
  const limit = Math.min(q.limit ?? LOG_CHUNK_MAX_BYTES, LOG_CHUNK_MAX_BYTES);
  const start = q.tail !== undefined ? Math.max(0, log.size - q.tail) : Math.min(q.offset ?? 0, log.size);
  const end = q.tail !== undefined ? log.size : Math.min(start + limit, log.size);
  let offset = start;
  let data: Buffer = Buffer.alloc(0);
  if (start < end) {
    // Three bytes past the end, so a character that straddles it can be completed if needed.
    const bytes = await readLogRange(deps.db, jobId, log.attempt, start, Math.min(end + 3, log.size));
    const skip = start > 0 ? partialCharAtStart(bytes) : 0;
    const rest = bytes.subarray(skip);
    offset = start + skip;
    data = rest.subarray(0, wholeCharsAtLeastOne(rest, end - offset));
  }
  return {
    job_id: jobId,
    attempt: log.attempt,
    offset,
    next_offset: offset + data.length,
    size: log.size,
    truncated: log.truncated,
    finished: attemptFinished(log.job, log.attempt),
    data: data.toString('utf8'),
  };
}

const CHUNKS_PER_QUERY = 8;

/** The whole log of an attempt as a byte stream, read a few chunks at a time. */
export async function openLogText(deps: Pick<AppDeps, 'db'>, auth: AuthContext, jobId: string, attempt?: number) {
  const log = await resolveAttempt(deps, auth, jobId, attempt);
  // Up to the size seen now: a log still being written is read as of this moment.
  const below = log.size;
  async function* chunks() {
    let after = -1;
    for (;;) {
      const rows = await readChunks(deps.db, { jobId, attempt: log.attempt, after, below, limit: CHUNKS_PER_QUERY });
      for (const row of rows) yield Buffer.from(row.data);
      if (rows.length < CHUNKS_PER_QUERY) return;
      after = rows.at(-1)!.byte_offset;
    }
  }
  return {
    attempt: log.attempt,
    size: log.size,
    truncated: log.truncated,
    stream: Readable.from(chunks(), { objectMode: false }),
  };
}
