import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createOrgAndLogin } from '../helpers/auth.js';
import { usingRedis } from '../helpers/db.js';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ CAIRN_RATE_LIMIT_ANONYMOUS: '100', CAIRN_RATE_LIMIT_AUTHENTICATED: '150' });
});
afterAll(() => t.close());

// A made-up client address per test keeps buckets apart from other test files that share Redis.
const address = () =>
  `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;

describe('rate limits', () => {
  it('the 101st anonymous request in a minute from one IP gets 429 with Retry-After', async () => {
    const remoteAddress = address();
    for (let i = 1; i <= 100; i++) {
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress });
      expect(res.statusCode, `request ${i}`).not.toBe(429);
    }
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress });
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.headers['content-type']).toMatch(/problem\+json/);
    expect(res.json().code).toBe('rate_limited');
    // Another IP is unaffected.
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress: address() })).statusCode,
    ).not.toBe(429);
  });

  it('authenticated callers are limited per session, not per IP', async () => {
    const user = await createOrgAndLogin(t);
    const remoteAddress = address();
    for (let i = 1; i <= 150; i++) {
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/projects', headers: user.headers, remoteAddress });
      expect(res.statusCode, `request ${i}`).toBe(200);
    }
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/projects', headers: user.headers, remoteAddress })).statusCode,
    ).toBe(429);
  });

  it('probes are never limited', async () => {
    const remoteAddress = address();
    for (let i = 0; i < 120; i++) {
      expect((await t.app.inject({ method: 'GET', url: '/health', remoteAddress })).statusCode).toBe(200);
    }
  });
});

describe.runIf(usingRedis)('rate limits across replicas (Redis)', () => {
  it('hold when requests are spread over two replicas', async () => {
    const other = await buildTestApp({ CAIRN_RATE_LIMIT_ANONYMOUS: '100' });
    try {
      const remoteAddress = address();
      for (let i = 1; i <= 100; i++) {
        const replica = i % 2 === 0 ? t : other;
        const res = await replica.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress });
        expect(res.statusCode, `request ${i}`).not.toBe(429);
      }
      expect((await other.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress })).statusCode).toBe(429);
      expect((await t.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress })).statusCode).toBe(429);
    } finally {
      await other.close();
    }
  });
});

describe('load shedding', () => {
  it('answers 503 with Retry-After while the event loop is saturated, and recovers', async () => {
    const shed = await buildTestApp({ CAIRN_MAX_EVENT_LOOP_DELAY_MS: '50' });
    try {
      const block = () => {
        const until = Date.now() + 300;
        while (Date.now() < until) {
          // keep the event loop busy, as a CPU-bound burst would
        }
      };
      let shedResponse: Awaited<ReturnType<typeof shed.app.inject>> | undefined;
      await expect
        .poll(
          async () => {
            block();
            shedResponse = await shed.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress: address() });
            return shedResponse.statusCode;
          },
          { timeout: 10_000, interval: 50 },
        )
        .toBe(503);
      expect(shedResponse!.headers['retry-after']).toBe('5');
      expect(shedResponse!.json().code).toBe('overloaded');
      // Probes keep answering while the server sheds load.
      block();
      expect((await shed.app.inject({ method: 'GET', url: '/health', remoteAddress: address() })).statusCode).toBe(200);
      block();
      expect((await shed.app.inject({ method: 'GET', url: '/metrics', remoteAddress: address() })).statusCode).toBe(200);
      await expect
        .poll(
          async () =>
            (await shed.app.inject({ method: 'GET', url: '/api/v1/ledger/public-key', remoteAddress: address() })).statusCode,
          {
            timeout: 10_000,
            interval: 100,
          },
        )
        .toBe(200);
    } finally {
      await shed.close();
    }
  });
});
