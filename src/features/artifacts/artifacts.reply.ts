// One artifact's bytes as an HTTP answer, the same for every download route: ETag and Digest
// carry its SHA-256 (If-None-Match answers 304 without opening the blob), the length and
// type are the stored ones, and a browser is told never to render it as a page.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { contentDisposition } from './artifacts.paths.js';

interface StoredArtifact {
  id: string;
  sha256: string;
  size: number;
  content_type: string;
  path: string;
}

/**
 * `cacheControl`: an artifact by id never changes (immutable); one named by run, step and
 * path can be replaced by a later attempt's upload (revalidate).
 */
export async function replyWithArtifact(
  request: FastifyRequest,
  reply: FastifyReply,
  artifact: StoredArtifact,
  open: () => Promise<Readable>,
  cacheControl: string,
) {
  const etag = `"${artifact.sha256}"`;
  reply
    .header('etag', etag)
    .header('cache-control', cacheControl)
    .header('digest', `sha-256=${Buffer.from(artifact.sha256, 'hex').toString('base64')}`)
    .header('x-artifact-id', artifact.id);
  if (request.headers['if-none-match'] === etag) return reply.code(304).send(null);
  const stream = await open();
  return reply
    .header('content-length', String(artifact.size))
    .header('content-type', artifact.content_type)
    .header('content-disposition', contentDisposition(artifact.path))
    .header('content-security-policy', "default-src 'none'; sandbox")
    .send(stream);
}
