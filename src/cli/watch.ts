// `cairn watch run <id>` / `cairn watch project <id>` / `cairn watch org`: follow a topic's
// events live, one line each (or raw JSON), through src/client's event stream.
import { Option, type Command } from 'commander';
import { ApiError, apiRequest } from '../client/api-request.js';
import { openEventStream, StreamClosedError, type StreamMessage } from '../client/event-stream.js';

export interface ServerOptions {
  url: string;
  token?: string;
}

/** --url and --token (CAIRN_URL, CAIRN_TOKEN), shared by the commands that talk to a server. */
export function addServerOptions(command: Command): Command {
  return command
    .addOption(new Option('--url <url>', 'the Cairn server').env('CAIRN_URL').default('http://127.0.0.1:3000'))
    .addOption(new Option('--token <token>', 'an access token or API token').env('CAIRN_TOKEN'));
}

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}
const processIo: Io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };

const FINAL_RUN_STATES = new Set(['passed', 'failed', 'canceled']);
const exitCodeOf = (state: unknown) => (state === 'passed' ? 0 : 1);

/** `08:30:01  job.completed           job=1a2b3c4d state=completed`: the scalar fields, ids shortened. */
export function describeEvent(event: StreamMessage): string {
  const fields: string[] = [];
  for (const [key, value] of Object.entries(event.data)) {
    if (key === 'org_id' || !['string', 'number', 'boolean'].includes(typeof value)) continue;
    let text = String(value);
    if (key.endsWith('_id')) text = text.slice(0, 8);
    else if (text.length > 60) text = `${text.slice(0, 57)}...`;
    fields.push(`${key.replace(/_id$/, '')}=${/\s/.test(text) ? JSON.stringify(text) : text}`);
  }
  const name = (event.data.project as { name?: unknown } | undefined)?.name;
  if (typeof name === 'string') fields.push(`name=${JSON.stringify(name)}`);
  return `${event.at.slice(11, 19)}  ${event.type.padEnd(24)}${fields.slice(0, 8).join(' ')}`.trimEnd();
}

export interface WatchOptions extends ServerOptions {
  topic: string;
  json?: boolean;
  /** Stop at this event; its answer becomes the exit code. */
  until?(event: StreamMessage): number | undefined;
  /** Once subscribed: an exit code when there is nothing to wait for (the run already finished). */
  settled?(): Promise<number | undefined>;
  signal?: AbortSignal;
}

/** Follows a topic until `until` says so (or the signal); returns the exit code. */
export async function runWatch(opts: WatchOptions, io: Io = processIo): Promise<number> {
  let code = 0;
  let checked = false;
  const stream = openEventStream(
    { baseUrl: opts.url, token: opts.token, userAgent: 'cairn-cli' },
    {
      topics: [opts.topic],
      signal: opts.signal,
      onEvent(event) {
        io.stdout(`${opts.json ? JSON.stringify(event) : describeEvent(event)}\n`);
        const exit = opts.until?.(event);
        if (exit !== undefined) {
          code = exit;
          stream.close();
        }
      },
      onResync(topic, reason) {
        io.stderr(`cairn watch: ${topic} may have missed events (${reason}); its current state is in the REST API\n`);
      },
      onRefused(topic, refusal, message) {
        io.stderr(`cairn watch: ${topic} refused (${refusal}): ${message}\n`);
        code = 2;
      },
      onSubscribed() {
        if (!opts.settled || checked) return;
        checked = true;
        opts.settled().then(
          (exit) => {
            if (exit === undefined) return;
            code = exit;
            stream.close();
          },
          () => {}, // nothing to learn: keep watching
        );
      },
      onReconnecting(reason, delayMs) {
        io.stderr(`cairn watch: connection ${reason}; reconnecting in ${Math.round(delayMs)} ms\n`);
      },
    },
  );
  try {
    await stream.done;
  } catch (error) {
    if (!(error instanceof StreamClosedError || error instanceof ApiError)) throw error;
    io.stderr(`cairn watch: ${error.message}\n`);
    return 2;
  }
  return code;
}

export function registerWatchCommands(program: Command): void {
  const watch = program.command('watch').description('Follow events live (WebSocket; reconnects and resumes by itself)');
  const onSignal = () => {
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    process.once('SIGTERM', () => controller.abort());
    return controller.signal;
  };
  addServerOptions(watch.command('run <id>'))
    .description("Follow a run's events until it finishes (exit 0 if it passed, 1 if not)")
    .option('--json', 'print each event as raw JSON')
    .action(async (id: string, cli: ServerOptions & { json?: boolean }) => {
      process.exitCode = await runWatch({
        ...cli,
        topic: `run:${id}`,
        signal: onSignal(),
        until: (e) => (e.type === 'run.finished' ? exitCodeOf(e.data.state) : undefined),
        // Subscribed first, then asked: a run that ended before the watch began has no event left to send.
        settled: async () => {
          const target = { baseUrl: cli.url, token: cli.token, userAgent: 'cairn-cli' };
          const run = (
            await apiRequest<{ state: string }>(target, { method: 'GET', path: `/api/v1/runs/${id}`, timeoutMs: 30_000 })
          ).body;
          if (!run || !FINAL_RUN_STATES.has(run.state)) return undefined;
          process.stderr.write(`cairn watch: run ${id} already ${run.state}\n`);
          return exitCodeOf(run.state);
        },
      });
    });
  addServerOptions(watch.command('project <id>'))
    .description("Follow a project's events (and its jobs' and runs') until interrupted")
    .option('--json', 'print each event as raw JSON')
    .action(async (id: string, cli: ServerOptions & { json?: boolean }) => {
      process.exitCode = await runWatch({ ...cli, topic: `project:${id}`, signal: onSignal() });
    });
  addServerOptions(watch.command('org'))
    .description("Follow your organization's events until interrupted")
    .option('--json', 'print each event as raw JSON')
    .action(async (cli: ServerOptions & { json?: boolean }) => {
      process.exitCode = await runWatch({ ...cli, topic: 'org', signal: onSignal() });
    });
}
