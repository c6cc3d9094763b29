// What the agent tells its operator: one line per event. Human-readable by default
// ("12:04:31 claimed job 3f2a… build (attempt 1)"); with --json one JSON object per line
// from pino, the project's logger, for log shippers. Job output never goes here: it goes
// to the server, redacted. Secrets never go here at all.
import pino from 'pino';

export type EventFields = Record<string, unknown> & { event: string };

export interface AgentConsole {
  info(message: string, fields: EventFields): void;
  warn(message: string, fields: EventFields): void;
  error(message: string, fields: EventFields): void;
}

export interface ConsoleOptions {
  json: boolean;
  /** Where lines go (stdout by default); a file descriptor keeps writes synchronous. */
  fd?: number;
  write?: (line: string) => void;
  base?: Record<string, unknown>;
}

function clock(now = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
}

export function createConsole(options: ConsoleOptions): AgentConsole {
  if (options.json) {
    // Synchronous writes: the last lines before an exit must not be lost.
    const destination = options.write
      ? { write: (line: string) => options.write!(line) }
      : pino.destination({ fd: options.fd ?? 1, sync: true });
    const logger = pino(
      {
        base: { service: 'cairn-agent', ...options.base },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      destination,
    );
    return {
      info: (message, fields) => logger.info(fields, message),
      warn: (message, fields) => logger.warn(fields, message),
      error: (message, fields) => logger.error(fields, message),
    };
  }
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const line = (prefix: string, message: string) => write(`${clock()} ${prefix}${message}\n`);
  return {
    info: (message) => line('', message),
    warn: (message) => line('WARNING: ', message),
    error: (message) => line('ERROR: ', message),
  };
}

/** Short job id for human lines; the full one is in --json output. */
export const shortId = (id: string) => id.slice(0, 8);

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
