/**
 * Packing FROM an S3 prefix (backends/shard/source.ts S3PrefixSource) on s3rver: the generated tree
 * (non-ASCII names, some keys in NFD with an NFC twin, empty objects, a 5 MiB object streamed as a
 * chunked payload) plus keys a tree on disk cannot have: "directory" marker objects (keys ending in
 * '/', one with nothing below it), odd characters, a key that is both a file and a prefix, keys
 * Portico cannot serve. Packed to a local set and to a set on s3rver; every file read back and
 * compared; an incremental re-pack after adding, changing and deleting objects (no HEAD and no GET
 * of unchanged objects: counted on the source's transport); a pack killed mid-run and resumed (to
 * a local set and to a set on s3rver);
 * objects replaced or deleted between the listing and their GET (ETag-pinned reads: skipped, the
 * previous version kept, taken by the next pack).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pack } from '../../backends/shard/pack.ts';
import { ShardSetReader } from '../../backends/shard/set-reader.ts';
import { S3PrefixSource } from '../../backends/shard/source.ts';
import { LocalShardStore, openShardStore, type ShardStore } from '../../backends/shard/store.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { BIN, NODE, cleanEnv, killQuietly, runCli } from '../cli/helpers.ts';
import { makeTree } from './tree.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-s3src-'));
let s3: S3rverHandle;
let client: S3Client;
const env = cleanEnv({ AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
const opts = (): Record<string, unknown> => ({ endpoint: s3.endpoint, accessKeyId: S3RVER_CREDENTIALS.accessKeyId, secretAccessKey: S3RVER_CREDENTIALS.secretAccessKey });

/** What the set must serve: share path -> bytes (files), and directories. */
interface Expected {
  files: Map<string, Buffer>;
  dirs: string[];
}

async function put(key: string, data: Buffer | string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: typeof data === 'string' ? Buffer.from(data) : data }));
}

async function putAll(items: [string, Buffer | string][]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < items.length) {
      const [k, d] = items[next++] as [string, Buffer];
      await put(k, d);
    }
  }));
}

/** Uploads a generated tree and the odd keys under `prefix`; returns what a set of it must hold. */
async function seed(prefix: string, seedN: number, count: number): Promise<Expected> {
  const root = join(tmp, `tree-${seedN}`);
  const tree = makeTree(root, count, { seed: seedN, large: 1 });
  const files = new Map<string, Buffer>();
  const items: [string, Buffer | string][] = [];
  for (const f of tree.files) {
    // The key is the name as written on disk (NFD for some); the twin's NFD key too (below).
    items.push([`${prefix}${f.disk.slice(1)}`, f.data]);
    files.set(f.path, f.data);
  }
  const twin = tree.files.find((f) => f.path.endsWith('twin-é'.normalize('NFC') + '.txt'))!;
  items.push([`${prefix}${twin.disk.slice(1, twin.disk.lastIndexOf('/') + 1)}${'twin-é.txt'.normalize('NFD')}`, 'the NFD one']);
  // Keys only an object store has.
  const odd: [string, string][] = [
    ['odd/sp ace+plus%25&amp;=?#[]~!$\'(),;@.txt', 'odd characters'],
    ['odd/emoji-😀-𝄞.txt', 'astral plane'],
    ['odd/empty-object', ''],
    ['odd/ünïcödé/ключ/キー.bin', 'nested non-ASCII'],
    ['conflict', 'a file that is also a prefix'],
    ['conflict/inside.txt', 'below the prefix'],
  ];
  for (const [k, d] of odd) {
    items.push([`${prefix}${k}`, d]);
    if (k !== 'conflict') files.set(`/${k.normalize('NFC')}`, Buffer.from(d));
  }
  // Markers: the tree's empty directory, and under /markers one with children, a nested empty one.
  items.push([`${prefix}empty-dir/`, ''], [`${prefix}markers/`, ''], [`${prefix}markers/empty/`, ''], [`${prefix}markers/full/`, ''], [`${prefix}markers/full/a.txt`, 'in full']);
  files.set('/markers/full/a.txt', Buffer.from('in full'));
  // Keys Portico cannot serve: skipped and reported (s3rver keeps objects as files, so it cannot
  // store "a//b"; the SDK sends "a/./b" as "a/b": the rule for empty and dot segments is not reached here).
  items.push([`${prefix}bad/back\\slash.txt`, 'x'], [`${prefix}bad/tab\there.txt`, 'x']);
  await putAll(items);
  const dirs = [...tree.dirs.filter((d) => d !== '/'), '/odd', '/odd/ünïcödé', '/odd/ünïcödé/ключ', '/conflict', '/markers', '/markers/empty', '/markers/full'];
  return { files, dirs };
}

