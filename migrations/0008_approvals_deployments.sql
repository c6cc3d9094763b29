-- Human approvals (questions people answer) and deployments (a service version rolled to an
-- environment). See src/features/approvals/README.md and src/features/deployments/README.md.

CREATE TABLE approvals (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid REFERENCES projects (id),
  -- What waits for the answer: a run's block step, a deployment, a job that asked from its
  -- shell, or nothing (a bot asking through the API).
  subject_type text NOT NULL CHECK (subject_type IN ('run_step', 'deployment', 'job', 'none')),
  run_id uuid REFERENCES runs (id),
  step_key text,
  deployment_id uuid,
  -- No foreign key: a job moves from `jobs` to `job_history` when it ends.
  job_id uuid,
  question text NOT NULL,
  options text[] NOT NULL DEFAULT '{}',
  -- Input fields the answer fills in (BlockField in src/features/pipelines/pipeline.model.ts).
  fields jsonb NOT NULL DEFAULT '[]',
  -- Whatever the asker wants the person to see (a diff link, a plan summary); not interpreted.
  context jsonb NOT NULL DEFAULT '{}',
  -- Who may answer: a role (stored with every role above it) or a user id.
  allowed_roles text[] NOT NULL DEFAULT '{}',
  allowed_user_ids uuid[] NOT NULL DEFAULT '{}',
  expires_at timestamptz(3),
  on_expiry text NOT NULL DEFAULT 'fail' CHECK (on_expiry IN ('fail', 'continue')),
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'canceled')),
  requested_by jsonb NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  -- The answer (or who canceled it), once there is one.
  resolved_at timestamptz(3),
  resolved_by jsonb,
  choice text,
  input jsonb,
  comment text,
  CHECK (subject_type <> 'run_step' OR (run_id IS NOT NULL AND step_key IS NOT NULL)),
  CHECK (subject_type <> 'deployment' OR deployment_id IS NOT NULL)
);
CREATE INDEX approvals_org_idx ON approvals (org_id, created_at DESC, id DESC);
CREATE INDEX approvals_project_idx ON approvals (project_id, created_at DESC, id DESC) WHERE project_id IS NOT NULL;
-- "Waiting for me" and open counts read only pending rows.
CREATE INDEX approvals_pending_idx ON approvals (org_id, created_at DESC, id DESC) WHERE state = 'pending';
-- The expiry loop's question: which pending approvals are due?
CREATE INDEX approvals_due_idx ON approvals (expires_at) WHERE state = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX approvals_run_idx ON approvals (run_id) WHERE run_id IS NOT NULL;

-- A project's deployment targets and their rules.
CREATE TABLE environments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id),
  name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  requires_approval boolean NOT NULL DEFAULT false,
  approval_roles text[] NOT NULL DEFAULT '{}',
  approval_user_ids uuid[] NOT NULL DEFAULT '{}',
  approval_expires_in_seconds integer CHECK (approval_expires_in_seconds > 0),
  -- A version must have succeeded in this environment first (production: staging).
  requires_passed text,
  -- Where deploy jobs run, and what they run.
  pool text NOT NULL,
  tags jsonb NOT NULL DEFAULT '{}',
  commands jsonb NOT NULL DEFAULT '[]',
  timeout_seconds integer CHECK (timeout_seconds > 0),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);

CREATE TABLE deployments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id),
  service text NOT NULL,
  version text NOT NULL,
  -- The environment's name, not its row: history outlives an environment's removal.
  environment text NOT NULL,
  -- pending: waiting for an earlier deployment of the same service to the same environment.
  state text NOT NULL CHECK (state IN ('pending', 'awaiting_approval', 'deploying', 'succeeded', 'failed', 'canceled', 'rejected')),
  reason text,
  run_id uuid REFERENCES runs (id),
  step_key text,
  -- No foreign key: artifact rows are pruned by retention, deployments are history.
  artifact_id uuid,
  job_id uuid,
  approval_id uuid REFERENCES approvals (id),
  rollback_of uuid REFERENCES deployments (id),
  promoted_from uuid REFERENCES deployments (id),
  -- What the deploy job runs, fixed when the deployment is made.
  pool text NOT NULL,
  tags jsonb NOT NULL DEFAULT '{}',
  commands jsonb NOT NULL,
  timeout_seconds integer,
  created_by jsonb NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  started_at timestamptz(3),
  finished_at timestamptz(3),
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);
ALTER TABLE approvals ADD CONSTRAINT approvals_deployment_fk FOREIGN KEY (deployment_id) REFERENCES deployments (id);
CREATE INDEX deployments_org_idx ON deployments (org_id, created_at DESC, id DESC);
-- Per service and environment: what runs now, what passed, what to roll back to, who is next.
CREATE INDEX deployments_target_idx ON deployments (project_id, service, environment, state, finished_at DESC);
CREATE INDEX deployments_version_idx ON deployments (project_id, service, version) WHERE state = 'succeeded';
-- The sweeper's question: which deployments still wait on a job?
CREATE INDEX deployments_deploying_idx ON deployments (updated_at) WHERE state = 'deploying';
CREATE INDEX deployments_job_idx ON deployments (job_id) WHERE job_id IS NOT NULL;
