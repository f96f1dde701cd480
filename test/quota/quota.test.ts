/**
 * Per-share quotas (issue 9, "Lookup and space") on memory, local and S3 (s3rver): bytes and files
 * limits answer EDQUOT before anything is visible, usage follows creates, writes, truncates,
 * deletes and renames over files, statfs through the session reports the quota, the counter
 * survives a restart (a clean one without a scan, an unclean one by a scan), and a scan running
 * while Portico changes the share still ends with the exact usage.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import { SessionManager } from '../../src/session/session-manager.ts';
import type { Session } from '../../src/session/session.ts';
import type { QuotaOptions } from '../../src/vfs/quota.ts';
import { alice, noPasswords } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from '../conformance/vfs-conformance.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';

const RW = { read: true, write: true, delete: false };

interface Env {
  vfs: Vfs;
  s: Session;
  stateDir: string;
  /** Clean stop: sessions, handles, quota counters saved (the backend stays open for a restart). */
  stop(): Promise<void>;
  /** A crash: the store closes without the VFS's shutdown. */
  crash(): Promise<void>;
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function start(backend: Backend, quota: QuotaOptions, stateDir = tmp('portico-quota-state-')): Promise<Env> {
  const store = MetadataStore.open(stateDir);
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage') });
  const v = vfs.addVolume('s', buildVolumeStack(backend), { quota });
  await v.quota!.ready;
  const sessions = new SessionManager({ vfs, shares: [{ name: 's' }], authenticator: noPasswords });
  const s = sessions.openSession({ principal: alice, protocol: 'test', clientAddress: '127.0.0.1' });
  let done = false;
  const stop = async (clean: boolean): Promise<void> => {
    if (done) return;
    done = true;
    await sessions.closeAll();
    for (const h of vfs.openHandles()) await vfs.close(h).catch(() => undefined);
    vfs.locks.close();
    if (clean) await v.quota!.close();
    store.close();
  };
  cleanup.push(() => stop(true));
  return { vfs, s, stateDir, stop: () => stop(true), crash: () => stop(false) };
}

async function used(s: Session): Promise<{ bytes: number; files: number; st: Awaited<ReturnType<Session['statfs']>> }> {
  const st = await s.statfs('s');
  return { bytes: st.totalBytes - st.freeBytes, files: st.totalFiles - st.freeFiles, st };
}

async function put(s: Session, path: string, data: Buffer, sizeHint?: number): Promise<void> {
  const w = await s.replaceContent('s', path, sizeHint === undefined ? {} : { sizeHint });
  try {
    for (let off = 0; off < data.length; off += 4096) await w.write(data.subarray(off, off + 4096));
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}

async function exists(s: Session, path: string): Promise<boolean> {
  try {
    await s.getattr('s', path);
    return true;
  } catch {
    return false;
  }
}

let s3rver: Promise<S3rverHandle> | undefined;
afterAll(async () => {
  if (s3rver !== undefined) await (await s3rver).stop();
});

interface Kind {
  name: string;
  /** A backend over the same storage each call with the same `where` (a restart). */
  make(where?: string): Promise<{ backend: Backend; where: string; outside?: (name: string, size: number) => void }>;
}

const kinds: Kind[] = [
  {
    name: 'memory',
    make: async () => ({ backend: new MemoryBackend(), where: '' }),
  },
  {
    name: 'memory (object store)',
    make: async () => ({ backend: new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }), where: '' }),
  },
  {
    name: 'local',
    make: async (where) => {
      const root = where ?? tmp('portico-quota-');
      return { backend: new LocalBackend(root), where: root, outside: (name, size) => writeFileSync(join(root, name), Buffer.alloc(size)) };
    },
  },
  {
    name: 's3 (s3rver)',
    make: async (where) => {
      const h = await (s3rver ??= startS3rver());
      const prefix = where ?? `quota-${randomBytes(6).toString('hex')}`;
      const b = new S3Backend({ bucket: h.bucket, prefix, endpoint: h.endpoint, ...S3RVER_CREDENTIALS, blockSize: 64 * 1024 });
      cleanup.push(() => b.close());
      return { backend: b, where: prefix };
    },
  },
];