async function expectSet(store: ShardStore, want: Expected, gone: string[] = []): Promise<void> {
  const reader = new ShardSetReader(store, { catalogCheckMs: 0 });
  let n = 0;
  for await (const l of reader.entries()) if (l.entry.type === 'file') n++;
  expect(n).toBe(want.files.size);
  for (const [path, data] of want.files) {
    const l = await reader.lookup(path);
    expect(l, path).toBeDefined();
    expect(l!.entry.type, path).toBe('file');
    const got = await reader.read(l!, 0, data.length + 10);
    expect(got.equals(data), path).toBe(true);
  }
  for (const d of want.dirs) expect((await reader.lookup(d))?.entry.type, d).toBe('dir');
  expect(await reader.children('/markers/empty')).toEqual([]);
  for (const p of gone) expect(await reader.lookup(p), p).toBeUndefined();
}

beforeAll(async () => {
  s3 = await startS3rver();
  client = s3.client();
});
afterAll(async () => {
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

it('packs an S3 prefix to a local set: every object reads back, markers are directories, unservable keys are reported', async () => {
  const want = await seed('src1/', 11, 300);
  const source = new S3PrefixSource(`s3://${s3.bucket}/src1`, opts(), { readAhead: 16 });
  // GETs in flight: many at once, never more than the read-ahead (16 whole reads; a large object's
  // ranged GETs come one at a time, while the writer waits for it).
  const t = source.s3.transport;
  const getRange = t.getRange.bind(t);
  let inFlight = 0;
  let most = 0;
  t.getRange = async (...a) => {
    most = Math.max(most, ++inFlight);
    try {
      return await getRange(...a);
    } finally {
      inFlight--;
    }
  };
  const warnings: string[] = [];
  try {
    const r = await pack(source, new LocalShardStore(join(tmp, 'set1')), { shardSize: 128 * 1024, workers: 1, warn: (m) => warnings.push(m) });
    expect(most).toBeGreaterThanOrEqual(8);
    expect(most).toBeLessThanOrEqual(17);
    expect(r.files).toBe(want.files.size);
    expect(r.shardsWritten).toBeGreaterThan(5);
    // The tree's NFD twin, the file "conflict" shadowed by its directory, and two bad keys.
    expect(r.skipped).toBe(4);
  } finally {
    await source.close();
  }
  const w = warnings.join('\n');
  expect(w).toMatch(/src1\/bad\/back\\slash\.txt: a name Portico cannot serve/);
  expect(w).toMatch(/src1\/bad\/tab\there\.txt: a name Portico cannot serve/);
  expect(w).toMatch(/src1\/conflict: a file of that name is also a directory/);
  expect(w).toMatch(/twin-e\u0301\.txt: its NFC spelling names another object/);
  const store = new LocalShardStore(join(tmp, 'set1'));
  await expectSet(store, want);
  // A prefix with no objects (a typo) is an error, not an empty source that would tombstone the set.
  const typo = new S3PrefixSource(`s3://${s3.bucket}/src1-typo`, opts());
  try {
    await expect(pack(typo, store, { workers: 0 })).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringMatching(/no objects under s3:\/\/portico-test\/src1-typo/) });
  } finally {
    await typo.close();
  }
  await expectSet(store, want);
  // The 5 MiB object went in as a chunked payload (streamed by ranged GETs).
  const large = await new ShardSetReader(store).lookup('/large-0.bin');
  expect(large?.entry).toMatchObject({ chunked: true, length: want.files.get('/large-0.bin')!.length });
  await store.close();
}, 180_000);

