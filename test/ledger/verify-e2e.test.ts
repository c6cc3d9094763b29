// End to end: a real listening server, audit events written through the API and the
// audit recorder, then `cairn verify` (the real CLI as a child process, and its core
// in-process for the many variations) — honest log, tampered rows, forks, export files.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runVerify } from '../../src/cli/verify.js';
import { generateSigner } from '../../src/features/ledger/merkle/index.js';
import type { VerifyOptions } from '../../src/features/ledger/verifier/verify-log.js';
import { PACKAGE_ROOT } from '../../src/platform/paths.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { testConfig, type TestApp } from '../helpers/app.js';
import { createApiTokenFor, createOrgAndLogin, type TestUser } from '../helpers/auth.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { recordEvents } from './helpers.js';

const run = promisify(execFile);
let server: RunningServer;
let testDb: TestDb | undefined;
let t: TestApp;
let admin: TestUser;
let other: TestUser;
let token: string;
let publicKey: string;
let dir: string;
let size: number;

beforeAll(async () => {
  // On PostgreSQL the server gets its own clone; embedded, it opens a fresh in-memory PGlite.
  testDb = process.env.TEST_DATABASE_URL ? await createTestDb() : undefined;
  server = await startServer(testConfig({ PORT: '0', ...(testDb?.url ? { DATABASE_URL: testDb.url } : {}) }));
  t = { app: server.app, deps: server.deps, close: () => server.close() };
  admin = await createOrgAndLogin(t, { role: 'admin' });
  other = await createOrgAndLogin(t, { role: 'admin' });
  token = (await createApiTokenFor(t, admin, ['audit:read'])).token;
  for (const name of ['alpha', 'beta', 'gamma']) {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/projects', headers: admin.headers, payload: { name } });
    expect(res.statusCode, res.body).toBe(201);
  }
  await recordEvents(t.deps.db, other.orgId, 20, 'other');
  await recordEvents(t.deps.db, admin.orgId, 30, 'mine');
  await server.loops.flush();
  size = (await t.app.inject({ url: '/api/v1/ledger/checkpoint' })).json<{ size: number }>().size;
  publicKey = (await t.app.inject({ url: '/api/v1/ledger/public-key' })).json<{ verifier_key: string }>().verifier_key;
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-verify-'));
}, 120_000);

afterAll(async () => {
  await server?.close();
  await testDb?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function quiet() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (s: string) => void (out.stdout += s), stderr: (s: string) => void (out.stderr += s) } };
}

