/**
 * Issue 15 §1: path rules hold through recursive operations. The reproductions from the issue,
 * through the real WebDAV front-end over a local-disk share with the documented rule pair
 * ("/x/finance" allowed to group finance, denied to '*'): COPY, COPY into a guest share, MOVE,
 * DELETE and a depth-infinity LOCK by a user outside finance must not read, change, remove or lock
 * what the rule protects; the audit log names every member touched or skipped.
 *
 * Each test has its own tree (/copy, /guest, /move, /del, /lock) so that none depends on another.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';

const ROOTS = ['copy', 'guest', 'move', 'del', 'lock', 'rename', 'xshare'];
const rules = ROOTS.flatMap((r) => [
  { path: `/${r}/finance`, groups: ['finance'], allow: ['read', 'write'] },
  { path: `/${r}/finance`, users: ['*'], deny: ['read', 'write'] },
]);

class Lines extends Writable {
  lines: Record<string, unknown>[] = [];
  override _write(c: Buffer, _e: string, cb: () => void): void {
    for (const l of c.toString('utf8').split('\n')) if (l.trim() !== '') this.lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  }
}

const log = new Lines();
const ALICE: [string, string] = ['alice', 'alice-pw'];
const FRED: [string, string] = ['fred', 'fred-pw'];

let s: DavStack;
useDav((x) => (s = x), {}, {
  log,
  shares: [
    { name: 'files', source: mkdtempSync(join(tmpdir(), 'portico-sec-files-')), rules },
    { name: 'pub', source: 'memory:', guest: 'read' },
    { name: 'other', source: 'memory:' },
  ],
});

async function put(path: string, body: string, auth = FRED): Promise<void> {
  const r = await dav(s, 'PUT', path, { auth, body });
  expect([201, 204]).toContain(r.status);
}

async function mkcol(path: string, auth = FRED): Promise<void> {
  expect((await dav(s, 'MKCOL', path, { auth })).status).toBe(201);
}

/** /files/ROOT/{readme.txt, finance/payroll.txt, finance/q1/plan.txt, team/notes.txt} */
async function tree(root: string): Promise<void> {
  await mkcol(`/files/${root}`);
  await put(`/files/${root}/readme.txt`, 'hello');
  await mkcol(`/files/${root}/finance`);
  await put(`/files/${root}/finance/payroll.txt`, 'salaries');
  await mkcol(`/files/${root}/finance/q1`);
  await put(`/files/${root}/finance/q1/plan.txt`, 'plan');
  await mkcol(`/files/${root}/team`);
  await put(`/files/${root}/team/notes.txt`, 'notes');
}

beforeAll(async () => {
  await s.addUser('alice', 'alice-pw', ['staff']);
  await s.addUser('fred', 'fred-pw', ['finance']);
  for (const r of ROOTS) if (r !== 'rename') await tree(r);
});

