/**
 * Two opens that may create one directory at once (SMB CREATE with FILE_OPEN_IF and
 * FILE_DIRECTORY_FILE from two connections: smbtorture smb2.create mkdir-dup; NFS has no such
 * open, FUSE mkdir is a plain create): both find the names missing, both try the mkdir, and the
 * one that loses the race gets the directory the other made, as the disposition promises, never
 * EEXIST. An exclusive create ('create') still gets EEXIST.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { RO, makeVfsEnv, useVfsEnvs, type VfsEnv } from '../helpers/vfs-env.ts';
import { isVfsError } from '../../src/vfs/errors.ts';

function expectRefused(reason: unknown, code: string): void {
  expect(isVfsError(reason) ? reason.code : String(reason)).toBe(code);
}

const envs = useVfsEnvs('portico-open-dir-race-');

const kinds: Array<[string, () => VfsEnv]> = [
  ['local', () => envs.local().env],
  ['memory', () => envs.track(makeVfsEnv(new MemoryBackend()))],
];

describe.each(kinds)('openOrCreate of one directory at once (%s)', (_kind, make) => {
  it('both opens succeed on the same directory; exactly one created it', async () => {
    const e = make();
    const s1 = e.session();
    const s2 = e.session();
    for (let round = 0; round < 20; round++) {
      const path = `/d${round}`;
      const [a, b] = await Promise.all([
        s1.open('s', path, { access: RO, disposition: 'openOrCreate', expect: 'dir', owner: 'one' }),
        s2.open('s', path, { access: RO, disposition: 'openOrCreate', expect: 'dir', owner: 'two' }),
      ]);
      expect(a.type).toBe('dir');
      expect(b.type).toBe('dir');
      expect(a.fileId).toBe(b.fileId);
      expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
      await s1.close(a);
      await s2.close(b);
    }
  });

  it('an exclusive create racing an openOrCreate: the create that loses gets EEXIST, the open gets the directory', async () => {
    const e = make();
    const s1 = e.session();
    const s2 = e.session();
    for (let round = 0; round < 10; round++) {
      const path = `/x${round}`;
      const [a, b] = await Promise.allSettled([
        s1.open('s', path, { access: RO, disposition: 'create', expect: 'dir', owner: 'one' }),
        s2.open('s', path, { access: RO, disposition: 'openOrCreate', expect: 'dir', owner: 'two' }),
      ]);
      expect(b.status).toBe('fulfilled');
      if (a.status === 'rejected') {
        expectRefused(a.reason, 'EEXIST');
        expect(b.status === 'fulfilled' && b.value.created).toBe(true);
      } else {
        expect(b.status === 'fulfilled' && b.value.created).toBe(false);
        await s1.close(a.value);
      }
      if (b.status === 'fulfilled') await s2.close(b.value);
    }
  });

  it('openOrCreate where a file took the name meanwhile is ENOTDIR, not EEXIST', async () => {
    const e = make();
    const s1 = e.session();
    const s2 = e.session();
    const [f, d] = await Promise.allSettled([
      s1.open('s', '/n', { access: { read: true, write: true, delete: false }, disposition: 'create', expect: 'file', owner: 'one' }),
      s2.open('s', '/n', { access: RO, disposition: 'openOrCreate', expect: 'dir', owner: 'two' }),
    ]);
    if (f.status === 'fulfilled') {
      // The file won: the directory open must say the name is not a directory.
      if (d.status === 'rejected') expectRefused(d.reason, 'ENOTDIR');
      else throw new Error('a directory open succeeded on a name a file holds');
      await s1.close(f.value);
    } else {
      // The directory won: the exclusive file create says EEXIST.
      expectRefused(f.reason, 'EEXIST');
      expect(d.status).toBe('fulfilled');
      if (d.status === 'fulfilled') await s2.close(d.value);
    }
  });
});