async function verify(opts: Partial<VerifyOptions>) {
  const { out, io } = quiet();
  const result = await runVerify({ url: server.url, publicKey, token, statePath: null, ...opts }, io);
  return { ...result, ...out };
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'verify', ...args], {
      cwd: PACKAGE_ROOT,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function leafOf(orgId: string, nth = 0) {
  const { rows } = await t.deps.db.query<{ idx: number; ref_id: string }>(
    'SELECT idx, ref_id FROM ledger_leaves WHERE org_id = $1 AND kind = $2 ORDER BY idx OFFSET $3 LIMIT 1',
    [orgId, 'audit', nth],
  );
  return rows[0]!;
}

/** Applies `tamper`, runs `check`, and always undoes it (other tests need an honest log). */
async function whileTampered<T>(tamper: string[], undo: string[], params: unknown[], check: () => Promise<T>): Promise<T> {
  for (const sql of tamper) await t.deps.db.query(sql, params);
  try {
    return await check();
  } finally {
    for (const sql of undo) await t.deps.db.query(sql, params);
  }
}

describe('cairn verify against a server', () => {
  it('verifies an honest log through the real CLI and remembers the checkpoint', async () => {
    const state = path.join(dir, 'state.json');
    const r = await cli(['--url', server.url, '--public-key', publicKey, '--token', token, '--state', state]);
    expect(r.stdout.trim(), r.stderr).toMatch(new RegExp(`^OK: verified ${size} leaves against checkpoint ${size} \\(`));
    expect(r.code).toBe(0);
    const saved = JSON.parse(await readFile(state, 'utf8')) as Record<string, { size: number }>;
    expect(saved['cairn.local/ledger']?.size).toBe(size);
  });

  it('checks every inclusion proof with --all, and re-hashes every leaf of its organization', async () => {
    const r = await verify({ all: true });
    expect(r.code, r.stdout).toBe(0);
    expect(r.outcome).toMatchObject({ ok: true, mode: 'full', size, leaves_verified: size, proofs_verified: size });
    expect(r.outcome.contents_verified).toBeGreaterThanOrEqual(33);
    expect(r.outcome.contents_verified).toBeLessThan(size);
  });

  it('checks the checkpoint and sampled proofs without a token', async () => {
    const r = await verify({ token: undefined, sample: 5 });
    expect(r.outcome).toMatchObject({ ok: true, mode: 'checkpoint-only', proofs_verified: 7 });
    expect(r.stdout).toMatch(/^OK: verified checkpoint/);
  });

  it('refuses a checkpoint signed by another key, and warns when trusting the server key', async () => {
    // A renamed key no longer matches its key id: refused before anything is fetched.
    const renamed = await verify({ publicKey: publicKey.replace(/^cairn\.local/, 'evil.local') });
    expect(renamed).toMatchObject({ code: 1, outcome: { problem: 'usage' } });
    const bad = await verify({ publicKey: generateSigner('cairn.local').verifierKey });
    expect(bad).toMatchObject({ code: 1, outcome: { problem: 'bad_signature' } });
    expect(bad.stdout).toMatch(/^FAILED: /);
    const trusting = await verify({ publicKey: undefined, trustServerKey: true });
    expect(trusting.code).toBe(0);
    expect(trusting.stderr).toContain('WARNING');
  });

  it('names the leaf whose audit record was edited (real CLI, exit 1)', async () => {
    const leaf = await leafOf(admin.orgId, 4);
    const r = await whileTampered(
      [`UPDATE audit_events SET payload = payload || '{"tampered":true}' WHERE id = $1`],
      [`UPDATE audit_events SET payload = payload - 'tampered' WHERE id = $1`],
      [leaf.ref_id],
      () => cli(['--url', server.url, '--public-key', publicKey, '--token', token, '--no-state']),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`first bad index: ${leaf.idx}`);
    expect(r.stdout).toMatch(/^FAILED: /);
  });

  it("locates a changed leaf hash it cannot re-hash (another organization's) with proofs", async () => {
    const leaf = await leafOf(other.orgId, 7);
    const r = await whileTampered(
      ['UPDATE ledger_leaves SET leaf_hash = sha256(leaf_hash) WHERE idx = $1'],
      ['UPDATE ledger_leaves SET leaf_hash = (SELECT hash FROM ledger_nodes WHERE level = 0 AND idx = $1) WHERE idx = $1'],
      [leaf.idx],
      () => verify({}),
    );
    expect(r.outcome).toMatchObject({ ok: false, problem: 'root_mismatch', first_bad_index: leaf.idx });
    expect(r.stdout).toContain(`first bad index: ${leaf.idx}`);
  });

  it('names a deleted leaf', async () => {
    const r = await whileTampered(
      ['CREATE TABLE saved_leaf AS SELECT * FROM ledger_leaves WHERE idx = 9', 'DELETE FROM ledger_leaves WHERE idx = 9'],
      ['INSERT INTO ledger_leaves SELECT * FROM saved_leaf', 'DROP TABLE saved_leaf'],
      [],
      () => verify({}),
    );
    expect(r.outcome).toMatchObject({ ok: false, problem: 'leaf_missing', first_bad_index: 9 });
  });

  it('detects a fork against the remembered checkpoint, and a rollback', async () => {
    const state = path.join(dir, 'fork.json');
    expect((await verify({ statePath: state })).code).toBe(0);
    await recordEvents(t.deps.db, admin.orgId, 3, 'later');
    await server.loops.flush();
    expect((await verify({ statePath: state })).code).toBe(0); // honest growth: consistent

    // This verifier once saw a different tree of the same size: the log forked.
    const saved = JSON.parse(await readFile(state, 'utf8')) as Record<string, { size: number; root: string }>;
    const known = saved['cairn.local/ledger']!;
    await recordEvents(t.deps.db, admin.orgId, 2, 'fork');
    await server.loops.flush();
    await writeFile(state, JSON.stringify({ 'cairn.local/ledger': { ...known, root: Buffer.alloc(32, 7).toString('base64') } }));
    const forked = await cli(['--url', server.url, '--public-key', publicKey, '--state', state]);
    expect(forked.code).toBe(1);
    expect(forked.stderr).toContain('FORK DETECTED');
    expect(forked.stdout).toMatch(/^FAILED: FORK DETECTED/);

    await writeFile(state, JSON.stringify({ 'cairn.local/ledger': { ...known, size: known.size + 1000 } }));
    expect((await verify({ statePath: state })).outcome.problem).toBe('rollback');
  });
});

describe('cairn verify --file', () => {
  let file: string;
  let lines: string[];

  beforeAll(async () => {
    const res = await fetch(`${server.url}/api/v1/ledger/export`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const body = await res.text();
    lines = body.trimEnd().split('\n');
    file = path.join(dir, 'export.ndjson');
    await writeFile(file, body);
  });

  const fileVerify = async (content: string[] | null, opts: Partial<VerifyOptions> = {}) => {
    const target = content ? path.join(dir, `variant-${Math.random()}.ndjson`) : file;
    if (content) await writeFile(target, `${content.join('\n')}\n`);
    return verify({ url: undefined, token: undefined, file: target, ...opts });
  };

  it('verifies an untouched export offline, with progress on stderr (real CLI too)', async () => {
    const n = lines.length - 1;
    const r = await fileVerify(null, { progressEvery: 10 });
    expect(r.outcome).toMatchObject({ ok: true, mode: 'file', leaves_verified: n });
    expect(r.stderr).toContain(`verified 10/${n} leaves`);
    const c = await cli(['--file', file, '--public-key', publicKey, '--no-state']);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(new RegExp(`^OK: verified ${n} leaves against checkpoint ${n} `));
  });

  it('names a leaf whose content was changed in the file', async () => {
    const k = lines.findIndex((l, i) => i > 5 && l.includes('"content"'));
    const entry = JSON.parse(lines[k]!) as { index: number; content: Record<string, unknown> };
    entry.content.action = 'forged';
    const r = await fileVerify(lines.map((l, i) => (i === k ? JSON.stringify(entry) : l)));
    expect(r.outcome).toMatchObject({ ok: false, first_bad_index: entry.index });
  });

  it('names a missing line, and fails a changed hash without content (no server to locate it)', async () => {
    const missing = await fileVerify(lines.filter((_, i) => i !== 4));
    expect(missing.outcome).toMatchObject({ ok: false, problem: 'leaf_missing', first_bad_index: 3 });
    const k = lines.findIndex((l, i) => i > 0 && !l.includes('"content"'));
    const entry = JSON.parse(lines[k]!) as { leaf_hash: string };
    entry.leaf_hash = Buffer.alloc(32, 1).toString('base64');
    const changed = await fileVerify(lines.map((l, i) => (i === k ? JSON.stringify(entry) : l)));
    expect(changed.outcome).toMatchObject({ ok: false, problem: 'root_mismatch' });
    expect(changed.code).toBe(1);
  });

  it('keeps the state file offline too: consistent, forked, or an older export', async () => {
    const state = path.join(dir, 'file-state.json');
    const n = lines.length - 1;
    expect((await fileVerify(null, { statePath: state })).outcome.ok).toBe(true);
    const saved = JSON.parse(await readFile(state, 'utf8')) as Record<string, { size: number; root: string }>;
    expect(saved['cairn.local/ledger']?.size).toBe(n);
    // Remembering a smaller tree: the file's first leaves must hash to it.
    await writeFile(
      state,
      JSON.stringify({
        'cairn.local/ledger': { ...saved['cairn.local/ledger'], size: n - 1, root: Buffer.alloc(32, 9).toString('base64') },
      }),
    );
    const forked = await fileVerify(null, { statePath: state });
    expect(forked.outcome).toMatchObject({ ok: false, problem: 'fork' });
    await writeFile(state, JSON.stringify({ 'cairn.local/ledger': { ...saved['cairn.local/ledger'], size: n + 10 } }));
    const older = await fileVerify(null, { statePath: state });
    expect(older.outcome.ok).toBe(true);
    expect(older.stderr).toContain('older than checkpoint');
  });

  it('refuses a partial export and a header signed by another key', async () => {
    const header = JSON.parse(lines[0]!) as Record<string, unknown>;
    const partial = await fileVerify([JSON.stringify({ ...header, from: 1 }), ...lines.slice(2)]);
    expect(partial.outcome.problem).toBe('malformed');
    const r = await fileVerify(null, { publicKey: generateSigner('cairn.local').verifierKey });
    expect(r.outcome.problem).toBe('bad_signature');
  });
});
