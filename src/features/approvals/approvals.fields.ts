// The rules of a question and its answer, free of the database: which roles a list of
// roles means, whether input fields are well-formed, and whether an answer fills them in.
import { ROLES, roleAtLeast, type Role } from '../../platform/auth.js';
import { BadRequestError, ValidationError, type FieldError } from '../../platform/errors.js';
import type { BlockField } from '../pipelines/pipeline.model.js';
import type { AnswerValue } from './approvals.queries.js';

/** Roles that can answer at all (hold `approvals:respond`). */
const ANSWERING_ROLES: readonly Role[] = ROLES.filter((r) => r !== 'viewer');

/**
 * A role in "who may answer" means that role or any above it (an owner may answer what
 * admins may), and never a viewer, who cannot answer. Stored expanded, so the streams'
 * "waiting for me" filter is a plain membership test. No roles and no users: any member.
 */
export function expandRoles(roles: readonly Role[], hasUsers: boolean): Role[] {
  if (roles.length === 0) return hasUsers ? [] : [...ANSWERING_ROLES];
  return ANSWERING_ROLES.filter((candidate) => roles.some((r) => roleAtLeast(candidate, r)));
}

export const MAX_TEXT_ANSWER = 10_000;

/** Refuses fields an answer could never fill in correctly (the asker's mistake, said at once). */
export function checkFieldDefinitions(fields: readonly BlockField[]): void {
  const seen = new Set<string>();
  for (const f of fields) {
    if (seen.has(f.key)) throw new BadRequestError(`Two fields are named "${f.key}".`, 'duplicate_field');
    seen.add(f.key);
    if (f.type === 'select' && !f.options?.length) {
      throw new BadRequestError(`Field "${f.key}" is a select with no options.`, 'invalid_field');
    }
    if (f.default === undefined) continue;
    const ok =
      f.type === 'boolean'
        ? typeof f.default === 'boolean'
        : typeof f.default === 'string' && (f.type !== 'select' || f.options!.includes(f.default));
    if (!ok) throw new BadRequestError(`Field "${f.key}": its default does not fit its type or options.`, 'invalid_field');
  }
}

/**
 * The answer's input, checked against the fields, defaults filled in. A rejection need not
 * fill in required fields (nobody should have to justify a "no" in a form), but whatever
 * it does give must still fit.
 */
export function checkAnswer(
  fields: readonly BlockField[],
  input: Record<string, unknown> | undefined,
  opts: { requireRequired: boolean },
): Record<string, AnswerValue> {
  const errors: FieldError[] = [];
  const byKey = new Map(fields.map((f) => [f.key, f]));
  for (const key of Object.keys(input ?? {})) {
    if (!byKey.has(key)) errors.push({ field: `input.${key}`, message: 'is not a field of this approval' });
  }
  const values: Record<string, AnswerValue> = {};
  for (const f of fields) {
    const given = input?.[f.key];
    const value = given ?? f.default;
    if (value === undefined || value === '') {
      if (f.required && opts.requireRequired) errors.push({ field: `input.${f.key}`, message: 'is required' });
      continue;
    }
    const problem =
      f.type === 'boolean'
        ? typeof value !== 'boolean' && 'must be true or false'
        : typeof value !== 'string'
          ? 'must be text'
          : f.type === 'select' && !f.options!.includes(value)
            ? `must be one of: ${f.options!.join(', ')}`
            : value.length > MAX_TEXT_ANSWER && `must be at most ${MAX_TEXT_ANSWER} characters`;
    if (problem) errors.push({ field: `input.${f.key}`, message: problem });
    else values[f.key] = value as AnswerValue;
  }
  if (errors.length > 0) {
    throw new ValidationError(
      errors,
      `The answer does not fit the fields: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}.`,
    );
  }
  return values;
}

/** Outputs are text: booleans become "true" / "false". */
export function answerAsOutputs(values: Record<string, AnswerValue>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)]));
}
