import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findArtifacts, isSafePattern } from './artifacts.js';

let root: string;
let jobDir: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'cairn-artifacts-'));
  jobDir = path.join(root, 'jobs', 'job-1');
  await mkdir(path.join(jobDir, 'dist', 'sub'), { recursive: true });
  await mkdir(path.join(jobDir, '.cairn', 'tmp'), { recursive: true });
  await writeFile(path.join(root, 'agent.json'), '{"token":"cairn_agt_secret"}');
  await writeFile(path.join(jobDir, 'dist', 'app.js'), 'x');
  await writeFile(path.join(jobDir, 'dist', 'sub', 'app.js.map'), 'y');
  await writeFile(path.join(jobDir, 'dist', '.hidden'), 'z');
  await writeFile(path.join(jobDir, 'report.xml'), '<r/>');
  await writeFile(path.join(jobDir, '.cairn', 'script.sh'), 'echo');
  await symlink(path.join(root, 'agent.json'), path.join(jobDir, 'dist', 'token-link'));
  await symlink(path.join(jobDir, 'report.xml'), path.join(jobDir, 'dist', 'report-link.xml'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('artifact globs', () => {
  it('matches files under the job directory, directories expanded, dotfiles included, links not followed', async () => {
    expect(await findArtifacts(jobDir, ['dist', '*.xml'])).toEqual({
      files: ['dist/.hidden', 'dist/app.js', 'dist/sub/app.js.map', 'report.xml'],
      refused: [],
    });
    expect((await findArtifacts(jobDir, ['**/*.map'])).files).toEqual(['dist/sub/app.js.map']);
  });

  it('never reaches outside the job directory nor into the agent’s own files', async () => {
    expect(
      await findArtifacts(jobDir, ['../../agent.json', '/etc/passwd', '~/.ssh/id_rsa', 'dist/../../..//agent.json']),
    ).toEqual({
      files: [],
      refused: ['../../agent.json', '/etc/passwd', '~/.ssh/id_rsa', 'dist/../../..//agent.json'],
    });
    // A link pointing outside is skipped; the agent's script is not an artifact.
    const all = (await findArtifacts(jobDir, ['**'])).files;
    expect(all).not.toContain('dist/token-link');
    expect(all.some((f) => f.startsWith('.cairn'))).toBe(false);
    expect(isSafePattern('a/b/*.txt')).toBe(true);
  });

  it('answers nothing when nothing matches', async () => {
    expect(await findArtifacts(jobDir, ['coverage/**'])).toEqual({ files: [], refused: [] });
  });
});
