// Deployments learn that their job ended from the queue's in-process notice (a deploy job
// carries CAIRN_DEPLOYMENT_ID, so other jobs cost nothing), and from a sweeper leader loop
// for notices lost to a crash. Both settle through settleDeployment, under the row lock.
import type { FastifyBaseLogger } from 'fastify';
import { LOCK_KEYS } from '../../platform/db/index.js';
import type { AppDeps } from '../../platform/deps.js';
import { startLeaderLoop, type LeaderLoop } from '../../platform/leader.js';
import { settleDeployment } from './deployments.lifecycle.js';
import { deployingWithEndedJobs } from './deployments.queries.js';

export const SWEEP_INTERVAL_MS = 5_000;

type Log = Pick<FastifyBaseLogger, 'warn'>;

/** Listens for ended deploy jobs for as long as the queue runtime lives; returns the unsubscribe. */
export function listenForDeployJobs(deps: AppDeps, log?: Log): () => void {
  return deps.queue.onJobsEnded((jobs) => {
    for (const job of jobs) {
      const id = job.payload?.env?.CAIRN_DEPLOYMENT_ID;
      if (!id) continue;
      settleDeployment(deps, job.org_id, id).catch((error: unknown) =>
        // The sweeper and the next read settle it instead.
        log?.warn({ err: error, deployment_id: id }, 'settling a deployment failed; the sweeper will retry'),
      );
    }
  });
}

export function startDeploymentSweeper(deps: AppDeps, log: FastifyBaseLogger): LeaderLoop {
  return startLeaderLoop(deps.db, {
    name: 'deployment-sweeper',
    lockKey: LOCK_KEYS.deploymentSweeper,
    intervalMs: SWEEP_INTERVAL_MS,
    log,
    async tick() {
      await sweepDeployments(deps);
    },
  });
}

/** One sweep: settles deployments still deploying whose job has ended; answers how many it looked at. */
export async function sweepDeployments(deps: AppDeps): Promise<number> {
  const stale = await deployingWithEndedJobs(deps.db, 100);
  for (const d of stale) await settleDeployment(deps, d.org_id, d.id);
  return stale.length;
}
