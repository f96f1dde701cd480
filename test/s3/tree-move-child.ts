/**
 * Child process of s3-tree-move.test.ts: one Vfs over an S3 share, with its own state directory,
 * that renames a directory (a journaled tree move) and is SIGKILLed by the test halfway through.
 * Configuration: one JSON argument. Prints `renaming` before the rename starts.
 */
import { join } from 'node:path';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';

interface ChildConfig {
  stateDir: string;
  endpoint: string;
  bucket: string;
  prefix: string;
  accessKeyId: string;
  secretAccessKey: string;
  from: string;
  to: string;
  concurrency: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
const store = MetadataStore.open(cfg.stateDir);
const vfs = new Vfs({ store, stageDir: join(cfg.stateDir, 'stage'), treeMoves: { concurrency: cfg.concurrency } });
vfs.addVolume('s', buildVolumeStack(new S3Backend({
  bucket: cfg.bucket,
  prefix: cfg.prefix,
  endpoint: cfg.endpoint,
  accessKeyId: cfg.accessKeyId,
  secretAccessKey: cfg.secretAccessKey,
  retryBaseMs: 5,
  retryMaxMs: 50,
})));
await vfs.resumeTreeMoves();
process.stdout.write('renaming\n');
try {
  await vfs.rename('s', cfg.from, cfg.to);
  process.stdout.write('renamed\n');
} catch (e) {
  process.stdout.write(`failed ${(e as Error).message}\n`);
}
await vfs.shutdown();
store.close();
