/**
 * The core's range operations on open handles (issue 13): Session.allocate (fallocate),
 * Session.seekData (SEEK_DATA/SEEK_HOLE) and Session.copyRange (copy_file_range inside the store).
 * On a local share with the native helper they act on the store's file (real reservation, holes,
 * in-kernel copies); on one without it (the memory backend; a local backend started without the
 * helper) allocate only grows the size, punch/zero and range copies are ENOTSUP and the file has no
 * holes. Both paths keep the core's rules: byte-range locks of other owners refuse (ELOCKED), the
 * quota counts growth (EDQUOT) and a change event is emitted.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { localNativeAvailability } from '../../backends/local/native.ts';
import { makeVfsEnv, alice, RW, RO, useVfsEnvs } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from '../conformance/vfs-conformance.ts';
import type { Session } from '../../src/session/session.ts';

const envs = useVfsEnvs('portico-ranges-');

const native = localNativeAvailability();
if (!native.available) console.warn(`range operations on the local backend's helper not tested: ${native.reason} (enable: ${native.enable})`);

function local(helper: boolean): { root: string; s: Session } {
  const { root, env } = envs.local({}, helper ? {} : { native: null });
  return { root, s: env.session(alice) };
}

describe.skipIf(!native.available)('range operations on a local share with the native helper', () => {
  it('allocate reserves blocks, punch frees a range and seekData finds it; zero keeps the size', async () => {
    const { root, s } = local(true);
    await writeFile(s, '/f', Buffer.alloc(64 * 1024, 1));
    const h = await s.open('s', '/f', { access: RW, owner: 'o' });
    const before = (await s.fstat(h)).change;
    await s.allocate(h, 'punch', 16_384, 16_384, true);
    expect((await s.fstat(h)).change > before).toBe(true);
    expect(statSync(join(root, 'f')).blocks).toBeLessThanOrEqual(128 - 32 + 8);
    expect(await s.seekData(h, 0, 'hole')).toBe(16_384);
    expect(await s.seekData(h, 16_384, 'data')).toBe(32_768);
    expect(await s.seekData(h, 40_000, 'hole')).toBe(65_536);
    expect(await s.seekData(h, 65_536, 'data')).toBeUndefined();
    const want = Buffer.alloc(64 * 1024, 1).fill(0, 16_384, 32_768);
    expect(readFileSync(join(root, 'f')).equals(want)).toBe(true);
    // Reserve 1 MiB past the end without growing it, then grow with a reservation.
    await s.allocate(h, 'allocate', 65_536, 1 << 20, true);
    expect((await s.fstat(h)).size).toBe(65_536);
    expect(statSync(join(root, 'f')).blocks).toBeGreaterThanOrEqual(2048);
    await s.allocate(h, 'zero', 65_536, 4096, false);
    expect((await s.fstat(h)).size).toBe(65_536 + 4096);
    await s.close(h);
  });

  it('copyRange copies inside the store, short at the source\'s end, and honours locks', async () => {
    const { root, s } = local(true);
    const data = Buffer.from('0123456789abcdef'.repeat(4096));
    await writeFile(s, '/src', data);
    const src = await s.open('s', '/src', { access: RO, owner: 'o' });
    const dst = await s.open('s', '/dst', { access: RW, owner: 'o', disposition: 'create' });
    expect(await s.copyRange(src, 10, dst, 100, 1_000_000)).toBe(data.length - 10);
    expect(await s.copyRange(src, data.length, dst, 0, 10)).toBe(0);
    const got = readFileSync(join(root, 'dst'));
    expect(got.subarray(100).equals(data.subarray(10))).toBe(true);
    // A range under another open's mandatory (SMB) lock: refused before the store is touched, as a write is.
    const other = await s.open('s', '/dst', { access: RW, owner: 'p' });
    await s.lockHandle(other, { kind: 'exclusive', style: 'windows', range: { start: 0n, end: 50n } });
    await expectCode(s.copyRange(src, 0, dst, 0, 10), 'ELOCKED');
    await expectCode(s.allocate(dst, 'punch', 0, 4096, true), 'ELOCKED');
    await s.close(other);
    await s.close(src);
    await s.close(dst);
  });
});

describe('range operations where the store has no allocation, hole or copy call', () => {
  for (const [name, make] of [
    ['memory', (): { s: Session } => {
      return { s: envs.track(makeVfsEnv(new MemoryBackend())).session(alice) };
    }],
    ['local without its helper', (): { s: Session } => local(false)],
  ] as const) {
    it(`${name}: allocate grows the size only, punch/zero and copyRange are ENOTSUP, no holes`, async () => {
      const { s } = make();
      await writeFile(s, '/f', 'hello');
      const h = await s.open('s', '/f', { access: RW, owner: 'o' });
      await s.allocate(h, 'allocate', 0, 8192, false);
      expect((await s.fstat(h)).size).toBe(8192);
      await s.allocate(h, 'allocate', 8192, 8192, true);
      expect((await s.fstat(h)).size).toBe(8192);
      await expectCode(s.allocate(h, 'punch', 0, 4096, true), 'ENOTSUP');
      await expectCode(s.allocate(h, 'zero', 0, 4096, false), 'ENOTSUP');
      expect(await s.seekData(h, 0, 'hole')).toBe(8192);
      expect(await s.seekData(h, 100, 'data')).toBe(100);
      expect(await s.seekData(h, 8192, 'data')).toBeUndefined();
      const dst = await s.open('s', '/g', { access: RW, owner: 'o', disposition: 'create' });
      await expectCode(s.copyRange(h, 0, dst, 0, 10), 'ENOTSUP');
      await s.close(dst);
      await s.close(h);
      expect((await readFile(s, '/f')).subarray(0, 5).toString()).toBe('hello');
    });
  }

  it('a handle whose bytes are staged in Portico (object store): the core\'s size, not the store\'s; no punch or range copy', async () => {
    const s = envs.track(makeVfsEnv(new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }))).session(alice);
    await writeFile(s, '/f', 'x');
    const h = await s.open('s', '/f', { access: RW, owner: 'o' });
    await s.write(h, 0, Buffer.alloc(10_000, 1));
    // Not published yet: the store still holds 1 byte; the staged file has 10,000 and no holes.
    expect(await s.seekData(h, 0, 'hole')).toBe(10_000);
    expect(await s.seekData(h, 5_000, 'data')).toBe(5_000);
    await s.allocate(h, 'allocate', 0, 20_000, false);
    expect((await s.fstat(h)).size).toBe(20_000);
    await expectCode(s.allocate(h, 'punch', 0, 4096, true), 'ENOTSUP');
    await expectCode(s.copyRange(h, 0, h, 15_000, 10), 'ENOTSUP');
    await s.close(h);
    const got = await readFile(s, '/f');
    expect(got.length).toBe(20_000);
    expect(got.subarray(0, 10_000).equals(Buffer.alloc(10_000, 1))).toBe(true);
  });

  it('a read-only handle cannot allocate (EBADF); bad ranges are EINVAL', async () => {
    const s = envs.track(makeVfsEnv(new MemoryBackend())).session(alice);
    await writeFile(s, '/f', 'x');
    const h = await s.open('s', '/f', { access: RO, owner: 'o' });
    await expectCode(s.allocate(h, 'allocate', 0, 10, false), 'EBADF');
    await s.close(h);
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    await expectCode(s.allocate(w, 'allocate', -1, 10, false), 'EINVAL');
    await expectCode(s.allocate(w, 'allocate', 0, 0, false), 'EINVAL');
    await expectCode(s.seekData(w, -5, 'data'), 'EINVAL');
    await s.close(w);
  });
});
