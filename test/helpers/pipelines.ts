// Parsing pipeline YAML in tests: the definition of a valid file, or the errors of an
// invalid one, failing loudly when the other came back.
import type { PipelineDefinition } from '../../src/features/pipelines/pipeline.model.js';
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
