// `cairn pipeline …`:
//   validate <file…>   check pipeline files offline (no server): `file:line:column: message`
//                      per problem, exit 1 if any; otherwise one summary line per file
//   upload [file]      inside a job: add the file's steps to this run (default .cairn/pipeline.yml)
//   schema             print the JSON Schema of the format, for editors
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ApiError } from '../client/api-request.js';
import { parsePipeline, type PipelineError } from '../features/pipelines/pipeline.parse.js';
import { PIPELINE_SCHEMA } from '../features/pipelines/pipeline.schema.js';
import { jobContext, processIo, runStepCommand, UsageError, type Io, type JobContext } from './step.js';

export const DEFAULT_PIPELINE_FILE = '.cairn/pipeline.yml';

async function readSource(io: Io, file: string): Promise<string> {
  if (file === '-') return io.stdin();
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

const located = (file: string, errors: readonly PipelineError[]) =>
  errors.map((e) => `${file}:${e.line}:${e.column}: ${e.message}\n`).join('');

/** Exit status: 0 all valid, 1 a file has problems, 2 a file could not be read. */
export async function validateFiles(io: Io, files: string[]): Promise<number> {
  let status = 0;
  for (const file of files) {
    let source: string;
    try {
      source = await readSource(io, file);
    } catch (error) {
      io.stderr(`cairn pipeline validate: ${(error as Error).message}\n`);
      status = 2;
      continue;
    }
    const result = parsePipeline(source);
    if (result.ok) {
      const { steps } = result.definition;
      const kinds = ['command', 'block', 'deploy']
        .map((kind) => [kind, steps.filter((s) => s.type === kind).length] as const)
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${n} ${kind}`);
      io.stdout(`${file}: valid, ${steps.length} step${steps.length === 1 ? '' : 's'} (${kinds.join(', ')})\n`);
    } else {
      io.stdout(located(file, result.errors));
      status = Math.max(status, 1);
    }
  }
  return status;
}

export async function uploadFile(ctx: JobContext, io: Io, file: string): Promise<void> {
  if (!ctx.runId) throw new UsageError('This job is not a step of a run (CAIRN_RUN_ID is not set).');
  const source = await readSource(io, file);
  try {
    const run = await ctx.api.uploadPipeline(ctx.runId, source);
    io.stderr(`uploaded ${file} into run #${run.number}: it has ${run.steps.length} steps now\n`);
  } catch (error) {
    const errors = error instanceof ApiError ? (error.body.errors as PipelineError[] | undefined) : undefined;
    if (error instanceof ApiError && error.code === 'invalid_pipeline' && Array.isArray(errors)) {
      io.stdout(located(file, errors));
      throw new ApiError(error.status, error.code, `${file} is not a valid pipeline`, undefined, error.body);
    }
    throw error;
  }
}

export function registerPipelineCommands(program: Command, io: Io = processIo): void {
  const pipeline = program.command('pipeline').description('Pipeline files: validate them, upload steps from a running job');
  pipeline
    .command('validate <files...>')
    .description('Check pipeline files offline; prints file:line:column: message per problem (exit 1), or a summary')
    .action(async (files: string[]) => {
      process.exitCode = await validateFiles(io, files);
    });
  pipeline
    .command('upload [file]')
    .description(`Inside a job: add the file's steps to this run (default ${DEFAULT_PIPELINE_FILE}; "-" reads stdin)`)
    .action(async (file: string | undefined) => {
      process.exitCode = await runStepCommand(
        io,
        () => uploadFile(jobContext(), io, file ?? DEFAULT_PIPELINE_FILE),
        'cairn pipeline upload',
      );
    });
  pipeline
    .command('schema')
    .description('Print the JSON Schema (draft 2020-12) of the pipeline format, for editors')
    .action(() => {
      io.stdout(`${JSON.stringify(PIPELINE_SCHEMA, null, 2)}\n`);
    });
}
