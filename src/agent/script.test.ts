import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildScript, findShell, shellQuote, type Shell } from './script.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-script-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function runScript(commands: string[], shell: Shell) {
  const file = path.join(dir, `s${Math.random().toString(36).slice(2)}.sh`);
  await writeFile(file, buildScript(commands, shell, 'test'));
  const result = spawnSync(shell.path, [file], { cwd: dir, encoding: 'utf8' });
  return { status: result.status, out: result.stdout + result.stderr };
}

describe('job scripts', () => {
  it('quotes anything for a POSIX shell', () => {
    const tricky = `it's "$HOME" \`whoami\` $(id) \\n`;
    expect(spawnSync('/bin/sh', ['-c', `printf %s ${shellQuote(tricky)}`], { encoding: 'utf8' }).stdout).toBe(tricky);
  });

  for (const shell of [{ path: '/bin/sh', bash: false }, undefined]) {
    it(`runs commands in order in one shell and stops at the first failure (${shell ? 'sh' : 'preferred shell'})`, async () => {
      const s = shell ?? (await findShell());
      const result = await runScript(['X=kept; cd /', 'echo "x=$X pwd=$(pwd)"', 'exit 3', 'echo never'], s);
      expect(result.status).toBe(3);
      expect(result.out).toBe('$ X=kept; cd /\n$ echo "x=$X pwd=$(pwd)"\nx=kept pwd=/\n$ exit 3\n');
    });
  }

  it.skipIf(!existsSync('/bin/bash') && !existsSync('/usr/bin/bash'))(
    'fails a pipeline whose first command fails (bash: pipefail)',
    async () => {
      const shell = await findShell();
      expect(shell.bash).toBe(true);
      const result = await runScript(['false | cat', 'echo never'], shell);
      expect(result.status).toBe(1);
      expect(result.out).not.toContain('never\n');
    },
  );

  it('runs multi-line commands as written', async () => {
    const result = await runScript(['for i in 1 2; do\n  echo "n$i"\ndone'], { path: '/bin/sh', bash: false });
    expect(result.status).toBe(0);
    expect(result.out).toContain('n1\nn2\n');
  });
});
