// `cairn step …`: helpers a job's commands run to hand things to later steps. They read
// what the agent put in the job's environment: CAIRN_URL, CAIRN_JOB_TOKEN, CAIRN_JOB_ID,
// and (from the run) CAIRN_RUN_ID and CAIRN_STEP_KEY.
//   cairn step output set <key> <value|->     publish an output of this step
//   cairn step output get <key> [--step s]    print an output of this run's steps
//   cairn step artifact upload <path…>        upload files as this job's artifacts
//   cairn step artifact download <path> [--step s] [--to dir]
import path from 'node:path';
import type { Command } from 'commander';
import { ApiError, NetworkError } from '../client/api-request.js';
import { stepApi, type StepApi } from '../client/step-api.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  stdin(): Promise<string>;
}

export const processIo: Io = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  async stdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

export class UsageError extends Error {}

export interface JobContext {
  api: StepApi;
  jobId: string;
  runId: string | undefined;
  stepKey: string | undefined;
}

/** The job this shell belongs to, from the environment the agent gave it. */
export function jobContext(env: Record<string, string | undefined> = process.env): JobContext {
  const url = env.CAIRN_URL;
  const token = env.CAIRN_JOB_TOKEN;
  if (!url || !token) {
    throw new UsageError('CAIRN_URL and CAIRN_JOB_TOKEN are not set: run this inside a job started by `cairn agent`.');
  }
  const jobId = env.CAIRN_JOB_ID ?? /^cairn_job_([0-9a-f-]{36})\./.exec(token)?.[1];
  if (!jobId) throw new UsageError('CAIRN_JOB_ID is not set and CAIRN_JOB_TOKEN does not name a job.');
  return {
    api: stepApi({ baseUrl: url, token, userAgent: 'cairn-step' }),
    jobId,
    runId: env.CAIRN_RUN_ID || undefined,
    stepKey: env.CAIRN_STEP_KEY || undefined,
  };
}

function requireRun(ctx: JobContext): string {
  if (!ctx.runId) throw new UsageError('This job is not a step of a run (CAIRN_RUN_ID is not set).');
  return ctx.runId;
}

/** Runs one command body; answers the exit status (0 ok, 1 failed, 2 misused). */
export async function runStepCommand(io: Io, body: () => Promise<void>, name: string): Promise<number> {
  try {
    await body();
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`${name}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof ApiError || error instanceof NetworkError) {
      io.stderr(`${name}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

export async function outputSet(ctx: JobContext, io: Io, key: string, value: string): Promise<void> {
  const text = value === '-' ? await io.stdin() : value;
  await ctx.api.setOutput(ctx.jobId, key, text);
}

export async function outputGet(ctx: JobContext, io: Io, key: string, step: string | undefined): Promise<void> {
  const outputs = (await ctx.api.outputs(requireRun(ctx))).filter((o) => o.key === key && (!step || o.step_key === step));
  if (outputs.length === 0)
    throw new ApiError(404, 'not_found', `No step${step ? ` "${step}"` : ''} published "${key}".`, undefined, {});
  // Without --step: this step's own value, else the one step that has it.
  const own = outputs.find((o) => o.step_key === ctx.stepKey);
  if (!step && !own && outputs.length > 1) {
    throw new UsageError(`Steps ${outputs.map((o) => o.step_key).join(', ')} each published "${key}": say which with --step.`);
  }
  io.stdout((own ?? outputs[0]!).value);
}

/** The artifact path of a local file: relative to the job's directory, `/`-separated. */
function artifactPathOf(file: string): string {
  const relative = path.relative(process.cwd(), path.resolve(file));
  if (relative.startsWith('..') || path.isAbsolute(relative)) return path.basename(file);
  return relative.split(path.sep).join('/');
}

export async function artifactUpload(ctx: JobContext, io: Io, files: string[]): Promise<void> {
  for (const file of files) {
    const artifactPath = artifactPathOf(file);
    const done = await ctx.api.uploadArtifact(ctx.jobId, artifactPath, file);
    io.stderr(`uploaded ${artifactPath} (${done.size} bytes, sha256 ${done.sha256.slice(0, 12)}…)\n`);
  }
}

export async function artifactDownload(
  ctx: JobContext,
  io: Io,
  artifactPath: string,
  opts: { step?: string; to?: string },
): Promise<void> {
  const runId = requireRun(ctx);
  // A path ending in / names a directory: every file under it.
  const directory = artifactPath.endsWith('/');
  const found = await ctx.api.artifacts(
    runId,
    directory ? { step: opts.step, prefix: artifactPath } : { step: opts.step, path: artifactPath },
  );
  const steps = [...new Set(found.map((a) => a.step_key))];
  if (found.length === 0)
    throw new ApiError(
      404,
      'not_found',
      `No step${opts.step ? ` "${opts.step}"` : ''} uploaded "${artifactPath}".`,
      undefined,
      {},
    );
  if (steps.length > 1) throw new UsageError(`Steps ${steps.join(', ')} each uploaded "${artifactPath}": say which with --step.`);
  const root = path.resolve(opts.to ?? '.');
  for (const artifact of found) {
    // Server paths are relative and normalized; checked again so nothing lands outside --to.
    const target = path.resolve(root, ...artifact.path.split('/'));
    if (!target.startsWith(root + path.sep)) throw new UsageError(`refusing to write "${artifact.path}" outside ${root}`);
    await ctx.api.downloadArtifact(runId, artifact.step_key, artifact.path, target);
    io.stderr(`downloaded ${artifact.path} from step ${artifact.step_key} (${artifact.size} bytes)\n`);
  }
}

export function registerStepCommands(program: Command, io: Io = processIo): void {
  const step = program
    .command('step')
    .description("Inside a job: hand outputs and files to later steps (uses the job's CAIRN_JOB_TOKEN)");
  const run = (name: string, body: (ctx: JobContext) => Promise<void>) => async () => {
    process.exitCode = await runStepCommand(io, () => body(jobContext()), name);
  };

  const output = step.command('output').description('Key/value outputs of steps (the run’s context store)');
  output
    .command('set <key> <value>')
    .description('Publish an output of this step ("-" reads the value from stdin); later steps get CAIRN_OUTPUT_<STEP>_<KEY>')
    .action((key: string, value: string) => run('cairn step output set', (ctx) => outputSet(ctx, io, key, value))());
  output
    .command('get <key>')
    .description('Print an output of this run (this step’s own, or the one step that published it)')
    .option('--step <key>', 'the step that published it')
    .action((key: string, opts: { step?: string }) =>
      run('cairn step output get', (ctx) => outputGet(ctx, io, key, opts.step))(),
    );

  const artifact = step.command('artifact').description('Files of this run’s steps');
  artifact
    .command('upload <paths...>')
    .description('Upload files as artifacts of this job (named by their path relative to the job directory)')
    .action((paths: string[]) => run('cairn step artifact upload', (ctx) => artifactUpload(ctx, io, paths))());
  artifact
    .command('download <path>')
    .description('Download an artifact of an earlier step of this run (a path ending in / downloads a directory)')
    .option('--step <key>', 'the step that uploaded it (needed when several did)')
    .option('--to <dir>', 'where to write it (default: the current directory), keeping its path')
    .action((artifactPath: string, opts: { step?: string; to?: string }) =>
      run('cairn step artifact download', (ctx) => artifactDownload(ctx, io, artifactPath, opts))(),
    );
}
