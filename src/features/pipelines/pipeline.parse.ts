// parsePipeline: YAML text → PipelineDefinition, or every problem found, each with the
// line and column to fix. Three passes, each only on what the previous one accepted:
// YAML (syntax, duplicate keys, alias bombs), the published JSON Schema (shapes, types,
// unknown fields), then the checks a schema cannot express (pipeline.checks.ts).
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { checkPipeline } from './pipeline.checks.js';
import type { PipelineDefinition } from './pipeline.model.js';
import { normalize, type RawPipeline } from './pipeline.normalize.js';
import { PIPELINE_SCHEMA } from './pipeline.schema.js';
import { formatPath, loadYaml, MAX_ERRORS, type Path, type PipelineError, type YamlSource } from './pipeline.yaml.js';

export type { PipelineError } from './pipeline.yaml.js';

export type ParseResult = { ok: true; definition: PipelineDefinition } | { ok: false; errors: PipelineError[] };

export interface ParseOptions {
  /** Steps already in the run a dynamic upload goes into (key → its needs): `needs` may name them. */
  existingSteps?: Readonly<Record<string, readonly string[]>>;
  /** Needs given to steps that would otherwise need nothing (the uploading step, for a dynamic upload). */
  rootNeeds?: readonly string[];
}

let validator: ValidateFunction | undefined;
function validate(value: unknown): ErrorObject[] {
  validator ??= new Ajv2020({ allErrors: true, verbose: true, strict: false, allowUnionTypes: true }).compile(PIPELINE_SCHEMA);
  return validator(value) ? [] : (validator.errors ?? []);
}

export function parsePipeline(text: string, options: ParseOptions = {}): ParseResult {
  const loaded = loadYaml(text);
  if (!loaded.ok) return loaded;
  const schemaErrors = validate(loaded.value);
  if (schemaErrors.length > 0) return { ok: false, errors: finish(describeSchemaErrors(loaded.source, schemaErrors)) };

  const raw = loaded.value as RawPipeline;
  const normalized = normalize(raw);
  const existing = new Map(Object.entries(options.existingSteps ?? {}));
  if (options.rootNeeds?.length) {
    for (const step of normalized.definition.steps) if (step.needs.length === 0) step.needs = [...options.rootNeeds];
  }
  const errors = checkPipeline({ source: loaded.source, raw, normalized, existing });
  return errors.length > 0 ? { ok: false, errors: finish(errors) } : { ok: true, definition: normalized.definition };
}

function finish(errors: PipelineError[]): PipelineError[] {
  const seen = new Set<string>();
  return errors
    .filter((e) => {
      const id = `${e.line}:${e.column}:${e.message}`;
      return !seen.has(id) && seen.add(id);
    })
    .sort((a, b) => a.line - b.line || a.column - b.column)
    .slice(0, MAX_ERRORS);
}

const KINDS = ['command', 'commands', 'block', 'deploy', 'wait'];

// Common mistakes, mostly other CI systems' spellings.
const HINTS: Record<string, string> = {
  depends_on: 'needs',
  id: 'key',
  name: 'label',
  agent: 'agents',
  timeout: 'timeout_in_minutes',
  soft_fail: 'allow_failure',
  artifacts: 'artifact_paths',
  script: 'commands',
  run: 'command',
  branches: 'if',
  environment: 'env',
  variables: 'env',
  prompt_text: 'prompt',
};

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

function suggestion(name: string, allowed: readonly string[]): string {
  // Another system's spelling ("depends_on"), a near miss of a field ("comand"), or a near
  // miss of another system's spelling ("timout").
  const hinted =
    HINTS[name] ??
    allowed.find((a) => distance(a, name) <= 2) ??
    HINTS[Object.keys(HINTS).find((h) => distance(h, name) <= 1) ?? ''];
  return hinted && allowed.includes(hinted) ? ` Did you mean "${hinted}"?` : '';
}

