import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { addUser, createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { recordEvents } from '../../../test/ledger/helpers.js';
import type { BusEvent } from '../../platform/bus.js';
import { startLedgerLoops, type LedgerLoops } from './ledger.loops.js';
import { leafHashOfContent } from './ledger.content.js';
import { canonicalJson } from './merkle/jcs.js';
import { verifyCheckpoint, verifyConsistency, verifyInclusion } from './merkle/index.js';

let t: TestApp;
let loops: LedgerLoops;
let a: TestUser; // admin of org A
let b: TestUser; // admin of org B
let viewerA: TestUser; // in org A without audit:read
let firstSize: number;
let size: number;
const busEvents: BusEvent[] = [];
const API = '/api/v1/ledger';

const get = (url: string, user?: TestUser, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'GET', url: `${API}${url}`, headers: { ...(user ? user.headers : {}), ...headers } });
const b64 = (s: string) => Buffer.from(s, 'base64');
const leavesOf = async (orgId: string) =>
  new Set(
    (await t.deps.db.query<{ idx: number }>('SELECT idx FROM ledger_leaves WHERE org_id = $1', [orgId])).rows.map((r) => r.idx),
  );

beforeAll(async () => {
  t = await buildTestApp();
  t.deps.bus.subscribe('ledger', (e) => busEvents.push(e));
  loops = await startLedgerLoops(t.deps, pino({ level: 'silent' }));
  a = await createOrgAndLogin(t, { role: 'admin' });
  b = await createOrgAndLogin(t, { role: 'admin' });
  viewerA = await addUser(t, a, 'viewer');
  await recordEvents(t.deps.db, a.orgId, 5, 'a1');
  await loops.flush();
  firstSize = (await get('/checkpoint')).json<{ size: number }>().size;
  await recordEvents(t.deps.db, b.orgId, 4, 'b1');
  await recordEvents(t.deps.db, a.orgId, 3, 'a2');
  await loops.flush();
  size = (await get('/checkpoint')).json<{ size: number }>().size;
});
afterAll(async () => {
  await loops?.stop();
  await t?.close();
});

function expectProblem(res: Awaited<ReturnType<typeof get>>, status: number, code?: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  if (code) expect(res.json().code).toBe(code);
}

describe('checkpoints and the public key', () => {
  it('serves the latest checkpoint, signed by the advertised key, and announces it on the bus', async () => {
    const key = (await get('/public-key')).json();
    expect(key).toMatchObject({ key_name: 'cairn.local', origin: 'cairn.local/ledger', algorithm: 'ed25519' });
    expect(key.verifier_key).toMatch(/^cairn\.local\+[0-9a-f]{8}\+/);
    expect(b64(key.public_key)).toHaveLength(32);

    const res = await get('/checkpoint');
    expect(res.statusCode).toBe(200);
    const cp = res.json();
    expect(cp).toMatchObject({ size, origin: 'cairn.local/ledger' });
    expect(size).toBeGreaterThan(firstSize);
    const verified = verifyCheckpoint(cp.note, key.verifier_key, { expectedOrigin: 'cairn.local/ledger' });
    expect(verified.ok && verified.checkpoint.root.equals(b64(cp.root))).toBe(true);
    expect(busEvents.some((e) => e.type === 'ledger.checkpoint' && (e.data as { size: number }).size === size)).toBe(true);
  });

  it('serves the raw signed note as text/plain', async () => {
    const res = await get('/checkpoint.txt');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toBe((await get('/checkpoint')).json().note);
  });

  it('serves a stored checkpoint by size, and 404 for a size never checkpointed', async () => {
    expect((await get(`/checkpoints/${firstSize}`)).json()).toMatchObject({ size: firstSize });
    expectProblem(await get(`/checkpoints/${size + 100}`), 404, 'checkpoint_not_found');
    for (const bad of ['-1', 'abc', '1.5', '99999999999999999999'])
      expectProblem(await get(`/checkpoints/${bad}`), 400, 'validation_failed');
  });
});

