/**
 * The VFS conformance suite on stock s3rver 3.7 (the npm package run as its own process, none of
 * test/helpers/s3rver.ts's fixes; under --openssl-legacy-provider so its truncated listings work),
 * as a second S3 implementation beside the patched helper. The differences it shows, and how the
 * gateway copes with each, are in backends/s3/README.md ("S3-compatible stores: optional features
 * and differences").
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { vfsConformance } from '../conformance/vfs-conformance.ts';
import { S3RVER_CREDENTIALS } from '../helpers/s3rver.ts';
import { startStockS3rver, type StockS3rverHandle } from '../helpers/s3rver-stock.ts';

let stock: StockS3rverHandle;
beforeAll(async () => {
  stock = await startStockS3rver();
}, 30_000);
afterAll(async () => {
  await stock?.stop();
});

const prefixes = new Map<Backend, string>();
const backend = async (prefix: string): Promise<S3Backend> => {
  const b = new S3Backend({ bucket: stock.bucket, prefix, endpoint: stock.endpoint, ...S3RVER_CREDENTIALS, blockSize: 64 * 1024 });
  prefixes.set(b, prefix);
  return b;
};

vfsConformance({
  name: 's3 (stock s3rver 3.7, legacy OpenSSL provider)',
  create: () => backend(`conformance-${randomBytes(6).toString('hex')}`),
  reopen: (b) => backend(prefixes.get(b)!),
  destroy: async (b) => {
    prefixes.delete(b);
    await b.close();
  },
});
