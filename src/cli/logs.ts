// `cairn logs <job> [-f]`: print a job's log; with -f, follow it live until the job ends
// (exit 0 when it completed, 1 when it ended otherwise).
import type { Command } from 'commander';
import { ApiError } from '../client/api-request.js';
import { StreamClosedError } from '../client/event-stream.js';
import { printJobLog } from '../client/job-log.js';
import { addServerOptions, type Io, type ServerOptions } from './watch.js';

export interface LogsOptions extends ServerOptions {
  job: string;
  follow?: boolean;
  attempt?: number;
  signal?: AbortSignal;
}

export async function runLogs(
  opts: LogsOptions,
  io: Io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) },
): Promise<number> {
  try {
    const { state } = await printJobLog({ baseUrl: opts.url, token: opts.token, userAgent: 'cairn-cli' }, opts.job, {
      follow: opts.follow ?? false,
      ...(opts.attempt !== undefined ? { attempt: opts.attempt } : {}),
      write: (text) => io.stdout(text),
      onAttempt: (attempt) => io.stderr(`--- attempt ${attempt} ---\n`),
      signal: opts.signal,
    });
    if (state !== null) io.stderr(`--- job ${state} ---\n`);
    return state === null || state === 'completed' ? 0 : 1;
  } catch (error) {
    if (!(error instanceof ApiError || error instanceof StreamClosedError)) throw error;
    io.stderr(`cairn logs: ${error.message}\n`);
    return 2;
  }
}

export function registerLogsCommand(program: Command): void {
  addServerOptions(program.command('logs <job>'))
    .description("Print a job's log; -f follows it live until the job ends (exit 0 if it completed)")
    .option('-f, --follow', 'keep printing new output until the job ends')
    .option('--attempt <n>', 'an earlier attempt (default: the latest)')
    .action(async (job: string, cli: ServerOptions & { follow?: boolean; attempt?: string }) => {
      const attempt = cli.attempt === undefined ? undefined : Number(cli.attempt);
      if (attempt !== undefined && (!Number.isInteger(attempt) || attempt < 1)) {
        process.stderr.write('cairn logs: --attempt must be a whole number from 1\n');
        process.exitCode = 2;
        return;
      }
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.exitCode = await runLogs({ ...cli, job, attempt, signal: controller.signal });
    });
}
