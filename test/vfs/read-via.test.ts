/**
 * Session.readVia (Vfs.readVia): a read whose bytes the kernel moves from the store's own
 * descriptor (the FUSE front-end splices them to /dev/fuse, protocols/fuse/README.md). The core
 * lends the descriptor only where every byte of the handle is in it (a local file, no write stage),
 * with the checks readInto makes (open for reading, other owners' byte-range locks), and keeps it
 * open until the caller is done, even when the handle is closed meanwhile.
 */
import { fstatSync, readSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';
import { alice, makeVfsEnv, RO, RW, useVfsEnvs } from '../helpers/vfs-env.ts';

const envs = useVfsEnvs('portico-read-via-');

/** A `send` that reads the range from the lent descriptor, as a splice would move it. */
function reader(out: Buffer[]): (fd: number, offset: number, length: number) => Promise<number> {
  return async (fd, offset, length) => {
    const b = Buffer.alloc(length);
    const n = readSync(fd, b, 0, length, offset);
    out.push(b.subarray(0, n));
    return n;
  };
}

describe('readVia on a local share', () => {
  it('lends the descriptor of the file for the range asked; a handle open for writing sees its own writes', async () => {
    const { env } = envs.local();
    const s = env.session(alice);
    const data = Buffer.from('0123456789abcdef'.repeat(1000));
    await writeFile(s, '/f', data);
    const h = await s.open('s', '/f', { access: RO, owner: 'o' });
    const got: Buffer[] = [];
    expect(await s.readVia(h, 7, 5000, reader(got))).toBe(5000);
    expect(got[0]!.equals(data.subarray(7, 5007))).toBe(true);
    await s.close(h);
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    await s.write(w, 3, Buffer.from('XYZ'));
    const got2: Buffer[] = [];
    expect(await s.readVia(w, 0, 8, reader(got2))).toBe(8);
    expect(got2[0]!.toString()).toBe('012XYZ67');
    await s.close(w);
  });

  it('refuses a range under another owner\'s mandatory lock, and a handle not open for reading', async () => {
    const { env } = envs.local();
    const s = env.session(alice);
    await writeFile(s, '/f', Buffer.alloc(4096, 1));
    const h = await s.open('s', '/f', { access: RO, owner: 'o' });
    const other = await s.open('s', '/f', { access: RW, owner: 'p' });
    await s.lockHandle(other, { kind: 'exclusive', style: 'windows', range: { start: 100n, end: 200n } });
    let sent = 0;
    const count = async (): Promise<number> => ++sent;
    await expectCode(s.readVia(h, 0, 4096, count), 'ELOCKED');
    expect(sent).toBe(0);
    // Outside the locked range: lent.
    expect(await s.readVia(h, 200, 100, count)).toBe(1);
    await s.close(other);
    const wo = await s.open('s', '/f', { access: { read: false, write: true, delete: false }, owner: 'o' });
    await expectCode(s.readVia(wo, 0, 10, count), 'EBADF');
    await s.close(wo);
    await s.close(h);
  });

  it('keeps the descriptor open until the caller is done, even when the handle is closed meanwhile', async () => {
    const { env } = envs.local();
    const s = env.session(alice);
    await writeFile(s, '/f', Buffer.alloc(8192, 2));
    const h = await s.open('s', '/f', { access: RO, owner: 'o' });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let lent = -1;
    const reading = s.readVia(h, 0, 8192, async (fd) => {
      lent = fd;
      await gate;
      // Still this file's descriptor (a closed and reused number would name another file or none).
      return Number(fstatSync(fd).size);
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(lent).toBeGreaterThanOrEqual(0);
    let closed = false;
    const closing = s.close(h).then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    release();
    expect(await reading).toBe(8192);
    await closing;
    expect(closed).toBe(true);
  });

  it('lends nothing for a handle whose writes are staged in Portico: the caller reads', async () => {
    const { root } = envs.local();
    const backend = new LocalBackend(root);
    // The core stages writes where the store has no random writes; the staged bytes are not in the file.
    Object.assign(backend.capabilities, { randomWrites: false });
    const s = envs.track(makeVfsEnv(backend)).session(alice);
    await writeFile(s, '/f', Buffer.alloc(100, 3));
    const w = await s.open('s', '/f', { access: RW, owner: 'o' });
    await s.write(w, 0, Buffer.from('new'));
    let sent = 0;
    expect(await s.readVia(w, 0, 10, async () => ++sent)).toBeUndefined();
    expect(sent).toBe(0);
    await s.close(w);
  });
});

describe('readVia where the store has no descriptor', () => {
  it('memory: undefined, nothing lent', async () => {
    const s = envs.track(makeVfsEnv(new MemoryBackend())).session(alice);
    await writeFile(s, '/f', 'hello');
    const h = await s.open('s', '/f', { access: RO, owner: 'o' });
    let sent = 0;
    expect(await s.readVia(h, 0, 5, async () => ++sent)).toBeUndefined();
    expect(sent).toBe(0);
    await s.close(h);
  });
});
