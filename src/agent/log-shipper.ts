// Ships one job's (already redacted) output to the server as ordered chunks:
// `POST /jobs/{id}/log {lease_token, offset, data}`, one request in flight, every
// FLUSH_INTERVAL_MS or as soon as MAX_CHUNK_BYTES are waiting. A failed request is retried
// with the same offset and data: the server appends idempotently by offset, so a chunk
// whose answer was lost is not stored twice. Offsets count UTF-8 bytes of the log.
import { ApiError, isRetryable, retryAfterOf } from '../client/api-request.js';
import type { AgentApi } from '../client/agent-api.js';
import { createBackoff, sleep } from '../client/backoff.js';

export const FLUSH_INTERVAL_MS = 300;
/**
 * 256 KiB per request: the data travels as a JSON string, where a control character costs
 * up to six bytes, so even the worst output stays well under the server's body limit. A
 * server that still answers 413 gets smaller chunks.
 */
export const MAX_CHUNK_BYTES = 256 * 1024;
const MIN_CHUNK_BYTES = 4 * 1024;
/** Past this much unsent output the job's pipes are paused (it blocks on write) … */
const PAUSE_ABOVE_BYTES = 16 * 1024 * 1024;
/** … until the backlog is down to this. */
const RESUME_BELOW_BYTES = 1024 * 1024;

export interface LogShipperInput {
  api: AgentApi;
  jobId: string;
  leaseToken: string;
  onCancelRequested(): void;
  /** The server says this lease is over (409 lease_not_current / job_finished). */
  onLeaseGone(code: string): void;
  onPressure(paused: boolean): void;
  warn(message: string): void;
}

export interface LogShipper {
  write(text: string): void;
  /** Sends everything written so far; resolves when delivered, abandoned, or after `maxWaitMs`. */
  close(maxWaitMs: number): Promise<void>;
  /** Stops at once; what is unsent is dropped. */
  abort(): void;
}

/** Largest prefix of `bytes` of at most `max` bytes that ends on a character boundary. */
export function utf8Prefix(bytes: Buffer, max: number): Buffer {
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

export function createLogShipper(input: LogShipperInput): LogShipper {
  // Written output as it came (each piece whole characters), consolidated only to send.
  const queue: Buffer[] = [];
  let queued = 0;
  let offset = 0;
  let chunkLimit = MAX_CHUNK_BYTES;
  let stopped = false;
  let paused = false;
  let timer: NodeJS.Timeout | undefined;
  let pumping: Promise<void> | undefined;
  const stop = new AbortController();
  const backoff = createBackoff({ baseMs: 250, maxMs: 5_000 });

  function pressure() {
    if (!paused && queued > PAUSE_ABOVE_BYTES) input.onPressure((paused = true));
    else if (paused && queued < RESUME_BELOW_BYTES) input.onPressure((paused = false));
  }

  /** The next chunk to send: at most `limit` bytes, whole characters. */
  function front(limit: number): Buffer {
    let bytes = 0;
    let count = 0;
    while (count < queue.length && bytes < limit) bytes += queue[count++]!.length;
    if (count > 1) queue.splice(0, count, Buffer.concat(queue.slice(0, count)));
    return utf8Prefix(queue[0] ?? Buffer.alloc(0), limit);
  }

  function drop(bytes: number) {
    while (bytes > 0 && queue.length > 0) {
      const head = queue[0]!;
      const taken = Math.min(bytes, head.length);
      if (taken === head.length) queue.shift();
      else queue[0] = head.subarray(taken);
      queued -= taken;
      bytes -= taken;
    }
    pressure();
  }

  function finish() {
    stopped = true;
    stop.abort();
    clearTimeout(timer);
    queue.length = 0;
    queued = 0;
    if (paused) input.onPressure((paused = false));
  }

  function kick() {
    clearTimeout(timer);
    timer = undefined;
    pumping ??= pump().finally(() => {
      pumping = undefined;
      if (queued > 0 && !stopped) schedule();
    });
  }

  function schedule() {
    if (queued >= chunkLimit) kick();
    else timer ??= setTimeout(kick, FLUSH_INTERVAL_MS);
  }

  /** Adopts the server's view after an offset mismatch. */
  function realign(expected: number, chunkLength: number) {
    if (expected >= offset + chunkLength) drop(chunkLength);
    else if (expected > offset) drop(front(expected - offset).length);
    // expected < offset: the server has less than we sent; what it lacks is gone, carry on.
    offset = expected;
  }

  /** Sends `chunk`; answers it again when it must be retried as it is (same offset, same bytes). */
  async function sendOnce(chunk: Buffer): Promise<Buffer | undefined> {
    try {
      const answer = await input.api.appendLog(input.jobId, {
        lease_token: input.leaseToken,
        offset,
        data: chunk.toString('utf8'),
      });
      offset = answer.size;
      drop(chunk.length);
      backoff.reset();
      if (answer.cancel_requested) input.onCancelRequested();
      if (answer.truncated) {
        input.warn('the server cut this job’s log at its size limit; the rest of the output is not sent');
        finish();
      }
    } catch (error) {
      if (stopped) return undefined;
      if (isRetryable(error)) {
        await sleep(backoff.next(retryAfterOf(error)), stop.signal);
        return chunk;
      } else if (!(error instanceof ApiError)) {
        input.warn(`cannot send this job’s log: ${String(error)}`);
        finish();
      } else if (error.status === 409 && error.code === 'log_offset_mismatch' && typeof error.body.expected_offset === 'number') {
        realign(error.body.expected_offset, chunk.length);
      } else if (error.status === 409) {
        finish();
        input.onLeaseGone(error.code);
      } else if (error.status === 413 && chunkLimit > MIN_CHUNK_BYTES) {
        chunkLimit = Math.max(MIN_CHUNK_BYTES, Math.floor(chunkLimit / 2));
      } else {
        input.warn(`the server refused this job’s log (${error.message}); its output is not sent`);
        finish();
      }
    }
    return undefined;
  }

  async function pump(): Promise<void> {
    // A retry resends exactly the bytes of the failed request, even if more output came
    // meanwhile: that is what the server recognizes as a retry rather than a new chunk.
    let retry: Buffer | undefined;
    while (!stopped && queued > 0) retry = await sendOnce(retry ?? front(chunkLimit));
  }

  return {
    write(text) {
      if (stopped || text.length === 0) return;
      const bytes = Buffer.from(text, 'utf8');
      queue.push(bytes);
      queued += bytes.length;
      pressure();
      schedule();
    },
    async close(maxWaitMs) {
      const deadline = setTimeout(finish, maxWaitMs);
      try {
        while (!stopped && (queued > 0 || pumping)) {
          kick();
          await pumping;
        }
      } finally {
        clearTimeout(deadline);
        finish();
      }
    },
    abort: finish,
  };
}
