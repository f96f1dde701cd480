/** Runs the VFS conformance suite against every backend built so far. */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vfsConformance } from './vfs-conformance.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';

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

// S3 over a real s3rver on 127.0.0.1: one server for the file, one key prefix per test.
let s3rver: Promise<S3rverHandle> | undefined;
afterAll(async () => {
  if (s3rver !== undefined) await (await s3rver).stop();
});
const s3Prefixes = new Map<Backend, string>();
const s3Backend = async (prefix: string): Promise<S3Backend> => {
  const h = await (s3rver ??= startS3rver());
  const b = new S3Backend({ bucket: h.bucket, prefix, endpoint: h.endpoint, ...S3RVER_CREDENTIALS, blockSize: 64 * 1024 });
  s3Prefixes.set(b, prefix);
  return b;
};
vfsConformance({
  name: 's3 (s3rver)',
  create: () => s3Backend(`conformance-${randomBytes(6).toString('hex')}`),
  reopen: (b) => s3Backend(s3Prefixes.get(b)!),
  destroy: async (b) => {
    s3Prefixes.delete(b);
    await b.close();
  },
});
