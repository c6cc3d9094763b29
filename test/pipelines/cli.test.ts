// `cairn pipeline validate` as a user runs it: a child process, offline (no server).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/process.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-pipeline-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function file(name: string, text: string): Promise<string> {
  const at = path.join(dir, name);
  await writeFile(at, text);
  return at;
}

describe('cairn pipeline validate', () => {
  it('prints a one-line summary per valid file and exits 0', async () => {
    const good = await file(
      'good.yml',
      'steps:\n  - key: build\n    command: make\n  - wait\n  - block: Ship?\n  - deploy: {service: api, environment: prod, version: "${run.commit}"}\n',
    );
    const cli = runCli(['pipeline', 'validate', good], { CAIRN_URL: '', DATABASE_URL: '' });
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toBe(`${good}: valid, 3 steps (1 command, 1 block, 1 deploy)\n`);
  }, 60_000);

  it('prints file:line:column: message per problem and exits 1; an unreadable file exits 2', async () => {
    const bad = await file(
      'bad.yml',
      'steps:\n  - key: a\n    command: a\n    needs: [b]\n  - key: b\n    command: b\n    needs: [a]\n    timout: 5\n',
    );
    const cli = runCli(['pipeline', 'validate', bad, path.join(dir, 'missing.yml')]);
    expect(await cli.exited).toBe(2);
    expect(cli.output()).toContain(`${bad}:8:5: "timout" is not a field here. Did you mean "timeout_in_minutes"?\n`);
    expect(cli.output()).toContain(`cairn pipeline validate: cannot read ${path.join(dir, 'missing.yml')}: ENOENT\n`);

    const cycle = await file(
      'cycle.yml',
      'steps:\n  - key: a\n    command: a\n    needs: [b]\n  - key: b\n    command: b\n    needs: [a]\n',
    );
    const second = runCli(['pipeline', 'validate', cycle]);
    expect(await second.exited).toBe(1);
    expect(second.output()).toBe(`${cycle}:4:13: The needs form a cycle: a → b → a (each needs the next).\n`);
  }, 60_000);
});
