/** The backends the client-state tests run on (memory and local), with reopen for restart tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';

export interface StateBackend {
  name: string;
  create(): Promise<Backend>;
  /** The same storage as a new process would see it. */
  reopen(b: Backend): Promise<Backend>;
  destroy(b: Backend): Promise<void>;
}

const roots = new Map<Backend, string>();

export const STATE_BACKENDS: StateBackend[] = [
  {
    name: 'memory',
    create: async () => new MemoryBackend(),
    reopen: async (b) => b,
    destroy: async (b) => b.close(),
  },
  {
    name: 'local',
    create: async () => {
      const root = mkdtempSync(join(tmpdir(), 'portico-state-local-'));
      const b = await LocalBackend.open(root);
      roots.set(b, root);
      return b;
    },
    reopen: async (b) => {
      const again = await LocalBackend.open(roots.get(b)!);
      roots.set(again, roots.get(b)!);
      return again;
    },
    destroy: async (b) => {
      await b.close();
      const root = roots.get(b);
      if (root !== undefined) rmSync(root, { recursive: true, force: true });
    },
  },
];

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether a promise has settled within `ms` (it keeps running either way). */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await sleep(ms);
  return done;
}
