-- Job logs and artifacts. See src/features/logs/README.md and src/features/artifacts/README.md.
-- Neither refers to jobs by foreign key: a job moves from `jobs` to `job_history` when it
-- finishes, and its log and artifacts stay readable there until retention prunes them.

-- One row per job attempt that wrote a log: its size so far and whether it was cut at the
-- cap. It is also what concurrent appends to one attempt lock, so offsets stay in order.
-- Attempt numbers count over a job's whole life (a redrive continues them), so
-- (job_id, attempt) names one claim's output.
CREATE TABLE job_logs (
  job_id uuid NOT NULL,
  attempt integer NOT NULL CHECK (attempt >= 1),
  org_id uuid NOT NULL,
  size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
  truncated boolean NOT NULL DEFAULT false,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, attempt)
);
CREATE INDEX job_logs_updated_idx ON job_logs (updated_at);

-- The log's bytes, in the chunks the agent sent, keyed by their byte offset. Bytes rather
-- than text because offsets count UTF-8 bytes, and ranges are cut in SQL.
CREATE TABLE job_log_chunks (
  job_id uuid NOT NULL,
  attempt integer NOT NULL,
  byte_offset bigint NOT NULL CHECK (byte_offset >= 0),
  org_id uuid NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (job_id, attempt, byte_offset)
);

-- Files jobs uploaded. The bytes live in the blob store under `sha256`; a row is the name a
-- job gave them. project_id and run_id are copied from the job so a project's or a run's
-- artifacts are read (and bundled) without joining the job tables.
CREATE TABLE artifacts (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL,
  job_id uuid NOT NULL,
  attempt integer NOT NULL CHECK (attempt >= 1),
  project_id uuid,
  run_id uuid,
  path text NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
  size bigint NOT NULL CHECK (size >= 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  content_type text NOT NULL,
  agent_id uuid,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (job_id, attempt, path)
);
CREATE INDEX artifacts_project_idx ON artifacts (org_id, project_id, created_at, id) WHERE project_id IS NOT NULL;
CREATE INDEX artifacts_run_idx ON artifacts (org_id, run_id, created_at, id) WHERE run_id IS NOT NULL;
-- Is a blob still named by any artifact? (asked before a blob is deleted)
CREATE INDEX artifacts_sha256_idx ON artifacts (sha256);
CREATE INDEX artifacts_created_idx ON artifacts (created_at);

-- Blobs that may have lost their last artifact (a row replaced or pruned). Queued in the
-- transaction that dropped the row, so a crash never leaves a blob nobody will look at;
-- the retention pass deletes each one that is still unreferenced.
CREATE TABLE blob_gc_candidates (
  sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  queued_at timestamptz(3) NOT NULL DEFAULT now()
);