describe('recursive operations check every member', () => {
  it('COPY of a tree does not copy members the principal may not read, and names them in a 207', async () => {
    const r = await dav(s, 'COPY', '/files/copy', { auth: ALICE, headers: { Destination: '/files/copy2' } });
    expect(r.status).toBe(207);
    expect(r.text).toContain('/files/copy/finance');
    expect(r.text).toContain('403');
    // The denied subtree is not there (as alice would see: 403 on a rule path; as fred: 404).
    expect((await dav(s, 'GET', '/files/copy2/finance/payroll.txt', { auth: FRED })).status).toBe(404);
    expect((await dav(s, 'GET', '/files/copy2/finance/payroll.txt', { auth: ALICE })).status).toBe(404);
    // Everything else is.
    expect((await dav(s, 'GET', '/files/copy2/readme.txt', { auth: ALICE })).text).toBe('hello');
    expect((await dav(s, 'GET', '/files/copy2/team/notes.txt', { auth: ALICE })).text).toBe('notes');
  });

  it('a finance member copies the whole tree (the rule allows them to read it)', async () => {
    const r = await dav(s, 'COPY', '/files/copy', { auth: FRED, headers: { Destination: '/files/copy3' } });
    expect(r.status).toBe(201);
    expect((await dav(s, 'GET', '/files/copy3/finance/payroll.txt', { auth: FRED })).text).toBe('salaries');
  });

  it('COPY into a guest share does not leak denied members to anonymous users', async () => {
    const r = await dav(s, 'COPY', '/files/guest', { auth: ALICE, headers: { Destination: '/pub/leak' } });
    expect(r.status).toBe(207);
    expect(r.text).toContain('/files/guest/finance');
    const anon = await dav(s, 'GET', '/pub/leak/finance/payroll.txt');
    expect(anon.status).toBe(404);
    expect((await dav(s, 'GET', '/pub/leak/readme.txt')).text).toBe('hello');
  });

  it('MOVE of a directory that holds a rule path is refused for everyone, and nothing moves', async () => {
    for (const who of [ALICE, FRED]) {
      const r = await dav(s, 'MOVE', '/files/move', { auth: who, headers: { Destination: '/files/move2' } });
      expect(r.status).toBe(403);
    }
    expect((await dav(s, 'GET', '/files/move/finance/payroll.txt', { auth: FRED })).text).toBe('salaries');
    expect((await dav(s, 'PROPFIND', '/files/move2', { auth: FRED, headers: { Depth: '0' } })).status).toBe(404);
    // The rule's path itself cannot be renamed away either, nor a tree moved under a rule path.
    expect((await dav(s, 'MOVE', '/files/move/finance', { auth: FRED, headers: { Destination: '/files/move/fin-old' } })).status).toBe(403);
    // Nor a tree moved to a name with a rule path below it (/rename/finance governs what lands there).
    await mkcol('/files/stage');
    await mkcol('/files/stage/finance');
    await put('/files/stage/finance/planted.txt', 'x');
    expect((await dav(s, 'MOVE', '/files/stage', { auth: FRED, headers: { Destination: '/files/rename' } })).status).toBe(403);
    expect((await dav(s, 'GET', '/files/stage/finance/planted.txt', { auth: FRED })).text).toBe('x');
    // A move that no rule lies at or below is unaffected.
    expect((await dav(s, 'MOVE', '/files/move/team', { auth: ALICE, headers: { Destination: '/files/move/team2' } })).status).toBe(201);
    expect((await dav(s, 'GET', '/files/move/team2/notes.txt', { auth: ALICE })).text).toBe('notes');
  });

  it('MOVE across shares of a tree with a rule below is refused', async () => {
    const r = await dav(s, 'MOVE', '/files/xshare', { auth: FRED, headers: { Destination: '/other/xshare' } });
    expect(r.status).toBe(403);
    expect((await dav(s, 'GET', '/files/xshare/finance/payroll.txt', { auth: FRED })).text).toBe('salaries');
    expect((await dav(s, 'PROPFIND', '/other/xshare', { auth: FRED, headers: { Depth: '0' } })).status).toBe(404);
  });

  it('DELETE keeps the members the principal may not remove (207) and removes the rest', async () => {
    const r = await dav(s, 'DELETE', '/files/del', { auth: ALICE });
    expect(r.status).toBe(207);
    expect(r.text).toContain('/files/del/finance');
    expect((await dav(s, 'GET', '/files/del/finance/payroll.txt', { auth: FRED })).text).toBe('salaries');
    expect((await dav(s, 'GET', '/files/del/finance/q1/plan.txt', { auth: FRED })).text).toBe('plan');
    expect((await dav(s, 'GET', '/files/del/readme.txt', { auth: FRED })).status).toBe(404);
    expect((await dav(s, 'GET', '/files/del/team/notes.txt', { auth: FRED })).status).toBe(404);
  });

  it('a depth-infinity LOCK over a rule path the principal may not write is refused; the rule\'s group keeps writing', async () => {
    const body = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    const r = await dav(s, 'LOCK', '/files/lock', { auth: ALICE, headers: { Depth: 'infinity', Timeout: 'Second-3600' }, body });
    expect(r.status).toBe(403);
    await put('/files/lock/finance/payroll.txt', 'raised');
    // Depth 0 on the same collection is fine (it covers no member).
    const d0 = await dav(s, 'LOCK', '/files/lock', { auth: ALICE, headers: { Depth: '0' }, body });
    expect(d0.status).toBe(200);
    const token = d0.headers['lock-token'] as string;
    expect((await dav(s, 'UNLOCK', '/files/lock', { auth: ALICE, headers: { 'Lock-Token': token } })).status).toBe(204);
  });

  it('the audit log names each member a recursive operation touched or skipped', async () => {
    const members = log.lines.filter((l) => l.msg === 'audit' && l.op === 'remove-tree-member');
    const byPath = new Map(members.map((m) => [m.path, m.status]));
    expect(byPath.get('/del/finance')).toBe('EACCES');
    expect(byPath.get('/del/readme.txt')).toBe('ok');
    expect(byPath.get('/del/team/notes.txt')).toBe('ok');
    expect(byPath.has('/del/finance/payroll.txt')).toBe(false);
    const copies = log.lines.filter((l) => l.msg === 'audit' && l.op === 'copy-member' && typeof l.path === 'string' && (l.path as string).startsWith('/copy/'));
    expect(copies.find((c) => c.path === '/copy/finance')?.status).toBe('EACCES');
    expect(copies.find((c) => c.path === '/copy/team/notes.txt')?.to).toBe('/copy2/team/notes.txt');
  });
});
