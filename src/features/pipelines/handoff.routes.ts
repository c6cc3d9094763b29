import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { Uuid, errorResponses } from '../../platform/http/schemas.js';
import { OUTPUT_MAX_BYTES, setOutput } from './handoff.service.js';
import { OUTPUT_KEY_PATTERN } from './pipeline.schema.js';

const OutputParams = Type.Object({
  id: Uuid,
  key: Type.String({ pattern: OUTPUT_KEY_PATTERN, description: 'Letters, digits, _ and - (it becomes part of env names)' }),
});

export function handoffRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    // `text/plain` bodies are the value as is (`cairn step output set key -` pipes a file).
    app.removeContentTypeParser('text/plain');
    app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_request, body, done) => done(null, body));

    app.put(
      '/jobs/:id/outputs/:key',
      {
        config: { permission: 'job:self' },
        schema: {
          tags: ['pipelines', 'agent protocol'],
          summary: 'Hand-off: publish an output of this job’s step (the job’s own token; `cairn step output set`)',
          description:
            `Later steps get it as CAIRN_OUTPUT_<STEP>_<KEY> and \${steps.<step>.outputs.<key>}. At most ${OUTPUT_MAX_BYTES} bytes; ` +
            'the same key again replaces the value. A job that is not a step of a run answers 409 `not_in_run`.',
          params: OutputParams,
          body: {
            content: {
              'application/json': {
                schema: Type.Object({ value: Type.String({ maxLength: OUTPUT_MAX_BYTES }) }, { additionalProperties: false }),
              },
              'text/plain': { schema: Type.String({ description: 'The value as is' }) },
            },
          },
          response: {
            200: Type.Object({
              run_id: Uuid,
              step_key: Type.String(),
              key: Type.String(),
              bytes: Type.Integer(),
            }),
            ...errorResponses(403, 404, 409, 413, 415),
          },
        },
      },
      async (request) => {
        const body = request.body as { value: string } | string | undefined;
        const value = typeof body === 'string' ? body : body?.value;
        return setOutput(deps, authOf(request), {
          jobId: request.params.id,
          key: request.params.key,
          value,
          authorization: request.headers.authorization,
        });
      },
    );
  };
}
