// Pipelines in tests: the definition of a valid YAML file, or the errors of an invalid
// one, failing loudly when the other came back; and normalized steps to build runs from.
import type { BlockStep, CommandStep, PipelineDefinition, StepDefinition } from '../../src/features/pipelines/pipeline.model.js';
import { parsePipeline, type PipelineError } from '../../src/features/pipelines/pipeline.parse.js';

export function ok(source: string, options?: Parameters<typeof parsePipeline>[1]): PipelineDefinition {
  const result = parsePipeline(source, options);
  if (!result.ok) throw new Error(`expected a valid pipeline, got:\n${JSON.stringify(result.errors, null, 2)}`);
  return result.definition;
}

export function errors(source: string, options?: Parameters<typeof parsePipeline>[1]): PipelineError[] {
  const result = parsePipeline(source, options);
  if (result.ok) throw new Error('expected errors, the pipeline was valid');
  return result.errors;
}

/** Lines joined with \n, so tests can count lines and columns by eye. */
export const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

/** A command step as the engine keeps it (normalized), on the pool `linux`. */
export function commandStep(key: string, extra: Partial<CommandStep> = {}): StepDefinition {
  return {
    type: 'command',
    key,
    label: key,
    needs: [],
    commands: [`echo ${key}`],
    pool: 'linux',
    tags: {},
    env: {},
    artifacts: [],
    ...extra,
  };
}

/** A block step anyone in the organization may answer, failing if it expires. */
export function blockStep(key: string, extra: Partial<BlockStep> = {}): StepDefinition {
  return {
    type: 'block',
    key,
    label: key,
    needs: [],
    prompt: 'Go?',
    fields: [],
    allowed_roles: [],
    allowed_users: [],
    on_expiry: 'fail',
    ...extra,
  };
}
