// Prometheus figures for the queue, instance-wide (no organization labels: /metrics is an
// operator's endpoint and must not spread one tenant's activity to another). Live gauges
// are read from the database at scrape time; counters and the wait histogram are this
// replica's own.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Db } from '../../platform/db/index.js';
import { instanceLiveFigures } from './stats.queries.js';

export interface QueueMetrics {
  finished(outcome: string): void;
  waited(seconds: number): void;
}

export function registerQueueMetrics(registry: Registry, db: Db): QueueMetrics {
  const finished = new Counter({
    name: 'cairn_queue_attempts_finished_total',
    help: 'Job attempts ended on this replica, by outcome (completed, failed, retried, dead_lettered, canceled, timed_out)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const wait = new Histogram({
    name: 'cairn_queue_wait_seconds',
    help: 'Time from a job becoming claimable to its claim, for claims served by this replica',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });
  new Gauge({
    name: 'cairn_queue_jobs',
    help: 'Unfinished jobs by state and priority (all organizations)',
    labelNames: ['state', 'priority'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const figures = await instanceLiveFigures(db).catch(() => null);
      for (const row of figures?.jobs ?? []) this.set({ state: row.state, priority: String(row.priority) }, row.n);
    },
  });
  new Gauge({
    name: 'cairn_agents',
    help: 'Registered agents by status (all organizations; idle and busy are both "active")',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const figures = await instanceLiveFigures(db).catch(() => null);
      for (const row of figures?.agents ?? []) this.set({ status: row.status }, row.n);
    },
  });
  return {
    finished: (outcome) => finished.inc({ outcome }),
    waited: (seconds) => wait.observe(seconds),
  };
}
