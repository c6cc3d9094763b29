// What an artifact may be called, what type it is served as, and the download's file name.
// Paths end up in ZIP bundles and on users' disks, so only plain relative paths are taken:
// nothing that could climb out of a directory or mean different files on different systems.
import path from 'node:path';
import { BadRequestError } from '../../platform/errors.js';

export const ARTIFACT_PATH_MAX = 1024;

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The path as given when it is a normalized relative path; a 400 that says why otherwise. */
export function checkArtifactPath(given: string): string {
  const refuse = (why: string) => {
    throw new BadRequestError(`The artifact path ${why}.`, 'invalid_artifact_path');
  };
  if (given.length === 0 || given.length > ARTIFACT_PATH_MAX) refuse(`must be 1 to ${ARTIFACT_PATH_MAX} characters`);
  if (CONTROL.test(given)) refuse('must not contain control characters');
  if (given.includes('\\')) refuse('must use "/" between directories');
  if (given.startsWith('/') || /^[A-Za-z]:/.test(given)) refuse('must be relative');
  for (const segment of given.split('/')) {
    if (segment === '..') refuse('must not contain ".."');
    if (segment === '' || segment === '.') refuse('must be normalized (no empty or "." parts, no trailing "/")');
  }
  return given;
}

// Types by extension for what jobs commonly upload; anything else is served as bytes. The
// download is always an attachment with nosniff, so a browser never renders it in place.
const TYPES: Record<string, string> = {
  '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.html': 'text/html; charset=utf-8',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tgz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.jar': 'application/java-archive',
  '.wasm': 'application/wasm',
};

export function contentTypeFor(artifactPath: string): string {
  return TYPES[path.posix.extname(artifactPath).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * `attachment` with the file's base name: an ASCII fallback with anything unusual replaced,
 * and the exact name in RFC 8187 form for clients that read it.
 */
export function contentDisposition(artifactPath: string): string {
  const name = path.posix.basename(artifactPath);
  const ascii = name.replace(/[^A-Za-z0-9._ -]/g, '_').replace(/^\.+/, '_') || 'artifact';
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
