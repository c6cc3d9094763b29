import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leafContentOfAuditRow, leafHashOfContent, storedAuditLeafHash } from './ledger.content.js';
import type { AuditRow } from './ledger.leaves.queries.js';

// Strings over all UTF-16 code units (lone surrogates, escapes), and ones made of the
// characters JCS and JSON.stringify treat specially.
const anyString = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom('a', 'é', '\u2028', '"', '\\', '\n', '\u001f', '😀', '\uD800', '\uDC00', 'u', 'd') }),
);
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    anyString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(anyString, tie('value'), { maxKeys: 6 }),
  ),
})).value;

const row: fc.Arbitrary<AuditRow> = fc.record({
  id: fc.uuid(),
  org_id: fc.uuid(),
  occurred_at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  actor_type: anyString,
  actor_id: anyString,
  actor_label: anyString,
  action: anyString,
  resource_type: anyString,
  resource_id: anyString,
  project_id: fc.option(fc.uuid(), { nil: null }),
  request_id: fc.option(anyString, { nil: null }),
  client_ip: fc.option(anyString, { nil: null }),
  payload: fc.dictionary(anyString, json, { maxKeys: 6 }),
});

/** The hash, or that there is none (a lone surrogate has no canonical form). */
function outcome(hashOf: () => Buffer): string {
  try {
    return hashOf().toString('hex');
  } catch {
    return 'refused';
  }
}

describe('storedAuditLeafHash', () => {
  it('hashes a stored row exactly as its canonical leaf content hashes', () => {
    fc.assert(
      fc.property(row, (r) => {
        expect(outcome(() => storedAuditLeafHash(r))).toBe(outcome(() => leafHashOfContent(leafContentOfAuditRow(r))));
      }),
      { numRuns: 3_000 },
    );
  });

  it('takes the general path for text that JSON.stringify and JCS write differently', () => {
    const base: AuditRow = {
      id: '00000000-0000-4000-8000-000000000001',
      org_id: '00000000-0000-4000-8000-000000000002',
      occurred_at: '2026-11-25T03:00:00.000Z',
      actor_type: 'agent',
      actor_id: 'a1',
      actor_label: 'runner "one"\n',
      action: 'job.completed',
      resource_type: 'job',
      resource_id: 'j1',
      project_id: null,
      request_id: 'req-1',
      client_ip: null,
      payload: { exit_status: 0, outputs: { '10': 'x', b: [1.5, 1e21, -0] } },
    };
    const general = (r: AuditRow) => leafHashOfContent(leafContentOfAuditRow(r)).toString('hex');
    // A lone surrogate cannot be canonicalized: both paths refuse it.
    expect(() => storedAuditLeafHash({ ...base, actor_label: '\uD800' })).toThrow();
    expect(() => general({ ...base, actor_label: '\uD800' })).toThrow();
    for (const r of [base, { ...base, actor_label: 'a\\ud800 written out' }, { ...base, payload: { '\\ud83d': '😀' } }]) {
      expect(storedAuditLeafHash(r).toString('hex')).toBe(general(r));
    }
  });
});