describe('proofs', () => {
  it('serves inclusion proofs that verify against the signed root, by default at the latest checkpoint', async () => {
    const cp = (await get('/checkpoint')).json();
    for (const index of [0, 1, firstSize - 1, size - 1]) {
      const res = await get(`/proofs/inclusion?index=${index}`);
      expect(res.statusCode, res.body).toBe(200);
      const p = res.json();
      expect(p).toMatchObject({ index, size });
      expect(verifyInclusion(b64(p.leaf_hash), index, size, p.path.map(b64), b64(cp.root))).toBe(true);
    }
    const old = (await get(`/checkpoints/${firstSize}`)).json();
    const p = (await get(`/proofs/inclusion?index=2&size=${firstSize}`)).json();
    expect(verifyInclusion(b64(p.leaf_hash), 2, firstSize, p.path.map(b64), b64(old.root))).toBe(true);
  });

  it('serves consistency proofs between checkpoints', async () => {
    const [old, cp] = [(await get(`/checkpoints/${firstSize}`)).json(), (await get('/checkpoint')).json()];
    const p = (await get(`/proofs/consistency?old_size=${firstSize}&new_size=${size}`)).json();
    expect(verifyConsistency(firstSize, size, b64(old.root), b64(cp.root), p.path.map(b64))).toBe(true);
    const dflt = (await get(`/proofs/consistency?old_size=${firstSize}`)).json();
    expect(dflt).toEqual(p);
  });

  it.each([
    [`/proofs/inclusion?index=SIZE`, 'index_out_of_range'],
    [`/proofs/inclusion?index=0&size=SIZE1`, 'size_beyond_checkpoint'],
    [`/proofs/inclusion?index=-1`, 'validation_failed'],
    [`/proofs/inclusion?index=1.5`, 'validation_failed'],
    [`/proofs/inclusion?index=abc`, 'validation_failed'],
    [`/proofs/inclusion?index=99999999999999999999`, 'validation_failed'],
    [`/proofs/inclusion?index=0&size=0`, 'validation_failed'],
    [`/proofs/inclusion`, 'validation_failed'],
    [`/proofs/inclusion?index=0&extra=1`, 'validation_failed'],
    [`/proofs/consistency?old_size=SIZE1&new_size=SIZE`, 'sizes_out_of_order'],
    [`/proofs/consistency?old_size=0&new_size=SIZE1`, 'size_beyond_checkpoint'],
    [`/proofs/consistency?old_size=-5`, 'validation_failed'],
    [`/proofs/consistency?old_size=1e400`, 'validation_failed'],
  ])('answers %s with 400 %s', async (url, code) => {
    expectProblem(await get(url.replace('SIZE1', String(size + 1)).replace('SIZE', String(size))), 400, code);
  });
});

describe('entries', () => {
  it('shows the hash and proof to anyone, the content only to auditors of its organization', async () => {
    const cp = (await get('/checkpoint')).json();
    const aLeaf = [...(await leavesOf(a.orgId))].sort((x, y) => x - y)[0]!;

    const anon = (await get(`/entries/${aLeaf}`)).json();
    expect(anon).toMatchObject({ index: aLeaf, kind: 'audit', inclusion_proof: { size } });
    expect(anon).not.toHaveProperty('content');
    expect(anon).not.toHaveProperty('org_id');
    expect(verifyInclusion(b64(anon.leaf_hash), aLeaf, size, anon.inclusion_proof.path.map(b64), b64(cp.root))).toBe(true);

    const own = (await get(`/entries/${aLeaf}`, a)).json();
    expect(own).toMatchObject({ org_id: a.orgId, leaf_hash: anon.leaf_hash });
    expect(own.content).toMatchObject({ v: 1, kind: 'audit', org_id: a.orgId });
    expect(leafHashOfContent(own.content).toString('base64')).toBe(own.leaf_hash);

    const other = (await get(`/entries/${aLeaf}`, b)).json();
    expect(other).not.toHaveProperty('content');
    expect(other).not.toHaveProperty('org_id');
    expect(JSON.stringify(other)).not.toContain(a.orgId);

    const viewer = (await get(`/entries/${aLeaf}`, viewerA)).json();
    expect(viewer.org_id).toBe(a.orgId);
    expect(viewer).not.toHaveProperty('content');
  });

  it('404s beyond the log and 400s on a bad index', async () => {
    expectProblem(await get(`/entries/${size + 1000}`), 404, 'entry_not_found');
    for (const bad of ['-1', 'x', '2.5', '1e30']) expectProblem(await get(`/entries/${bad}`), 400, 'validation_failed');
  });
});

interface ExportHeaderLine {
  checkpoint: string;
  size: number;
  root: string;
  from: number;
  to: number;
}

async function exportAs(user: TestUser | undefined, query = '') {
  const res = await get(`/export${query}`, user);
  const lines =
    res.statusCode === 200
      ? res.body
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  return { res, header: lines[0] as unknown as ExportHeaderLine, leaves: lines.slice(1) };
}