it('packs an S3 prefix to a set on s3rver from the command line; an update adds a generation without a HEAD or GET of unchanged objects', async () => {
  const want = await seed('src2/', 12, 200);
  const src = `s3://${s3.bucket}/src2`;
  // DEST inside the source prefix: left out of the walk, so the set never packs itself.
  const dest = `s3://${s3.bucket}/src2/.set`;
  const ep = ['--s3-endpoint', s3.endpoint];
  const same = await runCli(['shard', 'pack', src, `${src}/`, ...ep], { env, timeoutMs: 60_000 });
  expect(same.code).not.toBe(0);
  expect(same.stderr).toMatch(/DEST is the source prefix itself/);
  const p = await runCli(['shard', 'pack', src, dest, '--shard-size', '64KiB', '--workers', '1', '--read-concurrency', '8', '--progress', 'none', ...ep], { env, timeoutMs: 120_000 });
  expect(p.code, p.stderr).toBe(0);
  expect(p.stdout).toMatch(new RegExp(`generation 1: \\d+ shards written, ${want.files.size} files`));
  const store = await openShardStore(dest, opts());
  try {
    await expectSet(store, want);
  } finally {
    await store.close();
  }
  const again = await runCli(['shard', 'pack', src, dest, '--progress', 'none', ...ep], { env, timeoutMs: 120_000 });
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout).toMatch(/up to date/);
  expect(again.stderr).toMatch(/left out \d+ objects under s3:\/\/portico-test\/src2\/\.set\//);

  // Add, change (another size; LastModified has whole seconds), delete, delete a whole "directory".
  await new Promise((r) => setTimeout(r, 1100));
  const paths = [...want.files.keys()].filter((k) => k.startsWith('/f') || k.startsWith('/img') || k.startsWith('/doc'));
  const removed = paths.filter((_, i) => i % 7 === 1);
  const changed = paths.filter((_, i) => i % 7 === 2);
  for (const k of removed) {
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `src2${k}` }));
    want.files.delete(k);
  }
  for (const k of changed) {
    const d = Buffer.from(`changed ${k} ${'x'.repeat(want.files.get(k)!.length % 13 + 1)}`);
    await put(`src2${k}`, d);
    want.files.set(k, d);
  }
  await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'src2/markers/full/a.txt' }));
  await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'src2/markers/full/' }));
  want.files.delete('/markers/full/a.txt');
  want.dirs = want.dirs.filter((d) => d !== '/markers/full');
  await put('src2/added/новый файл.txt', 'added later');
  await put('src2/added/empty', '');
  want.files.set('/added/новый файл.txt', Buffer.from('added later'));
  want.files.set('/added/empty', Buffer.alloc(0));
  want.dirs.push('/added');

  // Through the API, counting the source's requests: one listing, GETs of the new and changed objects only.
  const source = new S3PrefixSource(src, opts(), { exclude: 'src2/.set/' });
  const calls = { head: 0, get: 0, list: 0 };
  const t = source.s3.transport;
  const [head, getRange, list] = [t.head.bind(t), t.getRange.bind(t), t.list.bind(t)];
  t.head = (...a) => (calls.head++, head(...a));
  t.getRange = (...a) => (calls.get++, getRange(...a));
  t.list = (...a) => (calls.list++, list(...a));
  const set = await openShardStore(dest, opts());
  try {
    const r = await pack(source, set, { shardSize: 64 * 1024, workers: 0 });
    expect(r.generation).toBe(2);
    expect(r.files).toBe(changed.length + 1 + 1);
    // The removed files, and /markers/full (its file is covered by the directory's tombstone).
    expect(r.tombstones).toBe(removed.length + 1);
    expect(calls.head).toBe(0);
    // The empty object is never fetched.
    expect(calls.get).toBe(changed.length + 1);
    expect(calls.list).toBe(1);
    await expectSet(set, want, [...removed, '/markers/full', '/markers/full/a.txt']);
  } finally {
    await source.close();
    await set.close();
  }
}, 240_000);

