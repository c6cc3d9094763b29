// Reading a job's log, and following it live: what `cairn logs <job> [-f]` does. The log is
// read by byte offset over REST (GET /api/v1/jobs/{id}/log); following subscribes to
// `job:<id>:log` first, so nothing written meanwhile is missed, prints each live chunk once
// (chunks carry their offset: repeats are skipped, a hole is filled from REST), and ends
// when the job reaches a final state, after reading what is left.
import { apiRequest, type ApiTarget } from './api-request.js';
import { openEventStream, StreamClosedError, type StreamMessage } from './event-stream.js';

export interface LogRange {
  job_id: string;
  attempt: number;
  offset: number;
  next_offset: number;
  size: number;
  truncated: boolean;
  finished: boolean;
  data: string;
}

export const FINAL_JOB_STATES = ['completed', 'failed', 'canceled', 'timed_out', 'dead_lettered'] as const;
const FINAL_EVENTS = new Set(FINAL_JOB_STATES.map((s) => `job.${s}`));
const TIMEOUT_MS = 30_000;

export async function readJobLog(
  target: ApiTarget,
  jobId: string,
  query: { attempt?: number; offset?: number; limit?: number } = {},
): Promise<LogRange> {
  const params = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
  const path = `/api/v1/jobs/${encodeURIComponent(jobId)}/log${params.size ? `?${params.toString()}` : ''}`;
  return (await apiRequest<LogRange>(target, { method: 'GET', path, timeoutMs: TIMEOUT_MS })).body!;
}

export interface PrintLogOptions {
  /** Keep following until the job ends. */
  follow: boolean;
  /** An earlier attempt; default: the latest. */
  attempt?: number;
  write(text: string): void;
  /** A new attempt's output begins (a retry). */
  onAttempt?(attempt: number): void;
  signal?: AbortSignal;
}

/** Prints the log; with `follow`, until the job ends. Returns the job's final state when it saw one. */
export async function printJobLog(target: ApiTarget, jobId: string, opts: PrintLogOptions): Promise<{ state: string | null }> {
  let attempt = opts.attempt;
  let position = 0;

  /** Reads from `position` to the end of what is stored now. */
  async function drain(): Promise<void> {
    for (;;) {
      const range = await readJobLog(target, jobId, { ...(attempt !== undefined ? { attempt } : {}), offset: position });
      if (attempt === undefined) attempt = range.attempt;
      if (range.data) opts.write(range.data);
      position = range.next_offset;
      if (range.next_offset >= range.size) return;
    }
  }

  if (!opts.follow) {
    await drain();
    return { state: null };
  }

  let state: string | null = null;
  let work = Promise.resolve();
  let failure: Error | undefined;
  // Live chunks and catch-up reads run one at a time, in arrival order.
  const serially = (step: () => Promise<void>) => {
    work = work.then(step).catch((error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(String(error));
      stream.close();
    });
  };

  async function onChunk(event: StreamMessage): Promise<void> {
    const chunk = event.data as { attempt: number; offset: number; data: string };
    if (opts.attempt !== undefined && chunk.attempt !== opts.attempt) return;
    if (attempt !== undefined && chunk.attempt < attempt) return;
    if (attempt === undefined || chunk.attempt > attempt) {
      attempt = chunk.attempt;
      position = 0;
      opts.onAttempt?.(attempt);
    }
    const bytes = Buffer.from(chunk.data, 'utf8');
    if (chunk.offset > position) await drain(); // a hole (joined late, or a chunk went missing): REST has it
    if (chunk.offset + bytes.length <= position) return; // printed already
    opts.write(bytes.subarray(position - chunk.offset).toString('utf8'));
    position = chunk.offset + bytes.length;
  }

  async function finish(final: string): Promise<void> {
    await drain(); // the last chunks may still be on their way
    state = final;
    stream.close();
  }

  let started = false;
  const stream = openEventStream(target, {
    topics: [`job:${jobId}:log`],
    signal: opts.signal,
    onSubscribed: () => {
      if (started) return serially(drain); // after a reconnect: read what passed meanwhile
      started = true;
      // Subscribed first, then read: whatever is written from now on also arrives live.
      serially(async () => {
        await drain();
        const job = (
          await apiRequest<{ state: string }>(target, { method: 'GET', path: `/api/v1/jobs/${jobId}`, timeoutMs: TIMEOUT_MS })
        ).body!;
        if ((FINAL_JOB_STATES as readonly string[]).includes(job.state)) await finish(job.state);
      });
    },
    onResync: () => serially(drain),
    onRefused: (_topic, code, message) => {
      failure ??= new StreamClosedError(message, code);
    },
    onEvent: (event) => {
      if (state !== null) return;
      if (event.type === 'job.log') serially(() => onChunk(event));
      else if (FINAL_EVENTS.has(event.type)) serially(() => finish(event.type.slice('job.'.length)));
    },
  });
  await stream.done;
  await work;
  if (failure) throw failure;
  return { state };
}
