// Ledger benchmark. Run: npx tsx bench/ledger.ts   (results: bench/README.md, "## Ledger")
// Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test, only its server
// is used: a throwaway database cairn_bench_ledger is created and dropped),
// LEDGER_BENCH_LEAVES (default 1000000), LEDGER_BENCH_PROOFS (default 2000),
// LEDGER_BENCH_KEEP_DB=1 to keep the database for inspection.
// Measures: sequencer append throughput; inclusion-proof latency over real HTTP against a
// `cairn serve` child at that size (baseline: GET /public-key, no database); export and
// `cairn verify --file` of the whole log (baseline: reading and JSON-parsing the file);
// audit overhead of a project insert (same transaction with vs. without recordAudit).
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { insertAuditEvents } from '../src/features/audit/audit.queries.js';
import { auditLeafHash, recordAudit, type AuditEvent } from '../src/features/audit/audit.record.js';
import { cutCheckpoint } from '../src/features/ledger/ledger.checkpoints.js';
import { loadLedgerIdentity } from '../src/features/ledger/ledger.identity.js';
import { sequenceAll } from '../src/features/ledger/ledger.sequencer.js';
import { ndjsonLines } from '../src/features/ledger/verifier/lines.js';
import { bootstrapFirstAdmin } from '../src/features/orgs/bootstrap.js';
import { insertProject } from '../src/features/projects/projects.queries.js';
import { systemContext } from '../src/platform/auth.js';
import type { Db } from '../src/platform/db/index.js';
import { migrate } from '../src/platform/db/migrate.js';
import { createPostgresDb } from '../src/platform/db/postgres.js';
import { openDeps } from '../src/server.js';
import { createBenchDatabase, machine, startProcess, stop, waitFor } from './lib.js';

