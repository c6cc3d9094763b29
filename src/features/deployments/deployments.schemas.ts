import { Type } from 'typebox';
import { PageQuery, Timestamp, Uuid } from '../../platform/http/schemas.js';
import { RoleName } from '../approvals/approvals.schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const DEPLOYMENT_STATES = ['pending', 'awaiting_approval', 'deploying', 'succeeded', 'failed', 'canceled', 'rejected'];
export const DeploymentStateName = Type.Enum(DEPLOYMENT_STATES);
export const ServiceName = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$',
  description: 'e.g. api, web, billing-worker',
});
export const Version = Type.String({ pattern: '^[^\\u0000-\\u001f]{1,200}$', description: 'e.g. 1.4.2, a commit, an image tag' });
export const EnvironmentName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'e.g. staging, production' });
const Commands = Type.Array(Type.String({ minLength: 1, maxLength: 10_000 }), { minItems: 1, maxItems: 100 });

export const CreateBody = Type.Object(
  {
    project_id: Uuid,
    service: ServiceName,
    version: Version,
    environment: EnvironmentName,
    run_id: Type.Optional(Uuid),
    artifact_id: Type.Optional(Uuid),
    commands: Type.Optional(Commands),
  },
  { additionalProperties: false },
);

export const PromoteBody = Type.Object(
  { environment: Type.Optional(EnvironmentName) },
  { additionalProperties: false, description: "Default: the environment that requires this one's" },
);

export const CancelBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 2000 })) },
  { additionalProperties: false },
);

export const ListQuery = Type.Object(
  {
    ...PageQuery,
    project_id: Type.Optional(Uuid),
    service: Type.Optional(ServiceName),
    environment: Type.Optional(EnvironmentName),
    state: Type.Optional(Type.Union([DeploymentStateName, Type.Array(DeploymentStateName, { maxItems: 7 })])),
  },
  { additionalProperties: false },
);

export const CurrentQuery = Type.Object(
  { project_id: Uuid, service: Type.Optional(ServiceName) },
  { additionalProperties: false },
);

const Actor = Type.Object({ type: Type.String(), id: Type.String(), label: Type.String() });

export const Deployment = Type.Object({
  id: Uuid,
  project_id: Uuid,
  service: Type.String(),
  version: Type.String(),
  environment: Type.String(),
  state: DeploymentStateName,
  reason: Nullable(Type.String()),
  run_id: Nullable(Uuid),
  step_key: Nullable(Type.String()),
  artifact_id: Nullable(Uuid),
  job_id: Nullable(Uuid),
  approval_id: Nullable(Uuid),
  rollback_of: Nullable(Uuid),
  promoted_from: Nullable(Uuid),
  pool: Type.String(),
  commands: Type.Array(Type.String()),
  created_by: Actor,
  created_at: Timestamp,
  started_at: Nullable(Timestamp),
  finished_at: Nullable(Timestamp),
  duration_seconds: Nullable(Type.Number()),
});

export const Current = Type.Object({
  items: Type.Array(
    Type.Object({
      service: Type.String(),
      environment: Type.String(),
      version: Type.String(),
      deployment_id: Uuid,
      deployed_at: Timestamp,
    }),
  ),
});

export const EnvironmentBody = Type.Object(
  {
    requires_approval: Type.Optional(Type.Boolean()),
    approval_roles: Type.Optional(Type.Array(RoleName, { maxItems: 4, description: 'A role means that role or above' })),
    approval_users: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 320 }), { maxItems: 100, description: 'User ids or emails of members' }),
    ),
    approval_expires_in_seconds: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 90 * 86_400 }))),
    requires_passed: Type.Optional(Nullable(EnvironmentName)),
    pool: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    tags: Type.Optional(Type.Record(Type.String({ maxLength: 100 }), Type.String({ maxLength: 200 }), { maxProperties: 20 })),
    commands: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 10_000 }), { maxItems: 100 })),
    timeout_seconds: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 7 * 86_400 }))),
  },
  { additionalProperties: false },
);

export const Environment = Type.Object({
  name: Type.String(),
  requires_approval: Type.Boolean(),
  approval_roles: Type.Array(RoleName),
  approval_user_ids: Type.Array(Type.String()),
  approval_expires_in_seconds: Nullable(Type.Integer()),
  requires_passed: Nullable(Type.String()),
  pool: Type.String(),
  tags: Type.Record(Type.String(), Type.String()),
  commands: Type.Array(Type.String()),
  timeout_seconds: Nullable(Type.Integer()),
  saved: Type.Boolean({ description: 'False for the defaults of a project that configured none (saved on first use)' }),
  created_at: Nullable(Timestamp),
  updated_at: Nullable(Timestamp),
});

export const EnvironmentParams = Type.Object({ id: Uuid, environment: EnvironmentName });
