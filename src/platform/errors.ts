// Services throw AppErrors; one handler (platform/http/errors.plugin.ts) turns them into
// RFC 9457 application/problem+json. `code` is stable and documented; `title` is for people.

export interface FieldError {
  field: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail?: string,
    readonly extra?: Record<string, unknown>,
  ) {
    super(detail ?? title);
    this.name = 'AppError';
  }
}

export class BadRequestError extends AppError {
  constructor(detail: string, code = 'bad_request', extra?: Record<string, unknown>) {
    super(400, code, 'Bad request', detail, extra);
  }
}

export class ValidationError extends AppError {
  constructor(
    readonly errors: FieldError[],
    detail = 'The request is not valid.',
  ) {
    super(400, 'validation_failed', 'Validation failed', detail, { errors });
  }
}

export class UnauthorizedError extends AppError {
  constructor(detail = 'Authentication is required.', code = 'unauthorized') {
    super(401, code, 'Unauthorized', detail);
  }
}

export class ForbiddenError extends AppError {
  constructor(detail = 'You do not have permission to do this.', code = 'forbidden') {
    super(403, code, 'Forbidden', detail);
  }
}

/** Also what another organization's resource looks like: never a 403, never a leak. */
export class NotFoundError extends AppError {
  constructor(resource: string, code = 'not_found') {
    super(404, code, 'Not found', `${resource} was not found.`);
  }
}

export class ConflictError extends AppError {
  constructor(detail: string, code = 'conflict', extra?: Record<string, unknown>) {
    super(409, code, 'Conflict', detail, extra);
  }
}

export class TooManyRequestsError extends AppError {
  constructor(
    detail: string,
    readonly retryAfterSeconds: number,
  ) {
    super(429, 'rate_limited', 'Too many requests', detail);
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(detail: string, code = 'unavailable') {
    super(503, code, 'Service unavailable', detail);
  }
}

/** PostgreSQL unique_violation, for services that turn it into a 409. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const e = error as { code?: string; constraint?: string; message?: string } | undefined;
  if (e?.code !== '23505') return false;
  // PGlite does not always fill in `constraint`; fall back to the message.
  return constraint === undefined || e.constraint === constraint || (e.message ?? '').includes(constraint);
}