it('a pack from S3 killed mid-run resumes from its checkpoint, and reads back', async () => {
  const want = await seed('src3/', 13, 800);
  const set = join(tmp, 'set3');
  const args = ['shard', 'pack', `s3://${s3.bucket}/src3`, set, '--shard-size', '32KiB', '--workers', '1', '--progress', 'none', '--s3-endpoint', s3.endpoint];
  const child = spawn(NODE, [BIN, ...args], { env, stdio: 'ignore' });
  const cp = join(set, 'pack-checkpoint.json');
  const shardsDone = (): number => {
    try {
      return (JSON.parse(readFileSync(cp, 'utf8')) as { done: unknown[] }).done.length;
    } catch {
      return 0;
    }
  };
  try {
    for (let i = 0; i < 6000 && shardsDone() === 0 && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 5));
    expect(child.exitCode, 'the pack ended before a shard was done').toBeNull();
    expect(shardsDone()).toBeGreaterThan(0);
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect(child.signalCode).toBe('SIGKILL');
  } finally {
    killQuietly(child);
  }
  expect(existsSync(join(set, 'catalog.json'))).toBe(false);
  const r = await runCli(args, { env, timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/generation 1: \d+ shards written, [1-9]\d* resumed from the checkpoint/);
  expect(existsSync(cp)).toBe(false);
  const store = new LocalShardStore(set);
  await expectSet(store, want);
  await store.close();
  const v = await runCli(['shard', 'verify', set, '--progress', 'none'], { env, timeoutMs: 120_000 });
  expect(v.code, v.stdout + v.stderr).toBe(0);
}, 300_000);

