import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import { startServer } from '../server.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('Run the Cairn server (embedded PGlite unless DATABASE_URL is set; see docs/operations.md)')
    .action(async () => {
      let config;
      try {
        config = loadConfig();
      } catch (error) {
        if (error instanceof ConfigError) {
          process.stderr.write(`cairn: invalid configuration: ${error.message}\n`);
          process.exit(2);
        }
        throw error;
      }
      const server = await startServer(config);
      let signals = 0;
      const shutdown = (signal: string) => {
        // A second signal means "now".
        if (++signals > 1) process.exit(1);
        server.app.log.info({ signal }, 'shutting down: finishing in-flight requests');
        server.close().then(
          () => process.exit(0),
          (error: unknown) => {
            server.app.log.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });
}
