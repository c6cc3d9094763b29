// The expiry loop: one replica (leader) expires due approvals every few seconds; each
// expiry tells what waited on it and asks its run to advance, like an answer would.
import type { FastifyBaseLogger } from 'fastify';
import { LOCK_KEYS } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import { expireDueApprovals } from './approvals.service.js';

export const EXPIRY_INTERVAL_MS = 2_000;

export function startApprovalExpiry(deps: AppDeps, log: FastifyBaseLogger): LeaderLoop {
  return startLeaderLoop(deps.db, {
    name: 'approval-expiry',
    lockKey: LOCK_KEYS.approvalExpiry,
    intervalMs: EXPIRY_INTERVAL_MS,
    log,
    async tick() {
      // A backlog is worked off a batch per tick, so one tick never runs unbounded.
      await expireDueApprovals(deps, 200);
    },
  });
}