describe.each(kinds)('quota on $name', (kind) => {
  it('bytes: writes past the limit fail with EDQUOT, nothing partial shows, deletes give room back', async () => {
    const { backend } = await kind.make();
    const { s } = await start(backend, { bytes: 10_000 });
    expect((await used(s)).st.totalBytes).toBe(10_000);
    await writeFile(s, '/a.bin', Buffer.alloc(6000, 1));
    expect((await used(s)).bytes).toBe(6000);
    // A handle write that would pass the limit fails before its bytes land.
    const h = await s.open('s', '/b.bin', { access: RW, disposition: 'create', owner: 'o' });
    await s.write(h, 0, Buffer.alloc(3000, 2));
    await expectCode(s.write(h, 3000, Buffer.alloc(2000, 2)), 'EDQUOT');
    // Rewriting in place grows nothing: allowed.
    await s.write(h, 0, Buffer.alloc(3000, 3));
    await s.close(h);
    expect((await s.getattr('s', '/b.bin')).size).toBe(3000);
    expect((await used(s)).bytes).toBe(9000);
    // A whole-content replace over quota fails whole: the old content stays, a new name never shows.
    await expectCode(put(s, '/a.bin', Buffer.alloc(8000, 4)), 'EDQUOT');
    expect((await readFile(s, '/a.bin')).equals(Buffer.alloc(6000, 1))).toBe(true);
    await expectCode(put(s, '/c.bin', Buffer.alloc(2000, 5)), 'EDQUOT');
    expect(await exists(s, '/c.bin')).toBe(false);
    // Refused at once from its declared size, before any byte.
    await expectCode(s.replaceContent('s', '/c.bin', { sizeHint: 5000 }), 'EDQUOT');
    // A replace that fits (7000 - 6000 = 1000 more) is fine; then a truncate up over quota is not.
    await put(s, '/a.bin', Buffer.alloc(7000, 6));
    expect((await used(s)).bytes).toBe(10_000);
    await expectCode(s.setattr('s', '/a.bin', { size: 7001 }), 'EDQUOT');
    await s.setattr('s', '/a.bin', { size: 1000 });
    expect((await used(s)).bytes).toBe(4000);
    await s.unlink('s', '/b.bin');
    expect((await used(s)).bytes).toBe(1000);
    await put(s, '/c.bin', Buffer.alloc(9000, 7));
    expect((await used(s)).bytes).toBe(10_000);
    const st = (await used(s)).st;
    expect(st.freeBytes).toBe(0);
    expect(st.availableBytes).toBe(0);
    // A copy that does not fit is refused for that file.
    const errs = await s.copy('s', '/c.bin', '/d.bin');
    expect(errs.map((e) => e.error.code)).toEqual(['EDQUOT']);
    expect(await exists(s, '/d.bin')).toBe(false);
  });

  it('files: creates past the limit fail with EDQUOT (files, directories), deletes give room back', async () => {
    const { backend } = await kind.make();
    const { s } = await start(backend, { files: 3 });
    await s.mkdir('s', '/dir');
    await writeFile(s, '/dir/one', 'x');
    await writeFile(s, '/two', 'y');
    const u = await used(s);
    expect(u.files).toBe(3);
    expect(u.st.totalFiles).toBe(3);
    expect(u.st.freeFiles).toBe(0);
    await expectCode(writeFile(s, '/three', 'z'), 'EDQUOT');
    await expectCode(s.mkdir('s', '/dir2'), 'EDQUOT');
    await expectCode(put(s, '/three', Buffer.from('z')), 'EDQUOT');
    expect(await exists(s, '/three')).toBe(false);
    // Overwriting an existing file creates no name.
    await writeFile(s, '/two', 'yy');
    await s.unlink('s', '/two');
    expect((await used(s)).files).toBe(2);
    await writeFile(s, '/three', 'z');
    await s.removeTree('s', '/dir');
    expect((await used(s)).files).toBe(1);
  });

  it('a rename over an existing file takes off the replaced size; a plain rename changes nothing', async () => {
    const { backend } = await kind.make();
    const { s } = await start(backend, { bytes: 100_000, files: 100 });
    await writeFile(s, '/a', Buffer.alloc(1000));
    await writeFile(s, '/b', Buffer.alloc(3000));
    await s.mkdir('s', '/d');
    expect(await used(s)).toMatchObject({ bytes: 4000, files: 3 });
    await s.rename('s', '/a', '/d/a2');
    expect(await used(s)).toMatchObject({ bytes: 4000, files: 3 });
    await s.rename('s', '/d/a2', '/b');
    expect(await used(s)).toMatchObject({ bytes: 1000, files: 2 });
    expect((await s.getattr('s', '/b')).size).toBe(1000);
  });

  it('a clean restart keeps the counter without a scan; an unclean one scans and finds the same usage', async () => {
    const first = await kind.make();
    const e1 = await start(first.backend, { bytes: 1_000_000, files: 1000 });
    await writeFile(e1.s, '/x', Buffer.alloc(1234));
    await e1.s.mkdir('s', '/d');
    await writeFile(e1.s, '/d/y', Buffer.alloc(766));
    expect(await used(e1.s)).toMatchObject({ bytes: 2000, files: 3 });
    await e1.stop();
    // Memory lives in the process: the same instance is what a restart sees.
    const again = kind.name.startsWith('memory') ? first : await kind.make(first.where);
    const e2 = await start(again.backend, { bytes: 1_000_000, files: 1000 }, e1.stateDir);
    expect(e2.vfs.volume('s').quota!.scans).toBe(0);
    expect(await used(e2.s)).toMatchObject({ bytes: 2000, files: 3 });
    await writeFile(e2.s, '/z', Buffer.alloc(1000));
    await e2.crash();
    const third = kind.name.startsWith('memory') ? first : await kind.make(first.where);
    const e3 = await start(third.backend, { bytes: 1_000_000, files: 1000 }, e1.stateDir);
    expect(e3.vfs.volume('s').quota!.scans).toBe(1);
    expect(await used(e3.s)).toMatchObject({ bytes: 3000, files: 4 });
  });

  it.runIf(kind.name === 'local')('a start without the quota drops the counter: configured again, the share is walked', async () => {
    const k = await kind.make();
    const e1 = await start(k.backend, { bytes: 1_000_000 });
    await writeFile(e1.s, '/a', Buffer.alloc(100));
    await e1.stop();
    // A run without a quota: nothing counts its changes.
    const store = MetadataStore.open(e1.stateDir);
    const plain = new Vfs({ store, stageDir: join(e1.stateDir, 'stage') });
    plain.addVolume('s', buildVolumeStack(new LocalBackend(k.where)));
    store.close();
    k.outside!('b', 900);
    const e2 = await start(new LocalBackend(k.where), { bytes: 1_000_000 }, e1.stateDir);
    expect(e2.vfs.volume('s').quota!.scans).toBe(1);
    expect((await used(e2.s)).bytes).toBe(1000);
  });

  it.runIf(kind.name === 'local')('outside changes show after a rescan (cache refresh)', async () => {
    const k = await kind.make();
    const { s, vfs } = await start(k.backend, { bytes: 1_000_000 });
    await writeFile(s, '/mine', Buffer.alloc(100));
    k.outside!('theirs', 5000);
    expect((await used(s)).bytes).toBe(100);
    await vfs.volume('s').quota!.rescan();
    expect((await used(s)).bytes).toBe(5100);
  });
});

