// What a schema cannot say about a pipeline: keys are unique, `needs` name real steps and
// form no cycle, conditions parse, templates read only steps the step waits for, block
// fields make sense. Every error points at the line the author has to change.
import { compileCondition, ConditionError } from './conditions.js';
import type { PipelineDefinition } from './pipeline.model.js';
import type { Normalized, RawPipeline, StepOrigin } from './pipeline.normalize.js';
import { formatPath, type Path, type PipelineError, type YamlSource } from './pipeline.yaml.js';

export interface CheckContext {
  source: YamlSource;
  raw: RawPipeline;
  normalized: Normalized;
  /** Steps that already exist (a dynamic upload into a run): key → its needs. */
  existing: ReadonlyMap<string, readonly string[]>;
}

const stepPath = (o: StepOrigin, ...rest: (string | number)[]): Path => ['steps', o.item, ...rest];

function needPath(o: StepOrigin, need: string): { path: Path; key?: boolean } {
  const origin = o.needs.get(need);
  if (origin?.kind === 'written') return { path: stepPath(o, 'needs', ...(origin.index === null ? [] : [origin.index])) };
  return { path: stepPath(o), key: true };
}

function listSome(keys: readonly string[]): string {
  return keys.length > 12 ? `${keys.slice(0, 12).join(', ')}, …` : keys.join(', ');
}

function checkKeys(ctx: CheckContext, errors: PipelineError[]): void {
  const { steps } = ctx.normalized.definition;
  const firstItem = new Map<string, number>();
  steps.forEach((step, i) => {
    const origin = ctx.normalized.origins[i]!;
    const where = origin.keyWritten ? stepPath(origin, 'key') : stepPath(origin);
    if (ctx.existing.has(step.key)) {
      errors.push(ctx.source.error(where, `The run already has a step "${step.key}"; give this one another key.`));
    } else if (firstItem.has(step.key)) {
      const line = ctx.source.locate(['steps', firstItem.get(step.key)!]).line;
      errors.push(ctx.source.error(where, `Duplicate step key "${step.key}": the step on line ${line} has it too.`));
    } else {
      firstItem.set(step.key, origin.item);
    }
  });
}

function checkNeeds(ctx: CheckContext, errors: PipelineError[]): void {
  const { steps } = ctx.normalized.definition;
  const known = new Set([...steps.map((s) => s.key), ...ctx.existing.keys()]);
  steps.forEach((step, i) => {
    const origin = ctx.normalized.origins[i]!;
    for (const need of step.needs) {
      const { path } = needPath(origin, need);
      if (need === step.key) errors.push(ctx.source.error(path, `Step "${step.key}" cannot need itself.`));
      else if (!known.has(need)) {
        errors.push(ctx.source.error(path, `needs "${need}", but no step has that key; the keys are: ${listSome([...known])}.`));
      }
    }
  });
}

/** Depth-first search; each back edge closes a cycle, reported on a written `needs` entry in it. */
function checkCycles(ctx: CheckContext, errors: PipelineError[]): void {
  const { steps } = ctx.normalized.definition;
  const index = new Map(steps.map((s, i) => [s.key, i]));
  const state = new Array<0 | 1 | 2>(steps.length).fill(0);
  const stack: number[] = [];
  const visit = (start: number) => {
    // Iterative, so a 500-step chain cannot exhaust the stack.
    const frames: { node: number; next: number }[] = [{ node: start, next: 0 }];
    state[start] = 1;
    stack.push(start);
    while (frames.length > 0) {
      const frame = frames.at(-1)!;
      const needs = steps[frame.node]!.needs;
      if (frame.next >= needs.length) {
        state[frame.node] = 2;
        stack.pop();
        frames.pop();
        continue;
      }
      const target = index.get(needs[frame.next++]!);
      if (target === undefined || target === frame.node) continue;
      if (state[target] === 1) reportCycle(ctx, stack.slice(stack.indexOf(target)), errors);
      else if (state[target] === 0) {
        state[target] = 1;
        stack.push(target);
        frames.push({ node: target, next: 0 });
      }
    }
  };
  for (let i = 0; i < steps.length; i++) if (state[i] === 0) visit(i);
}

function reportCycle(ctx: CheckContext, cycle: number[], errors: PipelineError[]): void {
  const { steps } = ctx.normalized.definition;
  // cycle[k] needs cycle[k+1] (and the last needs the first).
  const edges = cycle.map((from, k) => ({ from, to: cycle[(k + 1) % cycle.length]! }));
  const written = edges.filter((e) => ctx.normalized.origins[e.from]!.needs.get(steps[e.to]!.key)?.kind === 'written');
  // The entry that "closes" it: one that reaches forward to a later step (barriers only reach back).
  const closing = written.find((e) => e.to > e.from) ?? written.at(-1) ?? edges[0]!;
  const names = [...cycle, cycle[0]!].map((i) => steps[i]!.key).join(' → ');
  const { path, key } = needPath(ctx.normalized.origins[closing.from]!, steps[closing.to]!.key);
  errors.push(ctx.source.error(path, `The needs form a cycle: ${names} (each needs the next).`, { key }));
}

