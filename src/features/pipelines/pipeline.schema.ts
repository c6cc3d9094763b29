// The JSON Schema (draft 2020-12) of the pipeline YAML: published for editors at
// GET /api/v1/pipelines/schema.json and docs/pipeline.schema.json, and the very schema
// the parser validates with (pipeline.parse.ts), so what an editor accepts is what Cairn
// accepts. Steps are told apart by their discriminating field (`block`, `deploy`, `wait`,
// else a command step) with if/then/else rather than oneOf: a validator then reports the
// mistakes of the step the author meant, not "matches none of four schemas".
// Limits follow the queue's (queue.schemas.ts), so a step that validates can always be enqueued.
import { ROLES } from '../../platform/auth.js';
import { PRIORITIES } from '../queue/queue.model.js';

export const PIPELINE_SCHEMA_ID = 'https://cairn.dev/schemas/pipeline.schema.json';

export const STEP_KEY_PATTERN = '^[A-Za-z0-9_.:-]{1,100}$';
export const MAX_STEPS = 500;
const POOL_PATTERN = '^[a-z0-9][a-z0-9._:-]{0,62}$';
const TAG_PATTERN = '^[A-Za-z0-9._:/-]{1,64}$';
const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
// Names as the deployments and approvals features take them (deployments.schemas.ts, approvals.schemas.ts).
const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$';
const ENVIRONMENT_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
const FIELD_KEY_PATTERN = '^[A-Za-z][A-Za-z0-9_]{0,63}$';
/** Output and block-field names: they become parts of `${steps.<key>.outputs.<name>}` and env names. */
export const OUTPUT_KEY_PATTERN = '^[A-Za-z0-9_-]{1,100}$';

// `type` lists make each keyword apply to its own type only (pattern to strings, items to
// arrays), which reports better than anyOf over two schemas.
const oneOrMany = (item: Record<string, unknown>, maxItems: number, description: string) => ({
  type: ['string', 'array'],
  ...item,
  items: { type: 'string', ...item },
  minItems: 1,
  maxItems,
  description,
});

const scalarValue = (maxLength: number) => ({ type: ['string', 'number', 'boolean'], maxLength });

const common = {
  key: {
    type: 'string',
    pattern: STEP_KEY_PATTERN,
    description:
      'The step’s name in `needs`, templates and the API. Default: from the label (or the deploy’s service and environment), else step-<n>.',
  },
  label: { type: 'string', minLength: 1, maxLength: 200, description: 'What people see; default: the key' },
  needs: {
    type: ['string', 'array'],
    pattern: STEP_KEY_PATTERN,
    items: { type: 'string', pattern: STEP_KEY_PATTERN },
    maxItems: MAX_STEPS,
    description: 'Keys of steps that must pass (or be skipped by their condition) before this one starts',
  },
  if: {
    type: 'string',
    minLength: 1,
    maxLength: 1000,
    description: 'Condition on the run, e.g. `branch == "main" && trigger != "schedule"`; false → the step is skipped',
  },
  allow_failure: { type: 'boolean', description: 'A failure of this step fails neither the run nor its dependents' },
};

const commandFields = {
  command: oneOrMany({ minLength: 1, maxLength: 65_536 }, 256, 'A command (may span lines), or a list of them'),
  commands: oneOrMany({ minLength: 1, maxLength: 65_536 }, 256, 'Commands run in order in one shell; the first failure stops'),
};

const commandStep = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...commandFields,
    ...common,
    agents: {
      type: 'object',
      description: '`pool` (default: "default") and the tags an agent must have, e.g. {pool: linux, os: linux}',
      properties: { pool: { type: 'string', pattern: POOL_PATTERN } },
      propertyNames: { pattern: TAG_PATTERN },
      additionalProperties: scalarValue(256),
      maxProperties: 33,
    },
    env: { $ref: '#/$defs/env' },
    timeout_in_minutes: { type: 'integer', minimum: 1, maximum: 10_080 },
    timeout_seconds: { type: 'integer', minimum: 1, maximum: 604_800 },
    retry: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_attempts: { type: 'integer', minimum: 1, maximum: 100, description: 'Attempts in all (default 3)' },
        exit_statuses: {
          type: ['array', 'string'],
          items: { type: 'integer', minimum: 1, maximum: 255 },
          maxItems: 64,
          pattern: '^any$',
          description: 'Exit statuses worth another attempt, or "any" non-zero one (default: none)',
        },
        reasons: {
          type: 'array',
          items: { enum: ['agent_lost', 'lease_expired', 'timeout', 'error'] },
          uniqueItems: true,
          description: 'Other failures worth another attempt (default: agent_lost, lease_expired)',
        },
        backoff_seconds: { type: 'number', minimum: 0.1, maximum: 3600 },
        max_backoff_seconds: { type: 'number', minimum: 1, maximum: 86_400 },
      },
    },
    artifact_paths: oneOrMany(
      { minLength: 1, maxLength: 1024 },
      64,
      'Globs, relative to the job’s directory, of files uploaded after the commands',
    ),
    priority: { enum: PRIORITIES },
    concurrency_group: {
      type: 'string',
      pattern: '^[A-Za-z0-9_.:/-]{1,200}$',
      description: 'At most `concurrency` steps of this group run at once, across all runs of the organization',
    },
    concurrency: { type: 'integer', minimum: 1, maximum: 1000, description: 'Default 1' },
  },
  dependentRequired: { concurrency: ['concurrency_group'] },
};

