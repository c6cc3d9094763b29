// `cairn agent`: the program that runs jobs on your machines (src/agent/README.md).
// The only place the agent's settings are read from flags and the environment.
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { runAgent } from '../agent/agent.js';
import { VERSION } from '../platform/version.js';

const TAG_KEY = /^[A-Za-z0-9._:/-]{1,64}$/;

function integer(min: number, max: number) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** `--tags os=linux,arch=x64`, repeatable; later values win. */
export function parseTags(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const tags = { ...previous };
  for (const pair of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const at = pair.indexOf('=');
    const key = at < 0 ? pair : pair.slice(0, at).trim();
    const tagValue = at < 0 ? 'true' : pair.slice(at + 1).trim();
    if (!TAG_KEY.test(key)) throw new InvalidArgumentError(`tag "${key}": keys are 1–64 of A–Z a–z 0–9 . _ : / -`);
    if (tagValue.length > 256) throw new InvalidArgumentError(`tag "${key}": values are at most 256 characters`);
    tags[key] = tagValue;
  }
  return tags;
}

function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError('must start with http:// or https://');
  return url.origin + url.pathname.replace(/\/+$/, '');
}

interface CliOptions {
  url?: string;
  token?: string;
  pool?: string;
  name: string;
  tags: Record<string, string>;
  concurrency: number;
  workDir: string;
  envFile?: string;
  json?: boolean;
  killGrace: number;
  keepJobDirs?: boolean;
  claimWait: number;
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('Run jobs from a Cairn server on this machine: register, claim, run, stream logs, upload artifacts, report')
    .addOption(
      new Option('--url <url>', 'the Cairn server, e.g. https://cairn.example.com').env('CAIRN_URL').argParser(serverUrl),
    )
    .addOption(
      new Option('--token <token>', 'pool registration token (cairn_reg_…); not needed to resume a registered agent').env(
        'CAIRN_AGENT_TOKEN',
      ),
    )
    .addOption(new Option('--pool <name>', 'the pool the token must belong to (checked at registration)').env('CAIRN_AGENT_POOL'))
    .addOption(new Option('--name <name>', 'agent name').env('CAIRN_AGENT_NAME').default(os.hostname(), 'the host name'))
    .addOption(
      new Option('--tags <k=v,…>', 'tags jobs can require, e.g. os=linux,arch=x64 (repeatable)')
        .env('CAIRN_AGENT_TAGS')
        .argParser(parseTags)
        .default({}),
    )
    .addOption(
      new Option('--concurrency <n>', 'jobs run at once').env('CAIRN_AGENT_CONCURRENCY').argParser(integer(1, 256)).default(1),
    )
    .addOption(
      new Option('--work-dir <dir>', 'identity, outbox and job directories')
        .env('CAIRN_AGENT_WORK_DIR')
        .default('./.cairn-agent'),
    )
    .addOption(
      new Option('--env-file <file>', 'dotenv file of secrets for jobs: never sent to the server, redacted from logs').env(
        'CAIRN_AGENT_ENV_FILE',
      ),
    )
    .option('--json', 'print one JSON object per line instead of human-readable lines')
    .addOption(
      new Option('--kill-grace <seconds>', 'after SIGTERM, seconds a canceled or timed-out job gets before SIGKILL')
        .argParser(integer(1, 300))
        .default(10),
    )
    .option('--keep-job-dirs', 'keep each job’s directory after it ends (for debugging)')
    .addOption(
      new Option('--claim-wait <seconds>', 'how long one claim waits at the server for work')
        .argParser(integer(1, 60))
        .default(25)
        .hideHelp(),
    )
    .addHelpText(
      'after',
      '\nExample: cairn agent --url http://127.0.0.1:3000 --token "$REG_TOKEN" --pool linux --tags os=linux --concurrency 2 --env-file ./secrets.env\n' +
        'SIGTERM or Ctrl-C drains (finishes running jobs, takes no new ones); a second one stops the jobs now.\n' +
        'Exit status: 0 after a drain, 1 when stopped, 2 for a setup problem (bad token, wrong pool, unreadable --env-file).\n',
    )
    .action(async (cli: CliOptions) => {
      if (!cli.url) {
        process.stderr.write('cairn agent: --url (or CAIRN_URL) is required\n');
        process.exit(2);
      }
      const code = await runAgent({
        url: cli.url,
        registrationToken: cli.token,
        pool: cli.pool,
        name: cli.name,
        tags: cli.tags,
        concurrency: cli.concurrency,
        workDir: path.resolve(cli.workDir),
        envFile: cli.envFile ? path.resolve(cli.envFile) : undefined,
        json: cli.json === true,
        killGraceSeconds: cli.killGrace,
        keepJobDirs: cli.keepJobDirs === true,
        claimWaitSeconds: cli.claimWait,
        version: VERSION,
        agentEnv: process.env,
      });
      // Exit now: idle keep-alive sockets or a finished job's timers must not hold the process.
      process.exit(code);
    });
}
