/**
 * The whole VFS conformance suite with every share in async write-back mode, on memory:objectstore
 * and on S3 (s3rver): closes return after the local journal write and uploads run in the
 * background, so every scenario of the suite (reads after writes, renames, deletes, share modes,
 * locks, restarts with a new VFS on the same state dir...) also runs against pending uploads.
 *
 * The suite builds its VFS through test/helpers/vfs-env.ts, which has no write-back options; this
 * file (its own worker process) switches the mode on for every volume by wrapping
 * WriteBack.configure, with the journal next to the stage directory as the gateway lays it out
 * (<stateDir>/stage, <stateDir>/writeback).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { vfsConformance } from '../conformance/vfs-conformance.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { WriteBack } from '../../src/vfs/write-back.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';

const configure = WriteBack.prototype.configure;
WriteBack.prototype.configure = function (this: WriteBack, volume, opts) {
  const self = this as unknown as { dir: string | undefined; stageDir: string };
  self.dir ??= join(self.stageDir, '..', 'writeback');
  configure.call(this, volume, { ...opts, mode: 'async', retryBaseMs: 5, retryMaxMs: 20 });
};

vfsConformance({
  name: 'memory (object-store capabilities), async write-back',
  create: async () => new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }),
  reopen: async (b) => b,
  destroy: async (b) => b.close(),
});

let s3rver: Promise<S3rverHandle> | undefined;
afterAll(async () => {
  if (s3rver !== undefined) await (await s3rver).stop();
});
const prefixes = new Map<Backend, string>();
const s3Backend = async (prefix: string): Promise<S3Backend> => {
  const h = await (s3rver ??= startS3rver());
  const b = new S3Backend({ bucket: h.bucket, prefix, endpoint: h.endpoint, ...S3RVER_CREDENTIALS, blockSize: 64 * 1024 });
  prefixes.set(b, prefix);
  return b;
};
vfsConformance({
  name: 's3 (s3rver), async write-back',
  create: () => s3Backend(`wb-conformance-${randomBytes(6).toString('hex')}`),
  reopen: (b) => s3Backend(prefixes.get(b)!),
  destroy: async (b) => {
    prefixes.delete(b);
    await b.close();
  },
});
