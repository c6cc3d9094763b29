import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootBuilder, generateSigner, leafHash, rootFromLeafHashes, signCheckpoint } from '../merkle/index.js';
import { canonicalJson } from '../merkle/jcs.js';
import { checkLine } from './export-line.js';
import { ndjsonLines } from './lines.js';
import { LeafHashLog } from './prefix-roots.js';
import { verifyLog } from './verify-log.js';

const content = { v: 1, kind: 'audit', id: 'e1', payload: { after: { name: 'Zoë', n: 2.5 } }, actor: { id: 'u', type: 'user' } };
const text = canonicalJson(content)!;
const hash = leafHash(Buffer.from(text, 'utf8'));
const line = (s: string) => Buffer.from(s, 'utf8');
const serverLine = (i: number, c: string | null = text) =>
  line(`{"index":${i},"leaf_hash":"${hash.toString('base64')}","kind":"audit"${c === null ? '' : `,"content":${c}`}}`);

describe('checkLine', () => {
  it('verifies a server-shaped line by hashing its content bytes', () => {
    expect(checkLine(serverLine(7), 7)).toEqual({ hash, result: { verified: true } });
    expect(checkLine(serverLine(7, null), 7)).toEqual({ hash, result: { verified: false } });
  });

  it('verifies a reformatted line through RFC 8785', () => {
    const pretty = JSON.stringify(
      { content: JSON.parse(text), kind: 'audit', leaf_hash: hash.toString('base64'), index: 3 },
      null,
      2,
    ).replaceAll('\n', ' ');
    expect(checkLine(line(pretty), 3)).toEqual({ hash, result: { verified: true } });
  });

  it('flags changed content, missing records, wrong positions and garbage', () => {
    expect(checkLine(serverLine(1, text.replace('Zoë', 'Zoe')), 1).result.error).toMatchObject({
      problem: 'content_mismatch',
      index: 1,
    });
    expect(checkLine(serverLine(1, 'null'), 1).result.error).toMatchObject({ problem: 'record_missing', index: 1 });
    expect(() => checkLine(serverLine(2), 1)).toThrow(expect.objectContaining({ problem: 'leaf_missing', index: 1 }));
    expect(() => checkLine(line('{"index":01,"leaf_hash":"x"}'), 1)).toThrow(expect.objectContaining({ problem: 'malformed' }));
    expect(() => checkLine(line(`{"index":1,"leaf_hash":"${'A'.repeat(44)}","kind":"audit"}`), 1)).toThrow(
      expect.objectContaining({ problem: 'malformed' }),
    );
  });
});

describe('ndjsonLines', () => {
  it('splits lines across arbitrary chunk boundaries, multi-byte characters included', async () => {
    const lines = ['{"a":"é😀"}', '{}', '{"b":[1,2]}'];
    const bytes = Buffer.from(`${lines.join('\n')}\n\n`, 'utf8');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: bytes.length }), { maxLength: 6 }), async (cuts) => {
        const points = [...new Set(cuts)].sort((x, y) => x - y);
        const chunks = [0, ...points].map((start, k) => bytes.subarray(start, points[k] ?? bytes.length)).filter((c) => c.length);
        const got: string[] = [];
        for await (const l of ndjsonLines(
          (async function* () {
            yield* chunks;
          })(),
        ))
          got.push(l.toString('utf8'));
        expect(got).toEqual(lines);
      }),
    );
  });
});

describe('LeafHashLog', () => {
  it('gives the same prefix roots as recomputing from scratch, across snapshot boundaries', () => {
    const n = 40_000;
    const hashes = Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    const log = new LeafHashLog(10); // grows as needed
    for (const h of hashes) log.push(h);
    expect(log.root().equals(rootFromLeafHashes(hashes))).toBe(true);
    for (const m of [0, 1, 2, 3, 1000, 16_383, 16_384, 16_385, 32_768, 39_999, 40_000]) {
      expect(log.prefixRoot(m).equals(rootFromLeafHashes(hashes.slice(0, m))), `prefix ${m}`).toBe(true);
    }
    expect(log.leaf(12_345).equals(hashes[12_345]!)).toBe(true);
  });
});

describe('verifyLog on export files, in this thread and with the worker', () => {
  const signer = generateSigner('test.local');
  const n = 3_000;
  let dir: string;
  let lines: string[];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-verifier-'));
    const builder = new RootBuilder();
    const body: string[] = [];
    for (let i = 0; i < n; i++) {
      const own = i % 3 !== 0;
      const c = canonicalJson({ v: 1, kind: 'audit', id: `e${i}`, payload: { n: i, note: 'é😀' } })!;
      const h = leafHash(Buffer.from(c, 'utf8'));
      builder.push(h);
      body.push(`{"index":${i},"leaf_hash":"${h.toString('base64')}","kind":"audit"${own ? `,"content":${c}` : ''}}`);
    }
    const note = signCheckpoint(signer, { origin: 'test.local/ledger', size: n, root: builder.root() });
    lines = [JSON.stringify({ checkpoint: note, size: n, from: 0, to: n }), ...body];
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const verifyLines = async (content: string[], parallel: boolean) => {
    const file = path.join(dir, `${Math.random()}.ndjson`);
    await writeFile(file, `${content.join('\n')}\n`);
    return verifyLog({ file, publicKey: signer.verifierKey, statePath: null, parallel }, { progress() {}, warn() {} });
  };
  const edit = (k: number, f: (l: string) => string) => lines.map((l, i) => (i === k ? f(l) : l));

  it.each([false, true])('verifies every leaf and its content (worker: %s)', async (parallel) => {
    expect(await verifyLines(lines, parallel)).toMatchObject({ ok: true, leaves_verified: n, contents_verified: 2_000 });
  });

  it.each([false, true])('names the first bad leaf among several (worker: %s)', async (parallel) => {
    let bad = edit(2_001, (l) => l.replace('"n":2000', '"n":2001')); // leaf 2000: content changed
    bad = bad.map((l, i) => (i === 2_501 ? l.replace(/"content":.*\}$/, '"content":null}') : l)); // leaf 2500: record gone
    expect(await verifyLines(bad, parallel)).toMatchObject({ ok: false, problem: 'content_mismatch', first_bad_index: 2_000 });
    const garbage = edit(1_502, (l) => l.replace('"payload"', 'payload'));
    expect(await verifyLines(garbage, parallel)).toMatchObject({ ok: false, problem: 'malformed', first_bad_index: 1_501 });
    const missing = lines.filter((_, i) => i !== 1_001);
    expect(await verifyLines(missing, parallel)).toMatchObject({ ok: false, problem: 'leaf_missing', first_bad_index: 1_000 });
  });
});
