import { describe, expect, it } from 'vitest';
import { errors, ok, yaml } from '../../../test/helpers/pipelines.js';

describe('errors carry the line and column to fix', () => {
  it('unknown needs: on the line of the entry', () => {
    expect(
      errors(
        yaml(
          'steps:',
          '  - key: build',
          '    command: make',
          '  - key: test',
          '    command: make test',
          '    needs:',
          '      - build',
          '      - biuld',
        ),
      ),
    ).toEqual([
      {
        line: 8,
        column: 9,
        path: 'steps[1].needs[1]',
        message: 'needs "biuld", but no step has that key; the keys are: build, test.',
      },
    ]);
    expect(errors(yaml('steps:', '  - {key: a, command: a, needs: nope}'))[0]).toMatchObject({
      line: 2,
      column: 33,
      path: 'steps[0].needs',
    });
  });

  it('cycles: the steps in it, on the needs entry that closes it', () => {
    const found = errors(
      yaml(
        'steps:',
        '  - key: a',
        '    command: a',
        '    needs: [c]',
        '  - key: b',
        '    command: b',
        '    needs: [a]',
        '  - key: c',
        '    command: c',
        '    needs: [b]',
      ),
    );
    expect(found).toEqual([
      { line: 4, column: 13, path: 'steps[0].needs[0]', message: 'The needs form a cycle: a → c → b → a (each needs the next).' },
    ]);
    // Through a wait: the written entry reaching forward is the one to change.
    expect(errors(yaml('steps:', '  - {key: a, command: a, needs: [b]}', '  - wait', '  - {key: b, command: b}'))).toEqual([
      { line: 2, column: 34, path: 'steps[0].needs[0]', message: 'The needs form a cycle: a → b → a (each needs the next).' },
    ]);
    expect(errors(yaml('steps:', '  - {key: a, command: a, needs: a}'))[0]).toMatchObject({
      line: 2,
      message: 'Step "a" cannot need itself.',
    });
  });

  it('duplicate keys: step keys, and keys of one mapping', () => {
    expect(errors(yaml('steps:', '  - key: build', '    command: a', '  - key: build', '    command: b'))).toEqual([
      { line: 4, column: 10, path: 'steps[1].key', message: 'Duplicate step key "build": the step on line 2 has it too.' },
    ]);
    expect(errors(yaml('steps:', '  - key: build', '    command: a', '    command: b'))).toEqual([
      { line: 4, column: 5, path: '', message: 'The key "command" appears twice in the same mapping.' },
    ]);
  });

  it('bad conditions: at the character of the condition', () => {
    expect(errors(yaml('steps:', '  - command: a', '    if: branch == "main" && tirgger == "api"'))).toEqual([
      {
        line: 3,
        column: 29,
        path: 'steps[0].if',
        message: 'Condition: unknown variable "tirgger"; use branch, commit, message, trigger, event (at character 21).',
      },
    ]);
    expect(errors(yaml('steps:', '  - command: a', "    if: 'branch =~ /[/'"))[0]).toMatchObject({ line: 3, column: 20 });
  });

  it('bad types and values', () => {
    expect(
      errors(
        yaml(
          'steps:',
          '  - command: make',
          '    timeout_in_minutes: soon',
          '    priority: urgent',
          '    retry: {max_attempts: 0}',
          '    agents: {pool: Linux}',
          '  - 42',
          '  - waitt',
        ),
      ),
    ).toEqual([
      {
        line: 3,
        column: 25,
        path: 'steps[0].timeout_in_minutes',
        message: 'steps[0].timeout_in_minutes must be a whole number.',
      },
      {
        line: 4,
        column: 15,
        path: 'steps[0].priority',
        message: 'steps[0].priority must be one of: CRITICAL, HIGH, NORMAL, LOW.',
      },
      { line: 5, column: 27, path: 'steps[0].retry.max_attempts', message: 'steps[0].retry.max_attempts must be >= 1.' },
      {
        line: 6,
        column: 20,
        path: 'steps[0].agents.pool',
        message: 'steps[0].agents.pool must be a pool name: lower-case letters, digits, . _ : - (up to 63).',
      },
      { line: 7, column: 5, path: 'steps[1]', message: 'steps[1] must be text or a mapping.' },
      {
        line: 8,
        column: 5,
        path: 'steps[2]',
        message: 'A step written as plain text must be `wait`; other steps are mappings (command:, block:, deploy:).',
      },
    ]);
  });

  it('unknown fields: on the field’s name, with a suggestion', () => {
    expect(errors(yaml('steps:', '  - command: make', '    depends_on: [x]', '    comand: y', '    pool: linux'))).toEqual([
      { line: 3, column: 5, path: 'steps[0].depends_on', message: '"depends_on" is not a field here. Did you mean "needs"?' },
      { line: 4, column: 5, path: 'steps[0].comand', message: '"comand" is not a field here. Did you mean "command"?' },
      { line: 5, column: 5, path: 'steps[0].pool', message: '"pool" is not a field here.' },
    ]);
    expect(errors(yaml('stepz: []'))).toEqual([
      { line: 1, column: 1, path: '', message: 'the pipeline needs the field "steps".' },
      { line: 1, column: 1, path: 'stepz', message: '"stepz" is not a field here. Did you mean "steps"?' },
    ]);
    expect(errors(yaml('steps:', '  - key: x', '    label: no kind'))[0]).toMatchObject({
      line: 2,
      message: 'A step needs one of command, commands, block, deploy or wait.',
    });
  });

  it('templates may read only steps among the step’s needs, and only real references', () => {
    expect(
      errors(
        yaml(
          'steps:',
          '  - {key: build, command: make}',
          '  - {key: other, command: x}',
          '  - deploy: {service: api, environment: prod, version: "${steps.other.outputs.v}"}',
          '    needs: build',
          '  - deploy: {service: api, environment: qa, version: "v${run.nope}"}',
        ),
      ),
    ).toEqual([
      {
        line: 4,
        column: 57,
        path: 'steps[2].deploy.version',
        message: '${steps.other.outputs.v} reads step "other", which is not among the steps "deploy-api-prod" needs.',
      },
      {
        line: 6,
        column: 56,
        path: 'steps[3].deploy.version',
        message:
          '${run.nope} names nothing: use run.id|number|branch|commit|message|trigger|event or steps.<key>.outputs.<name> (keys with "." cannot be read).',
      },
    ]);
    // Transitive needs count.
    ok(
      yaml(
        'steps:',
        '  - {key: a, command: a}',
        '  - {key: b, command: b, needs: a}',
        '  - deploy: {service: s, environment: e, version: "${steps.a.outputs.v}"}',
        '    needs: b',
      ),
    );
  });

  it('block fields: unique keys, options for selects only, defaults that fit', () => {
    const found = errors(
      yaml(
        'steps:',
        '  - block: Go?',
        '    fields:',
        '      - {key: a, type: select}',
        '      - {key: a, options: [x]}',
        '      - {key: b, type: select, options: [x, y], default: z}',
        '      - {key: c, type: boolean, default: "yes"}',
      ),
    );
    expect(found.map((e) => [e.line, e.message])).toEqual([
      [4, 'Field "a" is a select: give it options.'],
      [5, 'Two fields have the key "a".'],
      [5, 'Only select fields have options; "a" is text.'],
      [6, 'The default "z" is not one of the options.'],
      [7, 'The default of a boolean field must be true or false.'],
    ]);
  });

  it('fields that exclude each other, and concurrency without a group', () => {
    expect(
      errors(
        yaml(
          'steps:',
          '  - command: a',
          '    commands: [b]',
          '    timeout_seconds: 5',
          '    timeout_in_minutes: 1',
          '    concurrency: 2',
        ),
      ).map((e) => [e.line, e.message]),
    ).toEqual([[2, 'steps[0]: "concurrency" needs "concurrency_group" too.']]);
    expect(
      errors(yaml('steps:', '  - command: a', '    commands: [b]', '    timeout_seconds: 5', '    timeout_in_minutes: 1')).map(
        (e) => [e.line, e.message],
      ),
    ).toEqual([
      [3, 'Give either command or commands, not both.'],
      [4, 'Give either timeout_in_minutes or timeout_seconds, not both.'],
    ]);
  });

  it('YAML syntax errors, empty files and several documents', () => {
    expect(errors('steps: [\n')[0]).toMatchObject({ line: 2, column: 1, path: '', message: expect.stringMatching(/^YAML: /) });
    expect(errors('')).toEqual([{ line: 1, column: 1, path: '', message: 'The pipeline is empty: it needs `steps:`.' }]);
    expect(errors('steps:\n  - wait\n')).toEqual([
      { line: 2, column: 3, path: 'steps', message: 'The pipeline has no steps, only waits.' },
    ]);
    expect(errors('steps: []\n---\nsteps: []\n')[0]).toMatchObject({
      line: 2,
      message: expect.stringMatching(/one YAML document/),
    });
    expect(errors('steps:\n  - command: !custom make\n')[0]).toMatchObject({ line: 2, column: 14 });
    expect(errors('steps:\n  - command: "a\u0000b"\n')[0]).toMatchObject({
      line: 2,
      message: 'The pipeline contains a NUL character.',
    });
  });
});