it('objects replaced or deleted between the listing and their GET are skipped and reported; the set keeps the previous version, the next pack takes the new one', async () => {
  await putAll([['src4/keep.txt', 'kept'], ['src4/swap.txt', 'version 1'], ['src4/gone.txt', 'was here'], ['src4/big.bin', Buffer.alloc(5 * 1024 * 1024, 7)]]);
  const set = join(tmp, 'set4');
  const src = `s3://${s3.bucket}/src4`;
  const first = new S3PrefixSource(src, opts());
  try {
    expect((await pack(first, new LocalShardStore(set), { workers: 0 })).files).toBe(4);
  } finally {
    await first.close();
  }
  await new Promise((r) => setTimeout(r, 1100));
  await put('src4/swap.txt', 'version 2, longer');
  await put('src4/big.bin', Buffer.alloc(5 * 1024 * 1024, 8));
  await put('src4/new.txt', 'new, then deleted before its GET');
  // The store changes right after the walk listed it: the GETs are pinned to the listed ETags.
  class Racing extends S3PrefixSource {
    override async walk(warn: (m: string) => void): ReturnType<S3PrefixSource['walk']> {
      const r = await super.walk(warn);
      await put('src4/swap.txt', 'version 3, longer still');
      await put('src4/big.bin', Buffer.alloc(5 * 1024 * 1024, 9));
      await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'src4/new.txt' }));
      await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'src4/gone.txt' }));
      await put('src4/gone.txt', 'back again but not listed as such');
      await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'src4/gone.txt' }));
      return r;
    }
  }
  const racing = new Racing(src, opts());
  const warnings: string[] = [];
  try {
    const r = await pack(racing, new LocalShardStore(set), { workers: 0, warn: (m) => warnings.push(m) });
    // Listed as changed or new: swap.txt, big.bin, new.txt; gone.txt unchanged in the listing (never fetched).
    expect(r).toMatchObject({ generation: 2, files: 0, skipped: 3 });
  } finally {
    await racing.close();
  }
  expect(warnings.join('\n')).toMatch(/\/swap\.txt: it was replaced while packing/);
  expect(warnings.join('\n')).toMatch(/\/big\.bin: it was replaced while packing/);
  expect(warnings.join('\n')).toMatch(/\/new\.txt: it disappeared while packing/);
  const store = new LocalShardStore(set);
  const reader = new ShardSetReader(store, { catalogCheckMs: 0 });
  const text = async (p: string): Promise<string> => (await reader.read((await reader.lookup(p))!, 0, 100)).toString();
  expect(await text('/swap.txt')).toBe('version 1');
  expect((await reader.read((await reader.lookup('/big.bin'))!, 0, 10)).equals(Buffer.alloc(10, 7))).toBe(true);
  await store.close();

  const next = new S3PrefixSource(src, opts());
  try {
    const r = await pack(next, new LocalShardStore(set), { workers: 0 });
    expect(r).toMatchObject({ generation: 3, files: 2, tombstones: 1, skipped: 0 });
  } finally {
    await next.close();
  }
  const store2 = new LocalShardStore(set);
  const reader2 = new ShardSetReader(store2, { catalogCheckMs: 0 });
  expect((await reader2.read((await reader2.lookup('/swap.txt'))!, 0, 100)).toString()).toBe('version 3, longer still');
  const big = await reader2.lookup('/big.bin');
  expect((await reader2.read(big!, 0, 5 * 1024 * 1024)).equals(Buffer.alloc(5 * 1024 * 1024, 9))).toBe(true);
  expect(await reader2.lookup('/gone.txt')).toBeUndefined();
  expect(await reader2.lookup('/new.txt')).toBeUndefined();
  expect((await reader2.read((await reader2.lookup('/keep.txt'))!, 0, 100)).toString()).toBe('kept');
  await store2.close();
}, 180_000);

it('a pack from S3 to a set on S3 killed mid-run resumes from its checkpoint stored on S3, and reads back', async () => {
  const want = await seed('src5/', 14, 600);
  const prefix = 'sets/five/';
  const dest = `s3://${s3.bucket}/${prefix}`;
  // 48 KiB shards: one PutObject each (a kill mid multipart upload is test/shard/s3-interrupted.test.ts).
  const args = ['shard', 'pack', `s3://${s3.bucket}/src5`, dest, '--shard-size', '48KiB', '--workers', '1', '--progress', 'none', '--s3-endpoint', s3.endpoint];
  const child = spawn(NODE, [BIN, ...args], { env, stdio: 'ignore' });
  const shardsDone = async (): Promise<number> => {
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}pack-checkpoint.json` }));
      return (JSON.parse(await r.Body!.transformToString()) as { done: unknown[] }).done.length;
    } catch {
      return 0;
    }
  };
  try {
    for (let i = 0; i < 3000 && (await shardsDone()) < 2 && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(child.exitCode, 'the pack ended before two shards were done').toBeNull();
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect(child.signalCode).toBe('SIGKILL');
  } finally {
    killQuietly(child);
  }
  expect(await shardsDone()).toBeGreaterThanOrEqual(2);
  const r = await runCli(args, { env, timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  const resumed = /generation 1: \d+ shards written, (\d+) resumed from the checkpoint/.exec(r.stdout);
  expect(resumed, r.stdout).not.toBeNull();
  expect(Number(resumed![1])).toBeGreaterThanOrEqual(2);
  expect(await shardsDone()).toBe(0);
  const store = await openShardStore(dest, opts());
  try {
    await expectSet(store, want);
  } finally {
    await store.close();
  }
}, 300_000);
