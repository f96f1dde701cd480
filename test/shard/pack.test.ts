/**
 * The packer (backends/shard/pack.ts, `portico shard pack`): a generated tree packed with worker
 * threads reads back byte for byte through the set reader; an update adds a generation with new and
 * changed files and tombstones; an interrupted pack (the process killed) resumes from its checkpoint.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repack } from '../../backends/shard/maintenance.ts';
import { pack } from '../../backends/shard/pack.ts';
import { ShardSetReader } from '../../backends/shard/set-reader.ts';
import { LocalShardStore } from '../../backends/shard/store.ts';
import { BIN, NODE, cleanEnv, runCli } from '../cli/helpers.ts';
import { makeTree, type TreeFile } from './tree.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-pack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function expectSet(dir: string, files: TreeFile[], gone: string[] = []): Promise<ShardSetReader> {
  const reader = new ShardSetReader(new LocalShardStore(dir), { catalogCheckMs: 0 });
  for (const f of files) {
    const l = await reader.lookup(f.path);
    expect(l, f.path).toBeDefined();
    const got = await reader.read(l!, 0, f.data.length + 10);
    expect(got.equals(f.data), f.path).toBe(true);
  }
  for (const p of gone) expect(await reader.lookup(p), p).toBeUndefined();
  let n = 0;
  for await (const l of reader.entries()) if (l.entry.type === 'file') n++;
  expect(n).toBe(files.length);
  return reader;
}

describe('shard pack', () => {
  it('packs a tree with worker threads and every file reads back', async () => {
    const src = join(tmp, 'src1');
    const { files, dirs } = makeTree(src, 600, { seed: 3, large: 1 });
    const set = join(tmp, 'set1');
    const lines: string[] = [];
    const r = await pack(src, new LocalShardStore(set), { shardSize: 256 * 1024, workers: 2, progress: 'plain', progressIntervalMs: 0, progressOut: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream });
    expect(r.files).toBe(files.length);
    expect(r.shardsWritten).toBeGreaterThan(10);
    expect(r.storedBytes).toBeLessThan(r.bytes);
    expect(lines.some((l) => /files, .* MiB\/s, .*ETA/.test(l))).toBe(true);
    const reader = await expectSet(set, files);
    for (const d of dirs.filter((x) => x !== '/')) expect((await reader.lookup(d))?.entry.type, d).toBe('dir');
    expect((await reader.children('/empty-dir')).length).toBe(0);
    // Every codec was exercised by `auto` where it fits: text compressed, jpg and random bytes stored.
    const codecs = new Set<string>();
    for await (const l of reader.entries()) codecs.add(l.entry.codec);
    expect(codecs).toEqual(new Set(['none', 'zstd']));
    // The large file was streamed as a chunked payload (a CRC per 1 MiB chunk).
    const large = await reader.lookup('/large-0.bin');
    expect(large?.entry).toMatchObject({ chunked: true, codec: 'none', length: files.find((f) => f.path === '/large-0.bin')!.data.length });
  });

  it('an update adds a generation: new and changed files, tombstones for what is gone', async () => {
    const src = join(tmp, 'src2');
    const { files } = makeTree(src, 200, { seed: 4 });
    const set = join(tmp, 'set2');
    await pack(src, new LocalShardStore(set), { shardSize: 64 * 1024, workers: 0 });
    const removed = files.filter((_, i) => i % 7 === 1);
    for (const f of removed) unlinkSync(join(src, f.disk));
    const changed = files.filter((_, i) => i % 7 === 2).map((f) => ({ path: f.path, disk: f.disk, data: Buffer.from(`changed ${f.path}`) }));
    for (const f of changed) writeFileSync(join(src, f.disk), f.data);
    const added = [{ path: '/added-ü.txt', disk: '/added-ü.txt', data: Buffer.from('new file') }];
    writeFileSync(join(src, added[0]!.path), added[0]!.data);
    const r = await pack(src, new LocalShardStore(set), { shardSize: 64 * 1024, workers: 1, codec: 'lz4' });
    expect(r.generation).toBe(2);
    expect(r.tombstones).toBe(removed.length);
    expect(r.files).toBe(changed.length + added.length);
    const keep = new Map(files.map((f) => [f.path, f]));
    for (const f of removed) keep.delete(f.path);
    for (const f of [...changed, ...added]) keep.set(f.path, f);
    await expectSet(set, [...keep.values()], removed.map((f) => f.path));
    const again = await pack(src, new LocalShardStore(set), { workers: 0 });
    expect(again.upToDate).toBe(true);
  });

  it('an interrupted pack resumes from its checkpoint (CLI, process killed)', async () => {
    const src = join(tmp, 'src3');
    const { files } = makeTree(src, 1500, { seed: 5 });
    const set = join(tmp, 'set3');
    const child = spawn(NODE, [BIN, 'shard', 'pack', src, set, '--shard-size', '32KiB', '--workers', '1', '--progress', 'none'], { env: cleanEnv(), stdio: 'ignore' });
    const cp = join(set, 'pack-checkpoint.json');
    // The checkpoint exists from the first shard's start (it names the temporary file): wait for a shard done.
    const shardsDone = (): number => {
      try {
        return (JSON.parse(readFileSync(cp, 'utf8')) as { done: unknown[] }).done.length;
      } catch {
        return 0;
      }
    };
    for (let i = 0; i < 2000 && shardsDone() === 0 && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 5));
    expect(shardsDone()).toBeGreaterThan(0);
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect(existsSync(join(set, 'catalog.json'))).toBe(false);
    const r = await runCli(['shard', 'pack', src, set, '--shard-size', '32KiB', '--progress', 'plain'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/generation 1: \d+ shards written, [1-9]\d* resumed from the checkpoint/);
    expect(r.stderr).toMatch(/pack: \d+\/\d+ files/);
    expect(existsSync(cp)).toBe(false);
    // The killed run's temporary shard file (named by its checkpoint) is gone too.
    expect(readdirSync(join(set, 'shards')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await expectSet(set, files);
    const ls = await runCli(['shard', 'ls', set, '/empty-dir']);
    expect(ls.code).toBe(0);
    expect(ls.stdout.trim()).toBe('TYPE  SIZE  NAME  SHARD');
  });

  it('a shard\'s temporary file is named by the checkpoint before it exists, so a kill at any moment leaves none unnamed', async () => {
    const src = join(tmp, 'src5');
    makeTree(src, 300, { seed: 7 });
    const set = join(tmp, 'set5');
    const seen: Array<{ tmp: string[]; named: string | undefined }> = [];
    // What a process killed right after each create would leave: the temporary files, and what the checkpoint names.
    class Watching extends LocalShardStore {
      override async createShard(...args: Parameters<LocalShardStore['createShard']>): ReturnType<LocalShardStore['createShard']> {
        const out = await super.createShard(...args);
        let named: string | undefined;
        try {
          named = (JSON.parse(readFileSync(join(set, 'pack-checkpoint.json'), 'utf8')) as { partial?: { id: string } }).partial?.id;
        } catch {
          named = undefined;
        }
        seen.push({ tmp: readdirSync(join(set, 'shards')).filter((n) => n.endsWith('.tmp')), named });
        return out;
      }
    }
    await pack(src, new Watching(set), { workers: 0, shardSize: 32 * 1024 });
    expect(seen.length).toBeGreaterThan(2);
    for (const s of seen) expect(s.tmp).toEqual([s.named]);
  });

  it('unfinished shard files no checkpoint names: older than the age discarded by pack, younger ones kept and reported, then discarded by repack with age 0', async () => {
    const src = join(tmp, 'src4');
    makeTree(src, 50, { seed: 6 });
    const set = join(tmp, 'set4');
    await pack(src, new LocalShardStore(set), { workers: 0 });
    const old = join(set, 'shards', '.g000002-000001.shard.4242.tmp');
    const young = join(set, 'shards', '.g000002-000002.shard.4243.tmp');
    writeFileSync(old, Buffer.alloc(4096));
    writeFileSync(young, Buffer.alloc(4096));
    utimesSync(old, new Date(Date.now() - 25 * 3600_000), new Date(Date.now() - 25 * 3600_000));
    writeFileSync(join(src, 'new.txt'), 'new');
    const warnings: string[] = [];
    const r = await pack(src, new LocalShardStore(set), { workers: 0, warn: (m) => warnings.push(m) });
    expect(r).toMatchObject({ generation: 2, files: 1, partialsDiscarded: 1, partialsKept: 1 });
    expect(existsSync(old)).toBe(false);
    expect(existsSync(young)).toBe(true);
    expect(warnings.join('\n')).toMatch(/1 unfinished shard upload under .* \(g000002-000002\.shard started .*\) younger than 24 h left alone/);
    const rp = await repack(new LocalShardStore(set), { abortPartialsOlderThanMs: 0 });
    expect(rp.partialsDiscarded).toBe(1);
    expect(readdirSync(join(set, 'shards')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
