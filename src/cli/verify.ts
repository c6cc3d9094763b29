// `cairn verify`: audit a Cairn ledger from outside, over HTTP or from an export file.
// Uses only the HTTP API and local files (see src/features/ledger/verifier/).
import os from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { verifyLog, type VerifyOptions, type VerifyOutcome } from '../features/ledger/verifier/verify-log.js';

export const DEFAULT_STATE_FILE = path.join(os.homedir(), '.cairn-verify.json');

interface CliOptions {
  url?: string;
  file?: string;
  publicKey?: string;
  trustServerKey?: boolean;
  origin?: string;
  token?: string;
  state: string | false;
  all?: boolean;
  sample?: string;
  json?: boolean;
}

/** The command's whole behaviour, minus process.exit: returns the exit code. */
export async function runVerify(
  opts: VerifyOptions & { json?: boolean },
  io: { stdout: (s: string) => void; stderr: (s: string) => void } = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
  },
): Promise<{ code: number; outcome: VerifyOutcome }> {
  const outcome = await verifyLog(opts, {
    progress: (m) => io.stderr(`cairn verify: ${m}\n`),
    warn: (m) => io.stderr(`cairn verify: WARNING: ${m}\n`),
  });
  if (outcome.problem === 'fork' || outcome.problem === 'rollback') {
    const bar = '!'.repeat(72);
    io.stderr(
      `${bar}\n${outcome.message}\nThe log has shown two different histories. Keep the state file and both checkpoints as evidence.\n${bar}\n`,
    );
  }
  if (opts.json) {
    io.stdout(`${JSON.stringify(outcome)}\n`);
  } else if (outcome.ok) {
    io.stdout(`OK: ${outcome.message}\n`);
  } else {
    const index = outcome.first_bad_index !== undefined ? `; first bad index: ${outcome.first_bad_index}` : '';
    io.stdout(`FAILED: ${outcome.message}${index}\n`);
  }
  return { code: outcome.ok ? 0 : 1, outcome };
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      "Verify a Cairn ledger: the checkpoint's signature, every leaf, proofs, and consistency with what you verified before",
    )
    .option('--url <url>', 'server to verify, e.g. http://127.0.0.1:3000')
    .option('--file <export.ndjson>', 'verify an export file (GET /api/v1/ledger/export) offline instead')
    .option(
      '--public-key <verifier-key>',
      "the instance's verifier key (GET /api/v1/ledger/public-key), obtained from a source you trust",
    )
    .option('--trust-server-key', 'use the key the server serves instead of --public-key (weak: prints a warning)')
    .option('--origin <origin>', 'expected origin line (default: <key name>/ledger)')
    .addOption(
      new Option('--token <token>', 'API token or access token with audit:read, to download and check every leaf').env(
        'CAIRN_TOKEN',
      ),
    )
    .addOption(
      new Option('--state <file>', 'where to remember the last verified checkpoint per log').default(
        DEFAULT_STATE_FILE,
        '~/.cairn-verify.json',
      ),
    )
    .option('--no-state', 'do not read or write a state file')
    .option('--all', 'check the inclusion proof of every leaf (one request per leaf)')
    .option('--sample <n>', 'inclusion proofs to check at random (default 16)')
    .option('--json', 'print the outcome as JSON')
    .addHelpText(
      'after',
      '\nExit status: 0 when everything verifies, 1 otherwise (including FORK DETECTED).\n' +
        'Example: cairn verify --url http://127.0.0.1:3000 --public-key "$(cat cairn.pub)" --token "$CAIRN_TOKEN"\n',
    )
    .action(async (cli: CliOptions) => {
      const sample = cli.sample === undefined ? undefined : Number(cli.sample);
      if (sample !== undefined && (!Number.isInteger(sample) || sample < 0)) {
        process.stderr.write('cairn verify: --sample must be a whole number\n');
        process.exit(1);
      }
      const { code } = await runVerify({
        url: cli.url,
        file: cli.file,
        publicKey: cli.publicKey,
        trustServerKey: cli.trustServerKey,
        origin: cli.origin,
        token: cli.token,
        statePath: cli.state === false ? null : cli.state,
        all: cli.all,
        sample,
        json: cli.json,
      });
      process.exitCode = code;
    });
}
