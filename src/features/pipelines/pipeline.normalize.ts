// A schema-valid pipeline value → PipelineDefinition: keys and labels filled in, `wait`
// and `block` barriers turned into needs, Buildkite spellings into the model's fields.
// It also remembers where each step and each need came from, for the checks that follow.
import type { Role } from '../../platform/auth.js';
import type { Priority, RetryRules } from '../queue/queue.model.js';
import type { BlockField, BlockStep, CommandStep, DeployStep, PipelineDefinition, StepDefinition } from './pipeline.model.js';

/** The YAML as the schema lets it be (everything optional that the schema does not require). */
type Scalar = string | number | boolean;
type OneOrMany = string | string[];
interface RawStep {
  key?: string;
  label?: string;
  needs?: OneOrMany;
  if?: string;
  allow_failure?: boolean;
  command?: OneOrMany;
  commands?: OneOrMany;
  agents?: Record<string, Scalar>;
  env?: Record<string, Scalar>;
  timeout_in_minutes?: number;
  timeout_seconds?: number;
  retry?: Partial<Omit<RetryRules, 'exit_statuses'>> & { max_attempts?: number; exit_statuses?: number[] | string };
  artifact_paths?: OneOrMany;
  priority?: Priority;
  concurrency_group?: string;
  concurrency?: number;
  block?: string;
  prompt?: string;
  fields?: (Omit<BlockField, 'type'> & { type?: BlockField['type'] })[];
  allowed_roles?: Role[];
  allowed_users?: string[];
  expires_in_minutes?: number;
  expires_in_seconds?: number;
  on_expiry?: 'fail' | 'continue';
  deploy?: { service: string; environment: string; version: string };
  wait?: null;
}
export interface RawPipeline {
  env?: Record<string, Scalar>;
  steps: (RawStep | 'wait')[];
}

/** Why a step needs another: written in its `needs` (entry `index`), or a barrier above it. */
export type NeedOrigin = { kind: 'written'; index: number | null } | { kind: 'barrier'; item: number };

export interface StepOrigin {
  /** Index of the step in the YAML `steps` list. */
  item: number;
  /** Whether the key was written (a derived key is never reported as a duplicate). */
  keyWritten: boolean;
  needs: Map<string, NeedOrigin>;
}

export interface Normalized {
  definition: PipelineDefinition;
  /** Same order as definition.steps. */
  origins: StepOrigin[];
}

const list = (value: OneOrMany | undefined): string[] => (value === undefined ? [] : typeof value === 'string' ? [value] : value);
const stringify = (record: Record<string, Scalar> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(record ?? {}).map(([k, v]) => [k, String(v)]));
/** A block scalar (`|`) ends with a newline the author did not mean as part of the command. */
const command = (text: string) => text.replace(/\s+$/, '');

export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9_.:-]+/g, '-')
    .replace(/^[-.:]+|[-.:]+$/g, '')
    .slice(0, 100)
    .replace(/[-.:]+$/, '');
}

function derivedKey(step: RawStep, item: number): string {
  const from = step.label ?? step.block ?? (step.deploy ? `deploy-${step.deploy.service}-${step.deploy.environment}` : '');
  return slug(from) || `step-${item + 1}`;
}

/** Written keys first, so a derived key never takes a written one; derived clashes get -2, -3… */
function assignKeys(steps: { raw: RawStep; item: number }[]): string[] {
  const taken = new Set(steps.flatMap((s) => (s.raw.key ? [s.raw.key] : [])));
  return steps.map(({ raw, item }) => {
    if (raw.key) return raw.key;
    const base = derivedKey(raw, item);
    let key = base;
    for (let n = 2; taken.has(key); n++) key = `${base.slice(0, 95)}-${n}`;
    taken.add(key);
    return key;
  });
}

function omitUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function commandStep(raw: RawStep, base: Omit<CommandStep, 'type' | 'commands' | 'pool' | 'tags' | 'env' | 'artifacts'>) {
  const { pool, ...tags } = raw.agents ?? {};
  const { max_attempts, exit_statuses, ...retryRest } = raw.retry ?? {};
  const retry: Partial<RetryRules> = omitUndefined({
    ...retryRest,
    reasons: retryRest.reasons,
    exit_statuses:
      exit_statuses === undefined ? undefined : exit_statuses === 'any' ? ('any' as const) : (exit_statuses as number[]),
  });
  const artifacts = typeof raw.artifact_paths === 'string' ? raw.artifact_paths.split(';') : list(raw.artifact_paths);
  const step: CommandStep = {
    type: 'command',
    ...base,
    commands: [...list(raw.command), ...list(raw.commands)].map(command),
    pool: pool === undefined ? 'default' : String(pool),
    tags: stringify(tags),
    env: stringify(raw.env),
    artifacts: artifacts.map((a) => a.trim()).filter(Boolean),
    timeout_seconds: raw.timeout_seconds ?? (raw.timeout_in_minutes === undefined ? undefined : raw.timeout_in_minutes * 60),
    max_attempts,
    retry: Object.keys(retry).length > 0 ? retry : undefined,
    priority: raw.priority,
    concurrency_group: raw.concurrency_group,
    concurrency: raw.concurrency_group ? raw.concurrency : undefined,
  };
  return omitUndefined(step);
}

