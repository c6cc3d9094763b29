// Topic kinds: the built-in ones (`org`, `project:<id>`), and ready-made shapes for the
// features still to come, so each plugs its topics in with one call from its own folder:
//
//   registerTopicKind(...jobTopicKinds({ permission: 'jobs:read', exists: jobExists }));
//
// (`ledger` is served by the streams themselves: see events.ledger.ts.)
import type { AuthContext } from '../../platform/auth.js';
import type { BusEvent } from '../../platform/bus.js';
import type { Queryable } from '../../platform/db/index.js';
import { findProject } from '../projects/projects.queries.js';
import { findJob } from '../queue/jobs.queries.js';
import type { TopicAccess, TopicKind } from './events.topics.js';

type Exists = (db: Queryable, orgId: string, id: string) => Promise<boolean>;

/** The organization's whole feed (except live-only log chunks); each event still needs its own read permission. */
export const ORG_TOPIC: TopicKind = { name: 'org', permission: 'authenticated' };

export const PROJECT_TOPIC: TopicKind = {
  name: 'project',
  permission: 'projects:read',
  exists: async (db, orgId, id) => (await findProject(db, orgId, id)) !== undefined,
  owns: ['project.'],
};

/** A job's state changes it ends in; a log follower stops at the first. */
export const JOB_FINAL_TYPES = ['job.completed', 'job.failed', 'job.canceled', 'job.timed_out', 'job.dead_lettered'] as const;

/**
 * `job:<id>` (its transitions) and `job:<id>:log` (live `job.log` chunks, plus the final
 * transitions so a follower needs one subscription). A log topic does not resume from an
 * event id: a client reads the log by offset (`GET /api/v1/jobs/{id}/log?offset=`).
 */
export function jobTopicKinds(opts: { permission: TopicAccess; exists: Exists }): TopicKind[] {
  return [
    { name: 'job', permission: opts.permission, exists: opts.exists, owns: ['job.'] },
    {
      name: 'job',
      suffix: 'log',
      permission: opts.permission,
      exists: opts.exists,
      types: ['job.log', ...JOB_FINAL_TYPES],
      resumable: false,
    },
  ];
}

/** `run:<id>`: a run's events (`run.*`) and those of its jobs (which carry `run_id`). */
export function runTopicKind(opts: { permission: TopicAccess; exists: Exists }): TopicKind {
  return { name: 'run', permission: opts.permission, exists: opts.exists, owns: ['run.'] };
}

/** `agents`: the organization's agent and pool events. */
export function agentsTopicKind(opts: { permission: TopicAccess }): TopicKind {
  return { name: 'agents', permission: opts.permission, types: ['agent.', 'pool.'], owns: ['agent.', 'pool.'] };
}

/** Whether the subscriber is among those an approval event says may answer it. */
export function mayAnswer(event: BusEvent, auth: AuthContext): boolean {
  const data = (event.data ?? {}) as { allowed_roles?: unknown; allowed_user_ids?: unknown };
  const roles = Array.isArray(data.allowed_roles) ? (data.allowed_roles as unknown[]) : [];
  const users = Array.isArray(data.allowed_user_ids) ? (data.allowed_user_ids as unknown[]) : [];
  return Boolean((auth.role && roles.includes(auth.role)) || (auth.userId && users.includes(auth.userId)));
}

/** `approvals`: approval events the subscriber may answer ("waiting for me"), by role or user id. */
export function approvalsTopicKind(opts: { permission: TopicAccess }): TopicKind {
  return { name: 'approvals', permission: opts.permission, types: ['approval.'], owns: ['approval.'], visibleTo: mayAnswer };
}

/** The kinds whose features exist today; runs, approvals, deployments and artifacts add theirs as they land. */
export const BUILT_IN_TOPIC_KINDS: readonly TopicKind[] = [
  ORG_TOPIC,
  PROJECT_TOPIC,
  ...jobTopicKinds({ permission: 'jobs:read', exists: async (db, orgId, id) => (await findJob(db, orgId, id)) !== undefined }),
  agentsTopicKind({ permission: 'agents:read' }),
];
