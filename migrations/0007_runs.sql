-- Pipelines, runs and their steps, and the outputs steps hand to each other.
-- See src/features/runs/README.md.

-- A project's pipeline is versioned: every upload is a new version, and a run keeps the
-- version it started from.
CREATE TABLE pipeline_versions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id),
  version integer NOT NULL,
  -- The YAML as uploaded, and what it normalized to (src/features/pipelines/pipeline.model.ts).
  source text NOT NULL,
  definition jsonb NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (project_id, version)
);

-- A project's status counts its jobs wherever they live.
CREATE INDEX jobs_project_idx ON jobs (project_id) WHERE project_id IS NOT NULL;
CREATE INDEX job_history_project_idx ON job_history (project_id) WHERE project_id IS NOT NULL;

-- Run numbers count per project, handed out under the project row's lock.
ALTER TABLE projects ADD COLUMN runs_started integer NOT NULL DEFAULT 0;

CREATE TABLE runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id),
  number integer NOT NULL,
  pipeline_version_id uuid REFERENCES pipeline_versions (id),
  state text NOT NULL CHECK (state IN ('running', 'blocked', 'passed', 'failed', 'canceled')),
  trigger text NOT NULL,
  branch text,
  commit text,
  message text,
  event text,
  -- Overrides for every command step's environment (not secret).
  env jsonb NOT NULL DEFAULT '{}',
  created_by text NOT NULL,
  rerun_of uuid REFERENCES runs (id),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  finished_at timestamptz(3),
  -- Set when an admin forced the run complete (its unfinished steps were skipped).
  forced_by text,
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (project_id, number)
);
CREATE INDEX runs_org_idx ON runs (org_id, created_at DESC, id DESC);
CREATE INDEX runs_project_idx ON runs (project_id, created_at DESC, id DESC);
-- The sweeper's question: which unfinished runs have not moved for a while?
CREATE INDEX runs_active_idx ON runs (updated_at) WHERE state IN ('running', 'blocked');

CREATE TABLE run_steps (
  run_id uuid NOT NULL REFERENCES runs (id),
  key text NOT NULL,
  org_id uuid NOT NULL,
  position integer NOT NULL,
  type text NOT NULL CHECK (type IN ('command', 'block', 'deploy')),
  definition jsonb NOT NULL,
  needs text[] NOT NULL DEFAULT '{}',
  state text NOT NULL CHECK (state IN ('waiting', 'running', 'blocked', 'passed', 'failed', 'canceled', 'skipped')),
  -- Why a step waits, was skipped or canceled: concurrency, condition, dependency, forced, run_canceled.
  reason text,
  -- What carries the step out: its current job (command, deploy), approval (block), deployment (deploy).
  job_id uuid,
  approval_id uuid,
  deployment_id uuid,
  concurrency_group text,
  concurrency_limit integer,
  -- Jobs this step has had (a retry by a person makes a new one).
  jobs_started integer NOT NULL DEFAULT 0,
  started_at timestamptz(3),
  finished_at timestamptz(3),
  PRIMARY KEY (run_id, key)
);
CREATE INDEX run_steps_job_idx ON run_steps (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX run_steps_approval_idx ON run_steps (approval_id) WHERE approval_id IS NOT NULL;
CREATE INDEX run_steps_deployment_idx ON run_steps (deployment_id) WHERE deployment_id IS NOT NULL;
CREATE INDEX run_steps_concurrency_idx ON run_steps (org_id, concurrency_group, state) WHERE concurrency_group IS NOT NULL;

-- Hand-off: key/value outputs a step publishes for later steps (the "context store").
CREATE TABLE run_outputs (
  run_id uuid NOT NULL REFERENCES runs (id),
  step_key text NOT NULL,
  key text NOT NULL,
  org_id uuid NOT NULL,
  value text NOT NULL,
  job_id uuid,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step_key, key)
);
