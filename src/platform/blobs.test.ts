import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobTooLargeError, createBlobStore, type BlobStore } from './blobs.js';

let dir: string;
let store: BlobStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-blobs-test-'));
  store = createBlobStore(dir);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const tempFiles = async () => readdir(path.join(dir, 'tmp')).catch(() => []);
/** A source that yields `parts` one by one, as a request body arrives. */
const source = (...parts: (string | Buffer)[]) => Readable.from(parts.map((p) => Buffer.from(p)));

describe('blob store', () => {
  it('stores content under its SHA-256 and reads it back byte for byte', async () => {
    const data = randomBytes(200_000);
    const info = await store.put(source(data.subarray(0, 70_000), data.subarray(70_000)));
    expect(info).toEqual({ sha256: sha(data), size: data.length });
    expect(existsSync(path.join(dir, 'sha256', info.sha256.slice(0, 2), info.sha256.slice(2, 4), info.sha256))).toBe(true);
    const chunks: Buffer[] = [];
    for await (const chunk of await store.open(info.sha256)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(await store.has(info.sha256)).toBe(true);
    expect(await tempFiles()).toEqual([]);
  });

  it('stores equal content once, also when written concurrently', async () => {
    const results = await Promise.all([
      store.put(source('same', ' bytes')),
      store.put(source('same bytes')),
      store.put(source('same bytes')),
    ]);
    expect(new Set(results.map((r) => r.sha256))).toEqual(new Set([sha('same bytes')]));
    const shard = path.join(dir, 'sha256', results[0].sha256.slice(0, 2), results[0].sha256.slice(2, 4));
    expect(await readdir(shard)).toEqual([results[0].sha256]);
    expect(await tempFiles()).toEqual([]);
  });

  it('refuses content over the limit and leaves no temporary file', async () => {
    const error = await store.put(source('x'.repeat(600), 'y'.repeat(600)), { maxBytes: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlobTooLargeError);
    expect(error).toMatchObject({ status: 413, maxBytes: 1000 });
    expect(await tempFiles()).toEqual([]);
    // Exactly at the limit is fine.
    expect((await store.put(source('z'.repeat(1000)), { maxBytes: 1000 })).size).toBe(1000);
  });

  it('cleans up when the source fails midway', async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        this.destroy(new Error('client went away'));
      },
    });
    await expect(store.put(failing)).rejects.toThrow('client went away');
    expect(await tempFiles()).toEqual([]);
  });

  it('a staged blob is invisible until committed, and discard removes it', async () => {
    const staged = await store.stage(source('staged'));
    expect(await store.has(staged.sha256)).toBe(false);
    expect(await tempFiles()).toHaveLength(1);
    await staged.discard();
    expect(await tempFiles()).toEqual([]);
    const again = await store.stage(source('staged'));
    await again.commit();
    await again.discard(); // harmless after commit
    expect(await store.has(again.sha256)).toBe(true);
  });

  it('an empty blob is a blob', async () => {
    const info = await store.put(source());
    expect(info).toEqual({ sha256: sha(''), size: 0 });
    expect(await text(await store.open(info.sha256))).toBe('');
  });

  it('deletes, and reports a missing blob before reading', async () => {
    const { sha256 } = await store.put(source('short-lived'));
    expect(await store.delete(sha256)).toBe(true);
    expect(await store.delete(sha256)).toBe(false);
    expect(await store.has(sha256)).toBe(false);
    await expect(store.open(sha256)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses names that are not SHA-256 digests (they become paths)', async () => {
    await expect(store.has('../../etc/passwd')).rejects.toThrow(/SHA-256/);
    await expect(store.open('A'.repeat(64))).rejects.toThrow(/SHA-256/);
  });

  it('sweeps temporary files left by crashes, only once they are old', async () => {
    await store.stage(source('abandoned')); // never committed nor discarded: a crash
    const [name] = await tempFiles();
    await writeFile(path.join(dir, 'tmp', 'fresh.part'), 'in flight');
    const old = new Date(Date.now() - 2 * 86_400_000);
    await utimes(path.join(dir, 'tmp', name!), old, old);
    expect(await store.sweepTemp(86_400_000)).toBe(1);
    expect(await tempFiles()).toEqual(['fresh.part']);
  });
});
