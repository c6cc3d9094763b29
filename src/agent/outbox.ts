// The outbox: every final report (complete / fail) is written to disk the moment a job's
// commands end, and deleted only once the server has answered it (2xx, or 404/409:
// "nothing to do any more"). A report survives the server being away and the agent being
// killed: a restarted agent with the same identity delivers it, and while it waits the
// agent keeps renewing the job's lease, so a finished job is not run again just because
// the server restarted.
//
// A report is held back (`ready: false`) while its job's log and artifacts are still
// being sent — the server takes neither once the job has ended. A report found on disk
// at start is ready: whoever was sending its log is gone.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { FinalReport } from '../client/agent-api.js';

export interface OutboxEntry {
  report: FinalReport;
  /** ISO time the report was made, for operators reading the files. */
  queued_at: string;
  /** Deliverable now (its job's log and artifacts are sent, or given up on). */
  ready: boolean;
}

export interface Outbox {
  /** Writes (or replaces) the report of an attempt, durably. */
  add(report: FinalReport, ready: boolean): Promise<void>;
  remove(report: FinalReport): Promise<void>;
  entries(): OutboxEntry[];
  readonly size: number;
}

/** One file per attempt: the lease token tells attempts of one job apart. */
const fileName = (r: FinalReport) => `${r.job_id}.${r.lease_token}.json`;

async function fsyncPath(target: string): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeDurably(file: string, contents: string): Promise<void> {
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(contents);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
  // The rename is durable only once the directory entry is.
  await fsyncPath(path.dirname(file));
}

export async function openOutbox(dir: string): Promise<Outbox> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pending = new Map<string, OutboxEntry>();
  for (const name of (await readdir(dir)).sort()) {
    const file = path.join(dir, name);
    if (name.endsWith('.tmp')) {
      await unlink(file).catch(() => {}); // a write that never finished: never acknowledged
      continue;
    }
    if (!name.endsWith('.json')) continue;
    try {
      const entry = JSON.parse(await readFile(file, 'utf8')) as OutboxEntry;
      if (entry.report?.job_id && entry.report.lease_token) pending.set(name, { ...entry, ready: true });
    } catch {
      // Unreadable: written by something else; leave it for a person to look at.
    }
  }
  return {
    async add(report, ready) {
      const entry = { report, queued_at: new Date().toISOString(), ready };
      await writeDurably(path.join(dir, fileName(report)), JSON.stringify(entry));
      pending.set(fileName(report), entry);
    },
    async remove(report) {
      pending.delete(fileName(report));
      await unlink(path.join(dir, fileName(report))).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    },
    entries: () => [...pending.values()],
    get size() {
      return pending.size;
    },
  };
}
