import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { IdParams, errorResponses } from '../../platform/http/schemas.js';
import { LOG_BODY_LIMIT_BYTES, LOG_CHUNK_MAX_BYTES, appendLog, openLogText, readLog } from './logs.service.js';

const Attempt = Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Default: the latest attempt' });
const Bytes = (description: string) => Type.Integer({ minimum: 1, maximum: LOG_CHUNK_MAX_BYTES, description });

const AppendBody = Type.Object(
  {
    lease_token: Type.String({ format: 'uuid' }),
    offset: Type.Integer({ minimum: 0, description: 'Byte offset (UTF-8) of this chunk in the attempt’s log' }),
    data: Type.String({ maxLength: LOG_CHUNK_MAX_BYTES, description: `UTF-8 text, at most ${LOG_CHUNK_MAX_BYTES} bytes` }),
  },
  { additionalProperties: false },
);
const AppendAnswer = Type.Object({
  size: Type.Integer({ description: 'Bytes stored so far: the next chunk’s offset' }),
  truncated: Type.Boolean({ description: 'The log reached its cap; later chunks are dropped' }),
  cancel_requested: Type.Boolean({ description: 'Someone canceled the job: stop it and report `canceled`' }),
});
const LogRange = Type.Object({
  job_id: Type.String({ format: 'uuid' }),
  attempt: Type.Integer(),
  offset: Type.Integer({ description: 'Where `data` starts (moved forward past a split character)' }),
  next_offset: Type.Integer({ description: 'Where to continue reading' }),
  size: Type.Integer({ description: 'Bytes stored so far' }),
  truncated: Type.Boolean(),
  finished: Type.Boolean({ description: 'The attempt ended: no more output will come' }),
  data: Type.String(),
});

export function logRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    // Programs do print NUL characters, and chunks are stored as bytes, not text: this
    // plugin takes JSON as it is, without the app-wide refusal of \u0000.
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

    app.post(
      '/jobs/:id/log',
      {
        config: { permission: 'agent:work' },
        bodyLimit: LOG_BODY_LIMIT_BYTES,
        schema: {
          tags: ['logs', 'agent protocol'],
          summary: 'Append a chunk to the log of the job’s current attempt (agent token, fenced by the lease)',
          description:
            '`offset` must equal the stored size (409 `log_offset_mismatch` with `expected_offset` otherwise); a chunk ' +
            're-sent at the offset where it was stored, with the same byte length, is answered without being stored twice.',
          params: IdParams,
          body: AppendBody,
          response: { 200: AppendAnswer, ...errorResponses(403, 404, 409, 413) },
        },
      },
      (request) => appendLog(deps, authOf(request), request.params.id, request.body),
    );

    app.get(
      '/jobs/:id/log',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['logs'],
          summary: 'Read a job attempt’s log: a byte range (`offset`, `limit`) or the last `tail` bytes',
          params: IdParams,
          querystring: Type.Object(
            {
              attempt: Type.Optional(Attempt),
              offset: Type.Optional(Type.Integer({ minimum: 0, description: 'Byte offset to start at (default 0)' })),
              limit: Type.Optional(Bytes(`Most bytes to return (default and largest ${LOG_CHUNK_MAX_BYTES})`)),
              tail: Type.Optional(Bytes('Return the last this many bytes instead')),
            },
            { additionalProperties: false },
          ),
          response: { 200: LogRange, ...errorResponses(403, 404) },
        },
      },
      (request) => readLog(deps, authOf(request), request.params.id, request.query),
    );

    app.get(
      '/jobs/:id/log.txt',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['logs'],
          summary: 'A job attempt’s whole log as plain text, streamed',
          params: IdParams,
          querystring: Type.Object({ attempt: Type.Optional(Attempt) }, { additionalProperties: false }),
          produces: ['text/plain'],
          response: {
            200: Type.Unsafe<Readable>({ type: 'string', description: 'The log (UTF-8)' }),
            ...errorResponses(403, 404),
          },
        },
      },
      async (request, reply) => {
        const log = await openLogText(deps, authOf(request), request.params.id, request.query.attempt);
        return reply
          .type('text/plain; charset=utf-8')
          .header('cache-control', 'no-store')
          .header('x-cairn-log-attempt', String(log.attempt))
          .header('x-cairn-log-truncated', String(log.truncated))
          .send(log.stream);
      },
    );
  };
}
