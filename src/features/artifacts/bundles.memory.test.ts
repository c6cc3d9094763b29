// A 200 MB bundle downloads from a real server process with bounded memory: 20 × 10 MB of
// random artifacts are uploaded through the real upload route by an agent, the ZIP is
// downloaded as a stream (hashed on the fly, spooled to disk, never held), the server's RSS
// is sampled from /proc while it streams, and every entry is checked against its upload.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { startServer, type E2eServer } from '../../../test/agent/harness.js';

const FILES = 20;
const FILE_BYTES = 10 * 1024 * 1024;
/** Far below the 200 MB streamed: what a buffered download would at least cost. */
const MAX_RSS_GROWTH = 64 * 1024 * 1024;

let server: E2eServer;
beforeAll(async () => {
  // Long leases: the test's agent uploads without heartbeating.
  server = await startServer({ CAIRN_JOB_LEASE_SECONDS: '600', CAIRN_AGENT_HEARTBEAT_SECONDS: '10' });
}, 180_000);
afterAll(async () => {
  await server?.close();
});

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function ok<T>(res: { status: number; body: T }, status: number): Promise<T> {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  return res.body;
}

/** The SHA-256 of every entry, read from the ZIP file one entry at a time. */
function entryHashes(file: string): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (error, zip) => {
      if (error) return reject(error);
      const hashes = new Map<string, string>();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (err, stream) => {
          if (err) return reject(err);
          const hash = createHash('sha256');
          stream.on('data', (chunk: Buffer) => hash.update(chunk));
          stream.on('error', reject);
          stream.on('end', () => {
            hashes.set(entry.fileName, hash.digest('hex'));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(hashes));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

describe('artifact bundle memory', () => {
  it('streams a 200 MB ZIP with the server’s memory growing far less than that', async () => {
    const project = await ok(await server.api<{ id: string }>('POST', '/api/v1/projects', { name: 'Big bundle' }), 201);
    const source = 'steps:\n  - key: build\n    command: make\n    agents:\n      pool: big\n';
    await ok(await server.api('PUT', `/api/v1/projects/${project.id}/pipeline`, { source }), 200);
    const pool = await server.createPool('big');
    const registered = await fetch(`${server.url}/api/v1/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${pool.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'uploader' }),
    });
    expect(registered.status).toBe(201);
    const agentAuth = { authorization: `Bearer ${((await registered.json()) as { token: string }).token}` };
    await ok(await server.api('POST', `/api/v1/projects/${project.id}/runs`, {}), 201);
    const claimed = await fetch(`${server.url}/api/v1/queue/claim`, {
      method: 'POST',
      headers: { ...agentAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ max: 1, wait_seconds: 10 }),
    });
    expect(claimed.status).toBe(200);
    const [job] = ((await claimed.json()) as { jobs: { id: string; lease_token: string }[] }).jobs;

    const expected = new Map<string, string>();
    for (let i = 0; i < FILES; i++) {
      const data = randomBytes(FILE_BYTES);
      const name = `out/part-${String(i).padStart(2, '0')}.bin`;
      expected.set(`1/build/${name}`, createHash('sha256').update(data).digest('hex'));
      const res = await fetch(`${server.url}/api/v1/jobs/${job!.id}/artifacts?path=${encodeURIComponent(name)}`, {
        method: 'PUT',
        headers: { ...agentAuth, 'content-type': 'application/octet-stream', 'x-lease-token': job!.lease_token },
        body: data,
      });
      expect(res.status, await res.clone().text()).toBe(201);
    }

    // A fresh server process on the same database and blobs, so what the uploads left in its
    // heap cannot hide what the download costs; warmed up by a bundle of an empty project.
    await server.kill('SIGTERM');
    await server.restart();
    const empty = await ok(await server.api<{ id: string }>('POST', '/api/v1/projects', { name: 'Warm-up' }), 201);
    expect((await (await server.raw(`/api/v1/projects/${empty.id}/artifacts/download`)).arrayBuffer()).byteLength).toBe(22);
    const pid = server.process.child.pid!;
    const baseline = await rssOf(pid);
    let peak = baseline;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await rssOf(pid));
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    const res = await server.raw(`/api/v1/projects/${project.id}/artifacts/download`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/zip');
    const whole = createHash('sha256');
    let bytes = 0;
    const file = path.join(server.dir, 'bundle.zip');
    await pipeline(
      Readable.fromWeb(res.body! as WebReadableStream<Uint8Array>),
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          whole.update(chunk);
          bytes += chunk.length;
          done(null, chunk);
        },
      }),
      createWriteStream(file),
    );
    sampling = false;
    await sampler;

    const growth = peak - baseline;
    console.info(
      `bundle: ${(bytes / 1048576).toFixed(1)} MiB streamed (sha256 ${whole.digest('hex').slice(0, 16)}…); ` +
        `server RSS ${(baseline / 1048576).toFixed(1)} → peak ${(peak / 1048576).toFixed(1)} MiB (+${(growth / 1048576).toFixed(1)} MiB)`,
    );
    expect(bytes).toBeGreaterThan(FILES * FILE_BYTES);
    expect(growth).toBeLessThan(MAX_RSS_GROWTH);
    expect(await entryHashes(file)).toEqual(expected);
  }, 300_000);
});