const PATTERNS: Record<string, string> = {
  '^[A-Za-z0-9_.:-]{1,100}$': 'a step key: 1–100 of A–Z a–z 0–9 _ . : -',
  '^[a-z0-9][a-z0-9._:-]{0,62}$': 'a pool name: lower-case letters, digits, . _ : - (up to 63)',
  '^[A-Za-z0-9._:/-]{1,64}$': 'a tag name: 1–64 of A–Z a–z 0–9 . _ : / -',
  '^[A-Za-z_][A-Za-z0-9_]{0,127}$': 'an environment variable name: a letter or _, then letters, digits, _',
  '^[A-Za-z0-9_-]{1,100}$': 'a name of 1–100 of A–Z a–z 0–9 _ -',
  '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$': 'a name: a letter or digit, then letters, digits, _ . - (up to 100)',
  '^[A-Za-z0-9_.:/-]{1,200}$': 'a group name: 1–200 of A–Z a–z 0–9 _ . : / -',
  '^any$': '"any" (or a list of exit statuses)',
  '^[a-z0-9][a-z0-9_-]{0,62}$': 'an environment name: lower-case letters, digits, _ - (up to 63)',
  '^[A-Za-z][A-Za-z0-9_]{0,63}$': 'a field key: a letter, then letters, digits, _ (up to 64)',
  '^[^\\u0000-\\u001f]*$': 'text without control characters',
};

const TYPE_NAMES: Record<string, string> = {
  string: 'text',
  array: 'a list',
  object: 'a mapping',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  null: 'empty',
};

function typeMessage(expected: string | string[]): string {
  const names = [expected].flat().map((t) => TYPE_NAMES[t] ?? t);
  return `must be ${names.join(' or ')}`;
}

function toPath(instancePath: string): (string | number)[] {
  if (!instancePath) return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

function describeSchemaErrors(source: YamlSource, errors: ErrorObject[]): PipelineError[] {
  const out: PipelineError[] = [];
  const at = (path: Path, message: string, key = false) => out.push(source.error(path, message, { key }));
  // A step missing its kind shows up as anyOf over `command` / `commands`: say it once.
  const kindless = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const misspeltKind = new Set(
    errors
      .filter((e) => e.keyword === 'additionalProperties')
      .filter((e) => KINDS.some((k) => distance(String((e.params as { additionalProperty: string }).additionalProperty), k) <= 2))
      .map((e) => e.instancePath),
  );
  // A wrong type is reported by the step schema and by the branch it falls into: once is enough.
  const typed = new Set<string>();
  for (const e of errors) {
    const path = toPath(e.instancePath);
    const field = formatPath(path) || 'the pipeline';
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'if':
      case 'propertyNames':
        break; // wrappers: the errors inside them say what is wrong
      case 'anyOf':
        // Unless a misspelled kind ("comand") is reported there already, with its correction.
        if (!misspeltKind.has(e.instancePath)) at(path, 'A step needs one of command, commands, block, deploy or wait.');
        break;
      case 'required': {
        if (kindless.has(e.instancePath)) break;
        at(path, `${field} needs the field "${String(params.missingProperty)}".`);
        break;
      }
      case 'additionalProperties': {
        const name = String(params.additionalProperty);
        const schema = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
        const allowed = Object.keys(schema?.properties ?? {});
        at([...path, name], `"${name}" is not a field here.${suggestion(name, allowed)}`, true);
        break;
      }
      case 'type':
        if (!typed.has(e.instancePath)) at(path, `${field} ${typeMessage(params.type as string | string[])}.`);
        typed.add(e.instancePath);
        break;
      case 'const':
        at(path, 'A step written as plain text must be `wait`; other steps are mappings (command:, block:, deploy:).');
        break;
      case 'enum':
        at(path, `${field} must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}.`);
        break;
      case 'pattern': {
        const what = PATTERNS[String(params.pattern)] ?? `text matching ${String(params.pattern)}`;
        if (e.propertyName !== undefined) {
          at([...path, e.propertyName], `"${e.propertyName}" is not valid as ${what}.`, true);
        } else {
          at(path, `${field} must be ${what}.`);
        }
        break;
      }
      case 'dependentRequired':
        at(path, `${field}: "${String(params.property)}" needs "${String(params.missingProperty)}" too.`);
        break;
      case 'uniqueItems':
        at(
          [...path, Number(params.i)],
          `${field} lists the same value twice (items ${String(params.j)} and ${String(params.i)}).`,
        );
        break;
      default:
        at(path, `${field} ${e.message ?? 'is not valid'}.`);
    }
  }
  return out;
}
