/**
 * Client records and the grace period, across a restart of the whole stack (a new VFS, session
 * manager and metadata store on the same state directory and storage): a known client reclaims
 * its open and lock, another client's conflicting requests get EGRACE until grace ends while
 * others go ahead, an unknown client cannot reclaim, and grace ends early when every known client
 * has completed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeVfsEnv, alice, bob, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import { ClientRecords } from '../../src/locks/client-records.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { STATE_BACKENDS, sleep } from './backends.ts';

const enc = (s: string): Buffer => Buffer.from(s);
/** NFS OPEN4_SHARE_ACCESS_BOTH with OPEN4_SHARE_DENY_WRITE (nfsShareToAccess(3, 2)). */
const DENY_WRITE = { read: true, write: false, delete: true };
const HELD = { start: 0n, end: 100n };

for (const f of STATE_BACKENDS) {
  describe(`grace and reclaim (${f.name})`, () => {
    let backend: Backend;
    let env: VfsEnv;
    let env2: VfsEnv | undefined;
    let again: Backend | undefined;

    /** Before the restart, client nfs:c1 holds a deny-write open of /f and a lock on [0, 100). */
    beforeEach(async () => {
      backend = await f.create();
      env = makeVfsEnv(backend);
      const records = ClientRecords.install(env.vfs, { graceMs: 60_000 });
      const s = env.session(alice, 'nfs');
      s.bindClient('nfs:c1', { verifier: 'boot-1' });
      const w = await s.replaceContent('s', '/f');
      await w.write(enc('shared file'));
      await w.commit();
      const h = await s.open('s', '/f', { access: RW, share: DENY_WRITE, owner: 'open-owner-1' });
      await s.lockHandle(h, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lock-owner-1' });
      // A client that held nothing is not waited for.
      env.session(bob, 'nfs').bindClient('nfs:idle');
      await Promise.resolve();
      // The gateway freezes the records before its front-ends end their clients.
      records.stop();
      await env.stop();
    });

    afterEach(async () => {
      if (env2 !== undefined) {
        ClientRecords.of(env2.vfs)?.stop();
        await env2.destroy();
      }
      env2 = undefined;
      if (again !== undefined && again !== backend) await f.destroy(again);
      again = undefined;
      await f.destroy(backend);
    });

    async function restart(graceMs: number): Promise<{ env2: VfsEnv; records: ClientRecords }> {
      again = await f.reopen(backend);
      env2 = makeVfsEnv(again, { stateDir: env.stateDir });
      return { env2, records: ClientRecords.install(env2.vfs, { graceMs }) };
    }

    it('a known client reclaims its open and lock; conflicting new requests get EGRACE meanwhile; an unknown client cannot reclaim', async () => {
      const { env2, records } = await restart(60_000);
      expect(records.status()).toMatchObject({ active: true, pending: 1 });

      const other = env2.session(bob, 'nfs');
      expect(other.bindClient('nfs:c2')).toEqual({ known: false, reclaimable: false });
      // Reading beside the recorded deny-write open is fine; a lock on a free range too.
      const h2 = await other.open('s', '/f', { access: RO, owner: 'b' });
      await other.lockHandle(h2, { kind: 'exclusive', style: 'posix', range: { start: 200n, end: 300n }, ownerId: 'lo-b' });
      // What conflicts with c1's unreclaimed state waits for the grace period.
      await expect(other.lockHandle(h2, { kind: 'shared', style: 'posix', range: { start: 50n, end: 60n }, ownerId: 'lo-b' })).rejects.toMatchObject({ code: 'EGRACE' });
      await expect(other.open('s', '/f', { access: RW, owner: 'bw' })).rejects.toMatchObject({ code: 'EGRACE' });
      expect(other.graceStatus().active).toBe(true);
      // No delegation on a file whose state may still be reclaimed.
      expect(other.requestLease(h2, { key: 'dg', level: 3, bindToHandle: false, onBreak: () => undefined }).level).toBe(0);

      // A client unknown before the restart cannot reclaim anything.
      const stranger = env2.session(bob, 'nfs');
      stranger.bindClient('nfs:c3');
      await expect(stranger.reclaimOpen('s', '/f', { access: RW, share: DENY_WRITE, owner: 'x' })).rejects.toMatchObject({ code: 'ENOENT' });

      // c1 comes back with the same verifier and reclaims exactly what it held.
      const c1 = env2.session(alice, 'nfs');
      expect(c1.bindClient('nfs:c1', { verifier: 'boot-1' })).toEqual({ known: true, reclaimable: true });
      await expect(c1.reclaimOpen('s', '/f', { access: RO, owner: 'open-owner-1' })).rejects.toMatchObject({ code: 'ENOENT' });
      const h1 = await c1.reclaimOpen('s', '/f', { access: RW, share: DENY_WRITE, owner: 'open-owner-1' });
      await expect(c1.reclaimLock(h1, { kind: 'exclusive', style: 'posix', range: { start: 0n, end: 50n }, ownerId: 'lock-owner-1' })).rejects.toMatchObject({ code: 'ENOENT' });
      const lock = await c1.reclaimLock(h1, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lock-owner-1' });
      expect(lock.range).toEqual(HELD);
      await expect(c1.reclaimLock(h1, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lock-owner-1' })).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await c1.read(h1, 0, 100)).toString()).toBe('shared file');
      // Now the lock is really held: another client's request is refused by it, not by grace.
      await expect(other.lockHandle(h2, { kind: 'shared', style: 'posix', range: { start: 50n, end: 60n }, ownerId: 'lo-b' })).rejects.toMatchObject({ code: 'ELOCKED' });

      // The only client with state is done: grace ends early; reclaims are over.
      c1.reclaimComplete();
      expect(records.status()).toEqual({ active: false, endsAt: undefined, pending: 0 });
      expect(c1.requestLease(h1, { key: 'after', level: 3, onBreak: () => undefined }).level).toBe(3);
      await expect(c1.reclaimOpen('s', '/f', { access: RO, owner: 'late' })).rejects.toMatchObject({ code: 'EINVAL' });
    });

    it('when grace ends unreclaimed state is forgotten: the conflicting lock refused during grace succeeds', async () => {
      const { env2 } = await restart(300);
      const other = env2.session(bob, 'nfs');
      other.bindClient('nfs:c2');
      const h2 = await other.open('s', '/f', { access: RW, share: { read: true, write: true, delete: true }, owner: 'b' }).catch((e: unknown) => e);
      expect(h2).toMatchObject({ code: 'EGRACE' });
      const hr = await other.open('s', '/f', { access: RO, owner: 'r' });
      await expect(other.lockHandle(hr, { kind: 'shared', style: 'posix', range: HELD, ownerId: 'lo' })).rejects.toMatchObject({ code: 'EGRACE' });
      await sleep(400);
      expect(other.graceStatus().active).toBe(false);
      await other.lockHandle(hr, { kind: 'shared', style: 'posix', range: HELD, ownerId: 'lo' });
      const hw = await other.open('s', '/f', { access: RW, owner: 'w' });
      await other.write(hw, 0, enc('after grace'));
      // c1 did not come back: a later reclaim is refused (no grace any more).
      const c1 = env2.session(alice, 'nfs');
      c1.bindClient('nfs:c1', { verifier: 'boot-1' });
      await expect(c1.reclaimOpen('s', '/f', { access: RW, share: DENY_WRITE, owner: 'open-owner-1' })).rejects.toMatchObject({ code: 'EINVAL' });
    });

    it('a client that restarted (new verifier) has nothing to reclaim, and grace ends when it was the last', async () => {
      const { env2, records } = await restart(60_000);
      const c1 = env2.session(alice, 'nfs');
      expect(c1.bindClient('nfs:c1', { verifier: 'boot-2' })).toEqual({ known: true, reclaimable: false });
      expect(records.status().active).toBe(false);
      const other = env2.session(bob, 'nfs');
      const h = await other.open('s', '/f', { access: RW, owner: 'b' });
      await other.lockHandle(h, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lo' });
    });

    it('a restart with grace 0 has no grace period', async () => {
      const { env2, records } = await restart(0);
      expect(records.status().active).toBe(false);
      const other = env2.session(bob, 'nfs');
      const h = await other.open('s', '/f', { access: RW, owner: 'b' });
      await other.lockHandle(h, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lo' });
    });
  });
}
