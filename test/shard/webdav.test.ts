/**
 * Shard sets served by the real gateway and read with real clients: curl (one process fetching
 * every file over keep-alive) and raw HTTP for PROPFIND listings and refused writes. The same tree
 * is packed into a local set and into a set on s3rver, read through a counting proxy: after the
 * index of a shard is loaded, a small file's read is one ranged GET (and none when read again).
 * A corrupted shard answers an error, never the wrong bytes.
 *
 * The tree is the issue's: 10,000 small files (a ~30 MB tree at scale 0.25) in nested directories
 * (one chain 25 deep), empty files and an empty directory, non-ASCII names (Cyrillic, CJK, Hangul,
 * diacritics; some NFD on disk, served under their NFC spelling and found by either), 3 files of
 * 3-9 MiB. Every file is read back through the VFS (a session on the same set) and with curl from
 * the local set and from the set on s3rver.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../backends/index.ts';
import { pack } from '../../backends/shard/pack.ts';
import { ShardSetReader } from '../../backends/shard/set-reader.ts';
import { LocalShardStore, openShardStore } from '../../backends/shard/store.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { readFile as vfsReadFile } from '../conformance/vfs-conformance.ts';
import { makeVfsEnv } from '../helpers/vfs-env.ts';
import { dav, startDav, type DavStack } from '../webdav/helpers.ts';
import { DEEP, makeTree, type TreeFile } from './tree.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-dav-'));
let files: TreeFile[];
let dirs: string[];
let nfd: string[];
let packed: { files: number; skipped: number; warnings: string[] } = { files: 0, skipped: 0, warnings: [] };
let s3: S3rverHandle;
let proxy: FaultProxy;
let stack: DavStack;
/** The gateway's log (JSON lines). */
let logText = '';
const logSink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logText += chunk.toString('utf8');
    cb();
  },
});

const enc = (p: string): string => p.split('/').map(encodeURIComponent).join('/');

