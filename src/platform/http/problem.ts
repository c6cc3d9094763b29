// One error handler for the whole API: everything leaves as RFC 9457 problem+json with a
// stable `code` and the request id as `instance`. Client mistakes are 4xx with a reason;
// anything unexpected is a 500 that says nothing about internals and is logged in full.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, TooManyRequestsError, type FieldError } from '../errors.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  instance: string;
  [extra: string]: unknown;
}

export const PROBLEM_TYPE_BASE = 'https://cairn.dev/problems/';

export type ProblemInput = { status: number; code: string; title: string; detail?: string } & Record<string, unknown>;

export function sendProblem(reply: FastifyReply, request: FastifyRequest, p: ProblemInput): FastifyReply {
  return reply
    .code(p.status)
    .type('application/problem+json')
    .send({ type: PROBLEM_TYPE_BASE + p.code, instance: request.id, ...p });
}

interface AjvError {
  instancePath: string;
  message?: string;
  keyword: string;
  params: Record<string, unknown>;
}

function fieldErrors(context: string | undefined, validation: AjvError[]): FieldError[] {
  return validation.map((v) => {
    let field = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
    if (v.keyword === 'required') field = [field, String(v.params.missingProperty)].filter(Boolean).join('.');
    if (v.keyword === 'additionalProperties') field = [field, String(v.params.additionalProperty)].filter(Boolean).join('.');
    const where = context ?? 'body';
    const message = v.keyword === 'additionalProperties' ? 'is not a known field' : (v.message ?? 'is not valid');
    return { field: field ? `${where}.${field}` : where, message };
  });
}

// Fastify's own client-error codes, mapped to stable Cairn codes.
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_content_length',
  FST_ERR_BAD_URL: 'bad_url',
  FST_ERR_ASYNC_CONSTRAINT: 'bad_request',
};

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError | Error, request, reply) => {
    if (error instanceof AppError) {
      if (error instanceof TooManyRequestsError) reply.header('retry-after', String(error.retryAfterSeconds));
      if (error.status >= 500) request.log.error({ err: error }, error.message);
      return sendProblem(reply, request, {
        status: error.status,
        code: error.code,
        title: error.title,
        ...(error.detail ? { detail: error.detail } : {}),
        ...error.extra,
      });
    }
    const fe = error as FastifyError & { validationContext?: string };
    if (fe.validation) {
      const errors = fieldErrors(fe.validationContext, fe.validation);
      return sendProblem(reply, request, {
        status: 400,
        code: 'validation_failed',
        title: 'Validation failed',
        detail: errors.map((e) => `${e.field} ${e.message}`).join('; '),
        errors,
      });
    }
    const status = fe.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = (fe.code && FASTIFY_CODES[fe.code]) ?? (error instanceof SyntaxError ? 'malformed_json' : 'bad_request');
      return sendProblem(reply, request, { status, code, title: 'Bad request', detail: error.message });
    }
    if (status === 503) {
      return sendProblem(reply, request, { status, code: 'unavailable', title: 'Service unavailable', detail: error.message });
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, request, {
      status: 500,
      code: 'internal_error',
      title: 'Internal server error',
      detail: `Something went wrong on our side. Quote request id ${request.id} when reporting it.`,
    });
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, request, {
      status: 404,
      code: 'route_not_found',
      title: 'Not found',
      detail: `No route ${request.method} ${request.url.split('?')[0]}.`,
    }),
  );
}
