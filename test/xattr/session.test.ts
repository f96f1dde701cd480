/**
 * Extended attributes through the session gate (backend-independent, so on memory only; the
 * per-backend semantics are in the conformance suite, test/xattr/xattr-conformance.ts): rights,
 * read-only shares, the audit log, and change watches.
 */
import { afterEach, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { makeVfsEnv, alice, bob, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';

let env: VfsEnv | undefined;
afterEach(async () => {
  await env?.destroy();
  env = undefined;
});

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

it('a read-only principal can get and list but not set or remove (EACCES); a read-only share answers EROFS', async () => {
  const audit: Record<string, unknown>[] = [];
  const logger = { info: (e: Record<string, unknown>) => void audit.push(e) } as unknown as Logger;
  env = makeVfsEnv(new MemoryBackend(), {
    audit: logger,
    share: { access: [{ users: ['alice'], rights: ['read', 'write'] }, { users: ['bob'], rights: ['read'] }] },
  });
  const a = env.session(alice, 'nfs');
  const b = env.session(bob, 'nfs');
  await writeFile(a, '/f', 'x');
  await a.setXattr('s', '/f', 'k', enc('secret value'), { mode: 'create' });
  expect(Buffer.from(await b.getXattr('s', '/f', 'k')).toString()).toBe('secret value');
  expect(await b.listXattrs('s', '/f')).toEqual([{ name: 'k', size: 12 }]);
  await expectCode(b.setXattr('s', '/f', 'k', enc('mine')), 'EACCES');
  await expectCode(b.setXattr('s', '/f', 'new', enc('mine')), 'EACCES');
  await expectCode(b.removeXattr('s', '/f', 'k'), 'EACCES');
  await expectCode(b.setXattr('s', '/f', 'k', enc('mine'), { space: 'stream' }), 'EACCES');
  expect(Buffer.from(await a.getXattr('s', '/f', 'k')).toString()).toBe('secret value');
  await a.removeXattr('s', '/f', 'k');

  // Changes are audited with the name, never the value; reads are not audited.
  const entries = audit.filter((e) => typeof e.op === 'string' && (e.op as string).includes('xattr'));
  expect(entries.map((e) => [e.op, e.user, e.xattr, e.status])).toEqual([
    ['setxattr', 'alice', 'k', 'ok'],
    ['setxattr', 'bob', 'k', 'EACCES'],
    ['setxattr', 'bob', 'new', 'EACCES'],
    ['removexattr', 'bob', 'k', 'EACCES'],
    ['setxattr', 'bob', 'k', 'EACCES'],
    ['removexattr', 'alice', 'k', 'ok'],
  ]);
  expect(JSON.stringify(entries)).not.toContain('secret');
  expect(entries[0]).toMatchObject({ path: '/f', space: 'user', mode: 'create', size: 12 });

  await env.destroy();
  env = makeVfsEnv(new MemoryBackend(), { share: { readOnly: true } });
  const r = env.session(alice);
  await r.listXattrs('s', '/');
  await expectCode(r.setXattr('s', '/', 'k', enc('v')), 'EROFS');
});

it('a change watch on the directory sees a set and a remove as attrib events', async () => {
  env = makeVfsEnv(new MemoryBackend());
  const s = env.session();
  await s.mkdir('s', '/w');
  await writeFile(s, '/w/f', 'x');
  const w = await s.watch('s', '/w');
  await s.setXattr('s', '/w/f', 'k', enc('v'));
  await s.removeXattr('s', '/w/f', 'k');
  await expectCode(s.removeXattr('s', '/w/f', 'k'), 'ENODATA');
  await new Promise((r) => setTimeout(r, 50));
  const events = w.take().map((e) => (e.kind === 'overflow' ? 'overflow' : `${e.kind} ${e.name}`));
  expect(events).toEqual(['attrib f', 'attrib f']);
  await w.close();
});
