/**
 * Maintenance of a shard set through the command line: `shard verify` passes a clean set and reports
 * (exit 1) a flipped byte in a payload, an index or a footer, naming the shard and the file or part;
 * `shard rm` hides files and directories from running readers; `shard repack` rebuilds shards whose
 * dead fraction passed the threshold, keeps every live file, keeps the old shards for readers of the
 * previous catalog until the grace period ends, then deletes them. With --metrics-file each writes
 * its counters, success and time as Prometheus text (a failed verify keeps the last success time).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCatalog } from '../../backends/shard/catalog.ts';
import { FOOTER_BYTES } from '../../backends/shard/format.ts';
import { pack } from '../../backends/shard/pack.ts';
import { ShardSetReader } from '../../backends/shard/set-reader.ts';
import { LocalShardStore } from '../../backends/shard/store.ts';
import { runCli } from '../cli/helpers.ts';
import { makeTree, type TreeFile } from './tree.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-maint-'));
const set = join(tmp, 'set');
let files: TreeFile[];

beforeAll(async () => {
  ({ files } = makeTree(join(tmp, 'src'), 400, { seed: 41, large: 1 }));
  await pack(join(tmp, 'src'), new LocalShardStore(set), { shardSize: 64 * 1024, workers: 0 });
}, 60_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const catalogOf = (dir: string) => parseCatalog(readFileSync(join(dir, 'catalog.json')));

/** The samples of a Prometheus text file: `name{labels}` → value. */
function samples(file: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const x = /^([a-z_]+)\{set="[^"]*"\} (\S+)$/.exec(line);
    if (x) m.set(x[1]!, Number(x[2]));
  }
  return m;
}

async function expectReadable(dir: string, want: TreeFile[], gone: Set<string>): Promise<void> {
  const reader = new ShardSetReader(new LocalShardStore(dir));
  for (const f of want) {
    const l = await reader.lookup(f.path);
    if (gone.has(f.path)) {
      expect(l, f.path).toBeUndefined();
      continue;
    }
    expect(l, f.path).toBeDefined();
    expect((await reader.read(l!, 0, f.data.length)).equals(f.data), f.path).toBe(true);
  }
}

