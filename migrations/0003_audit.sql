-- The audit trail. Rows are written in the same transaction as the mutation they describe
-- and are never updated or deleted by Cairn. No foreign keys: the record outlives what it
-- describes.
CREATE TABLE audit_events (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL,
  occurred_at timestamptz NOT NULL,
  actor_type text NOT NULL,
  actor_id text NOT NULL,
  actor_label text NOT NULL,
  action text NOT NULL,
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  project_id uuid,
  request_id text,
  client_ip text,
  payload jsonb NOT NULL
);
CREATE INDEX audit_events_org_time_idx ON audit_events (org_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_org_resource_idx ON audit_events (org_id, resource_type, resource_id, occurred_at DESC);
CREATE INDEX audit_events_org_project_idx ON audit_events (org_id, project_id, occurred_at DESC) WHERE project_id IS NOT NULL;
CREATE INDEX audit_events_org_actor_idx ON audit_events (org_id, actor_id, occurred_at DESC);
CREATE INDEX audit_events_org_action_idx ON audit_events (org_id, action, occurred_at DESC);

-- Leaves waiting for the ledger sequencer. Inserted with the audit row (same transaction),
-- so an acknowledged mutation always reaches the log, even across a crash; the sequencer
-- fixes their order when it appends them and deletes them from here.
CREATE TABLE ledger_queue (
  seq bigserial PRIMARY KEY,
  org_id uuid NOT NULL,
  kind text NOT NULL,
  ref_id uuid NOT NULL,
  leaf_hash bytea NOT NULL
);
