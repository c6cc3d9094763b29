// Artifacts: upload → download byte for byte, replacement, dedup, listing, tenancy.
// What uploads refuse (paths, leases, sizes, broken connections): artifacts.refusals.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { expectAuditEvent } from '../../../test/helpers/audit.js';
import { claimedJob, uploadArtifact, type UploadOptions } from '../../../test/helpers/artifacts.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { createPool, registerAgent, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs } from '../../../test/helpers/tenancy.js';
import { createBlobStore } from '../../platform/blobs.js';
import { orgTopic, type BusEvent } from '../../platform/bus.js';
import { topicRegistry } from '../events/events.topics.js';
import { collectBlobs } from './artifacts.retention.js';

let t: TestApp;
let owner: TestUser;
let agentA: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  const pool = await createPool(t, owner, 'build');
  agentA = await registerAgent(t, pool, { name: 'a', max_concurrency: 100 });
});
afterAll(() => t.close());

const upload = (
  agent: TestAgent,
  job: JobJson,
  artifactPath: string,
  body: Buffer | string | Readable,
  opts: UploadOptions = {},
) => uploadArtifact(t, agent, job, artifactPath, body, opts);

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
/** Streams `data` in pieces with no Content-Length, as a chunked upload arrives. */
const chunked = (data: Buffer, piece = 64 * 1024) =>
  Readable.from(Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => data.subarray(i * piece, (i + 1) * piece)));

interface ArtifactJson {
  id: string;
  job_id: string;
  attempt: number;
  path: string;
  size: number;
  sha256: string;
  content_type: string;
}

