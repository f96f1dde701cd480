/** Runs the VFS conformance suite against every backend built so far. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vfsConformance } from './vfs-conformance.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';

vfsConformance({
  name: 'memory',
  create: async () => new MemoryBackend(),
  // Memory lives in the process: the same instance is what a "restarted" VFS sees.
  reopen: async (b) => b,
  destroy: async (b) => b.close(),
});

vfsConformance({
  name: 'memory (object-store capabilities)',
  create: async () => new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }),
  reopen: async (b) => b,
  destroy: async (b) => b.close(),
});

const roots = new Map<Backend, string>();
vfsConformance({
  name: 'local',
  create: async () => {
    const root = mkdtempSync(join(tmpdir(), 'portico-local-'));
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
    rmSync(roots.get(b)!, { recursive: true, force: true });
  },
});
