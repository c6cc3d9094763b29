// `${…}` templates in step fields (a deploy step's version, for one): the run's context
// and the outputs earlier steps handed on. Unknown references are errors, never silently
// empty, so a typo cannot deploy the wrong version.
import type { RunContext } from './pipeline.model.js';

const REFERENCE = /\$\{\s*([A-Za-z0-9_.-]+)\s*\}/g;

export interface TemplateScope {
  run: RunContext & { number: number; id: string };
  /** outputs[stepKey][name] */
  outputs: Record<string, Record<string, string>>;
}

export class TemplateError extends Error {
  constructor(readonly reference: string) {
    super(`\${${reference}} does not name anything: use run.branch, run.commit, run.number or steps.<key>.outputs.<name>`);
    this.name = 'TemplateError';
  }
}

export function renderTemplate(template: string, scope: TemplateScope): string {
  return template.replace(REFERENCE, (_whole, reference: string) => {
    const parts = reference.split('.');
    if (parts[0] === 'run' && parts.length === 2) {
      const value = (scope.run as unknown as Record<string, unknown>)[parts[1]!];
      // Only scalar run fields (branch, commit, number) can be spliced into a string.
      if (typeof value === 'string' || typeof value === 'number') return String(value);
    }
    if (parts[0] === 'steps' && parts.length === 4 && parts[2] === 'outputs') {
      const value = scope.outputs[parts[1]!]?.[parts[3]!];
      if (value !== undefined) return value;
    }
    throw new TemplateError(reference);
  });
}

/** The step keys a template reads outputs from (the parser checks they are among `needs`). */
export function referencedSteps(template: string): string[] {
  return [...template.matchAll(REFERENCE)]
    .map((m) => m[1]!.split('.'))
    .filter((parts) => parts[0] === 'steps' && parts.length === 4)
    .map((parts) => parts[1]!);
}
