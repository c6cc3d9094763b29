// A job's commands become one script run by one shell, so they share a working directory
// and variables the way a person typing them would, and the first failing command stops
// the job (`set -e`; with bash also `pipefail`, so `make | tee log` fails when make does).
import { access, constants } from 'node:fs/promises';

export interface Shell {
  path: string;
  bash: boolean;
}

const BASH_CANDIDATES = ['/bin/bash', '/usr/bin/bash', '/usr/local/bin/bash'];

/** bash when the machine has it, else the POSIX /bin/sh. */
export async function findShell(): Promise<Shell> {
  for (const candidate of BASH_CANDIDATES) {
    try {
      await access(candidate, constants.X_OK);
      return { path: candidate, bash: true };
    } catch {}
  }
  return { path: '/bin/sh', bash: false };
}

/** Single-quotes `text` for any POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Each command is echoed (`$ command`, as CI logs do) before it runs, so a log shows which
 * one failed. Multi-line commands are echoed and run as written.
 */
export function buildScript(commands: readonly string[], shell: Shell, header: string): string {
  const lines = [`# ${header.replace(/\n/g, ' ')}`, shell.bash ? 'set -eo pipefail' : 'set -e'];
  for (const command of commands) {
    lines.push(`printf '%s\\n' ${shellQuote(`$ ${command}`)}`, command);
  }
  return `${lines.join('\n')}\n`;
}
