/**
 * Durable handles through the session layer: a dropped session's durable handle is parked with its
 * share mode and its locks, the same principal takes it back by key and uses it, another principal
 * cannot, it is closed with its locks released after its timeout, and a conflicting open closes it
 * (a disconnected client does not hold up others: MS-SMB2 3.3.5.9).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeVfsEnv, alice, bob, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import { DurableHandles } from '../../src/locks/durable-handles.ts';
import { LEASE_H, LEASE_R, LEASE_W } from '../../src/locks/leases.ts';
import type { Handle } from '../../src/vfs/vfs.ts';
import type { Session } from '../../src/session/session.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { STATE_BACKENDS, sleep } from './backends.ts';

const enc = (s: string): Buffer => Buffer.from(s);
const DENY_WRITE = { read: true, write: false, delete: false };
const RANGE = { start: 0n, end: 4n };

for (const f of STATE_BACKENDS) {
  describe(`durable handles (${f.name})`, () => {
    let backend: Backend;
    let env: VfsEnv;
    let first: Session;
    let h: Handle;

    beforeEach(async () => {
      backend = await f.create();
      env = makeVfsEnv(backend);
      first = env.session(alice, 'smb');
      first.bindClient('smb:guid-1');
      const w = await first.replaceContent('s', '/f');
      await w.write(enc('0123456789'));
      await w.commit();
      // Alice's open denies writers and holds an exclusive byte-range lock through the handle.
      h = await first.open('s', '/f', { access: RW, share: DENY_WRITE, owner: 'o' });
      await first.lockHandle(h, { kind: 'exclusive', style: 'windows', range: RANGE });
    });

    afterEach(async () => {
      await env.destroy();
      await f.destroy(backend);
    });

    it('survives a dropped session with its share mode and locks, and is taken back by key by the same principal', async () => {
      expect(first.makeDurable(h, { key: 'create-guid-1', timeoutMs: 5000 }).timeoutMs).toBe(5000);
      await first.end();
      expect(DurableHandles.of(env.vfs).parkedCount()).toBe(1);
      expect(h.closed).toBe(false);
      // Its share mode is still registered, and its lock still refuses another client.
      expect(env.vfs.shareModes.opensOn(h.fileId).map((o) => o.handleId)).toEqual([h.id]);
      const bobs = env.session(bob, 'smb');
      const reader = await bobs.open('s', '/f', { access: RO, owner: 'b' });
      await expect(bobs.lockHandle(reader, { kind: 'shared', style: 'windows', range: RANGE })).rejects.toMatchObject({ code: 'ELOCKED' });
      await expect(bobs.read(reader, 0, 4)).rejects.toMatchObject({ code: 'ELOCKED' });
      expect((await bobs.read(reader, 4, 6)).toString()).toBe('456789');

      // Another principal presenting the key is refused; the owner gets the handle back.
      const mallory = env.session(bob, 'smb');
      await expect(mallory.reclaimDurable('create-guid-1')).rejects.toMatchObject({ code: 'EACCES' });
      const second = env.session(alice, 'smb');
      second.bindClient('smb:guid-1');
      const back = await second.reclaimDurable('create-guid-1');
      expect(back).toBe(h);
      expect(DurableHandles.of(env.vfs).parkedCount()).toBe(0);
      await second.write(back, 0, enc('ABCD'));
      expect((await second.read(back, 0, 10)).toString()).toBe('ABCD456789');
      // The lock came back with it: it is the new session's, released at its end.
      await expect(bobs.lockHandle(reader, { kind: 'shared', style: 'windows', range: RANGE })).rejects.toMatchObject({ code: 'ELOCKED' });
      await second.close(back);
      await second.end();
      await bobs.lockHandle(reader, { kind: 'shared', style: 'windows', range: RANGE });
      // A key is taken back once.
      await expect(env.session(alice, 'smb').reclaimDurable('create-guid-1')).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('is closed and its locks released when the timeout passes', async () => {
      first.makeDurable(h, { key: 'k-timeout', timeoutMs: 100 });
      await first.end();
      const bobs = env.session(bob, 'smb');
      const reader = await bobs.open('s', '/f', { access: RO, owner: 'b' });
      await expect(bobs.lockHandle(reader, { kind: 'shared', style: 'windows', range: RANGE })).rejects.toMatchObject({ code: 'ELOCKED' });
      await sleep(250);
      expect(h.closed).toBe(true);
      expect(env.vfs.shareModes.opensOn(h.fileId).map((o) => o.handleId)).toEqual([reader.id]);
      await bobs.lockHandle(reader, { kind: 'shared', style: 'windows', range: RANGE });
      await expect(env.session(alice, 'smb').reclaimDurable('k-timeout')).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('a handle that is not durable is closed at the end of its session, locks and all', async () => {
      await first.end();
      expect(h.closed).toBe(true);
      const bobs = env.session(bob, 'smb');
      const writer = await bobs.open('s', '/f', { access: RW, share: DENY_WRITE, owner: 'b' });
      await bobs.lockHandle(writer, { kind: 'exclusive', style: 'windows', range: RANGE });
    });

    it('a conflicting open closes a parked handle without handle caching (MS-SMB2 3.3.5.9), and one whose lease has H at once', async () => {
      first.makeDurable(h, { key: 'k-conflict', timeoutMs: 60_000 });
      await first.end();
      const bobs = env.session(bob, 'smb');
      // A writer conflicts with the parked deny-write open: the parked handle gives way.
      const writer = await bobs.open('s', '/f', { access: RW, owner: 'b' });
      expect(h.closed || env.vfs.shareModes.opensOn(h.fileId).every((o) => o.handleId !== h.id)).toBe(true);
      await bobs.lockHandle(writer, { kind: 'exclusive', style: 'windows', range: RANGE });
      await expect(env.session(alice, 'smb').reclaimDurable('k-conflict')).rejects.toMatchObject({ code: 'ENOENT' });
      await bobs.unlockHandle(writer, RANGE, 'windows');
      await bobs.close(writer);

      // With an RH lease: the conflicting open breaks H; the parked holder cannot answer, so the
      // handle is closed at once instead of the open waiting for the break timeout.
      const third = env.session(alice, 'smb');
      third.bindClient('smb:guid-3');
      const leased = await third.withLeaseKey('LK', () => third.open('s', '/f', { access: RO, share: DENY_WRITE, owner: 'l' }));
      const breaks: number[] = [];
      expect(third.requestLease(leased, { key: 'LK', level: LEASE_R | LEASE_H, onBreak: (ev) => breaks.push(ev.to), breakTimeoutMs: 30_000 }).level).toBe(LEASE_R | LEASE_H);
      third.makeDurable(leased, { key: 'k-leased' });
      await third.end();
      const t0 = Date.now();
      const w2 = await bobs.open('s', '/f', { access: RW, owner: 'b2' });
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(env.vfs.leases.size).toBe(0);
      await bobs.write(w2, 0, enc('x'));
      await expect(env.session(alice, 'smb').reclaimDurable('k-leased')).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('a parked handle keeps its lease: a compatible open lowers it at once (nobody to ask), the reconnect takes it with a new break callback', async () => {
      await first.unlockHandle(h, RANGE, 'windows');
      await first.close(h);
      const leased = await first.withLeaseKey('LK', () => first.open('s', '/f', { access: RW, owner: 'l' }));
      const old: number[] = [];
      expect(first.requestLease(leased, { key: 'LK', level: LEASE_R | LEASE_W | LEASE_H, onBreak: (ev) => old.push(ev.to) }).level).toBe(7);
      first.makeDurable(leased, { key: 'k-lease', timeoutMs: 10_000 });
      await first.end();
      // Another client reads: W is taken from the disconnected holder without a wait or a message.
      const bobs = env.session(bob, 'smb');
      const t0 = Date.now();
      const reader = await bobs.open('s', '/f', { access: RO, owner: 'r' });
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(old).toEqual([]);
      expect(env.vfs.leases.leasesOn(leased.fileId)).toEqual([{ holder: { client: 'smb:guid-1', key: 'LK' }, level: LEASE_R | LEASE_H, breaking: false }]);
      // The client reconnects; breaks go to its new connection, and are waited for again.
      const second = env.session(alice, 'smb');
      second.bindClient('smb:guid-1');
      const fresh: number[] = [];
      const back = await second.reclaimDurable('k-lease', { onLeaseBreak: (ev) => fresh.push(ev.to) });
      expect(back).toBe(leased);
      const writing = bobs.write(await bobs.open('s', '/f', { access: RW, owner: 'w' }), 0, enc('!'));
      await sleep(30);
      expect(fresh).toEqual([0]);
      second.ackLeaseBreak('LK', 0);
      await writing;
      await bobs.close(reader);
    });

    it('a key in use by another open handle is refused', async () => {
      first.makeDurable(h, { key: 'dup' });
      const other = await first.open('s', '/f', { access: RO, owner: 'o2' });
      expect(() => first.makeDurable(other, { key: 'dup' })).toThrow(/in use/);
    });
  });
}
