/**
 * A shard set on s3rver served by a gateway with the S3 disk tier: after a restart (same state
 * directory, nothing in memory) a file of an already-read shard is served without any request for
 * that shard - its tail (footer and index) and its blocks come from the disk tier; only the catalog
 * is read again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { pack } from '../../backends/shard/pack.ts';
import { ShardSetReader } from '../../backends/shard/set-reader.ts';
import { openShardStore } from '../../backends/shard/store.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { dav, startDav, type DavStack } from '../webdav/helpers.ts';
import { makeTree } from './tree.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-restart-'));
let s3: S3rverHandle | undefined;
let proxy: FaultProxy | undefined;
let stack: DavStack | undefined;
afterAll(async () => {
  await stack?.stop();
  await proxy?.stop();
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

it('after a restart, reads of a known shard come from the disk tier: no request for its index or data', async () => {
  const { files } = makeTree(join(tmp, 'src'), 300, { seed: 61 });
  s3 = await startS3rver();
  const opts = { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS };
  const store = await openShardStore(`s3://${s3.bucket}/set`, opts);
  await pack(join(tmp, 'src'), store, { shardSize: 2 * 1024 * 1024, workers: 0 });
  const reader = new ShardSetReader(store);
  const located = [];
  for await (const l of reader.entries()) if (l.entry.type === 'file' && l.entry.length > 0) located.push(l);
  await store.close();
  const shard = located[0]!.shard.name;
  const [a, b] = located.filter((l) => l.shard.name === shard);
  expect(b).toBeDefined();
  proxy = await startFaultProxy(s3.endpoint);
  const share = { name: 's3shard', source: `shard+s3://${s3.bucket}/set`, options: { endpoint: proxy.endpoint, ...S3RVER_CREDENTIALS } };
  const dir = join(tmp, 'gw');
  const enc = (p: string): string => p.split('/').map(encodeURIComponent).join('/');
  const want = (p: string): Buffer => files.find((f) => f.path === p)!.data;

  stack = await startDav({ tmp: dir, shares: [share] });
  await stack.addUser(...ALICE);
  expect((await dav(stack, 'GET', `/s3shard${enc(a!.entry.path)}`, { auth: ALICE })).body.equals(want(a!.entry.path))).toBe(true);
  expect(proxy.log.some((e) => e.url.includes(`/shards/${shard}`))).toBe(true);
  await stack.stop({ keep: true });

  proxy.log.length = 0;
  stack = await startDav({ tmp: dir, shares: [share] });
  const r = await dav(stack, 'GET', `/s3shard${enc(b!.entry.path)}`, { auth: ALICE });
  expect(r.status).toBe(200);
  expect(r.body.equals(want(b!.entry.path))).toBe(true);
  const shardRequests = proxy.log.filter((e) => e.url.includes('/shards/'));
  expect(shardRequests.map((e) => `${e.op} ${e.url} ${e.range ?? ''}`)).toEqual([]);
  expect(proxy.log.every((e) => e.url.includes('catalog.json'))).toBe(true);
}, 120_000);
