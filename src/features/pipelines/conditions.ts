// Step conditions (`if:`): a small, safe expression language over the run's context —
// never evaluated as JavaScript. Grammar:
//   expr    := or
//   or      := and ('||' and)*
//   and     := unary ('&&' unary)*
//   unary   := '!' unary | primary
//   primary := '(' expr ')' | operand (('==' | '!=') operand | '=~' regex)?
//   operand := identifier | "string" | 'string' | true | false | null
// Identifiers: branch, commit, message, trigger, event. A bare operand is true when it is
// a non-empty string or `true`. Examples: `branch == "main"`, `trigger != "schedule" &&
// branch =~ /^release\//`.
import type { RunContext } from './pipeline.model.js';

export const CONDITION_VARIABLES = ['branch', 'commit', 'message', 'trigger', 'event'] as const;

export class ConditionError extends Error {
  constructor(
    message: string,
    readonly column: number,
  ) {
    super(`${message} (at character ${column + 1})`);
    this.name = 'ConditionError';
  }
}

type Token = { kind: 'op' | 'ident' | 'string' | 'regex'; value: string; at: number };

const OPERATORS = ['==', '!=', '=~', '&&', '||', '!', '(', ')'];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', value: op, at: i });
      i += op.length;
    } else if (ch === '"' || ch === "'") {
      const end = source.indexOf(ch, i + 1);
      if (end < 0) throw new ConditionError('unterminated string', i);
      tokens.push({ kind: 'string', value: source.slice(i + 1, end), at: i });
      i = end + 1;
    } else if (ch === '/') {
      let end = i + 1;
      while (end < source.length && source[end] !== '/') end += source[end] === '\\' ? 2 : 1;
      if (end >= source.length) throw new ConditionError('unterminated regular expression', i);
      tokens.push({ kind: 'regex', value: source.slice(i + 1, end), at: i });
      i = end + 1;
    } else if (/[A-Za-z_]/.test(ch)) {
      const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i))![0];
      tokens.push({ kind: 'ident', value: match, at: i });
      i += match.length;
    } else {
      throw new ConditionError(`unexpected "${ch}"`, i);
    }
  }
  return tokens;
}

type Value = string | boolean | null;
type Node = (ctx: RunContext) => Value;

/** Parses a condition once; the result evaluates it against any run context. */
export function compileCondition(source: string): (ctx: RunContext) => boolean {
  if (source.length > 1000) throw new ConditionError('condition too long', 0);
  const tokens = tokenize(source);
  let pos = 0;
  const peek = () => tokens[pos];
  const take = (value?: string) => {
    const token = tokens[pos];
    if (!token || (value !== undefined && token.value !== value)) {
      throw new ConditionError(value ? `expected "${value}"` : 'unexpected end', token?.at ?? source.length);
    }
    pos++;
    return token;
  };

  const operand = (): Node => {
    const token = take();
    if (token.kind === 'string') return () => token.value;
    if (token.kind !== 'ident') throw new ConditionError(`unexpected "${token.value}"`, token.at);
    if (token.value === 'true' || token.value === 'false') return () => token.value === 'true';
    if (token.value === 'null') return () => null;
    if (!(CONDITION_VARIABLES as readonly string[]).includes(token.value)) {
      throw new ConditionError(`unknown variable "${token.value}"; use ${CONDITION_VARIABLES.join(', ')}`, token.at);
    }
    const name = token.value as (typeof CONDITION_VARIABLES)[number];
    return (ctx) => ctx[name];
  };

  const truthy = (v: Value) => v === true || (typeof v === 'string' && v.length > 0);

  const primary = (): Node => {
    if (peek()?.value === '(') {
      take('(');
      const inner = or();
      take(')');
      return inner;
    }
    const left = operand();
    const op = peek();
    if (op?.value === '==' || op?.value === '!=') {
      take();
      const right = operand();
      return op.value === '==' ? (ctx) => left(ctx) === right(ctx) : (ctx) => left(ctx) !== right(ctx);
    }
    if (op?.value === '=~') {
      take();
      const pattern = take();
      if (pattern.kind !== 'regex') throw new ConditionError('expected /regular expression/', pattern.at);
      let regex: RegExp;
      try {
        regex = new RegExp(pattern.value);
      } catch {
        throw new ConditionError('invalid regular expression', pattern.at);
      }
      return (ctx) => {
        const value = left(ctx);
        return typeof value === 'string' && regex.test(value);
      };
    }
    return left;
  };

  const unary = (): Node => {
    if (peek()?.value === '!') {
      take('!');
      const inner = unary();
      return (ctx) => !truthy(inner(ctx));
    }
    return primary();
  };

  function and(): Node {
    let node = unary();
    while (peek()?.value === '&&') {
      take('&&');
      const left = node;
      const right = unary();
      node = (ctx) => truthy(left(ctx)) && truthy(right(ctx));
    }
    return node;
  }

  function or(): Node {
    let node = and();
    while (peek()?.value === '||') {
      take('||');
      const left = node;
      const right = and();
      node = (ctx) => truthy(left(ctx)) || truthy(right(ctx));
    }
    return node;
  }

  const root = or();
  if (pos < tokens.length) throw new ConditionError(`unexpected "${tokens[pos]!.value}"`, tokens[pos]!.at);
  return (ctx) => truthy(root(ctx));
}
