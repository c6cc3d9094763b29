-- Agent pools, agents and the job queue. See src/features/queue/README.md for the design.

-- Audit rows written by SQL in the same statement as a high-volume transition (job claims,
-- starts, completions: see auditCtes in audit.queries.ts) queue their leaf without a hash;
-- the ledger sequencer hashes it from the stored row when it appends it.
ALTER TABLE ledger_queue ALTER COLUMN leaf_hash DROP NOT NULL;
CREATE INDEX ledger_queue_unhashed_idx ON ledger_queue (seq) WHERE leaf_hash IS NULL;

CREATE TABLE pools (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._:-]{0,62}$'),
  description text NOT NULL DEFAULT '',
  -- What the operator wants running; a signal for autoscalers, not enforced.
  desired_capacity integer NOT NULL DEFAULT 0 CHECK (desired_capacity >= 0),
  registration_token_hash bytea NOT NULL UNIQUE,
  registration_token_prefix text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  deleted_at timestamptz(3)
);
CREATE UNIQUE INDEX pools_org_name_key ON pools (org_id, name) WHERE deleted_at IS NULL;

-- status is what the agent or an operator set; idle/busy is derived from its leased jobs.
CREATE TABLE agents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  pool_id uuid NOT NULL REFERENCES pools (id),
  name text NOT NULL,
  hostname text NOT NULL DEFAULT '',
  version text NOT NULL DEFAULT '',
  os text NOT NULL DEFAULT '',
  tags text[] NOT NULL DEFAULT '{}',
  max_concurrency integer NOT NULL DEFAULT 1 CHECK (max_concurrency BETWEEN 1 AND 256),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'draining', 'lost', 'stopped')),
  token_hash bytea NOT NULL UNIQUE,
  load jsonb NOT NULL DEFAULT '{}',
  registered_at timestamptz(3) NOT NULL DEFAULT now(),
  last_heartbeat_at timestamptz(3) NOT NULL DEFAULT now(),
  stopped_at timestamptz(3)
);
CREATE INDEX agents_org_idx ON agents (org_id, registered_at, id);
CREATE INDEX agents_pool_idx ON agents (pool_id) WHERE status <> 'stopped';
-- The reaper's question: which live agents went quiet?
CREATE INDEX agents_heartbeat_idx ON agents (last_heartbeat_at) WHERE status IN ('active', 'paused', 'draining');

-- Status history: registered, paused, resumed, draining, lost, back, stopped.
CREATE TABLE agent_status_events (
  id bigserial PRIMARY KEY,
  agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  org_id uuid NOT NULL,
  from_status text,
  to_status text NOT NULL,
  reason text NOT NULL DEFAULT '',
  at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX agent_status_events_agent_idx ON agent_status_events (agent_id, id DESC);

-- The live queue: only jobs that are not finished. A job leaves this table (into
-- job_history, in the same statement) the moment it reaches a final state, so the table
-- the claim scans stays as small as the work in flight, whatever the history holds.
CREATE SEQUENCE job_seq;
CREATE TABLE jobs (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL,
  pool_id uuid NOT NULL,
  project_id uuid,
  run_id uuid,
  step_key text,
  name text NOT NULL,
  -- 0 CRITICAL, 1 HIGH, 2 NORMAL, 3 LOW; seq gives FIFO within a priority.
  priority smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),
  seq bigint NOT NULL DEFAULT nextval('job_seq'),
  state text NOT NULL CHECK (state IN ('scheduled', 'queued', 'claimed', 'running', 'blocked')),
  required_tags text[] NOT NULL DEFAULT '{}',
  payload jsonb NOT NULL,
  timeout_seconds integer NOT NULL,
  max_attempts integer NOT NULL,
  retry jsonb NOT NULL,
  -- Attempts are numbered for the job's whole life (logs and the attempt history key on
  -- them); a redrive grants max_attempts more from here.
  attempt integer NOT NULL DEFAULT 0,
  attempts_before_redrive integer NOT NULL DEFAULT 0,
  created_by text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  run_at timestamptz(3) NOT NULL DEFAULT now(),
  -- When it last became claimable: wait time is measured from here.
  queued_at timestamptz(3),
  agent_id uuid,
  lease_token uuid,
  lease_expires_at timestamptz(3),
  claimed_at timestamptz(3),
  started_at timestamptz(3),
  cancel_requested_at timestamptz(3),
  -- Why the previous attempt ended ({reason, exit_status, at}), shown while a retry waits.
  last_failure jsonb,
  finished_at timestamptz(3),
  exit_status integer,
  failure_reason text,
  outputs jsonb,
  updated_at timestamptz(3) NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
