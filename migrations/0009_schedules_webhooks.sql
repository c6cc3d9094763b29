-- Schedules (cron → runs), webhook triggers (GitHub, GitLab) and their deliveries.
-- See src/features/schedules/README.md and src/features/webhooks/README.md.

CREATE TABLE schedules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id),
  name text NOT NULL,
  -- Five-field cron (or a nickname such as @daily), read in `timezone` (IANA).
  cron text NOT NULL,
  timezone text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  -- What the runs it starts carry.
  branch text,
  commit text,
  message text,
  env jsonb NOT NULL DEFAULT '{}',
  -- After downtime: 'skip' the occurrences that passed, or 'run_once' for all of them.
  missed text NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'run_once')),
  -- The next occurrence to fire; null while disabled or when the expression has no future.
  next_run_at timestamptz(3),
  last_run_id uuid REFERENCES runs (id),
  last_fired_at timestamptz(3),
  -- started | failed | skipped: what the last due occurrence came to.
  last_outcome text,
  last_error text,
  skipped_count integer NOT NULL DEFAULT 0,
  created_by text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);
-- The scheduler's question: which enabled schedules are due?
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled AND next_run_at IS NOT NULL;
CREATE INDEX schedules_org_created_idx ON schedules (org_id, created_at, id);
CREATE INDEX schedules_org_name_idx ON schedules (org_id, name, id);

-- One row per due occurrence a scheduler claimed: the primary key is what makes a firing
-- happen once, however many replicas tick at the same moment.
CREATE TABLE schedule_firings (
  schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
  due_at timestamptz(3) NOT NULL,
  org_id uuid NOT NULL,
  fired_at timestamptz(3) NOT NULL DEFAULT now(),
  -- claimed (the run is being created) → started | failed; skipped (missed, policy skip).
  outcome text NOT NULL CHECK (outcome IN ('claimed', 'started', 'failed', 'skipped')),
  -- Earlier occurrences this firing stands for (missed during downtime).
  missed integer NOT NULL DEFAULT 0,
  run_id uuid REFERENCES runs (id),
  error text,
  PRIMARY KEY (schedule_id, due_at)
);
CREATE INDEX schedule_firings_claimed_idx ON schedule_firings (fired_at) WHERE outcome = 'claimed';
CREATE INDEX schedule_firings_fired_idx ON schedule_firings (fired_at);

-- A project's webhook secret, encrypted (AES-256-GCM, key derived from the instance
-- secret): HMAC verification needs the secret itself, so a hash will not do.
CREATE TABLE project_webhook_secrets (
  project_id uuid PRIMARY KEY REFERENCES projects (id),
  org_id uuid NOT NULL,
  -- iv (12 bytes) || tag (16 bytes) || ciphertext
  sealed bytea NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id),
  provider text NOT NULL CHECK (provider IN ('github', 'gitlab')),
  -- X-GitHub-Delivery, X-Gitlab-Event-UUID / Idempotency-Key, or the body's hash.
  delivery_id text NOT NULL,
  event text NOT NULL,
  action text,
  -- received (being handled) → started | ignored | pong | failed
  outcome text NOT NULL CHECK (outcome IN ('received', 'started', 'ignored', 'pong', 'failed')),
  reason text,
  branch text,
  commit text,
  run_id uuid REFERENCES runs (id),
  received_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (project_id, provider, delivery_id)
);
CREATE INDEX webhook_deliveries_project_idx ON webhook_deliveries (project_id, received_at DESC, id DESC);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);