const blockField = {
  type: 'object',
  additionalProperties: false,
  required: ['key'],
  properties: {
    key: { type: 'string', pattern: FIELD_KEY_PATTERN, description: 'The answer’s name (it becomes an output of the step)' },
    label: { type: 'string', minLength: 1, maxLength: 200 },
    type: { enum: ['text', 'select', 'boolean'], description: 'Default text' },
    required: { type: 'boolean' },
    options: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 200 },
      minItems: 1,
      maxItems: 50,
      uniqueItems: true,
    },
    default: { type: ['string', 'boolean'], maxLength: 10_000 },
  },
};

const blockStep = {
  type: 'object',
  additionalProperties: false,
  required: ['block'],
  properties: {
    block: { type: 'string', minLength: 1, maxLength: 2000, description: 'The question asked (or its label, with `prompt`)' },
    prompt: { type: 'string', minLength: 1, maxLength: 2000, description: 'The question, when `block` is a short label' },
    ...common,
    fields: { type: 'array', items: blockField, maxItems: 50 },
    allowed_roles: { type: 'array', items: { enum: ROLES }, uniqueItems: true },
    allowed_users: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 320 },
      maxItems: 100,
      description: 'User ids or emails; with allowed_roles empty too, any member may answer',
    },
    expires_in_minutes: { type: 'integer', minimum: 1, maximum: 43_200 },
    expires_in_seconds: { type: 'integer', minimum: 1, maximum: 2_592_000 },
    on_expiry: { enum: ['fail', 'continue'], description: 'What an unanswered block does when it expires (default fail)' },
  },
};

const deployStep = {
  type: 'object',
  additionalProperties: false,
  required: ['deploy'],
  properties: {
    deploy: {
      type: 'object',
      additionalProperties: false,
      required: ['service', 'environment', 'version'],
      properties: {
        service: { type: 'string', pattern: NAME_PATTERN },
        environment: { type: 'string', pattern: ENVIRONMENT_PATTERN, description: 'e.g. staging, production' },
        version: {
          type: 'string',
          minLength: 1,
          maxLength: 200,
          pattern: '^[^\\u0000-\\u001f]*$',
          description: 'May use ${run.commit}, ${run.number}, ${steps.<key>.outputs.<name>} (of a step among its needs)',
        },
      },
    },
    ...common,
    ...commandFields,
  },
};

const step = {
  type: ['string', 'object'],
  if: { type: 'string' },
  then: { const: 'wait', description: '`wait`: every later step needs every step before it' },
  else: {
    if: { required: ['block'] },
    then: { $ref: '#/$defs/blockStep' },
    else: {
      if: { required: ['deploy'] },
      then: { $ref: '#/$defs/deployStep' },
      else: {
        if: { required: ['wait'] },
        then: { $ref: '#/$defs/waitStep' },
        else: { $ref: '#/$defs/commandStep', anyOf: [{ required: ['command'] }, { required: ['commands'] }] },
      },
    },
  },
};

export const PIPELINE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: PIPELINE_SCHEMA_ID,
  title: 'Cairn pipeline',
  description: 'A project’s pipeline: steps (command, wait, block, deploy) with needs, conditions and hand-offs.',
  type: 'object',
  additionalProperties: false,
  required: ['steps'],
  properties: {
    env: { $ref: '#/$defs/env' },
    steps: { type: 'array', items: { $ref: '#/$defs/step' }, minItems: 1, maxItems: MAX_STEPS },
  },
  $defs: {
    step,
    commandStep,
    blockStep,
    deployStep,
    waitStep: {
      type: 'object',
      additionalProperties: false,
      required: ['wait'],
      properties: { wait: { type: 'null', description: '`- wait` or `- wait: ~`' } },
    },
    env: {
      type: 'object',
      propertyNames: { pattern: ENV_NAME_PATTERN },
      additionalProperties: scalarValue(32_768),
      maxProperties: 256,
      description: 'Environment variables (not secret: secrets live on the agents)',
    },
  },
} as const;