function blockStep(
  raw: RawStep,
  base: Omit<BlockStep, 'type' | 'prompt' | 'fields' | 'allowed_roles' | 'allowed_users' | 'on_expiry'>,
) {
  const step: BlockStep = {
    type: 'block',
    ...base,
    prompt: raw.prompt ?? raw.block!,
    fields: (raw.fields ?? []).map((f) => omitUndefined({ ...f, type: f.type ?? 'text' })),
    allowed_roles: raw.allowed_roles ?? [],
    allowed_users: raw.allowed_users ?? [],
    expires_in_seconds:
      raw.expires_in_seconds ?? (raw.expires_in_minutes === undefined ? undefined : raw.expires_in_minutes * 60),
    on_expiry: raw.on_expiry ?? 'fail',
  };
  return omitUndefined(step);
}

function deployStep(raw: RawStep, base: Omit<DeployStep, 'type' | 'service' | 'environment' | 'version'>) {
  const commands = [...list(raw.command), ...list(raw.commands)].map(command);
  const step: DeployStep = { type: 'deploy', ...base, ...raw.deploy!, commands: commands.length > 0 ? commands : undefined };
  return omitUndefined(step);
}

function defaultLabel(raw: RawStep, key: string): string {
  if (raw.label) return raw.label;
  if (raw.block) return raw.prompt ? raw.block : raw.block.slice(0, 200);
  if (raw.deploy) return `Deploy ${raw.deploy.service} to ${raw.deploy.environment}`;
  if (raw.key) return raw.key;
  const first = command(list(raw.command ?? raw.commands)[0] ?? '').split('\n')[0]!;
  return first.slice(0, 200) || key;
}

export function normalize(raw: RawPipeline): Normalized {
  const items = raw.steps.map((s, item) => ({ s, item }));
  const steps = items.filter((x): x is { s: RawStep; item: number } => x.s !== 'wait' && !('wait' in x.s));
  const keys = assignKeys(steps.map(({ s, item }) => ({ raw: s, item })));
  const keyOfItem = new Map(steps.map(({ item }, i) => [item, keys[i]!]));

  const out: StepDefinition[] = [];
  const origins: StepOrigin[] = [];
  // `barrier`: what every step after the last wait (or block) needs; `since`: steps after it.
  let barrier: { keys: string[]; item: number } = { keys: [], item: -1 };
  let since: string[] = [];
  const closeSegment = (item: number) => {
    if (since.length > 0) barrier = { keys: since, item };
    since = [];
  };

  for (const { s: rawItem, item } of items) {
    if (rawItem === 'wait' || 'wait' in rawItem) {
      closeSegment(item);
      continue;
    }
    const raw = rawItem;
    const key = keyOfItem.get(item)!;
    const needs = new Map<string, NeedOrigin>();
    const written =
      raw.needs === undefined
        ? []
        : typeof raw.needs === 'string'
          ? [[raw.needs, null] as const]
          : raw.needs.map((n, i) => [n, i] as const);
    for (const [need, index] of written) if (!needs.has(need)) needs.set(need, { kind: 'written', index });
    // A block step is a barrier both ways, as in Buildkite: it waits for the steps above it,
    // and everything below waits for it.
    if (raw.block !== undefined) closeSegment(item);
    for (const need of barrier.keys) if (!needs.has(need)) needs.set(need, { kind: 'barrier', item: barrier.item });

    const base = omitUndefined({
      key,
      label: defaultLabel(raw, key),
      needs: [...needs.keys()],
      if: raw.if,
      allow_failure: raw.allow_failure,
    });
    if (raw.block !== undefined) {
      out.push(blockStep(raw, base));
      barrier = { keys: [key], item };
    } else {
      out.push(raw.deploy ? deployStep(raw, base) : commandStep(raw, base));
      since.push(key);
    }
    origins.push({ item, keyWritten: raw.key !== undefined, needs });
  }
  return { definition: { env: stringify(raw.env), steps: out }, origins };
}