describe('shard verify', () => {
  it('passes a clean set', async () => {
    const r = await runCli(['shard', 'verify', set, '--progress', 'none'], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${files.length} files .* verified, 0 problems`));
  });

  it('reports a flipped byte in a payload, an index and a footer (exit 1)', async () => {
    const reader = new ShardSetReader(new LocalShardStore(set));
    const victim = files.find((f) => f.data.length > 500 && !f.path.startsWith('/large'))!;
    const l = (await reader.lookup(victim.path))!;
    const cases: [string, (b: Buffer) => number, RegExp][] = [
      ['payload', () => l.entry.offset + 7, new RegExp(`CORRUPT ${l.shard.name} ${victim.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: shard payload of .*checksum mismatch|does not decode|decodes to`)],
      ['index', (b) => b.length - FOOTER_BYTES - 2, new RegExp(`CORRUPT ${l.shard.name}: shard index: checksum mismatch`)],
      ['footer', (b) => b.length - 20, new RegExp(`CORRUPT ${l.shard.name}: shard footer: checksum mismatch`)],
    ];
    for (const [what, at, expected] of cases) {
      const copy = join(tmp, `bad-${what}`);
      cpSync(set, copy, { recursive: true });
      const file = join(copy, 'shards', l.shard.name);
      const b = readFileSync(file);
      const pos = at(b);
      b.writeUInt8(b[pos]! ^ 0x20, pos);
      writeFileSync(file, b);
      const r = await runCli(['shard', 'verify', copy, '--progress', 'none'], { timeoutMs: 60_000 });
      expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stdout, what).toMatch(expected);
      expect(r.stdout, what).toMatch(/[1-9]\d* problems/);
    }
  });
});

describe('shard verify --metrics-file', () => {
  it('writes success, counters and times; a failed run keeps the last success time', async () => {
    const copy = join(tmp, 'metrics-set');
    cpSync(set, copy, { recursive: true });
    const mf = join(tmp, 'verify.prom');
    const ok = await runCli(['shard', 'verify', copy, '--progress', 'none', '--metrics-file', mf], { timeoutMs: 60_000 });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const good = samples(mf);
    expect(readFileSync(mf, 'utf8')).toContain(`portico_shard_verify_problems{set="${copy}"} 0`);
    expect(good.get('portico_shard_verify_last_run_success')).toBe(1);
    expect(good.get('portico_shard_verify_files')).toBe(files.length);
    expect(good.get('portico_shard_verify_bytes')).toBe(files.reduce((a, f) => a + f.data.length, 0));
    const t = good.get('portico_shard_verify_last_success_timestamp_seconds')!;
    expect(Math.abs(t - Date.now() / 1000)).toBeLessThan(120);
    expect(good.get('portico_shard_verify_last_run_duration_seconds')).toBeGreaterThan(0);
    // Damage: two payloads flipped.
    const reader = new ShardSetReader(new LocalShardStore(copy));
    const victims = files.filter((f) => f.data.length > 500 && !f.path.startsWith('/large')).slice(0, 2);
    for (const v of victims) {
      const l = (await reader.lookup(v.path))!;
      const file = join(copy, 'shards', l.shard.name);
      const b = readFileSync(file);
      b.writeUInt8(b[l.entry.offset + 3]! ^ 0x40, l.entry.offset + 3);
      writeFileSync(file, b);
    }
    const bad = await runCli(['shard', 'verify', copy, '--progress', 'none', '--metrics-file', mf], { timeoutMs: 60_000 });
    expect(bad.code).toBe(1);
    const after = samples(mf);
    expect(after.get('portico_shard_verify_last_run_success')).toBe(0);
    expect(after.get('portico_shard_verify_problems')).toBe(2);
    expect(after.get('portico_shard_verify_last_success_timestamp_seconds')).toBe(t);
    expect(after.get('portico_shard_verify_last_run_timestamp_seconds')).toBeGreaterThanOrEqual(t);
    // A run that cannot start at all (no set) is a failure too.
    const none = await runCli(['shard', 'verify', join(tmp, 'no-set'), '--progress', 'none', '--metrics-file', join(tmp, 'none.prom')]);
    expect(none.code).not.toBe(0);
    expect(samples(join(tmp, 'none.prom')).get('portico_shard_verify_last_run_success')).toBe(0);
  });
});

describe('shard rm and repack', () => {
  it('rm hides files and directories from a running reader', async () => {
    const live = new ShardSetReader(new LocalShardStore(set), { catalogCheckMs: 0 });
    const f = files.find((x) => x.data.length > 0 && x.path.split('/').length === 2)!;
    const dir = files.find((x) => x.path.split('/').length === 3)!.path.split('/').slice(0, 2).join('/');
    expect(await live.lookup(f.path)).toBeDefined();
    const r = await runCli(['shard', 'rm', set, f.path, dir, '--metrics-file', join(tmp, 'rm.prom')]);
    expect(r.code, r.stderr).toBe(0);
    expect(samples(join(tmp, 'rm.prom')).get('portico_shard_rm_removed_paths')).toBe(2);
    expect(await live.lookup(f.path)).toBeUndefined();
    expect(await live.lookup(dir)).toBeUndefined();
    expect((await live.children('/')).map((c) => c.name)).not.toContain(dir.slice(1));
    const missing = await runCli(['shard', 'rm', set, '/no-such-file']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not in the set/);
  });

  it('repack rebuilds dead shards, keeps live files, retires then deletes the old shards', async () => {
    const gone = new Set<string>();
    for (const t of catalogOf(set).tombstones) for (const f of files) if (f.path === t.path || f.path.startsWith(`${t.path}/`)) gone.add(f.path);
    const removed = files.filter((f, i) => i % 2 === 0 && !f.path.startsWith('/large') && !gone.has(f.path)).map((f) => f.path);
    const rm = await runCli(['shard', 'rm', set, ...removed]);
    expect(rm.code, rm.stderr).toBe(0);
    for (const p of removed) gone.add(p);
    const before = catalogOf(set);
    // A reader that loaded the old catalog keeps reading through the grace period.
    const old = new ShardSetReader(new LocalShardStore(set), { catalogCheckMs: Number.POSITIVE_INFINITY });
    const keep = files.find((f) => !gone.has(f.path) && f.data.length > 0)!;
    expect(await old.lookup(keep.path)).toBeDefined();
    const r = await runCli(['shard', 'repack', set, '--threshold', '0.3', '--grace', '3600', '--progress', 'none', '--metrics-file', join(tmp, 'repack.prom')], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const rp = samples(join(tmp, 'repack.prom'));
    expect(rp.get('portico_shard_repack_last_run_success')).toBe(1);
    expect(rp.get('portico_shard_repack_rebuilt_shards')).toBeGreaterThan(0);
    expect(rp.get('portico_shard_repack_reclaimed_bytes')).toBeGreaterThan(0);
    expect(rp.get('portico_shard_repack_deleted_shards')).toBe(0);
    expect(r.stdout).toMatch(/[1-9]\d* shards rebuilt into [1-9]\d*/);
    const after = catalogOf(set);
    expect(after.generation).toBe(before.generation + 1);
    expect(after.retired!.length).toBeGreaterThan(0);
    for (const x of after.retired!) expect(existsSync(join(set, 'shards', x.name))).toBe(true);
    expect(after.shards.reduce((a, s) => a + s.size, 0)).toBeLessThan(before.shards.reduce((a, s) => a + s.size, 0));
    await expectReadable(set, files, gone);
    const l = (await old.lookup(keep.path))!;
    expect((await old.read(l, 0, keep.data.length)).equals(keep.data)).toBe(true);
    const v = await runCli(['shard', 'verify', set, '--progress', 'none'], { timeoutMs: 60_000 });
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toMatch(/note: .* is not named by the catalog/);
    // Grace over: the next repack deletes them.
    const again = await runCli(['shard', 'repack', set, '--grace', '0', '--progress', 'none']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`${after.retired!.length} retired shards deleted`));
    for (const x of after.retired!) expect(existsSync(join(set, 'shards', x.name))).toBe(false);
    await expectReadable(set, files, gone);
  });
});
