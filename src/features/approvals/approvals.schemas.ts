import { Type } from 'typebox';
import { ROLES } from '../../platform/auth.js';
import { PageQuery, Timestamp, Uuid } from '../../platform/http/schemas.js';
import { MAX_TEXT_ANSWER } from './approvals.fields.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const ApprovalStateName = Type.Enum(['pending', 'approved', 'rejected', 'expired', 'canceled']);
export const RoleName = Type.Enum([...ROLES]);
const Option = Type.String({ minLength: 1, maxLength: 200 });

export const Field = Type.Object(
  {
    key: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' }),
    label: Type.Optional(Type.String({ maxLength: 200 })),
    type: Type.Enum(['text', 'select', 'boolean']),
    required: Type.Optional(Type.Boolean()),
    options: Type.Optional(Type.Array(Option, { maxItems: 50 })),
    default: Type.Optional(Type.Union([Type.String({ maxLength: MAX_TEXT_ANSWER }), Type.Boolean()])),
  },
  { additionalProperties: false },
);

const Context = Type.Record(Type.String({ maxLength: 100 }), Type.Unknown(), {
  maxProperties: 50,
  description: 'Anything the asker wants people to see (links, a plan summary); shown as given',
});

export const RequestBody = Type.Object(
  {
    question: Type.String({ minLength: 1, maxLength: 2000 }),
    project_id: Type.Optional(Uuid),
    options: Type.Optional(
      Type.Array(Option, { maxItems: 20, description: 'Choices offered with an approval; the answer picks one' }),
    ),
    fields: Type.Optional(Type.Array(Field, { maxItems: 50, description: 'Input the answer fills in' })),
    context: Type.Optional(Context),
    allowed_roles: Type.Optional(
      Type.Array(RoleName, { maxItems: 4, description: 'A role means that role or above; none and no users: any member' }),
    ),
    allowed_users: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 320 }), { maxItems: 100, description: 'User ids or emails of members' }),
    ),
    expires_in_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 90 * 86_400 })),
    on_expiry: Type.Optional(Type.Enum(['fail', 'continue'], { description: 'What waits on it does when it expires' })),
  },
  { additionalProperties: false },
);

export const RespondBody = Type.Object(
  {
    decision: Type.Enum(['approve', 'reject']),
    choice: Type.Optional(Option),
    input: Type.Optional(
      Type.Record(Type.String({ maxLength: 64 }), Type.Union([Type.String({ maxLength: MAX_TEXT_ANSWER }), Type.Boolean()]), {
        maxProperties: 50,
      }),
    ),
    comment: Type.Optional(Type.String({ maxLength: 10_000 })),
  },
  { additionalProperties: false },
);

export const CancelBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 2000 })) },
  { additionalProperties: false },
);

export const ListQuery = Type.Object(
  {
    ...PageQuery,
    project_id: Type.Optional(Uuid),
    run_id: Type.Optional(Uuid),
    deployment_id: Type.Optional(Uuid),
    state: Type.Optional(Type.Union([ApprovalStateName, Type.Array(ApprovalStateName, { maxItems: 5 })])),
    waiting_for_me: Type.Optional(Type.Boolean({ description: 'Only pending approvals you may answer (by your role or named)' })),
  },
  { additionalProperties: false },
);

const Actor = Type.Object({ type: Type.String(), id: Type.String(), label: Type.String() });

export const Approval = Type.Object({
  id: Uuid,
  project_id: Nullable(Uuid),
  subject: Type.Object({
    type: Type.Enum(['run_step', 'deployment', 'job', 'none']),
    run_id: Nullable(Uuid),
    step_key: Nullable(Type.String()),
    deployment_id: Nullable(Uuid),
    job_id: Nullable(Uuid),
  }),
  question: Type.String(),
  options: Type.Array(Type.String()),
  fields: Type.Array(Field),
  context: Type.Record(Type.String(), Type.Unknown()),
  allowed_roles: Type.Array(RoleName),
  allowed_user_ids: Type.Array(Type.String()),
  expires_at: Nullable(Timestamp),
  on_expiry: Type.Enum(['fail', 'continue']),
  state: ApprovalStateName,
  requested_by: Actor,
  created_at: Timestamp,
  response: Nullable(
    Type.Object({
      by: Actor,
      at: Timestamp,
      choice: Nullable(Type.String()),
      input: Type.Record(Type.String(), Type.Union([Type.String(), Type.Boolean()])),
      comment: Nullable(Type.String()),
    }),
  ),
  resolved_at: Nullable(Timestamp),
  resolved_by: Nullable(Actor),
  can_respond: Type.Boolean({ description: 'You may answer it now' }),
});
