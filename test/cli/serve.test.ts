// The real `cairn serve` in embedded mode: first start prints a working login, and SIGTERM
// lets an in-flight request finish before the process exits 0.
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/process.js';

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-serve-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

// Load shedding is tested elsewhere; here a busy test machine must not shed the login.
const env = () => ({
  CAIRN_DATA_DIR: dataDir,
  PORT: '0',
  CAIRN_LOG_LEVEL: 'warn',
  DATABASE_URL: '',
  REDIS_URL: '',
  CAIRN_MAX_EVENT_LOOP_DELAY_MS: '0',
});

describe('cairn serve (embedded)', () => {
  it('starts with a printed admin login that works, and shuts down gracefully on SIGTERM', async () => {
    const server = runCli(['serve'], env());
    const [, url] = await server.waitForOutput(/Cairn is ready at (http:\/\/\S+)/);
    const [, email, password] = await server.waitForOutput(/First admin: (\S+)\s+password: (\S+)/);

    const login = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    expect(login.status).toBe(200);
    const { access_token } = (await login.json()) as { access_token: string };

    // Start a request, stop the server while its body is still arriving, then finish it.
    const body = JSON.stringify({ name: 'In flight' });
    const target = new URL(`${url}/api/v1/projects`);
    const response = new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            authorization: `Bearer ${access_token}`,
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 5));
      setTimeout(() => {
        server.child.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(5)), 300);
      }, 100);
    });
    expect(await response).toBe(201);
    expect(await server.exited).toBe(0);
  });

  it('reuses its data directory and does not create a second admin', async () => {
    const server = runCli(['serve'], env());
    const [, url] = await server.waitForOutput(/Cairn is ready at (http:\/\/\S+)/);
    expect((await fetch(`${url}/health/ready`)).status).toBe(200);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).not.toContain('First admin');
  });

  it('refuses a bad setting, naming it', async () => {
    const bad = runCli(['serve'], { ...env(), PORT: 'eighty' });
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('PORT: expected a whole number');
  });

  it('prints its version and help', async () => {
    const version = runCli(['--version']);
    expect(await version.exited).toBe(0);
    expect(version.output().trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = runCli(['--help']);
    expect(await help.exited).toBe(0);
    for (const command of ['serve', 'migrate', 'admin', 'verify']) expect(help.output()).toContain(command);
  });
});
