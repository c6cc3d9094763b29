import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRedactor, REDACTED } from './redactor.js';
import { EnvFileError, parseEnvFile, readEnvFile, redactionList, secretVariants } from './secrets.js';

describe('--env-file', () => {
  it('parses dotenv: comments, quotes, export-free lines, multi-line values', () => {
    const env = parseEnvFile('# deploy keys\nAPI_TOKEN=abc123\nQUOTED="with spaces"\nKEY="line1\nline2"\nEMPTY=\n');
    expect(env).toEqual({ API_TOKEN: 'abc123', QUOTED: 'with spaces', KEY: 'line1\nline2', EMPTY: '' });
  });

  it('refuses a file it cannot read, naming it', async () => {
    await expect(readEnvFile('/nonexistent/secrets.env')).rejects.toThrow(EnvFileError);
    await expect(readEnvFile('/nonexistent/secrets.env')).rejects.toThrow('/nonexistent/secrets.env');
  });

  it('reads a file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-env-'));
    try {
      await writeFile(path.join(dir, 'a.env'), 'A=1234\n');
      expect(await readEnvFile(path.join(dir, 'a.env'))).toEqual({ A: '1234' });
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

describe('what is redacted for a secret', () => {
  it('covers the value, base64, base64url, URL- and JSON-encoded forms', () => {
    const value = 'p@ss/wörd+"x"';
    const variants = secretVariants(value);
    expect(variants).toContain(value);
    expect(variants).toContain(Buffer.from(value).toString('base64').replace(/=+$/, ''));
    expect(variants).toContain(Buffer.from(value).toString('base64url'));
    expect(variants).toContain(encodeURIComponent(value));
    expect(variants).toContain(JSON.stringify(value).slice(1, -1));
  });

  it('redacts a base64-printed secret, padded or not', () => {
    const redactor = createRedactor(redactionList({ TOKEN: 'hunter2!' }));
    const encoded = Buffer.from('hunter2!').toString('base64');
    expect(redactor.push(`Authorization: Basic ${encoded}\n`) + redactor.flush()).toBe(`Authorization: Basic ${REDACTED}\n`);
  });

  it('covers each line of a multi-line secret, and skips short values', () => {
    expect(secretVariants('-----BEGIN KEY-----\r\nMIIEabc\r\n-----END KEY-----')).toEqual(
      expect.arrayContaining(['-----BEGIN KEY-----', 'MIIEabc', '-----END KEY-----']),
    );
    expect(secretVariants('abc')).toEqual([]);
    expect(redactionList({ A: 'no', B: 'yes-secret' })).toContain('yes-secret');
  });
});