describe('quota and concurrent writers', () => {
  it('two uploads cannot both take the room one of them fits in; pipelined handle writes count once', async () => {
    const { s } = await start(new MemoryBackend(), { bytes: 10_000 });
    const a = await s.replaceContent('s', '/a');
    const b = await s.replaceContent('s', '/b');
    await a.write(Buffer.alloc(6000));
    await expectCode(b.write(Buffer.alloc(6000)), 'EDQUOT');
    await b.abort();
    await a.commit();
    expect((await used(s)).bytes).toBe(6000);
    // Eight writes in flight at once on one handle, each extending the file: counted once each.
    const h = await s.open('s', '/c', { access: RW, disposition: 'create', owner: 'o' });
    await Promise.all(Array.from({ length: 8 }, (_, i) => s.write(h, i * 500, Buffer.alloc(500, i))));
    await s.close(h);
    expect((await s.getattr('s', '/c')).size).toBe(4000);
    expect((await used(s)).bytes).toBe(10_000);
    await expectCode(writeFile(s, '/d', Buffer.alloc(1)), 'EDQUOT');
  });
});

describe('quota scan concurrent with changes through Portico', () => {
  it('ends with the exact usage when files are created, grown, deleted and trees removed in passed and unreached parts of the tree', async () => {
    const mem = new MemoryBackend();
    const { s, vfs } = await start(mem, { bytes: 1e9, files: 1e6 });
    for (const d of ['/a', '/m', '/q', '/z']) {
      await s.mkdir('s', d);
      for (let i = 0; i < 30; i++) await writeFile(s, `${d}/f${i}`, Buffer.alloc(10 + i));
    }
    // A slow listing, so the walk is half-way through while the changes happen.
    const q = vfs.volume('s').quota!;
    const slow = mem.list.bind(mem);
    let walking = 0;
    mem.list = async (p, o) => {
      walking++;
      await new Promise((r) => setTimeout(r, 20));
      return slow(p, o);
    };
    const scan = q.rescan();
    await new Promise((r) => setTimeout(r, 50));
    expect(walking).toBeGreaterThan(0);
    mem.list = slow;
    for (const d of ['/a', '/m', '/z']) {
      await writeFile(s, `${d}/new`, Buffer.alloc(500));
      await writeFile(s, `${d}/f1`, Buffer.alloc(700));
      await s.unlink('s', `${d}/f2`);
      await s.rename('s', `${d}/f3`, `${d}/zz-moved`);
    }
    await writeFile(s, '/top', Buffer.alloc(42));
    // A directory removed before the walk reaches it.
    await s.removeTree('s', '/q');
    await scan;
    expect(q.scans).toBe(2);
    const live = await used(s);
    await q.rescan();
    expect(await used(s)).toMatchObject({ bytes: live.bytes, files: live.files });
  });
});
