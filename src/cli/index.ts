#!/usr/bin/env node
import type { Command as CommandType } from 'commander';
import { Command } from 'commander';
import { VERSION } from '../platform/version.js';

// Each command's module is loaded only when that command runs: `cairn step output set`,
// called many times from a job's shell, must not load the whole server to do one request.
// Help (or an unknown command) loads them all, to list them.
type Register = (program: CommandType) => void;
const COMMANDS: Record<string, () => Promise<Register>> = {
  serve: async () => (await import('./serve.js')).registerServeCommand,
  migrate: async () => (await import('./migrate.js')).registerMigrateCommand,
  admin: async () => (await import('./admin.js')).registerAdminCommands,
  verify: async () => (await import('./verify.js')).registerVerifyCommand,
  watch: async () => (await import('./watch.js')).registerWatchCommands,
  logs: async () => (await import('./logs.js')).registerLogsCommand,
  agent: async () => (await import('./agent.js')).registerAgentCommand,
  pipeline: async () => (await import('./pipeline.js')).registerPipelineCommands,
  step: async () => (await import('./step.js')).registerStepCommands,
};

const program = new Command()
  .name('cairn')
  .description('Cairn: a self-hosted control plane for software delivery and agent work.')
  .version(VERSION, '-v, --version')
  .showHelpAfterError();

const wanted = process.argv[2];
const loaders = wanted && Object.hasOwn(COMMANDS, wanted) ? [COMMANDS[wanted]!] : Object.values(COMMANDS);
for (const register of await Promise.all(loaders.map((load) => load()))) register(program);

await program.parseAsync(process.argv);