-- The claim: the oldest job of the best priority in a pool, among claimable ones.
CREATE INDEX jobs_claim_idx ON jobs (pool_id, priority, seq) WHERE state = 'queued';
CREATE INDEX jobs_run_at_idx ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state IN ('claimed', 'running');
CREATE INDEX jobs_agent_idx ON jobs (agent_id) WHERE agent_id IS NOT NULL;
CREATE INDEX jobs_org_idx ON jobs (org_id, created_at DESC, id DESC);
CREATE INDEX jobs_run_idx ON jobs (run_id) WHERE run_id IS NOT NULL;
-- Rows churn fast here (insert, two or three updates, delete); vacuum early and often so
-- dead tuples never pile up in front of the claim index. fillfactor leaves room on each
-- page for HOT updates (state changes touch no indexed column but state itself).
ALTER TABLE jobs SET (
  autovacuum_vacuum_scale_factor = 0.0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0.0,
  autovacuum_vacuum_insert_threshold = 5000,
  autovacuum_analyze_scale_factor = 0.0,
  autovacuum_analyze_threshold = 5000,
  autovacuum_vacuum_cost_delay = 0
);

-- Finished jobs: append-mostly, read by id, by organization and by run; pruned by
-- retention (CAIRN_JOB_HISTORY_DAYS). Same columns as jobs so a move is one statement.
CREATE TABLE job_history (LIKE jobs INCLUDING DEFAULTS);
ALTER TABLE job_history ALTER COLUMN seq DROP DEFAULT;
ALTER TABLE job_history ADD PRIMARY KEY (id);
ALTER TABLE job_history
  ADD CONSTRAINT job_history_state_check
  CHECK (state IN ('completed', 'failed', 'dead_lettered', 'canceled', 'timed_out'));
CREATE INDEX job_history_org_idx ON job_history (org_id, created_at DESC, id DESC);
CREATE INDEX job_history_dead_idx ON job_history (org_id, finished_at DESC) WHERE state = 'dead_lettered';
CREATE INDEX job_history_run_idx ON job_history (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX job_history_finished_idx ON job_history (finished_at);

-- Every job, live or finished, for reads that do not care where it lives.
CREATE VIEW all_jobs AS
  SELECT * FROM jobs
  UNION ALL
  SELECT * FROM job_history;

-- Idempotency keys outlive the job's move to history, so they get their own table.
CREATE TABLE job_idempotency_keys (
  org_id uuid NOT NULL,
  key text NOT NULL,
  job_id uuid NOT NULL,
  request_hash bytea NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key)
);
CREATE INDEX job_idempotency_keys_created_idx ON job_idempotency_keys (created_at);

-- One row per ended attempt: the agents' activity log and the source of their metrics.
CREATE TABLE job_attempts (
  job_id uuid NOT NULL,
  attempt integer NOT NULL,
  org_id uuid NOT NULL,
  agent_id uuid,
  pool_id uuid NOT NULL,
  claimed_at timestamptz(3),
  started_at timestamptz(3),
  finished_at timestamptz(3) NOT NULL,
  outcome text NOT NULL,
  exit_status integer,
  reason text,
  PRIMARY KEY (job_id, attempt)
);
CREATE INDEX job_attempts_agent_idx ON job_attempts (agent_id, finished_at DESC) WHERE agent_id IS NOT NULL;
CREATE INDEX job_attempts_finished_idx ON job_attempts (finished_at);

-- Per-minute roll-ups of finished attempts, written by each replica every few seconds
-- from its in-memory counts, so stats never count the history table. Histogram buckets
-- are fixed (src/features/queue/queue.stats.ts) so p95 can be read from summed counts.
CREATE TABLE queue_stats (
  org_id uuid NOT NULL,
  pool_id uuid NOT NULL,
  priority smallint NOT NULL,
  minute timestamptz NOT NULL,
  completed integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  dead_lettered integer NOT NULL DEFAULT 0,
  canceled integer NOT NULL DEFAULT 0,
  timed_out integer NOT NULL DEFAULT 0,
  retried integer NOT NULL DEFAULT 0,
  wait_count integer NOT NULL DEFAULT 0,
  wait_sum_ms bigint NOT NULL DEFAULT 0,
  wait_buckets integer[] NOT NULL,
  exec_count integer NOT NULL DEFAULT 0,
  exec_sum_ms bigint NOT NULL DEFAULT 0,
  exec_buckets integer[] NOT NULL,
  PRIMARY KEY (org_id, pool_id, priority, minute)
);
CREATE INDEX queue_stats_minute_idx ON queue_stats (minute);
