// Shared by the ledger's tests: organizations, audit events through the real recordAudit,
// and a sequenced + checkpointed log.
import { randomBytes } from 'node:crypto';
import { recordAudit, type AuditEvent } from '../../src/features/audit/audit.record.js';
import { cutCheckpoint } from '../../src/features/ledger/ledger.checkpoints.js';
import { loadLedgerIdentity, type LedgerIdentity } from '../../src/features/ledger/ledger.identity.js';
import { sequenceAll } from '../../src/features/ledger/ledger.sequencer.js';
import { systemContext } from '../../src/platform/auth.js';
import type { Db } from '../../src/platform/db/index.js';

export async function createOrg(db: Db, slug = `org-${randomBytes(4).toString('hex')}`): Promise<string> {
  const { rows } = await db.query<{ id: string }>('INSERT INTO organizations (slug, name) VALUES ($1, $2) RETURNING id', [
    slug,
    `Org ${slug}`,
  ]);
  return rows[0]!.id;
}

/** `n` audit events for `orgId`, written as a mutation would (one transaction). */
export async function recordEvents(db: Db, orgId: string, n: number, tag = 'test'): Promise<AuditEvent[]> {
  const auth = systemContext(orgId, 'ledger-test', `req-${tag}`);
  return db.transaction(async (tx) => {
    const events: AuditEvent[] = [];
    for (let i = 0; i < n; i++) {
      events.push(
        await recordAudit(tx, auth, {
          action: 'thing.created',
          resource: ['thing', `${tag}-${i}`],
          after: { name: `${tag} ${i}`, n: i, nested: { ok: true, list: [1, 2.5, 'x'] } },
        }),
      );
    }
    return events;
  });
}

export async function testIdentity(db: Db, name = 'test.local'): Promise<LedgerIdentity> {
  return loadLedgerIdentity(db, name);
}

/** Sequences everything queued and cuts a checkpoint, as LedgerLoops.flush() does. */
export async function flushLedger(db: Db, identity: LedgerIdentity) {
  await sequenceAll(db);
  return cutCheckpoint(db, identity);
}
