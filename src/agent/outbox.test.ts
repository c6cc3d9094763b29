import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FinalReport } from '../client/agent-api.js';
import { openOutbox } from './outbox.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-outbox-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const complete: FinalReport = { job_id: 'job-a', lease_token: 'lease-1', action: 'complete', exit_status: 0 };
const fail: FinalReport = { job_id: 'job-b', lease_token: 'lease-2', action: 'fail', reason: 'timeout', message: 'too slow' };

describe('outbox', () => {
  it('keeps reports on disk until they are removed, across a restart', async () => {
    const first = await openOutbox(dir);
    await first.add(complete, true);
    await first.add(fail, false); // its log was still being sent
    expect(first.size).toBe(2);
    expect(first.entries().find((e) => e.report === fail)?.ready).toBe(false);

    // A new process (the agent was killed) finds both, ready: nobody sends that log any more.
    const second = await openOutbox(dir);
    expect(second.entries().map((e) => e.report)).toEqual(expect.arrayContaining([complete, fail]));
    expect(second.entries().every((e) => e.ready)).toBe(true);
    await second.remove(complete);
    expect((await openOutbox(dir)).entries().map((e) => e.report)).toEqual([fail]);
  });

  it('keeps one report per attempt, files readable only by the agent', async () => {
    const outbox = await openOutbox(dir);
    await outbox.add(complete, false);
    await outbox.add({ ...complete, lease_token: 'lease-9' }, true);
    await outbox.add({ ...complete, exit_status: 1 }, true); // the same attempt again replaces its report
    expect(outbox.size).toBe(2);
    expect(outbox.entries().find((e) => e.report.lease_token === 'lease-1')).toMatchObject({
      ready: true,
      report: { exit_status: 1 },
    });
    const files = await readdir(dir);
    expect(files).toHaveLength(2);
    expect((await stat(path.join(dir, files[0]!))).mode & 0o777).toBe(0o600);
  });

  it('ignores half-written and foreign files, and removing twice is harmless', async () => {
    await writeFile(path.join(dir, 'x.json.abcd.tmp'), '{"report":');
    await writeFile(path.join(dir, 'junk.json'), 'not json');
    const outbox = await openOutbox(dir);
    expect(outbox.size).toBe(0);
    expect(await readdir(dir)).toEqual(['junk.json']);
    await outbox.remove(complete);
  });
});
