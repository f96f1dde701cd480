/**
 * Extended attributes and named streams through the session, run on every backend as one block of
 * the VFS conformance suite (test/conformance/vfs-conformance.ts calls xattrConformance): the
 * set modes and their errors, listing, removal, the limits, following the file id (rename, copy,
 * delete, restart), change attributes and token locks, and streams as their own space.
 */
import { it, expect } from 'vitest';
import type { Backend } from '../../src/vfs/backend.ts';
import type { Session } from '../../src/session/session.ts';
import { XATTR_LIMITS } from '../../src/vfs/xattrs.ts';
import { makeVfsEnv, bob, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile, type BackendFactory } from '../conformance/vfs-conformance.ts';

export interface XattrSuiteContext {
  factory: BackendFactory;
  backend(): Backend;
  env(): VfsEnv;
  session(): Session;
}

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

async function names(s: Session, path: string, space?: 'user' | 'stream'): Promise<string[]> {
  return (await s.listXattrs('s', path, space)).map((e) => e.name).sort();
}

export function xattrConformance(c: XattrSuiteContext): void {
  it('set with create, replace and either; get; ENODATA and EEXIST where RFC 8276 puts them', async () => {
    const s = c.session();
    await writeFile(s, '/x', 'data');
    await expectCode(s.getXattr('s', '/x', 'color'), 'ENODATA');
    await expectCode(s.setXattr('s', '/x', 'color', enc('red'), { mode: 'replace' }), 'ENODATA');
    await s.setXattr('s', '/x', 'color', enc('red'), { mode: 'create' });
    expect(text(await s.getXattr('s', '/x', 'color'))).toBe('red');
    await expectCode(s.setXattr('s', '/x', 'color', enc('blue'), { mode: 'create' }), 'EEXIST');
    expect(text(await s.getXattr('s', '/x', 'color'))).toBe('red');
    await s.setXattr('s', '/x', 'color', enc('green'), { mode: 'replace' });
    expect(text(await s.getXattr('s', '/x', 'color'))).toBe('green');
    await s.setXattr('s', '/x', 'color', enc('blue'));
    await s.setXattr('s', '/x', 'shape', enc('round'), { mode: 'either' });
    expect(text(await s.getXattr('s', '/x', 'color'))).toBe('blue');
    // Values are bytes: binary and empty values come back exactly; the file's content is untouched.
    const bin = Buffer.from([0, 1, 2, 255, 0xc3, 0x28, 13, 10]);
    await s.setXattr('s', '/x', 'bin', bin);
    await s.setXattr('s', '/x', 'empty', new Uint8Array(0));
    expect(Buffer.from(await s.getXattr('s', '/x', 'bin')).equals(bin)).toBe(true);
    expect((await s.getXattr('s', '/x', 'empty')).byteLength).toBe(0);
    expect((await readFile(s, '/x')).toString()).toBe('data');
    await expectCode(s.getXattr('s', '/missing', 'color'), 'ENOENT');
    await expectCode(s.setXattr('s', '/missing', 'color', enc('x')), 'ENOENT');
    // Names are exact: no case folding for xattrs.
    await expectCode(s.getXattr('s', '/x', 'COLOR'), 'ENODATA');
  });

  it('lists names with sizes; remove takes one away and is ENODATA for a missing name; directories have xattrs too', async () => {
    const s = c.session();
    await writeFile(s, '/l', '');
    expect(await s.listXattrs('s', '/l')).toEqual([]);
    await s.setXattr('s', '/l', 'b', enc('22'));
    await s.setXattr('s', '/l', 'a', enc('1'));
    await s.setXattr('s', '/l', 'com.apple.metadata:kMDItemWhereFroms', enc('333'));
    expect(await s.listXattrs('s', '/l')).toEqual([
      { name: 'a', size: 1 },
      { name: 'b', size: 2 },
      { name: 'com.apple.metadata:kMDItemWhereFroms', size: 3 },
    ]);
    await s.removeXattr('s', '/l', 'b');
    await expectCode(s.removeXattr('s', '/l', 'b'), 'ENODATA');
    await expectCode(s.getXattr('s', '/l', 'b'), 'ENODATA');
    expect(await names(s, '/l')).toEqual(['a', 'com.apple.metadata:kMDItemWhereFroms']);
    await s.mkdir('s', '/d');
    await s.setXattr('s', '/d', 'dirattr', enc('yes'));
    expect(text(await s.getXattr('s', '/d', 'dirattr'))).toBe('yes');
    // Dead properties set by WebDAV are not xattrs (one-way mapping, src/vfs/xattrs.ts).
    await s.setProps('s', '/l', [{ ns: 'urn:x', name: 'dead', value: enc('<x:dead xmlns:x="urn:x">v</x:dead>') }]);
    expect(await names(s, '/l')).toEqual(['a', 'com.apple.metadata:kMDItemWhereFroms']);
  });

  it('refuses names and values over the limits: ENAMETOOLONG, E2BIG, ENOSPC for too many or too much per file', async () => {
    const s = c.session();
    await writeFile(s, '/lim', 'x');
    const long = 'n'.repeat(XATTR_LIMITS.nameBytes);
    await s.setXattr('s', '/lim', long, enc('ok'));
    await expectCode(s.setXattr('s', '/lim', `${long}n`, enc('no')), 'ENAMETOOLONG');
    // 255 bytes is counted in UTF-8: 128 two-byte characters are 256 bytes.
    await expectCode(s.setXattr('s', '/lim', 'é'.repeat(128), enc('no')), 'ENAMETOOLONG');
    await expectCode(s.getXattr('s', '/lim', `${long}n`), 'ENAMETOOLONG');
    await expectCode(s.setXattr('s', '/lim', '', enc('no')), 'EINVAL');
    await expectCode(s.setXattr('s', '/lim', 'a\0b', enc('no')), 'EINVAL');
    await expectCode(s.setXattr('s', '/lim', 'bad\uD800', enc('no')), 'EILSEQ');
    await s.removeXattr('s', '/lim', long);

    const max = Buffer.alloc(XATTR_LIMITS.valueBytes, 7);
    await s.setXattr('s', '/lim', 'v1', max);
    expect((await s.getXattr('s', '/lim', 'v1')).byteLength).toBe(XATTR_LIMITS.valueBytes);
    await expectCode(s.setXattr('s', '/lim', 'v2', Buffer.alloc(XATTR_LIMITS.valueBytes + 1)), 'E2BIG');
    // Per file: 256 KiB of names and values. Three full values fit, a fourth does not; replacing
    // one counts its new size, not both.
    await s.setXattr('s', '/lim', 'v2', max);
    await s.setXattr('s', '/lim', 'v3', max);
    await expectCode(s.setXattr('s', '/lim', 'v4', max), 'ENOSPC');
    await s.setXattr('s', '/lim', 'v3', max, { mode: 'replace' });
    await s.setXattr('s', '/lim', 'v4', Buffer.alloc(1000));
    expect(await names(s, '/lim')).toEqual(['v1', 'v2', 'v3', 'v4']);

    await writeFile(s, '/many', 'x');
    for (let i = 0; i < XATTR_LIMITS.entries; i++) await s.setXattr('s', '/many', `k${i}`, enc('v'));
    await expectCode(s.setXattr('s', '/many', 'one-too-many', enc('v')), 'ENOSPC');
    await s.setXattr('s', '/many', 'k0', enc('replaced'));
    expect((await s.listXattrs('s', '/many')).length).toBe(XATTR_LIMITS.entries);
  });

  it('follow renames, are copied by copy (independently), vanish with the file, and survive a restart', async () => {
    const s = c.session();
    await s.mkdir('s', '/dir');
    await writeFile(s, '/dir/f', 'x');
    await s.setXattr('s', '/dir/f', 'tag', enc('one'));
    await s.setXattr('s', '/dir', 'dtag', enc('d'));
    await s.rename('s', '/dir/f', '/dir/g');
    expect(text(await s.getXattr('s', '/dir/g', 'tag'))).toBe('one');
    await s.rename('s', '/dir', '/dir2');
    expect(text(await s.getXattr('s', '/dir2/g', 'tag'))).toBe('one');
    expect(text(await s.getXattr('s', '/dir2', 'dtag'))).toBe('d');

    expect(await s.copy('s', '/dir2', '/copy')).toEqual([]);
    expect(text(await s.getXattr('s', '/copy/g', 'tag'))).toBe('one');
    expect(text(await s.getXattr('s', '/copy', 'dtag'))).toBe('d');
    await s.setXattr('s', '/copy/g', 'tag', enc('two'));
    expect(text(await s.getXattr('s', '/dir2/g', 'tag'))).toBe('one');

    // A rename over an existing file: the target's xattrs go with the file it replaced.
    await writeFile(s, '/victim', 'v');
    await s.setXattr('s', '/victim', 'only-victim', enc('1'));
    await s.rename('s', '/copy/g', '/victim');
    expect(await names(s, '/victim')).toEqual(['tag']);

    await s.unlink('s', '/dir2/g');
    await writeFile(s, '/dir2/g', 'new file, same name');
    expect(await s.listXattrs('s', '/dir2/g')).toEqual([]);
    await expectCode(s.getXattr('s', '/dir2/g', 'tag'), 'ENODATA');

    await s.setXattr('s', '/dir2/g', 'kept', Buffer.from([1, 2, 3]));
    const env = c.env();
    // As a gateway's shutdown does (shutdownDrainMs): this restart does not recover the write-back
    // journal, and on an async share the new /dir2/g reaches the store with its upload (a deferred
    // create). Nothing to wait for elsewhere.
    await env.vfs.writeBack.drain(10_000);
    await env.stop();
    const again = await c.factory.reopen(c.backend());
    const env2 = makeVfsEnv(again, { stateDir: env.stateDir });
    try {
      const s2 = env2.session();
      expect([...(await s2.getXattr('s', '/dir2/g', 'kept'))]).toEqual([1, 2, 3]);
      expect(text(await s2.getXattr('s', '/victim', 'tag'))).toBe('two');
      expect(text(await s2.getXattr('s', '/dir2', 'dtag'))).toBe('d');
    } finally {
      await env2.stop();
      if (again !== c.backend()) await again.close();
    }
  });

  it('a set or remove advances the change attribute (and only the file\'s); a token lock stops others, not its holder', async () => {
    const s = c.session();
    await s.mkdir('s', '/cd');
    await writeFile(s, '/cd/f', 'x');
    const dirBefore = (await s.getattr('s', '/cd')).change;
    const c0 = (await s.getattr('s', '/cd/f')).change;
    await s.setXattr('s', '/cd/f', 'a', enc('1'));
    const c1 = (await s.getattr('s', '/cd/f')).change;
    expect(c1 > c0).toBe(true);
    await s.removeXattr('s', '/cd/f', 'a');
    expect((await s.getattr('s', '/cd/f')).change > c1).toBe(true);
    // A failed set changes nothing.
    const c2 = (await s.getattr('s', '/cd/f')).change;
    await expectCode(s.removeXattr('s', '/cd/f', 'a'), 'ENODATA');
    expect((await s.getattr('s', '/cd/f')).change).toBe(c2);
    expect((await s.getattr('s', '/cd')).change).toBe(dirBefore);

    const dav = c.env().session(bob, 'webdav');
    const lock = await dav.lockPath('s', '/cd/f', { kind: 'exclusive', style: 'token', timeoutMs: 60_000 });
    await expectCode(s.setXattr('s', '/cd/f', 'b', enc('no')), 'ELOCKED');
    await expectCode(s.removeXattr('s', '/cd/f', 'b'), 'ELOCKED');
    expect(await s.listXattrs('s', '/cd/f')).toEqual([]);
    dav.lockTokens.add(lock.token);
    await dav.setXattr('s', '/cd/f', 'b', enc('holder'));
    expect(text(await s.getXattr('s', '/cd/f', 'b'))).toBe('holder');
  });

  it('named streams are their own space: case-insensitive names, the same limits, not listed as xattrs', async () => {
    const s = c.session();
    await writeFile(s, '/mac', 'data fork');
    const afpInfo = Buffer.alloc(60, 0);
    afpInfo.write('AFP\0', 0, 'latin1');
    await s.setXattr('s', '/mac', 'AFP_AfpInfo', afpInfo, { space: 'stream', mode: 'create' });
    await expectCode(s.setXattr('s', '/mac', 'afp_afpinfo', afpInfo, { space: 'stream', mode: 'create' }), 'EEXIST');
    expect(Buffer.from(await s.getXattr('s', '/mac', 'afp_AFPINFO', 'stream')).equals(afpInfo)).toBe(true);
    // Replacing in another spelling keeps the first spelling (NTFS).
    await s.setXattr('s', '/mac', 'AFP_AFPINFO', Buffer.alloc(60, 1), { space: 'stream', mode: 'replace' });
    expect(await s.listXattrs('s', '/mac', 'stream')).toEqual([{ name: 'AFP_AfpInfo', size: 60 }]);
    expect(await s.listXattrs('s', '/mac')).toEqual([]);
    await expectCode(s.getXattr('s', '/mac', 'AFP_AfpInfo'), 'ENODATA');
    // A user xattr of the same name is another attribute.
    await s.setXattr('s', '/mac', 'AFP_AfpInfo', enc('user'));
    expect(text(await s.getXattr('s', '/mac', 'AFP_AfpInfo'))).toBe('user');
    // Stream names never carry the type or a path separator (the SMB layer strips ':$DATA').
    await expectCode(s.setXattr('s', '/mac', 'Zone.Identifier:$DATA', enc('x'), { space: 'stream' }), 'EINVAL');
    await expectCode(s.setXattr('s', '/mac', 'a/b', enc('x'), { space: 'stream' }), 'EINVAL');
    // A resource fork over 64 KiB is refused rather than kept in the property store.
    await expectCode(s.setXattr('s', '/mac', 'AFP_Resource', Buffer.alloc(XATTR_LIMITS.valueBytes + 1), { space: 'stream' }), 'E2BIG');
    await s.removeXattr('s', '/mac', 'afp_afpinfo', 'stream');
    expect(await s.listXattrs('s', '/mac', 'stream')).toEqual([]);
    expect(await names(s, '/mac')).toEqual(['AFP_AfpInfo']);
  });
}
