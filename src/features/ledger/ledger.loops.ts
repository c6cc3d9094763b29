// The ledger's two background loops, each led by one replica at a time (advisory locks):
//   - the sequencer appends queued leaves every SEQUENCE_INTERVAL_MS, and at once when a
//     `leaf.queued` event arrives on the bus (see notifyLeafQueued);
//   - the checkpointer signs a checkpoint every CHECKPOINT_INTERVAL_MS when the log grew,
//     and publishes `ledger.checkpoint` on the `ledger` topic.
// Both do their work in ordinary transactions; the lock only decides who leads, and the
// head row lock keeps appends correct even if two replicas briefly both think they lead.
import type { FastifyBaseLogger } from 'fastify';
import type { Bus } from '../../platform/bus.js';
import type { AppDeps } from '../../platform/deps.js';
import { startLeaderLoop } from '../../platform/leader.js';
import { checkpointView, cutCheckpoint } from './ledger.checkpoints.js';
import { LEDGER_LOCK_KEYS, loadLedgerIdentity } from './ledger.identity.js';
import { hasQueuedLeaves } from './ledger.queries.js';
import { backlogDrainer, sequenceAll } from './ledger.sequencer.js';

export const SEQUENCE_INTERVAL_MS = 250;
export const CHECKPOINT_INTERVAL_MS = 2_000;
export const LEDGER_TOPIC = 'ledger';

export interface LedgerLoops {
  stop(): Promise<void>;
  /** sequence everything queued and cut a checkpoint now (tests, CLI) */
  flush(): Promise<void>;
}

/** Optional nudge after committing audit events, so the sequencer runs now, not at its next poll. */
export function notifyLeafQueued(bus: Bus): void {
  bus.publish(LEDGER_TOPIC, 'leaf.queued', {});
}

export async function startLedgerLoops(deps: AppDeps, log: FastifyBaseLogger): Promise<LedgerLoops> {
  const { db, bus } = deps;
  const identity = await loadLedgerIdentity(db, deps.config.instanceName);

  const checkpoint = async () => {
    const cut = await cutCheckpoint(db, identity);
    if (cut) bus.publish(LEDGER_TOPIC, 'ledger.checkpoint', checkpointView(cut));
  };

  const drainer = backlogDrainer(db);
  const sequencer = startLeaderLoop(db, {
    name: 'ledger-sequencer',
    lockKey: LEDGER_LOCK_KEYS.sequencer,
    intervalMs: SEQUENCE_INTERVAL_MS,
    log,
    async tick() {
      // Most ticks find nothing: one cheap read instead of an empty transaction.
      if (!(await hasQueuedLeaves(db))) return;
      // Drain a backlog in consecutive batches (smaller after one fails), then yield to the next tick.
      await drainer.drain();
    },
  });
  const checkpointer = startLeaderLoop(db, {
    name: 'ledger-checkpointer',
    lockKey: LEDGER_LOCK_KEYS.checkpointer,
    intervalMs: CHECKPOINT_INTERVAL_MS,
    log,
    tick: checkpoint,
  });
  const unsubscribe = bus.subscribe(LEDGER_TOPIC, (event) => {
    if (event.type === 'leaf.queued') sequencer.kick();
  });

  return {
    async stop() {
      unsubscribe();
      await Promise.all([sequencer.stop(), checkpointer.stop()]);
    },
    async flush() {
      // Safe beside a running leader: appends serialize on the head row, checkpoints on
      // their primary key (and the same size always signs to the same note).
      await sequenceAll(db);
      await checkpoint();
    },
  };
}
