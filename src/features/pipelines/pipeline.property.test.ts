// Generated pipelines: every valid one parses to what it says, and no input — valid,
// mangled or random — makes the parser throw or point outside the file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parsePipeline } from './pipeline.parse.js';

type Item = 'wait' | Record<string, unknown>;

const CONDITIONS = ['branch == "main"', 'trigger != "schedule" && branch =~ /^release\\//', '!(event == "push")'];

/** Steps s0…sn with needs only on earlier steps (so never a cycle), waits in between. */
const pipelineItems = fc
  .array(
    fc.record({
      wait: fc.boolean(),
      kind: fc.constantFrom('command', 'command', 'command', 'block', 'deploy'),
      needs: fc.array(fc.nat(), { maxLength: 3 }),
      label: fc.option(
        fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() === s && s.length > 0),
        { nil: undefined },
      ),
      commands: fc.array(
        fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim().length > 0 && !s.includes('\0')),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
      condition: fc.option(fc.constantFrom(...CONDITIONS), { nil: undefined }),
      env: fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/), fc.oneof(fc.string({ maxLength: 10 }), fc.integer())),
    }),
    { minLength: 1, maxLength: 25 },
  )
  .map((specs) => {
    const items: Item[] = [];
    const keys: string[] = [];
    specs.forEach((spec, i) => {
      if (spec.wait && i > 0) items.push('wait');
      const key = `s${i}`;
      const needs = [...new Set(spec.needs.filter(() => keys.length > 0).map((n) => keys[n % keys.length]!))];
      const common = { key, ...(spec.label ? { label: spec.label } : {}), ...(needs.length ? { needs } : {}) };
      const withIf = spec.condition ? { if: spec.condition } : {};
      if (spec.kind === 'block') items.push({ block: `Go on after ${key}?`, ...common, ...withIf });
      else if (spec.kind === 'deploy') {
        const version = needs.length ? `\${steps.${needs[0]}.outputs.version}` : '${run.number}';
        items.push({ deploy: { service: 'api', environment: 'qa', version }, ...common });
      } else items.push({ commands: spec.commands, env: spec.env, ...common, ...withIf });
      keys.push(key);
    });
    return items;
  });

function reachable(needs: Map<string, string[]>, from: string): Set<string> {
  const seen = new Set<string>();
  const todo = [...(needs.get(from) ?? [])];
  while (todo.length) {
    const next = todo.pop()!;
    if (!seen.has(next)) todo.push(...(needs.get((seen.add(next), next)) ?? []));
  }
  return seen;
}

describe('generated pipelines', () => {
  it('valid pipelines round-trip: keys, commands, written needs, and every wait holds', () => {
    fc.assert(
      fc.property(pipelineItems, (items) => {
        const result = parsePipeline(stringify({ env: { CI: 'true' }, steps: items }));
        if (!result.ok) throw new Error(JSON.stringify(result.errors));
        const steps = items.filter((i): i is Record<string, unknown> => i !== 'wait');
        expect(result.definition.steps.map((s) => s.key)).toEqual(steps.map((s) => s.key));
        const needs = new Map(result.definition.steps.map((s) => [s.key, s.needs]));
        result.definition.steps.forEach((step, i) => {
          const written = (steps[i]!.needs as string[] | undefined) ?? [];
          expect(step.needs).toEqual(expect.arrayContaining(written));
          if (step.type === 'command') expect(step.commands).toEqual((steps[i]!.commands as string[]).map((c) => c.trimEnd()));
        });
        // Every step after a wait (or a block) depends, through its needs, on every step before it.
        let before: string[] = [];
        for (const [index, item] of items.entries()) {
          if (item === 'wait' || 'block' in item) {
            const after = items.slice(index + 1).filter((i): i is Record<string, unknown> => i !== 'wait');
            for (const later of after) {
              const deps = reachable(needs, later.key as string);
              for (const earlier of before) expect(deps.has(earlier), `${String(later.key)} needs ${earlier}`).toBe(true);
            }
          }
          if (item !== 'wait') before = [...before, item.key as string];
        }
      }),
      { numRuns: 100 },
    );
  });

  it('mangled pipelines never throw, and every error points inside the file', () => {
    const mangled = fc.tuple(
      pipelineItems,
      fc.array(fc.tuple(fc.nat(), fc.nat(5), fc.string({ maxLength: 4 })), { maxLength: 6 }),
    );
    fc.assert(
      fc.property(mangled, ([items, edits]) => {
        let text = stringify({ steps: items });
        for (const [at, remove, insert] of edits) {
          const i = at % (text.length + 1);
          text = text.slice(0, i) + insert + text.slice(i + remove);
        }
        const result = parsePipeline(text);
        if (result.ok) return;
        const lines = text.split('\n').length;
        expect(result.errors.length).toBeGreaterThan(0);
        for (const e of result.errors) {
          expect(e.line).toBeGreaterThanOrEqual(1);
          expect(e.line).toBeLessThanOrEqual(lines + 1);
          expect(e.column).toBeGreaterThanOrEqual(1);
          expect(e.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('random text never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300, unit: 'binary' }), (text) => {
        const result = parsePipeline(text);
        expect(typeof result.ok).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });
});
