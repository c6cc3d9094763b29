// Agent-local secrets: the `--env-file` (dotenv format) is read on the agent's machine and
// goes into job environments only — never to the server, never to a log. Every value is a
// secret: each one (and the encodings a job is likely to print it in) is redacted from logs.
import { readFile } from 'node:fs/promises';
import { parseEnv } from 'node:util';
import { MIN_SECRET_LENGTH } from './redactor.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class EnvFileError extends Error {
  override name = 'EnvFileError';
}

/** Parses dotenv text (Node's own parser: quotes, multi-line values, comments). */
export function parseEnvFile(text: string): Record<string, string> {
  const parsed = parseEnv(text) as Record<string, string>;
  for (const key of Object.keys(parsed)) {
    if (!ENV_NAME.test(key)) throw new EnvFileError(`"${key}" is not a valid environment variable name`);
  }
  return parsed;
}

export async function readEnvFile(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new EnvFileError(`cannot read --env-file ${file}: ${(error as Error).message}`);
  }
  return parseEnvFile(text);
}

/**
 * What to redact for one secret value: the value itself; its base64 and base64url forms
 * (padded and unpadded) — tokens are often printed encoded, e.g. in a
 * Basic auth header of `curl -v`; its URL-encoded and JSON-escaped forms when they differ;
 * and each line of a multi-line value (a PEM key printed line by line, or with CRLF).
 * Values shorter than MIN_SECRET_LENGTH are not redacted (see redactor.ts).
 */
export function secretVariants(value: string): string[] {
  if (value.length < MIN_SECRET_LENGTH) return [];
  const bytes = Buffer.from(value, 'utf8');
  const variants = [
    value,
    bytes.toString('base64'),
    bytes.toString('base64').replace(/=+$/, ''),
    bytes.toString('base64url'),
    encodeURIComponent(value),
    JSON.stringify(value).slice(1, -1),
  ];
  if (/[\r\n]/.test(value)) variants.push(...value.split(/\r?\n/).map((line) => line.trim()));
  return [...new Set(variants.filter((v) => v.length >= MIN_SECRET_LENGTH))];
}

/** Everything to redact for a set of agent-local secrets. */
export function redactionList(secrets: Record<string, string>): string[] {
  return [...new Set(Object.values(secrets).flatMap(secretVariants))];
}