function checkConditions(ctx: CheckContext, errors: PipelineError[]): void {
  ctx.normalized.definition.steps.forEach((step, i) => {
    if (!step.if) return;
    const path = stepPath(ctx.normalized.origins[i]!, 'if');
    try {
      compileCondition(step.if);
    } catch (error) {
      if (!(error instanceof ConditionError)) throw error;
      const at = ctx.source.locateInString(path, error.column);
      errors.push({ ...at, path: `steps[${ctx.normalized.origins[i]!.item}].if`, message: `Condition: ${error.message}.` });
    }
  });
}

const TEMPLATE_START = /\$\{/g;
const REFERENCE_AT = /^\$\{\s*([A-Za-z0-9_.-]+)\s*\}/;
const RUN_FIELDS = ['id', 'number', 'branch', 'commit', 'message', 'trigger', 'event'];

/** Every step the given one waits for, directly or not (existing steps' needs included). */
function ancestorsOf(definition: PipelineDefinition, existing: CheckContext['existing'], key: string): Set<string> {
  const needsOf = new Map<string, readonly string[]>([...existing, ...definition.steps.map((s) => [s.key, s.needs] as const)]);
  const seen = new Set<string>();
  const todo = [...(needsOf.get(key) ?? [])];
  while (todo.length > 0) {
    const next = todo.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    todo.push(...(needsOf.get(next) ?? []));
  }
  return seen;
}

function checkTemplates(ctx: CheckContext, errors: PipelineError[]): void {
  const { definition, origins } = ctx.normalized;
  definition.steps.forEach((step, i) => {
    if (step.type !== 'deploy') return;
    const path = stepPath(origins[i]!, 'deploy', 'version');
    const problem = (index: number, message: string) =>
      errors.push({ ...ctx.source.locateInString(path, index), path: formatPath(path), message: `${message}.` });
    let ancestors: Set<string> | undefined;
    for (const match of step.version.matchAll(TEMPLATE_START)) {
      const reference = REFERENCE_AT.exec(step.version.slice(match.index));
      if (!reference) {
        problem(match.index, '"${" starts no reference: write ${run.<field>} or ${steps.<key>.outputs.<name>}');
        continue;
      }
      const parts = reference[1]!.split('.');
      if (parts[0] === 'run' && parts.length === 2 && RUN_FIELDS.includes(parts[1]!)) continue;
      if (parts[0] === 'steps' && parts.length === 4 && parts[2] === 'outputs') {
        ancestors ??= ancestorsOf(definition, ctx.existing, step.key);
        if (!ancestors.has(parts[1]!)) {
          problem(match.index, `\${${reference[1]}} reads step "${parts[1]}", which is not among the steps "${step.key}" needs`);
        }
        continue;
      }
      problem(
        match.index,
        `\${${reference[1]}} names nothing: use run.${RUN_FIELDS.join('|')} or steps.<key>.outputs.<name> (keys with "." cannot be read)`,
      );
    }
  });
}

function checkFields(ctx: CheckContext, errors: PipelineError[]): void {
  const { raw } = ctx;
  raw.steps.forEach((step, item) => {
    if (step === 'wait') return;
    const at = (message: string, ...rest: (string | number)[]) =>
      errors.push(ctx.source.error(['steps', item, ...rest], message));
    const both = (a: keyof typeof step, b: keyof typeof step) => {
      if (step[a] !== undefined && step[b] !== undefined) at(`Give either ${a} or ${b}, not both.`, b);
    };
    both('command', 'commands');
    both('timeout_in_minutes', 'timeout_seconds');
    both('expires_in_minutes', 'expires_in_seconds');
    const seen = new Set<string>();
    (step.fields ?? []).forEach((field, f) => {
      if (seen.has(field.key)) at(`Two fields have the key "${field.key}".`, 'fields', f, 'key');
      seen.add(field.key);
      const type = field.type ?? 'text';
      if (type === 'select' && !field.options) at(`Field "${field.key}" is a select: give it options.`, 'fields', f);
      if (type !== 'select' && field.options)
        at(`Only select fields have options; "${field.key}" is ${type}.`, 'fields', f, 'options');
      if (field.default === undefined) return;
      if (type === 'boolean' ? typeof field.default !== 'boolean' : typeof field.default !== 'string') {
        at(`The default of a ${type} field must be ${type === 'boolean' ? 'true or false' : 'text'}.`, 'fields', f, 'default');
      } else if (type === 'select' && field.options && !field.options.includes(field.default as string)) {
        at(`The default "${String(field.default)}" is not one of the options.`, 'fields', f, 'default');
      }
    });
  });
}

export function checkPipeline(ctx: CheckContext): PipelineError[] {
  const errors: PipelineError[] = [];
  if (ctx.normalized.definition.steps.length === 0) {
    errors.push(ctx.source.error(['steps'], 'The pipeline has no steps, only waits.'));
  }
  checkFields(ctx, errors);
  // With duplicate keys or unknown needs the graph is not the one the author meant: the
  // later checks of it would only add noise.
  const before = errors.length;
  checkKeys(ctx, errors);
  if (errors.length === before) checkNeeds(ctx, errors);
  if (errors.length === before) checkCycles(ctx, errors);
  checkConditions(ctx, errors);
  checkTemplates(ctx, errors);
  return errors;
}
