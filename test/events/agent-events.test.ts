// A job run by the real `cairn agent` on a real server, watched over a WebSocket: its
// transitions arrive in order on `job:<id>`, and its log lines arrive on `job:<id>:log`
// while it still runs, not after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, startServer, type E2eAgent, type E2eServer } from '../agent/harness.js';
import { TestSocket, wsUrl, type Message } from './helpers.js';

let server: E2eServer;
let agent: E2eAgent;

beforeAll(async () => {
  server = await startServer();
  agent = await startAgent(server, await server.createPool('watched'));
}, 120_000);
afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

describe('events of a job run by a real agent', () => {
  it('arrive in order, with the log streamed live', async () => {
    // Delayed a second, so the socket is subscribed before anything happens to the job.
    const job = await server.enqueue({
      pool: 'watched',
      delay_seconds: 1,
      commands: ['echo "first line"', 'sleep 2', 'echo "second line"'],
    });
    const socket = await TestSocket.open(wsUrl(server.url), { protocols: ['cairn.v1', `bearer.${server.accessToken()}`] });
    try {
      socket.send({ type: 'subscribe', topic: `job:${job.id}` });
      socket.send({ type: 'subscribe', topic: `job:${job.id}:log` });
      await socket.next((m) => m.type === 'subscribed' && m.topic === `job:${job.id}:log`);

      const completed = await socket.next((m) => m.type === 'job.completed' && m.topic === `job:${job.id}`, {
        timeoutMs: 30_000,
      });
      const onJob = socket.messages.filter((m) => m.topic === `job:${job.id}` && m.type.startsWith('job.'));
      expect(onJob.map((m) => m.type)).toEqual(['job.queued', 'job.claimed', 'job.started', 'job.completed']);
      // Ids order the events: each later than the one before.
      const ids = onJob.map((m) => m.id!);
      expect([...ids].sort(compareIds)).toEqual(ids);

      const chunks = socket.messages.filter((m) => m.topic === `job:${job.id}:log` && m.type === 'job.log');
      const text = (m: Message) => String(m.data.data);
      const first = chunks.find((m) => text(m).includes('first line'));
      const second = chunks.find((m) => text(m).includes('second line'));
      expect(first, 'the first line arrived').toBeDefined();
      expect(second, 'the second line arrived').toBeDefined();
      // Live: the first line came about two seconds before the job ended, the second after it.
      expect(new Date(completed.at).getTime() - new Date(first!.at).getTime()).toBeGreaterThan(1_500);
      expect(socket.messages.indexOf(first!)).toBeLessThan(socket.messages.indexOf(second!));
      expect(await server.logText(job.id)).toContain('first line');
    } finally {
      socket.ws.close();
    }
  }, 60_000);
});

/** Event ids are `<ms>-<n>` (or stream ids of the same shape): compare numerically. */
function compareIds(a: string, b: string): number {
  const [am, an] = a.replace(/^L/, '').split('-').map(Number);
  const [bm, bn] = b.replace(/^L/, '').split('-').map(Number);
  return am! - bm! || an! - bn!;
}
