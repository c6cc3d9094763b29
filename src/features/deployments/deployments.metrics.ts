// Prometheus figure for deployments, instance-wide like the queue's (no organization
// labels: /metrics is an operator's endpoint). Read from the database at scrape time, so
// every replica reports the same numbers.
import { Gauge, type Registry } from 'prom-client';
import type { Db } from '../../platform/db/index.js';
import { unfinishedDeploymentCounts } from './deployments.queries.js';

/** The unfinished states, always exported (0 when none) so alerts need no absent() guard. */
const ACTIVE_STATES = ['pending', 'awaiting_approval', 'deploying'] as const;

export function registerDeploymentMetrics(registry: Registry, db: Db): void {
  new Gauge({
    name: 'cairn_deployments_active',
    help: 'Deployments not yet finished, by state and environment (all organizations)',
    labelNames: ['state', 'environment'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await unfinishedDeploymentCounts(db, ACTIVE_STATES).catch(() => []);
      for (const state of ACTIVE_STATES) {
        const ofState = rows.filter((r) => r.state === state);
        if (ofState.length === 0) this.set({ state, environment: '' }, 0);
        for (const row of ofState) this.set({ state, environment: row.environment }, row.n);
      }
    },
  });
}