const LEAVES = Number(process.env.LEDGER_BENCH_LEAVES ?? 1_000_000);
const PROOFS = Number(process.env.LEDGER_BENCH_PROOFS ?? 2_000);
const FILL_BATCH = 10_000;
const PORT = 3111;
const BASE = `http://127.0.0.1:${PORT}`;
const ADMIN = { email: 'bench@example.test', password: 'bench-password-123' };
const run = promisify(execFile);

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (n: number) => Number(n.toFixed(3));
function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return {
    p50: ms(pct(s, 50)),
    p99: ms(pct(s, 99)),
    max: ms(s[s.length - 1]!),
    mean: ms(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

/** A project.created-like audit event, as recordAudit would build it. */
function fakeEvent(orgId: string, i: number): AuditEvent {
  const id = randomUUID();
  const at = new Date(Date.UTC(2026, 0, 1) + i).toISOString();
  return {
    id: randomUUID(),
    org_id: orgId,
    occurred_at: at,
    actor: { type: 'user', id: randomUUID(), label: 'bench@example.test' },
    action: 'project.created',
    resource: { type: 'project', id },
    project_id: id,
    request_id: randomUUID(),
    client_ip: '127.0.0.1',
    payload: {
      after: {
        id,
        slug: `p-${i}`,
        name: `Project ${i}`,
        description: '',
        repository_url: null,
        project_type: 'service',
        created_at: at,
        updated_at: at,
      },
    },
  };
}

/** Audit rows plus their queued leaves, 10,000 per statement pair (what many writers would produce). */
async function fill(db: Db, orgId: string, n: number): Promise<number> {
  const started = performance.now();
  for (let done = 0; done < n; done += FILL_BATCH) {
    const events = Array.from({ length: Math.min(FILL_BATCH, n - done) }, (_, i) => fakeEvent(orgId, done + i));
    await db.transaction((tx) => insertAuditEvents(tx, events, events.map(auditLeafHash)));
  }
  return performance.now() - started;
}

/** Sequential GETs over one keep-alive connection; client-observed latency in ms. */
async function latencies(paths: string[], base = BASE): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  for (const p of paths) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      http
        .get(`${base}${p}`, { agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${p}: ${res.statusCode}`))));
        })
        .on('error', reject);
    });
    out.push(performance.now() - t0);
  }
  agent.destroy();
  return out;
}

/** The machine's floor: a bare node:http server answering {} in its own process, measured the same way. */
async function httpFloor(n: number) {
  const port = PORT + 1;
  const code = `require('node:http').createServer((q, s) => s.end('{}')).listen(${port}, '127.0.0.1')`;
  const bare = startProcess(process.execPath, ['-e', code], {});
  await waitFor(`http://127.0.0.1:${port}/`);
  await latencies(
    Array.from({ length: 200 }, () => '/'),
    `http://127.0.0.1:${port}`,
  );
  const result = summary(
    await latencies(
      Array.from({ length: n }, () => '/'),
      `http://127.0.0.1:${port}`,
    ),
  );
  await stop(bare);
  return result;
}

async function auditOverhead(db: Db, orgId: string, rounds: number) {
  const auth = systemContext(orgId, 'bench');
  const plain: number[] = [];
  const audited: number[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const withAudit of i % 2 === 0 ? [false, true] : [true, false]) {
      const t0 = performance.now();
      await db.transaction(async (tx) => {
        const row = await insertProject(tx, {
          orgId,
          slug: `ov-${withAudit ? 'a' : 'p'}-${i}`,
          name: `Overhead ${i}`,
          description: '',
          repositoryUrl: null,
          projectType: 'service',
        });
        if (withAudit)
          await recordAudit(tx, auth, {
            action: 'project.created',
            resource: ['project', row.id],
            projectId: row.id,
            after: row,
          });
      });
      (withAudit ? audited : plain).push(performance.now() - t0);
    }
  }
  return { without: summary(plain), with: summary(audited) };
}

const bench = await createBenchDatabase('cairn_bench_ledger');
const db = createPostgresDb(bench.url, 10);
const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-ledger-'));
let server: ReturnType<typeof startProcess> | undefined;
let deps: Awaited<ReturnType<typeof openDeps>> | undefined;
try {
  await migrate(db);
  const env = {
    DATABASE_URL: bench.url,
    CAIRN_LOG_LEVEL: 'warn',
    CAIRN_ADMIN_EMAIL: ADMIN.email,
    CAIRN_ADMIN_PASSWORD: ADMIN.password,
    CAIRN_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
    CAIRN_RATE_LIMIT_AUTHENTICATED: '100000000',
    CAIRN_RATE_LIMIT_ANONYMOUS: '10000000',
  };
  deps = await openDeps(loadConfig(env), { log: pino({ level: 'silent' }), db });
  await bootstrapFirstAdmin(deps, { embedded: false });
  const orgId = (await db.query<{ id: string }>(`SELECT id FROM organizations WHERE slug = 'default'`)).rows[0]!.id;

  console.error(`filling ${LEAVES} audit events…`);
  const fillMs = await fill(db, orgId, LEAVES);
  const firstChunk = Math.min(200_000, LEAVES);
  let t0 = performance.now();
  await sequenceAll(db, { maxBatches: Math.ceil(firstChunk / 5_000) });
  const firstMs = performance.now() - t0;
  t0 = performance.now();
  const rest = await sequenceAll(db);
  const restMs = performance.now() - t0;
  const size = (await db.query<{ size: number }>('SELECT size FROM ledger_head')).rows[0]!.size;
  t0 = performance.now();
  const identity = await loadLedgerIdentity(db, 'cairn.local');
  await cutCheckpoint(db, identity);
  const checkpointMs = performance.now() - t0;
  const append = {
    leaves: size,
    fill_per_s: Math.round((LEAVES / fillMs) * 1000),
    first_200k_per_s: Math.round((firstChunk / firstMs) * 1000),
    all_per_s: Math.round((size / (firstMs + restMs)) * 1000),
    rest_leaves: rest.appended,
    checkpoint_ms: ms(checkpointMs),
  };
  console.error('append', append);
  // After a bulk load, let PostgreSQL settle (as autovacuum would) before timing reads.
  await db.exec('VACUUM (ANALYZE) ledger_leaves, ledger_nodes, ledger_checkpoints, audit_events');
  await db.exec('CHECKPOINT');

  server = startProcess('node', ['--import', 'tsx', 'src/cli/index.ts', 'serve'], {
    ...env,
    PORT: String(PORT),
    HOST: '127.0.0.1',
  });
  await waitFor(`${BASE}/health/ready`, 60_000);
  const indexes = Array.from({ length: PROOFS }, () => Math.floor(Math.random() * size));
  await latencies(indexes.slice(0, 200).map((i) => `/api/v1/ledger/proofs/inclusion?index=${i}&size=${size}`)); // warm-up
  const proof = summary(await latencies(indexes.map((i) => `/api/v1/ledger/proofs/inclusion?index=${i}&size=${size}`)));
  const baseline = summary(await latencies(indexes.map(() => '/api/v1/ledger/public-key')));
  const floor = await httpFloor(PROOFS);
  console.error('proof latency', proof, 'public-key', baseline, 'bare node:http', floor);

  const login = (await (
    await fetch(`${BASE}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    })
  ).json()) as { access_token: string };
  const file = path.join(dir, 'export.ndjson');
  t0 = performance.now();
  const res = await fetch(`${BASE}/api/v1/ledger/export`, { headers: { authorization: `Bearer ${login.access_token}` } });
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(file));
  const exportMs = performance.now() - t0;
  const bytes = (await stat(file)).size;
  const verifierKey = ((await (await fetch(`${BASE}/api/v1/ledger/public-key`)).json()) as { verifier_key: string }).verifier_key;

  t0 = performance.now();
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', 'src/cli/index.ts', 'verify', '--file', file, '--public-key', verifierKey, '--no-state'],
    { maxBuffer: 1 << 24 },
  );
  const verifyMs = performance.now() - t0;
  t0 = performance.now();
  await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', '--version']);
  const cliStartMs = performance.now() - t0;
  t0 = performance.now();
  let parsed = 0;
  for await (const line of ndjsonLines(createReadStream(file, { highWaterMark: 1 << 20 }))) {
    JSON.parse(line.toString('utf8'));
    parsed++;
  }
  const parseOnlyMs = performance.now() - t0;
  const verify = {
    export_ms: Math.round(exportMs),
    export_mib: ms(bytes / 2 ** 20),
    verify_file_ms: Math.round(verifyMs),
    cli_start_ms: Math.round(cliStartMs),
    read_and_parse_only_ms: Math.round(parseOnlyMs),
    lines: parsed,
    output: stdout.trim().slice(0, 120),
  };
  console.error('export/verify', verify);

  const overhead = await auditOverhead(db, orgId, 1_000);
  console.error('audit overhead', overhead);

  console.log(
    JSON.stringify(
      {
        machine: machine(),
        append,
        proof_latency_ms: proof,
        public_key_latency_ms: baseline,
        bare_http_floor_ms: floor,
        verify,
        audit_overhead_ms: overhead,
      },
      null,
      2,
    ),
  );
} finally {
  if (server) await stop(server);
  deps?.authenticator.close();
  await deps?.bus.close();
  await db.close();
  if (process.env.LEDGER_BENCH_KEEP_DB) console.error(`kept ${bench.url}`);
  else await bench.drop();
  await rm(dir, { recursive: true, force: true });
}
