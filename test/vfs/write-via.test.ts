/**
 * Session.writeVia (Vfs.writeVia): a write whose bytes the caller puts into the store's own
 * descriptor (the FUSE front-end pwrites them from its request buffer on the thread pool and answers
 * the kernel from there, protocols/fuse/README.md). The core lends the descriptor only where the
 * handle's bytes all go to it (a local file, no write stage) and the file would not write them
 * inline anyway (a small first write of a new file), after the checks, quota and leases write()
 * makes; the change event comes once the caller is done. Elsewhere the core writes the bytes itself.
 */
import { readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import type { ChangeEvent } from '../../src/vfs/types.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';
import { alice, makeVfsEnv, RO, RW, useVfsEnvs } from '../helpers/vfs-env.ts';

const envs = useVfsEnvs('portico-write-via-');

/** A `send` that writes `data` to the lent descriptor, as the FUSE addon does; counts its calls. */
function writer(data: Buffer, calls: number[]): (fd: number, offset: number, length: number) => Promise<number> {
  return async (fd, offset, length) => {
    calls.push(offset);
    let done = 0;
    while (done < length) done += writeSync(fd, data, done, length - done, offset + done);
    return done;
  };
}

describe('writeVia on a local share', () => {
  it('lends the descriptor for a large write and the bytes land; a small first write of a new file is made inline', async () => {
    const { env, root } = envs.local();
    const s = env.session(alice);
    const h = await s.open('s', '/f', { access: RW, owner: 'o', disposition: 'create' });
    const calls: number[] = [];
    // 4 KiB at offset 0 of a file the open found empty: written inline by the file, nothing lent.
    const small = Buffer.alloc(4096, 1);
    expect(await s.writeVia(h, 0, small, writer(small, calls))).toBe(4096);
    expect(calls).toEqual([]);
    const big = Buffer.alloc(1 << 20, 2);
    expect(await s.writeVia(h, 4096, big, writer(big, calls))).toBe(1 << 20);
    expect(calls).toEqual([4096]);
    expect((await s.fstat(h)).size).toBe(4096 + (1 << 20));
    await s.close(h);
    const on = readFileSync(join(root, 'f'));
    expect(on.subarray(0, 4096).equals(small)).toBe(true);
    expect(on.subarray(4096).equals(big)).toBe(true);
  });

  it('checks as write() does (not open for writing, another owner\'s lock): nothing lent', async () => {
    const { env } = envs.local();
    const s = env.session(alice);
    await writeFile(s, '/f', Buffer.alloc(200_000, 1));
    const calls: number[] = [];
    const data = Buffer.alloc(100_000, 3);
    const ro = await s.open('s', '/f', { access: RO, owner: 'o' });
    await expectCode(s.writeVia(ro, 0, data, writer(data, calls)), 'EBADF');
    await s.close(ro);
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    const other = await s.open('s', '/f', { access: RW, owner: 'p' });
    await s.lockHandle(other, { kind: 'exclusive', style: 'windows', range: { start: 150_000n, end: 160_000n } });
    await expectCode(s.writeVia(w, 100_000, data, writer(data, calls)), 'ELOCKED');
    expect(calls).toEqual([]);
    await s.close(other);
    await s.close(w);
  });

  it('the change event comes after the caller is done writing, and the attributes then show the write', async () => {
    const { env } = envs.local();
    const s = env.session(alice);
    await writeFile(s, '/f', Buffer.alloc(10, 1));
    const events: ChangeEvent[] = [];
    env.vfs.events.on('change', (ev: ChangeEvent) => events.push(ev));
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const data = Buffer.alloc(300_000, 4);
    const writing = s.writeVia(w, 0, data, async (fd, offset, length) => {
      const n = writeSync(fd, data, 0, length, offset);
      await gate;
      return n;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(events.filter((e) => e.kind === 'modify')).toEqual([]);
    release();
    expect(await writing).toBe(300_000);
    expect(events.filter((e) => e.kind === 'modify').length).toBe(1);
    expect((await s.getattr('s', '/f')).size).toBe(300_000);
    await s.close(w);
  });

  it('a failed lent write is the write\'s error (mapped), and the handle writes again afterwards', async () => {
    const { env } = envs.local();
    const s = env.session(alice);
    await writeFile(s, '/f', Buffer.alloc(10, 1));
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    const data = Buffer.alloc(100_000, 5);
    const enospc = Object.assign(new Error('pwrite: No space left on device'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    await expectCode(s.writeVia(w, 0, data, () => Promise.reject(enospc)), 'ENOSPC');
    const calls: number[] = [];
    expect(await s.writeVia(w, 0, data, writer(data, calls))).toBe(100_000);
    expect(calls).toEqual([0]);
    await s.close(w);
  });

  it('lends nothing for a handle whose writes are staged in Portico: the core writes the bytes', async () => {
    const { root } = envs.local();
    const backend = new LocalBackend(root);
    Object.assign(backend.capabilities, { randomWrites: false });
    const s = envs.track(makeVfsEnv(backend)).session(alice);
    await writeFile(s, '/f', Buffer.alloc(100, 3));
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    const calls: number[] = [];
    const data = Buffer.alloc(200_000, 6);
    expect(await s.writeVia(w, 0, data, writer(data, calls))).toBe(200_000);
    expect(calls).toEqual([]);
    await s.close(w);
    expect(readFileSync(join(root, 'f')).equals(data)).toBe(true);
  });
});

describe('writeVia where the store has no descriptor', () => {
  it('memory: the core writes the bytes, nothing lent', async () => {
    const s = envs.track(makeVfsEnv(new MemoryBackend())).session(alice);
    await writeFile(s, '/f', 'hello');
    const h = await s.open('s', '/f', { access: RW, owner: 'o' });
    const calls: number[] = [];
    const data = Buffer.alloc(100_000, 7);
    expect(await s.writeVia(h, 0, data, writer(data, calls))).toBe(100_000);
    expect(calls).toEqual([]);
    const r = await s.open('s', '/f', { access: RO, owner: 'o' });
    expect((await s.fstat(r)).size).toBe(100_000);
    await s.close(r);
    await s.close(h);
  });
});
