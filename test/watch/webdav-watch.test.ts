/**
 * Issue 9's test: a watch sees a create made over WebDAV. The whole gateway runs (config, local
 * users, the WebDAV plugin on a real port); changes are real HTTP requests, and the watch is opened
 * through the gateway's own SessionManager, as NFS and SMB will open theirs. On the local share the
 * outside-change watcher runs too: each WebDAV change must still be reported exactly once.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';
import type { Session } from '../../src/session/session.ts';
import type { Watch, WatchEvent } from '../../src/session/watch.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
let stack: DavStack;
useDav((s) => (stack = s), { alice: 'alice-pw', bob: 'bob-pw' });

function brief(e: WatchEvent): string {
  if (e.kind === 'overflow') return 'overflow';
  return e.oldName !== undefined ? `${e.kind} ${e.oldName} -> ${e.name}` : `${e.kind} ${e.name}`;
}

/** What the watch delivers until it has been quiet for `quietMs`. */
async function settle(w: Watch, quietMs = 400): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for (;;) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), quietMs);
    const got = await w.wait(ac.signal);
    clearTimeout(t);
    if (!got) return out;
    out.push(...w.take());
  }
}

/** bob's session as another protocol would hold it (logged in through the gateway's manager). */
async function bobSession(): Promise<Session> {
  const sessions = stack.gateway.sessions!;
  const principal = await sessions.authenticate('bob', 'bob-pw', { protocol: 'test', clientAddress: '127.0.0.1' });
  return sessions.openSession({ principal, protocol: 'webdav', clientAddress: '127.0.0.1' });
}

describe.each(['mem', 'disk'])('a watch on the %s share', (share) => {
  it('sees a file created over WebDAV, once, then its overwrite, move and delete', async () => {
    expect((await dav(stack, 'MKCOL', `/${share}/w`, { auth: ALICE })).status).toBe(201);
    const bob = await bobSession();
    const w = await bob.watch(share, '/w');

    expect((await dav(stack, 'PUT', `/${share}/w/new.txt`, { auth: ALICE, body: 'hello' })).status).toBe(201);
    const created = await settle(w);
    expect(created.map(brief)).toEqual(['create new.txt']);
    const attr = await bob.getattr(share, '/w/new.txt');
    expect(created[0]).toMatchObject({ path: '/w/new.txt', id: attr.id, type: 'file', change: attr.change });

    expect((await dav(stack, 'PUT', `/${share}/w/new.txt`, { auth: ALICE, body: 'hello again' })).status).toBe(204);
    expect((await settle(w)).map(brief)).toEqual(['modify new.txt']);

    const moved = await dav(stack, 'MOVE', `/${share}/w/new.txt`, { auth: ALICE, headers: { Destination: `${stack.origin}/${share}/w/moved.txt` } });
    expect(moved.status).toBe(201);
    const renamed = await settle(w);
    expect(renamed.map(brief)).toEqual(['rename new.txt -> moved.txt']);
    expect(renamed[0]).toMatchObject({ id: attr.id });

    expect((await dav(stack, 'DELETE', `/${share}/w/moved.txt`, { auth: ALICE })).status).toBe(204);
    expect((await settle(w)).map(brief)).toEqual(['delete moved.txt']);

    if (share === 'disk') {
      // The gateway's local share (behind its metrics wrapper) reports changes made outside too.
      writeFileSync(join(stack.diskDir, 'w', 'outside.txt'), 'from a shell');
      expect((await settle(w)).map(brief)).toEqual(['create outside.txt']);
    }

    await bob.end();
    expect(w.ended).toBe('session');
  });
});