describe('upload and download', () => {
  it('streams a file in, and out byte for byte with its SHA-256 in the headers; audited and published', async () => {
    const job = await claimedJob(t, owner, agentA);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const topic = orgTopic(owner.orgId);
    let published!: (e: BusEvent) => void;
    const event = new Promise<BusEvent>((resolve) => (published = resolve));
    const stop = t.deps.bus.subscribe(topic, (e) => e.type === 'artifact.uploaded' && published(e));
    await t.deps.bus.ready(topic);

    const res = await upload(agentA, job, 'dist/app bundle (1).tar.gz', chunked(data));
    expect(res.statusCode, res.body).toBe(201);
    const artifact = res.json<ArtifactJson>();
    expect(artifact).toMatchObject({
      job_id: job.id,
      attempt: 1,
      project_id: null,
      run_id: null,
      path: 'dist/app bundle (1).tar.gz',
      size: data.length,
      sha256: sha256(data),
      content_type: 'application/gzip',
    });
    const received = await event;
    stop();
    expect(received.data).toEqual({
      org_id: owner.orgId,
      artifact_id: artifact.id,
      job_id: job.id,
      project_id: null,
      run_id: null,
    });
    // Event streams carry it to readers of jobs, on the org feed and the job's topic.
    expect(topicRegistry.permissionFor('artifact.uploaded')).toBe('jobs:read');
    expect(topicRegistry.routes(received)).toEqual(expect.arrayContaining(['org', `job:${job.id}`]));
    await expectAuditEvent(t, { orgId: owner.orgId, action: 'artifact.uploaded', resourceId: artifact.id, actorId: agentA.id });

    const down = await t.app.inject({
      method: 'GET',
      url: `/api/v1/artifacts/${artifact.id}/download`,
      headers: { ...owner.headers, 'accept-encoding': 'gzip' },
    });
    expect(down.statusCode).toBe(200);
    expect(down.rawPayload.equals(data)).toBe(true);
    expect(down.headers).toMatchObject({
      'content-length': String(data.length),
      'content-type': 'application/gzip',
      etag: `"${sha256(data)}"`,
      digest: `sha-256=${createHash('sha256').update(data).digest('base64')}`,
      'content-disposition': `attachment; filename="app bundle _1_.tar.gz"; filename*=UTF-8''app%20bundle%20%281%29.tar.gz`,
    });
    expect(down.headers['content-encoding']).toBeUndefined();

    const again = await t.app.inject({
      method: 'GET',
      url: `/api/v1/artifacts/${artifact.id}/download`,
      headers: { ...owner.headers, 'if-none-match': `"${sha256(data)}"` },
    });
    expect(again.statusCode).toBe(304);
    expect(again.rawPayload.length).toBe(0);

    const meta = await t.app.inject({ method: 'GET', url: `/api/v1/artifacts/${artifact.id}`, headers: owner.headers });
    expect(meta.json()).toEqual(artifact);
  });

  it('takes an empty file, with or without a content type', async () => {
    const job = await claimedJob(t, owner, agentA);
    const res = await upload(agentA, job, 'empty.txt', Buffer.alloc(0));
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ size: 0, sha256: sha256(''), content_type: 'text/plain; charset=utf-8' });
    const bare = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${job.id}/artifacts?path=bare`,
      headers: { ...agentA.headers, 'x-lease-token': job.lease_token! },
    });
    expect(bare.statusCode, bare.body).toBe(201);
    expect(bare.json()).toMatchObject({ size: 0, content_type: 'application/octet-stream' });
  });

  it('the same path uploaded again in the attempt replaces the earlier artifact', async () => {
    const job = await claimedJob(t, owner, agentA);
    const first = (await upload(agentA, job, 'report.json', '{"v":1}')).json<ArtifactJson>();
    const second = await upload(agentA, job, 'report.json', '{"v":2}');
    expect(second.statusCode).toBe(201);
    const replacement = second.json<ArtifactJson>();
    expect(replacement.id).not.toBe(first.id);
    const list = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/artifacts`, headers: owner.headers });
    expect(list.json<{ items: ArtifactJson[] }>().items).toEqual([replacement]);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/artifacts/${first.id}`, headers: owner.headers })).statusCode).toBe(
      404,
    );
    const audit = await expectAuditEvent(t, { orgId: owner.orgId, action: 'artifact.uploaded', resourceId: replacement.id });
    expect(audit.payload).toMatchObject({ replaced: first.id, path: 'report.json' });

    // The first content is no longer named by anything: the collector deletes it, and only it.
    const blobs = createBlobStore(t.deps.config.blobDir);
    expect(await blobs.has(first.sha256)).toBe(true);
    expect(await collectBlobs(t.deps.db, blobs)).toBeGreaterThanOrEqual(1);
    expect(await blobs.has(first.sha256)).toBe(false);
    expect(await blobs.has(replacement.sha256)).toBe(true);
  });

  it('equal content uploaded twice is stored once; collecting a blob still named keeps it', async () => {
    const job = await claimedJob(t, owner, agentA);
    const a = (await upload(agentA, job, 'one.bin', 'same content')).json<ArtifactJson>();
    const b = (await upload(agentA, job, 'two.bin', 'same content')).json<ArtifactJson>();
    expect(a.sha256).toBe(b.sha256);
    await t.deps.db.query('INSERT INTO blob_gc_candidates (sha256) VALUES ($1) ON CONFLICT DO NOTHING', [a.sha256]);
    await collectBlobs(t.deps.db, createBlobStore(t.deps.config.blobDir));
    const down = await t.app.inject({ method: 'GET', url: `/api/v1/artifacts/${b.id}/download`, headers: owner.headers });
    expect(down.body).toBe('same content');
  });

  it('lists a job’s artifacts by attempt and path, in cursor pages', async () => {
    const job = await claimedJob(t, owner, agentA);
    const names = ['b/2.txt', 'a.txt', 'b/1.txt', 'c.log', 'b/10.txt'];
    for (const name of names) expect((await upload(agentA, job, name, name)).statusCode).toBe(201);
    const page = async (cursor: string | null) => {
      const res = await t.app.inject({
        method: 'GET',
        url: `/api/v1/jobs/${job.id}/artifacts?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: owner.headers,
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json<{ items: ArtifactJson[]; next_cursor: string | null }>();
    };
    const seen: string[] = [];
    for (let next = await page(null); ; next = await page(next.next_cursor)) {
      seen.push(...next.items.map((i) => i.path));
      if (next.next_cursor === null) break;
    }
    expect(seen).toEqual([...names].sort());
    const none = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/artifacts?attempt=2`, headers: owner.headers });
    expect(none.json()).toEqual({ items: [], next_cursor: null });
  });
});

describe('tenancy', () => {
  it('another organization’s job artifacts and artifacts are a 404 on every route, for its users and its agents', async () => {
    const job = await claimedJob(t, owner, agentA);
    const artifact = (await upload(agentA, job, 'secret.txt', 'classified')).json<ArtifactJson>();
    const stranger = await createOrgAndLogin(t);
    const strangerAgent = await registerAgent(t, await createPool(t, stranger, 'build'));
    const jobRoutes = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/jobs/{id}/artifacts',
      params: { id: job.id },
      as: stranger,
      agent: strangerAgent,
      requests: {
        'PUT /api/v1/jobs/{id}/artifacts': {
          query: 'path=secret.txt',
          headers: { 'content-type': 'application/octet-stream', 'x-lease-token': job.lease_token! },
          payload: 'overwritten',
        },
      },
    });
    expect(jobRoutes).toBe(2);
    const artifactRoutes = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/artifacts/{id}',
      params: { id: artifact.id },
      as: stranger,
    });
    expect(artifactRoutes).toBe(2);
    const down = await t.app.inject({ method: 'GET', url: `/api/v1/artifacts/${artifact.id}/download`, headers: owner.headers });
    expect(down.body).toBe('classified');
  });
});
