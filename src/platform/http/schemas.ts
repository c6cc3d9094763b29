// Schemas shared by every feature's routes: problem responses, pagination, ids.
import { Type, type TSchema } from 'typebox';
import { BadRequestError } from '../errors.js';

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    code: Type.String({ description: 'Stable machine-readable error code' }),
    instance: Type.String({ description: 'The request id' }),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details' },
);

const DESCRIPTIONS: Record<number, string> = {
  400: 'Bad input',
  401: 'Missing, invalid or expired credentials',
  403: 'Authenticated but not allowed',
  404: 'Not found (also what another organization’s resource looks like)',
  409: 'Conflict with the current state',
  413: 'Body too large',
  415: 'Unsupported media type',
  429: 'Rate limited (see Retry-After)',
  503: 'Not ready or overloaded',
};

/** Error responses for a route's schema; 400, 401, 429 apply to every authenticated route. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of new Set([400, 401, 429, ...statuses])) {
    out[status] = Type.Object(ProblemSchema.properties, {
      additionalProperties: true,
      description: DESCRIPTIONS[status] ?? 'Error',
    });
  }
  return out;
}

export const Uuid = Type.String({ format: 'uuid' });
export const IdParams = Type.Object({ id: Uuid });
export const Timestamp = Type.String({ format: 'date-time' });

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: Type.Optional(Type.String({ maxLength: 512, pattern: '^[A-Za-z0-9_-]+$' })),
};

/** A list page: `next_cursor` is null on the last page. */
export function Page<T extends TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });
}

// Cursors are opaque to clients: base64url JSON of the last row's sort key.
export function encodeCursor(values: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

export function decodeCursor(cursor: string, arity: number): unknown[] {
  try {
    const values = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(values) && values.length === arity) return values;
  } catch {
    // fall through
  }
  throw new BadRequestError('The cursor is not valid; use next_cursor from the previous page.', 'invalid_cursor');
}

export function iso(date: Date): string;
export function iso(date: Date | null): string | null;
export function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}
