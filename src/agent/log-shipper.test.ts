// The shipper against a stand-in for the log endpoint that keeps the server's contract
// (append at the current size; a retry of a stored chunk is answered, not stored twice;
// otherwise 409 log_offset_mismatch with expected_offset) and fails when told to.
import { describe, expect, it } from 'vitest';
import type { AgentApi, LogAnswer } from '../client/agent-api.js';
import { ApiError, NetworkError } from '../client/api-request.js';
import { createLogShipper, utf8Prefix } from './log-shipper.js';

function fakeLogServer() {
  const chunks = new Map<number, number>(); // offset → length
  let log = Buffer.alloc(0);
  const failures: Array<'network-after-store' | 'network' | 'cancel' | 'lease-gone' | 'mismatch-ahead'> = [];
  const calls: Array<{ offset: number; bytes: number }> = [];
  const appendLog = async (_id: string, body: { lease_token: string; offset: number; data: string }): Promise<LogAnswer> => {
    const bytes = Buffer.from(body.data, 'utf8');
    calls.push({ offset: body.offset, bytes: bytes.length });
    const failure = failures.shift();
    if (failure === 'network') throw new NetworkError('connect ECONNREFUSED');
    if (failure === 'lease-gone') throw new ApiError(409, 'lease_not_current', 'no', undefined, {});
    if (body.offset !== log.length) {
      if (chunks.get(body.offset) === bytes.length) return { size: log.length, truncated: false, cancel_requested: false };
      throw new ApiError(409, 'log_offset_mismatch', 'wrong offset', undefined, { expected_offset: log.length });
    }
    chunks.set(log.length, bytes.length);
    log = Buffer.concat([log, bytes]);
    if (failure === 'network-after-store') throw new NetworkError('socket hang up');
    return { size: log.length, truncated: false, cancel_requested: failure === 'cancel' };
  };
  return { api: { appendLog } as unknown as AgentApi, failures, calls, text: () => log.toString('utf8') };
}

function shipperFor(server: ReturnType<typeof fakeLogServer>) {
  const events: string[] = [];
  const shipper = createLogShipper({
    api: server.api,
    jobId: 'job',
    leaseToken: 'lease',
    onCancelRequested: () => events.push('cancel'),
    onLeaseGone: (code) => events.push(`gone:${code}`),
    onPressure: (paused) => events.push(paused ? 'pause' : 'resume'),
    warn: (message) => events.push(`warn:${message}`),
  });
  return { shipper, events };
}

describe('log shipper', () => {
  it('delivers output in order, batching writes', async () => {
    const server = fakeLogServer();
    const { shipper } = shipperFor(server);
    for (let i = 0; i < 100; i++) shipper.write(`line ${i}\n`);
    await shipper.close(5_000);
    expect(server.text()).toBe(Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(''));
    expect(server.calls.length).toBeLessThan(5);
  });

  it('retries the same offset after a lost answer and never stores a chunk twice', async () => {
    const server = fakeLogServer();
    server.failures.push('network-after-store', 'network');
    const { shipper } = shipperFor(server);
    shipper.write('héllo ');
    await shipper.close(10_000);
    shipper.write('ignored after close');
    expect(server.text()).toBe('héllo ');
    expect(server.calls.map((c) => c.offset)).toEqual([0, 0, 0]);
  });

  it('resends exactly the failed chunk, even when more output came meanwhile', async () => {
    const server = fakeLogServer();
    server.failures.push('network-after-store');
    const { shipper } = shipperFor(server);
    shipper.write('first ');
    await new Promise((r) => setTimeout(r, 350)); // flushed on the timer; its answer is lost
    shipper.write('second');
    await shipper.close(5_000);
    expect(server.text()).toBe('first second');
    expect(server.calls).toEqual([
      { offset: 0, bytes: 6 },
      { offset: 0, bytes: 6 },
      { offset: 6, bytes: 6 },
    ]);
  });

  it('adopts the server’s offset when they disagree', async () => {
    const server = fakeLogServer();
    // The server already holds the start of this output (stored under an answer we never saw).
    await server.api.appendLog('job', { lease_token: 'lease', offset: 0, data: 'first ' });
    const { shipper } = shipperFor(server);
    shipper.write('first second');
    await shipper.close(5_000);
    expect(server.text()).toBe('first second');
    expect(server.calls.slice(1)).toEqual([
      { offset: 0, bytes: 12 },
      { offset: 6, bytes: 6 },
    ]);
  });

  it('passes on a cancel request and a lost lease', async () => {
    const server = fakeLogServer();
    server.failures.push('cancel');
    const { shipper, events } = shipperFor(server);
    shipper.write('a');
    await shipper.close(5_000);
    expect(events).toEqual(['cancel']);

    const lost = fakeLogServer();
    lost.failures.push('lease-gone');
    const second = shipperFor(lost);
    second.shipper.write('b');
    await second.shipper.close(5_000);
    expect(second.events).toEqual(['gone:lease_not_current']);
    expect(lost.text()).toBe('');
  });

  it('gives up when closing takes longer than allowed (server away)', async () => {
    const server = fakeLogServer();
    server.failures.push(...Array.from({ length: 100 }, () => 'network' as const));
    const { shipper } = shipperFor(server);
    shipper.write('x');
    const started = Date.now();
    await shipper.close(600);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('cuts chunks on character boundaries', () => {
    const bytes = Buffer.from('aé😀', 'utf8'); // 1 + 2 + 4 bytes
    expect(utf8Prefix(bytes, 2).toString()).toBe('a');
    expect(utf8Prefix(bytes, 3).toString()).toBe('aé');
    expect(utf8Prefix(bytes, 6).toString()).toBe('aé');
    expect(utf8Prefix(bytes, 7).toString()).toBe('aé😀');
  });
});