beforeAll(async () => {
  ({ files, dirs, nfd } = makeTree(join(tmp, 'src'), 10_000, { seed: 21, large: 3, scale: 0.25 }));
  const r = await pack(join(tmp, 'src'), new LocalShardStore(join(tmp, 'set')), { shardSize: 1024 * 1024, workers: 1, warn: (m) => packed.warnings.push(m) });
  packed = { ...packed, files: r.files, skipped: r.skipped };
  cpSync(join(tmp, 'set'), join(tmp, 'bad'), { recursive: true });
  s3 = await startS3rver();
  const store = await openShardStore(`s3://${s3.bucket}/set`, { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS });
  // Shards larger than one 4 MiB cache block: a gateway with a disk tier reads a shard's tail as
  // its last block(s) (store-s3.ts), so small files must also live outside them.
  await pack(join(tmp, 'src'), store, { shardSize: 24 * 1024 * 1024, workers: 1 });
  await store.close();
  proxy = await startFaultProxy(s3.endpoint);
  stack = await startDav({
    shares: [
      { name: 'shard', source: `shard+${pathToFileURL(join(tmp, 'set')).href}` },
      { name: 'bad', source: `shard+${pathToFileURL(join(tmp, 'bad')).href}` },
      { name: 's3shard', source: `shard+s3://${s3.bucket}/set`, options: { endpoint: proxy.endpoint, ...S3RVER_CREDENTIALS, catalogCheckMs: 600_000 } },
    ],
    log: logSink,
  });
  await stack.addUser(...ALICE);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  await proxy?.stop();
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** curl fetches every file of `share` in one process (keep-alive); returns the HTTP codes it saw. */
async function curlAll(share: string, out: string, list: TreeFile[] = files): Promise<string[]> {
  mkdirSync(out, { recursive: true });
  const cfg = list.map((f, i) => `url = "${stack.origin}/${share}${enc(f.path)}"\noutput = "${join(out, String(i))}"\n`).join('');
  const cfgFile = join(out, 'curl.cfg');
  writeFileSync(cfgFile, cfg);
  const child = spawn('curl', ['-sS', '-u', `${ALICE[0]}:${ALICE[1]}`, '-w', '%{http_code}\\n', '-K', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  expect(code, stderr).toBe(0);
  return stdout.trim().split('\n');
}

async function curlOne(url: string, out: string): Promise<{ exit: number | null; status: string; stderr: string }> {
  const child = spawn('curl', ['-sS', '-u', `${ALICE[0]}:${ALICE[1]}`, '-o', out, '-w', '%{http_code}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let status = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (status += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exit = await new Promise<number | null>((r) => child.once('close', r));
  return { exit, status, stderr };
}

function expectFetched(out: string, codes: string[], list: TreeFile[] = files): void {
  expect(codes.length).toBe(list.length);
  list.forEach((f, i) => {
    expect(codes[i], f.path).toBe('200');
    const got = readFileSync(join(out, String(i)));
    expect(got.equals(f.data), f.path).toBe(true);
  });
}

async function propfindNames(share: string, dir: string): Promise<Set<string>> {
  const r = await dav(stack, 'PROPFIND', `/${share}${enc(dir)}${dir === '/' ? '' : '/'}`, { auth: ALICE, headers: { Depth: '1' } });
  expect(r.status).toBe(207);
  const hrefs = [...r.text.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map((m) => decodeURIComponent(m[1] as string));
  const self = `/${share}${dir === '/' ? '/' : `${dir}/`}`;
  return new Set(hrefs.filter((h) => h !== self).map((h) => h.slice(self.length).replace(/\/$/, '')));
}

function wantNames(dir: string): Set<string> {
  const prefix = dir === '/' ? '/' : `${dir}/`;
  const want = new Set<string>();
  for (const p of [...files.map((f) => f.path), ...dirs]) if (p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) want.add(p.slice(prefix.length));
  return want;
}

describe('shard sets over WebDAV', () => {
  it('the tree has every kind the issue asks for, and the packer took it all but the NFD twin', () => {
    expect(files.length).toBeGreaterThanOrEqual(10_000);
    expect(files.filter((f) => f.data.length === 0).length).toBeGreaterThanOrEqual(100);
    expect(files.filter((f) => f.data.length > 2 * 1024 * 1024).length).toBe(3);
    expect(files.filter((f) => f.data.length > 4 * 1024 * 1024).length).toBe(2);
    expect(files.filter((f) => /[\u4e00-\u9fff]/.test(f.path)).length).toBeGreaterThan(100);
    expect(files.filter((f) => /[\uac00-\ud7af]/.test(f.path)).length).toBeGreaterThan(10);
    expect(nfd.filter((p) => p.normalize('NFD') !== p).length).toBeGreaterThan(50);
    expect(Math.max(...dirs.map((d) => d.split('/').length - 1))).toBe(DEEP + 1);
    expect(dirs.length).toBeGreaterThan(250);
    expect(packed.files).toBe(files.length);
    expect(packed.skipped).toBe(1);
    expect(packed.warnings).toEqual([expect.stringMatching(/twin-e\u0301\.txt: its NFC spelling names another file/)]);
  });

  it('every file reads back byte for byte through the VFS, NFD-spelled paths too', async () => {
    const backend = await createBackend(`shard+${pathToFileURL(join(tmp, 'set')).href}`, {});
    const env = makeVfsEnv(backend);
    try {
      const s = env.session();
      for (const f of files) expect((await vfsReadFile(s, f.path)).equals(f.data), f.path).toBe(true);
      for (const p of nfd) {
        const f = files.find((x) => x.path === p);
        if (f) expect((await vfsReadFile(s, p.normalize('NFD'))).equals(f.data), p).toBe(true);
        else expect((await s.getattr('s', p.normalize('NFD'))).type).toBe('dir');
      }
    } finally {
      await env.destroy();
      await backend.close();
    }
  }, 180_000);

  it('curl reads every file of a local set back byte for byte, NFD-spelled URLs too', async () => {
    const out = join(tmp, 'curl-local');
    expectFetched(out, await curlAll('shard', out));
    for (const p of nfd) {
      const f = files.find((x) => x.path === p);
      if (!f) continue;
      const r = await dav(stack, 'GET', `/shard${enc(p.normalize('NFD'))}`, { auth: ALICE });
      expect(r.status, p).toBe(200);
      expect(r.body.equals(f.data), p).toBe(true);
    }
  }, 180_000);

  it('PROPFIND lists every directory as the tree has it', async () => {
    for (const d of dirs) expect(await propfindNames('shard', d), d).toEqual(wantNames(d));
  }, 60_000);

  it('writes are refused: 403 with a body naming the read-only shard set', async () => {
    const f = files[1]!.path;
    for (const [m, p, h] of [
      ['PUT', '/shard/new.txt', {}], ['MKCOL', '/shard/newdir/', {}], ['DELETE', `/shard${enc(f)}`, {}],
      ['MOVE', `/shard${enc(f)}`, { Destination: `${stack.origin}/shard/moved` }], ['COPY', `/shard${enc(f)}`, { Destination: `${stack.origin}/shard/copied` }],
    ] as [string, string, Record<string, string>][]) {
      const r = await dav(stack, m, p, { auth: ALICE, headers: h, ...(m === 'PUT' ? { body: 'x' } : {}) });
      expect(r.status, `${m} ${p}`).toBe(403);
      expect(r.text, `${m} ${p}`).toMatch(/read-only shard set/);
    }
    // Nothing changed.
    expect((await dav(stack, 'GET', '/shard/new.txt', { auth: ALICE })).status).toBe(404);
    expect((await dav(stack, 'GET', `/shard${enc(f)}`, { auth: ALICE })).body.equals(files[1]!.data)).toBe(true);
  });

  it('a set on s3rver: curl reads every file back, PROPFIND lists', async () => {
    const out = join(tmp, 'curl-s3');
    // In path order, as a client copying the tree reads it: that is shard order, so reads go by
    // 128 KiB pages (random reads of single files are counted in the next test).
    const inOrder = [...files].sort((x, y) => Buffer.compare(Buffer.from(x.path), Buffer.from(y.path)));
    expectFetched(out, await curlAll('s3shard', out, inOrder), inOrder);
    for (const d of dirs.slice(0, 10)) expect(await propfindNames('s3shard', d), d).toEqual(wantNames(d));
  }, 180_000);

  it('counts the requests of small-file reads on a fresh gateway', async () => {
    // A second gateway on the same set: nothing cached in memory.
    const fresh = await startDav({ shares: [{ name: 's3shard', source: `shard+s3://${s3.bucket}/set`, options: { endpoint: proxy.endpoint, ...S3RVER_CREDENTIALS, catalogCheckMs: 600_000 } }] });
    try {
      await fresh.addUser(...ALICE);
      const reader = new ShardSetReader(await openShardStore(`s3://${s3.bucket}/set`, { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS }));
      // Two small files of one shard, over a page apart, before the blocks its tail read brings.
      const located = [];
      for await (const l of reader.entries()) if (l.entry.type === 'file' && l.entry.storedLength > 100 && l.entry.storedLength < 8192) located.push(l);
      const byShard = new Map<string, typeof located>();
      for (const l of located) byShard.set(l.shard.name, [...(byShard.get(l.shard.name) ?? []), l]);
      const page = (o: number): number => Math.floor(o / (128 * 1024));
      let pair: [typeof located[0], typeof located[0]] | undefined;
      const B = 4 * 1024 * 1024;
      for (const ls of byShard.values()) {
        const size = ls[0]!.shard.size;
        const last = Math.floor((size - 1) / B) * B;
        // Everything from here on arrives with the tail read.
        const tailPage = page(size - last >= 64 * 1024 || last === 0 ? last : last - B);
        const a = ls.find((l) => page(l.entry.offset) < tailPage);
        // Away from the end of a (a read within a page of the previous one goes by pages, a scan).
        const b = ls.find((l) => a !== undefined && Math.abs(l.entry.offset - (a.entry.offset + a.entry.storedLength)) >= 128 * 1024 && page(l.entry.offset) < tailPage);
        if (a && b) {
          pair = [a, b];
          break;
        }
      }
      expect(pair).toBeDefined();
      await reader.store.close();
      const [a, b] = pair!;
      const want = (p: string): Buffer => files.find((f) => f.path === p)!.data;
      // First read: the catalog and the shard's index (its tail) come in, then the payload.
      const r1 = await dav(fresh, 'GET', `/s3shard${enc(a.entry.path)}`, { auth: ALICE });
      expect(r1.body.equals(want(a.entry.path))).toBe(true);
      proxy.log.length = 0;
      const r2 = await dav(fresh, 'GET', `/s3shard${enc(b.entry.path)}`, { auth: ALICE });
      expect(r2.status).toBe(200);
      expect(r2.body.equals(want(b.entry.path))).toBe(true);
      const gets = proxy.log.filter((e) => e.op === 'GetObject');
      expect(proxy.log.map((e) => `${e.op} ${e.range ?? ''}`)).toEqual([`GetObject ${gets[0]?.range ?? ''}`]);
      // Exactly the file's payload (store-s3.ts: a small file away from the previous read).
      expect(gets[0]!.range).toBe(`bytes=${b.entry.offset}-${b.entry.offset + b.entry.storedLength - 1}`);
      proxy.log.length = 0;
      const r3 = await dav(fresh, 'GET', `/s3shard${enc(b.entry.path)}`, { auth: ALICE });
      expect(r3.body.equals(want(b.entry.path))).toBe(true);
      expect(proxy.log.length).toBe(0);
      // A scan in shard order (each file next to the previous one) goes by 128 KiB pages: far fewer
      // GETs than files.
      const run = byShard.get(b.shard.name)!.filter((l) => l.entry.offset > b.entry.offset + 256 * 1024).sort((x, y) => x.entry.offset - y.entry.offset).slice(0, 20);
      expect(run.length).toBe(20);
      proxy.log.length = 0;
      for (const l of run) expect((await dav(fresh, 'GET', `/s3shard${enc(l.entry.path)}`, { auth: ALICE })).body.equals(want(l.entry.path))).toBe(true);
      const span = run.at(-1)!.entry.offset + run.at(-1)!.entry.storedLength - run[0]!.entry.offset;
      // The first file alone (it is away from the previous read), then the pages the run spans.
      expect(proxy.count('GetObject')).toBeLessThanOrEqual(1 + Math.ceil(span / (128 * 1024)) + 1);
      expect(proxy.count('GetObject')).toBeLessThan(run.length / 2);
    } finally {
      await fresh.stop();
    }
  }, 60_000);

  it('a corrupted shard answers an error, never other bytes', async () => {
    const reader = new ShardSetReader(new LocalShardStore(join(tmp, 'bad')));
    const victim = files.find((f) => f.data.length > 1000 && f.path.endsWith('.txt'))!;
    const l = (await reader.lookup(victim.path))!;
    const shardFile = join(tmp, 'bad', 'shards', l.shard.name);
    const bytes = readFileSync(shardFile);
    const at = l.entry.offset + Math.floor(l.entry.storedLength / 2);
    bytes.writeUInt8(bytes[at]! ^ 0x10, at);
    writeFileSync(shardFile, bytes);
    // curl either gets an error status or sees the response cut short (the gateway may have sent
    // its headers before the read failed: it then drops the connection, so the client knows).
    const out = join(tmp, 'bad-get');
    const got = await curlOne(`${stack.origin}/bad${enc(victim.path)}`, out);
    expect(got.exit !== 0 || Number(got.status) >= 500, JSON.stringify(got)).toBe(true);
    const body = existsSync(out) ? readFileSync(out) : Buffer.alloc(0);
    expect(body.equals(victim.data)).toBe(false);
    expect(body.includes(victim.data.subarray(0, 64))).toBe(false);
    // And the gateway logged it, naming the shard and the file.
    const line = logText.split('\n').find((l) => l.includes('shard set integrity failure') && l.includes(JSON.stringify(victim.path).slice(1, -1)));
    expect(line, 'no integrity log line').toBeDefined();
    expect(line).toContain(l.shard.name);
    // Index corruption: a reader that loads that index fails cleanly (EIO naming the part) for the
    // shard's files; files of other shards still read.
    const tailFlip = Buffer.from(bytes);
    tailFlip.writeUInt8(tailFlip[tailFlip.length - 60]! ^ 0x01, tailFlip.length - 60);
    writeFileSync(shardFile, tailFlip);
    const cold = new ShardSetReader(new LocalShardStore(join(tmp, 'bad')));
    await expect(cold.lookup(victim.path)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/corrupt shard .*index: checksum mismatch/) });
    const other = files.find((f) => f.data.length > 0 && f.path > l.shard.last)!;
    const lo = (await cold.lookup(other.path))!;
    expect((await cold.read(lo, 0, other.data.length)).equals(other.data)).toBe(true);
  });
});
