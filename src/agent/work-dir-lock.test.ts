import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentSetupError } from './identity.js';
import { lockWorkDir } from './work-dir-lock.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-lock-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('work directory lock', () => {
  it('is taken, refused to another live agent, and given back', async () => {
    const unlock = await lockWorkDir(dir);
    expect((await readFile(path.join(dir, 'agent.pid'), 'utf8')).trim()).toBe(String(process.pid));
    await unlock();
    // A live process (our parent) holds it: refused, naming the pid.
    await writeFile(path.join(dir, 'agent.pid'), `${process.ppid}\n`);
    await expect(lockWorkDir(dir)).rejects.toThrow(AgentSetupError);
    await expect(lockWorkDir(dir)).rejects.toThrow(`pid ${process.ppid}`);
  });

  it('takes over a lock left by an agent that died', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    await writeFile(path.join(dir, 'agent.pid'), `${dead}\n`);
    const unlock = await lockWorkDir(dir);
    expect((await readFile(path.join(dir, 'agent.pid'), 'utf8')).trim()).toBe(String(process.pid));
    await unlock();
  });
});