describe('export', () => {
  it("streams every leaf in order with content only for the caller's organization", async () => {
    const { res, header, leaves } = await exportAs(a);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/x-ndjson');
    expect(header).toMatchObject({ size, from: 0, to: size });
    expect(header.checkpoint).toBe((await get('/checkpoint')).json().note);
    expect(leaves.map((l) => l.index)).toEqual([...Array(size).keys()]);
    const mine = await leavesOf(a.orgId);
    const raw = res.body.trimEnd().split('\n').slice(1);
    for (const [i, leaf] of leaves.entries()) {
      if (mine.has(leaf.index as number)) {
        expect(leafHashOfContent(leaf.content).toString('base64')).toBe(leaf.leaf_hash);
        // Written canonically, so verifiers can hash the bytes as they are.
        expect(raw[i]!.endsWith(`,"content":${canonicalJson(leaf.content)}}`)).toBe(true);
      } else {
        expect(leaf).not.toHaveProperty('content');
      }
    }
    expect(res.body).not.toContain(b.orgId);
    const theirs = await exportAs(b);
    expect(theirs.res.body).not.toContain(a.orgId);
    expect(theirs.leaves.filter((l) => 'content' in l)).toHaveLength((await leavesOf(b.orgId)).size);
  });

  it('exports a range, clipped to the checkpoint', async () => {
    const { header, leaves } = await exportAs(a, `?from=2&to=${size + 50}`);
    expect(header).toMatchObject({ from: 2, to: size });
    expect(leaves[0]!.index).toBe(2);
    expect(leaves).toHaveLength(size - 2);
    expectProblem((await exportAs(a, '?from=5&to=3')).res, 400, 'bad_range');
    expectProblem((await exportAs(a, '?from=-1')).res, 400, 'validation_failed');
  });

  it('needs audit:read', async () => {
    expectProblem((await exportAs(undefined)).res, 401);
    expectProblem((await exportAs(viewerA)).res, 403);
  });
});

// Swaps two leaves' positions (the primary key) through a spare index.
const swap = (i: number, j: number) => [
  `UPDATE ledger_leaves SET idx = 1000000 WHERE idx = ${i}`,
  `UPDATE ledger_leaves SET idx = ${i} WHERE idx = ${j}`,
  `UPDATE ledger_leaves SET idx = ${j} WHERE idx = 1000000`,
];

describe('integrity endpoint', () => {
  const tamperings: [string, string[], string[], number][] = [
    [
      'change',
      ['UPDATE ledger_leaves SET leaf_hash = sha256(leaf_hash) WHERE idx = 4'],
      ['UPDATE ledger_leaves SET leaf_hash = (SELECT hash FROM ledger_nodes WHERE level = 0 AND idx = 4) WHERE idx = 4'],
      4,
    ],
    [
      'delete',
      ['CREATE TEMP TABLE saved AS SELECT * FROM ledger_leaves WHERE idx = 6', 'DELETE FROM ledger_leaves WHERE idx = 6'],
      ['INSERT INTO ledger_leaves SELECT * FROM saved', 'DROP TABLE saved'],
      6,
    ],
    ['reorder', swap(3, 7), swap(3, 7), 3],
    [
      'insert',
      [
        'INSERT INTO ledger_leaves (idx, leaf_hash, org_id, kind, ref_id) SELECT idx + 1, leaf_hash, org_id, kind, ref_id FROM ledger_leaves ORDER BY idx DESC LIMIT 1',
      ],
      ['DELETE FROM ledger_leaves WHERE idx = (SELECT size FROM ledger_head)'],
      -1,
    ],
  ];

  it('reports an honest log as ok', async () => {
    const res = await get('/integrity', a);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, size, checked_leaves: size });
  });

  it.each(tamperings)('names the first bad index after a %s', async (_kind, tamper, undo, index) => {
    for (const sql of tamper) await t.deps.db.query(sql);
    try {
      const res = await get('/integrity', a);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ ok: false, first_bad_index: index === -1 ? size : index });
    } finally {
      for (const sql of undo) await t.deps.db.query(sql);
    }
    expect((await get('/integrity', a)).json().ok).toBe(true);
  });

  it('needs audit:read', async () => {
    expectProblem(await get('/integrity'), 401);
    expectProblem(await get('/integrity', viewerA), 403);
  });
});
