CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  repository_url text,
  project_type text NOT NULL,
  -- Millisecond precision: the API's ISO timestamps and pagination cursors round-trip exactly.
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  -- Soft delete: runs, evidence and the audit trail keep pointing at a deleted project.
  deleted_at timestamptz,
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', name || ' ' || slug || ' ' || description)) STORED
);
-- A slug is unique among the organization's live projects; a deleted project frees it.
CREATE UNIQUE INDEX projects_org_slug_key ON projects (org_id, slug) WHERE deleted_at IS NULL;
CREATE INDEX projects_org_created_idx ON projects (org_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX projects_org_name_idx ON projects (org_id, name, id) WHERE deleted_at IS NULL;
CREATE INDEX projects_org_updated_idx ON projects (org_id, updated_at, id) WHERE deleted_at IS NULL;
CREATE INDEX projects_search_idx ON projects USING gin (search);
