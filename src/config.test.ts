import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('config', () => {
  it('has working defaults: embedded storage, no Redis', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 3000, databaseUrl: undefined, redisUrl: undefined, rateLimitAnonymous: 100 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(c).toMatchObject({ eventsHeartbeatSeconds: 30, eventsMaxBufferBytes: 524_288, eventsHistorySize: 1000 });
    expect(c.artifactRetentionDays).toBe(0);
    expect(loadConfig({ CAIRN_ARTIFACT_RETENTION_DAYS: '90' }).artifactRetentionDays).toBe(90);
  });

  it.each([
    ['PORT', 'eighty', /PORT: expected a whole number/],
    ['PORT', '70000', /PORT: must be between/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL: must start with postgres:\/\//],
    ['DATABASE_URL', 'not a url', /DATABASE_URL: is not a valid URL/],
    ['REDIS_URL', 'http://x', /REDIS_URL: must start with redis:/],
    ['CAIRN_JWT_SECRET', 'short', /CAIRN_JWT_SECRET: must be at least 32/],
    ['CAIRN_LOG_LEVEL', 'loud', /CAIRN_LOG_LEVEL: must be one of/],
    ['CAIRN_TRUST_PROXY', 'maybe', /CAIRN_TRUST_PROXY: expected true or false/],
    ['CAIRN_ADMIN_PASSWORD', 'short', /CAIRN_ADMIN_PASSWORD: must be at least 12/],
    ['CAIRN_EVENTS_HEARTBEAT_SECONDS', '0', /CAIRN_EVENTS_HEARTBEAT_SECONDS: must be between 1 and/],
    ['CAIRN_EVENTS_MAX_BUFFER_BYTES', '1k', /CAIRN_EVENTS_MAX_BUFFER_BYTES: expected a whole number/],
    ['CAIRN_EVENTS_CONNECTIONS_PER_IP', '0', /CAIRN_EVENTS_CONNECTIONS_PER_IP: must be between/],
    ['CAIRN_ARTIFACT_RETENTION_DAYS', '-1', /CAIRN_ARTIFACT_RETENTION_DAYS: expected a whole number/],
    ['CAIRN_ARTIFACT_RETENTION_DAYS', '36501', /CAIRN_ARTIFACT_RETENTION_DAYS: must be between 0 and 36500/],
    ['CAIRN_ARTIFACT_RETENTION_DAYS', '30d', /CAIRN_ARTIFACT_RETENTION_DAYS: expected a whole number/],
  ])('rejects %s=%s naming the setting', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
});
