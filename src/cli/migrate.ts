import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { openDb } from '../platform/db/index.js';
import { migrate } from '../platform/db/migrate.js';

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('Apply pending database migrations (the server also does this at boot)')
    .action(async () => {
      const config = loadConfig();
      const db = await openDb(config);
      try {
        const { applied } = await migrate(db);
        process.stdout.write(applied.length ? `applied migrations: ${applied.join(', ')}\n` : 'database is up to date\n');
      } finally {
        await db.close();
      }
    });
}
