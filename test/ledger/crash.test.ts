// Crash safety of the ledger: a `cairn serve` child process is SIGKILLed while it answers
// a burst of audited mutations and sequences a large backlog; after a restart, nothing
// acknowledged is missing from the log and the log verifies.
//
// Only meaningful on PostgreSQL, where a separate server process can share the database
// with this test (embedded PGlite belongs to one process), so it is skipped without
// TEST_DATABASE_URL.
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutCheckpoint } from '../../src/features/ledger/ledger.checkpoints.js';
import { loadLedgerIdentity } from '../../src/features/ledger/ledger.identity.js';
import { checkIntegrity } from '../../src/features/ledger/ledger.integrity.js';
import { sequenceAll } from '../../src/features/ledger/ledger.sequencer.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createApiTokenFor, createOrgAndLogin } from '../helpers/auth.js';
import { usingPostgres } from '../helpers/db.js';
import { runCli, type CliProcess } from '../helpers/process.js';

const BACKLOG = 60_000;
const WORKERS = 16;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, server: CliProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`server exited early:\n${server.output()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not become ready:\n${server.output()}`);
}

describe.skipIf(!usingPostgres)('ledger crash safety (PostgreSQL, child server)', () => {
  let t: TestApp;
  let databaseUrl: string;
  let server: CliProcess | undefined;
  let token: string;

  beforeAll(async () => {
    // The in-process app only creates the credentials; the child serves the traffic.
    t = await buildTestApp();
    const { rows } = await t.deps.db.query<{ name: string }>('SELECT current_database() AS name');
    const target = new URL(process.env.TEST_DATABASE_URL!);
    target.pathname = `/${rows[0]!.name}`;
    databaseUrl = target.toString();
    const admin = await createOrgAndLogin(t, { role: 'admin' });
    token = (await createApiTokenFor(t, admin, ['projects:write'])).token;
    // A backlog, so the sequencer is busy with large batches when the process dies.
    await t.deps.db.query(
      `INSERT INTO ledger_queue (org_id, kind, ref_id, leaf_hash)
       SELECT $1, 'crash-test', gen_random_uuid(), sha256(int8send(g)) FROM generate_series(1, $2::int) g`,
      [admin.orgId, BACKLOG],
    );
  }, 120_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    await t?.close();
  });

  const serve = async (port: number) => {
    const s = runCli(['serve'], {
      DATABASE_URL: databaseUrl,
      REDIS_URL: '',
      HOST: '127.0.0.1',
      PORT: String(port),
      CAIRN_LOG_LEVEL: 'error',
      CAIRN_RATE_LIMIT_AUTHENTICATED: '1000000',
    });
    await waitReady(`http://127.0.0.1:${port}`, s);
    return s;
  };

  it('loses no acknowledged audit event when the server is killed mid-burst', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    server = await serve(port);

    const acknowledged: string[] = [];
    let attempted = 0;
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        attempted++;
        try {
          const res = await fetch(`${url}/api/v1/projects`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ name: `crash ${w} ${i}` }),
          });
          if (res.status === 201) acknowledged.push(((await res.json()) as { id: string }).id);
          else await res.body?.cancel();
        } catch {
          return; // the server is gone
        }
      }
    };
    const burst = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    while (acknowledged.length < 100) await new Promise((r) => setTimeout(r, 10));
    const queuedAtKill = (await t.deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger_queue')).rows[0]!.n;
    server.child.kill('SIGKILL');
    await server.exited;
    stop = true;
    await burst;
    expect(acknowledged.length).toBeGreaterThanOrEqual(100);
    expect(queuedAtKill, 'the kill landed while leaves were still waiting').toBeGreaterThan(0);

    // Restart on the same database: the new leader takes over the queue.
    server = await serve(port);
    const identity = await loadLedgerIdentity(t.deps.db, 'cairn.local');
    await sequenceAll(t.deps.db);
    await cutCheckpoint(t.deps.db, identity);

    const db = t.deps.db;
    expect((await db.query('SELECT 1 FROM ledger_queue')).rowCount).toBe(0);
    const { rows: missing } = await db.query<{ id: string }>(
      `SELECT p.id FROM unnest($1::text[]) AS p(id)
        WHERE NOT EXISTS (SELECT 1 FROM audit_events a JOIN ledger_leaves l ON l.ref_id = a.id
                           WHERE a.resource_type = 'project' AND a.resource_id = p.id)`,
      [acknowledged],
    );
    expect(missing, 'acknowledged projects without a ledger leaf').toEqual([]);
    const { rows: counts } = await db.query<{ leaves: number; refs: number; size: number; events: number }>(
      `SELECT (SELECT count(*)::int FROM ledger_leaves) AS leaves,
              (SELECT count(DISTINCT ref_id)::int FROM ledger_leaves) AS refs,
              (SELECT size::int FROM ledger_head) AS size,
              (SELECT count(*)::int FROM audit_events) AS events`,
    );
    // Every queued leaf appended exactly once: the backlog plus one per audit event.
    expect(counts[0]).toEqual({
      leaves: BACKLOG + counts[0]!.events,
      refs: BACKLOG + counts[0]!.events,
      size: BACKLOG + counts[0]!.events,
      events: counts[0]!.events,
    });
    expect(await checkIntegrity(db, identity.signer.publicKey)).toMatchObject({ ok: true });
    expect(attempted).toBeGreaterThan(acknowledged.length - 1);
  }, 180_000);
});