describe('hostile input is refused, never expanded', () => {
  it('a billion laughs', () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    lines.push('steps: [*i]');
    expect(errors(yaml(...lines))).toEqual([
      {
        line: 1,
        column: 1,
        path: '',
        message: 'Too many alias expansions (more than 100): refused as a resource exhaustion attack.',
      },
    ]);
  });

  it('merge keys that multiply', () => {
    const lines = ['a: &a {x: 1}'];
    for (let i = 1; i < 12; i++) {
      const prev = String.fromCharCode(96 + i);
      lines.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} {<<: [${Array(10).fill(`*${prev}`).join(', ')}]}`,
      );
    }
    lines.push('steps: [wait]');
    expect(errors(yaml(...lines))[0]!.message).toMatch(/Too many alias expansions/);
  });

  it('deep nesting, a file over 1 MiB, more than 500 steps', () => {
    expect(errors(`steps: ${'['.repeat(100_000)}`)[0]).toMatchObject({ path: '' });
    expect(errors(`# ${'x'.repeat(1024 * 1024)}\nsteps: [wait]\n`)).toEqual([
      {
        line: 1,
        column: 1,
        path: '',
        message: 'The pipeline is larger than 1024 KiB; split it, or generate steps with a dynamic upload.',
      },
    ]);
    const many = yaml('steps:', ...Array.from({ length: 501 }, (_, i) => `  - {key: s${i}, command: x}`));
    expect(errors(many)).toEqual([{ line: 2, column: 3, path: 'steps', message: 'steps must NOT have more than 500 items.' }]);
    expect(
      ok(
        yaml(
          'steps:',
          ...Array.from({ length: 500 }, (_, i) => `  - {key: s${i}, command: x${i > 0 ? `, needs: s${i - 1}` : ''}}`),
        ),
      ).steps,
    ).toHaveLength(500);
  });
});
