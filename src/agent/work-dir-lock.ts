// One agent per work directory: a second agent started on the same directory would clear
// the first one's job directories at start and share its identity and outbox. The lock
// is a pid file; one left by an agent that died (SIGKILL, power loss) is taken over.
import { open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AgentSetupError } from './identity.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the work directory; answers how to give it back. */
export async function lockWorkDir(workDir: string): Promise<() => Promise<void>> {
  const file = path.join(workDir, 'agent.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => unlink(file).catch(() => {});
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new AgentSetupError(
          `another agent (pid ${holder}) uses the work directory ${workDir}; give each agent its own --work-dir (or delete ${file} if that process is not an agent)`,
        );
      }
      await unlink(file).catch(() => {}); // left by an agent that is gone
    }
  }
  throw new AgentSetupError(`cannot lock the work directory ${workDir}`);
}
