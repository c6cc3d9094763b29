// Retention of artifacts by age (CAIRN_ARTIFACT_RETENTION_DAYS): a leader loop deletes
// artifacts older than that (except those of jobs still in the live queue) and the blobs
// nothing names any more. Without the setting, artifacts live as long as their job's
// history (the queue's maintenance loop prunes both).
import type { FastifyBaseLogger } from 'fastify';
import { createBlobStore } from '../../platform/blobs.js';
import { LOCK_KEYS } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import { deleteOldArtifacts } from './bundles.service.js';

/** Ages are in days: looking every ten minutes is plenty. */
export const RETENTION_INTERVAL_MS = 10 * 60_000;

export function startArtifactRetention(deps: AppDeps, log: FastifyBaseLogger): LeaderLoop | null {
  const days = deps.config.artifactRetentionDays;
  if (days === 0) return null;
  const service = { ...deps, blobs: createBlobStore(deps.config.blobDir) };
  return startLeaderLoop(deps.db, {
    name: 'artifact-retention',
    lockKey: LOCK_KEYS.artifactRetention,
    intervalMs: RETENTION_INTERVAL_MS,
    log,
    async tick() {
      const report = await deleteOldArtifacts(service, undefined, days);
      if (report.deleted > 0) log.info({ ...report, retention_days: days }, 'artifact retention deleted old artifacts');
    },
  });
}
