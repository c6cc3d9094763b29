import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildJobEnv, cairnInvocation, DEFAULT_PATH, writeCairnCommand } from './job-env.js';

const run = promisify(execFile);

const input = {
  agentEnv: {
    PATH: '/usr/bin:/bin',
    HOME: '/home/ci',
    LANG: 'en_US.UTF-8',
    AWS_SECRET_ACCESS_KEY: 'agent-own',
    CAIRN_AGENT_TOKEN: 'reg',
  },
  jobEnv: { NODE_ENV: 'test', DEPLOY_URL: 'https://evil.example', CAIRN_JOB_ID: 'forged' },
  secrets: { DEPLOY_URL: 'https://deploy.internal', DEPLOY_KEY: 'k3y' },
  jobId: 'job-1',
  attempt: 2,
  agentName: 'builder',
  agentId: 'agent-1',
  jobName: 'build',
  tmpDir: '/srv/cairn-agent/jobs/job-1-2/.cairn/tmp',
};

describe('job environment', () => {
  it('is a clean base plus the job, the secrets and its identity — never the agent’s own environment', () => {
    expect(buildJobEnv(input)).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/home/ci',
      LANG: 'en_US.UTF-8',
      TMPDIR: '/srv/cairn-agent/jobs/job-1-2/.cairn/tmp',
      NODE_ENV: 'test',
      DEPLOY_URL: 'https://deploy.internal',
      DEPLOY_KEY: 'k3y',
      CI: 'true',
      CAIRN: 'true',
      CAIRN_JOB_ID: 'job-1',
      CAIRN_JOB_NAME: 'build',
      CAIRN_JOB_ATTEMPT: '2',
      CAIRN_AGENT_NAME: 'builder',
      CAIRN_AGENT_ID: 'agent-1',
    });
  });

  it('agent-local secrets win over the job’s env, and the job’s identity over both', () => {
    const env = buildJobEnv({ ...input, secrets: { ...input.secrets, CAIRN_JOB_ID: 'also forged' } });
    expect(env.DEPLOY_URL).toBe('https://deploy.internal');
    expect(env.CAIRN_JOB_ID).toBe('job-1');
  });

  it('falls back to a standard PATH and a UTF-8 locale', () => {
    const env = buildJobEnv({ ...input, agentEnv: {} });
    expect(env.PATH).toBe(DEFAULT_PATH);
    expect(env.LANG).toBe('C.UTF-8');
    expect(env).not.toHaveProperty('HOME');
  });
});

describe('what a job needs to call back (cairn step …, cairn pipeline upload)', () => {
  it('gets the server URL, its own job token and a `cairn` first on PATH; the job cannot replace them', () => {
    const env = buildJobEnv({
      ...input,
      jobEnv: { ...input.jobEnv, CAIRN_URL: 'https://evil.example', CAIRN_JOB_TOKEN: 'forged' },
      serverUrl: 'https://cairn.internal',
      jobToken: 'cairn_job_x.y',
      cairnDir: '/srv/cairn-agent/jobs/job-1-2/.cairn/bin',
    });
    expect(env).toMatchObject({
      CAIRN_URL: 'https://cairn.internal',
      CAIRN_JOB_TOKEN: 'cairn_job_x.y',
      PATH: '/srv/cairn-agent/jobs/job-1-2/.cairn/bin:/usr/bin:/bin',
    });
  });

  it('writes a `cairn` command that runs the agent’s own program with the job’s arguments', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bin-'));
    try {
      await writeCairnCommand(dir, ['/bin/echo', "it's", 'me']);
      const { stdout } = await run(path.join(dir, 'cairn'), ['step', 'output', 'set', 'a b']);
      expect(stdout).toBe("it's me step output set a b\n");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('starts the program the way the agent was started: loaders resolved, no debugger, an absolute entry', () => {
    const invocation = cairnInvocation({
      execPath: '/usr/bin/node',
      execArgv: ['--import', 'tsx', '--inspect=9229', '--enable-source-maps', '--require=./setup.cjs'],
      argv: ['/usr/bin/node', 'src/cli/index.ts', 'agent'],
      cwd: () => '/srv/cairn',
    });
    expect(invocation).toEqual([
      '/usr/bin/node',
      '--import',
      expect.stringMatching(/^file:\/\/.*\/node_modules\/tsx\//),
      '--enable-source-maps',
      '--require=/srv/cairn/setup.cjs',
      '/srv/cairn/src/cli/index.ts',
    ]);
  });
});
