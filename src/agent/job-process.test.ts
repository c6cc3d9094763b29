import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitStatusOf, spawnJobProcess } from './job-process.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-proc-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const shell = { path: '/bin/sh', bash: false };
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function waitGone(pid: number) {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

async function start(script: string) {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.sh`);
  await writeFile(file, script);
  let output = '';
  const proc = await spawnJobProcess({
    shell,
    scriptPath: file,
    cwd: dir,
    env: { PATH: process.env.PATH! },
    onOutput: (t) => (output += t),
  });
  return { proc, output: () => output };
}

describe('job process', () => {
  it('merges stdout and stderr and reports the exit status', async () => {
    const { proc, output } = await start('echo out; echo err >&2; exit 7\n');
    const exit = await proc.exited;
    expect(exitStatusOf(exit)).toBe(7);
    expect(output().split('\n').sort()).toEqual(['', 'err', 'out']);
  });

  it('stops the whole process group: the shell and what it started', async () => {
    const pidFile = path.join(dir, 'bg.pid');
    const { proc } = await start(`sleep 60 & echo $! > ${pidFile}; wait\n`);
    for (let i = 0; i < 50 && !(await readFile(pidFile, 'utf8').catch(() => '')); i++)
      await new Promise((r) => setTimeout(r, 50));
    const background = Number(await readFile(pidFile, 'utf8'));
    expect(alive(background)).toBe(true);
    proc.stop(5_000);
    const exit = await proc.exited;
    expect(exit.signal ?? exitStatusOf(exit)).toBeTruthy();
    expect(await waitGone(background)).toBe(true);
  });

  it('escalates to SIGKILL when SIGTERM is ignored', async () => {
    const { proc } = await start("trap '' TERM; echo ready; while :; do sleep 0.1; done\n");
    const started = Date.now();
    proc.stop(300);
    expect((await proc.exited).signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('kills what the shell left running in the background once it exits', async () => {
    const pidFile = path.join(dir, 'orphan.pid');
    const { proc } = await start(`sleep 60 >/dev/null 2>&1 & echo $! > ${pidFile}; exit 0\n`);
    expect(exitStatusOf(await proc.exited)).toBe(0);
    expect(await waitGone(Number(await readFile(pidFile, 'utf8')))).toBe(true);
  });

  it('maps a signal to the shell convention 128 + n', () => {
    expect(exitStatusOf({ code: null, signal: 'SIGKILL' })).toBe(137);
    expect(exitStatusOf({ code: null, signal: 'SIGTERM' })).toBe(143);
  });
});
