/**
 * Leases through the session layer: another client's open, write, rename or delete breaks a lease
 * (the holder's callback is called, the operation waits for the acknowledgement), a holder that
 * never answers is revoked after the break timeout, the same lease key never breaks itself.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeVfsEnv, alice, bob, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import { LEASE_H, LEASE_R, LEASE_W, type LeaseBreak } from '../../src/locks/leases.ts';
import type { Session } from '../../src/session/session.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { STATE_BACKENDS, settledWithin, sleep } from './backends.ts';

const RWH = LEASE_R | LEASE_W | LEASE_H;
const RH = LEASE_R | LEASE_H;
const enc = (s: string): Buffer => Buffer.from(s);

for (const f of STATE_BACKENDS) {
  describe(`leases (${f.name})`, () => {
    let backend: Backend;
    let env: VfsEnv;
    let holder: Session;
    let other: Session;
    let breaks: LeaseBreak[];

    beforeEach(async () => {
      backend = await f.create();
      env = makeVfsEnv(backend);
      holder = env.session(alice, 'smb');
      holder.bindClient('smb:client-a');
      other = env.session(bob, 'nfs');
      other.bindClient('nfs:client-b');
      breaks = [];
      const w = await holder.replaceContent('s', '/f');
      await w.write(enc('original'));
      await w.commit();
    });

    afterEach(async () => {
      await env.destroy();
      await f.destroy(backend);
    });

    /** The holder opens /f and asks for `level` under lease key `key`. */
    async function lease(level: number, key = 'L1', o: { share?: typeof RW; breakTimeoutMs?: number } = {}) {
      const h = await holder.withLeaseKey(key, () => holder.open('s', '/f', { access: RW, owner: 'h', ...(o.share ? { share: o.share } : {}) }));
      const grant = holder.requestLease(h, { key, level, onBreak: (ev) => breaks.push(ev), ...(o.breakTimeoutMs ? { breakTimeoutMs: o.breakTimeoutMs } : {}) });
      return { h, grant };
    }

    it('grants what was asked when the file is the holder\'s alone, and no W beside another open or lease', async () => {
      const { grant } = await lease(RWH);
      expect(grant.level).toBe(RWH);
      const opening = env.session(alice, 'smb').open('s', '/f', { access: RO, owner: 'x' });
      await sleep(10);
      holder.ackLeaseBreak('L1', RH);
      await opening;
      const h3 = await holder.open('s', '/f', { access: RO, owner: 'h3' });
      expect(holder.requestLease(h3, { key: 'L2', level: RWH, onBreak: () => undefined }).level).toBe(RH);
      expect(() => holder.requestLease(h3, { key: 'L1', level: RH, onBreak: () => undefined })).not.toThrow();
    });

    it("another client's open breaks W and waits for the acknowledgement", async () => {
      await lease(RWH);
      const opening = other.open('s', '/f', { access: RO, owner: 'b' });
      expect(await settledWithin(opening, 50)).toBe(false);
      expect(breaks).toHaveLength(1);
      expect(breaks[0]).toMatchObject({ from: RWH, to: RH, ackRequired: true });
      holder.ackLeaseBreak('L1', RH);
      const h = await opening;
      expect((await other.read(h, 0, 100)).toString()).toBe('original');
      expect(env.vfs.leases.leasesOn(h.fileId)).toEqual([{ holder: { client: 'smb:client-a', key: 'L1' }, level: RH, breaking: false }]);
    });

    it("another client's write breaks the lease to none; the write waits for the flush and acknowledgement", async () => {
      const { h } = await lease(RH);
      const hb = await other.open('s', '/f', { access: RW, owner: 'b' });
      expect(breaks).toHaveLength(0); // RH has no W: an open breaks nothing
      const writing = other.write(hb, 0, enc('OTHER'));
      expect(await settledWithin(writing, 50)).toBe(false);
      expect(breaks[0]).toMatchObject({ from: RH, to: 0, ackRequired: true });
      // The holder acknowledges; the write goes ahead only now.
      expect((await holder.read(h, 0, 100)).toString()).toBe('original');
      holder.ackLeaseBreak('L1', 0);
      await writing;
      expect((await holder.read(h, 0, 100)).toString()).toBe('OTHERnal');
      expect(env.vfs.leases.size).toBe(0);
    });

    it('an R lease is broken by a write at once: no acknowledgement, no wait', async () => {
      await lease(LEASE_R);
      const hb = await other.open('s', '/f', { access: RW, owner: 'b' });
      await other.write(hb, 0, enc('x'));
      expect(breaks).toEqual([expect.objectContaining({ from: LEASE_R, to: 0, ackRequired: false })]);
    });

    it("another client's rename or delete breaks H; an open that would get a sharing violation breaks H and then succeeds", async () => {
      const { h } = await lease(RH);
      const renaming = other.rename('s', '/f', '/g');
      expect(await settledWithin(renaming, 30)).toBe(false);
      expect(breaks[0]).toMatchObject({ from: RH, to: LEASE_R, ackRequired: true });
      holder.ackLeaseBreak('L1', LEASE_R);
      await renaming;
      expect(h.path).toBe('/g');
      await holder.close(h);

      // Deny-write open of the holder with a handle lease; a writer from another client.
      breaks = [];
      const hd = await holder.withLeaseKey('L3', () => holder.open('s', '/g', { access: RO, share: { read: true, write: false, delete: false }, owner: 'd' }));
      expect(holder.requestLease(hd, { key: 'L3', level: RH, onBreak: (ev) => breaks.push(ev) }).level).toBe(RH);
      const opening = other.open('s', '/g', { access: RW, owner: 'w' });
      expect(await settledWithin(opening, 30)).toBe(false);
      expect(breaks[0]).toMatchObject({ from: RH, to: LEASE_R });
      // The client closes its cached handle instead of keeping it: the lease ends with it.
      await holder.close(hd);
      await opening;

      breaks = [];
      const hx = await holder.withLeaseKey('L4', () => holder.open('s', '/g', { access: RO, owner: 'x' }));
      holder.requestLease(hx, { key: 'L4', level: RH, onBreak: (ev) => breaks.push(ev) });
      const deleting = other.unlink('s', '/g');
      expect(await settledWithin(deleting, 30)).toBe(false);
      holder.ackLeaseBreak('L4', LEASE_R);
      await deleting;
      await expect(other.getattr('s', '/g')).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('renaming a directory above the file breaks H; renaming a sibling breaks nothing', async () => {
      await holder.mkdir('s', '/d');
      const w = await holder.replaceContent('s', '/d/x');
      await w.write(enc('x'));
      await w.commit();
      await holder.mkdir('s', '/d/sub');
      const h = await holder.withLeaseKey('LD', () => holder.open('s', '/d/x', { access: RO, owner: 'x' }));
      expect(holder.requestLease(h, { key: 'LD', level: RH, onBreak: (ev) => breaks.push(ev) }).level).toBe(RH);
      await other.rename('s', '/d/sub', '/d/sub2');
      await other.rename('s', '/f', '/f2');
      expect(breaks).toEqual([]);
      const renaming = other.rename('s', '/d', '/e');
      expect(await settledWithin(renaming, 30)).toBe(false);
      expect(breaks[0]).toMatchObject({ from: RH, to: LEASE_R });
      holder.ackLeaseBreak('LD', LEASE_R);
      await renaming;
      expect(h.path).toBe('/e/x');
    });

    it('an NFS read delegation (RH, recallOnWriteOpen, no handle) is recalled by an open for write, not by one for read', async () => {
      const nfs = env.session(alice, 'nfs');
      nfs.bindClient('nfs:client-d');
      const h = await nfs.withLeaseKey('deleg', () => nfs.open('s', '/f', { access: RO, owner: 'd' }));
      const recalls: LeaseBreak[] = [];
      const grant = nfs.requestLease(h, { key: 'deleg', level: RH, recallOnWriteOpen: true, bindToHandle: false, onBreak: (ev) => recalls.push(ev) });
      expect(grant.level).toBe(RH);
      await nfs.close(h); // a delegation outlives the client's opens
      await other.open('s', '/f', { access: RO, owner: 'r' });
      expect(recalls).toEqual([]);
      const opening = other.open('s', '/f', { access: RW, owner: 'w' });
      expect(await settledWithin(opening, 30)).toBe(false);
      expect(recalls[0]).toMatchObject({ from: RH, to: 0, ackRequired: true });
      nfs.releaseLease('deleg'); // DELEGRETURN
      await opening;
      expect(env.vfs.leases.size).toBe(0);
    });

    it('a holder that never acknowledges is revoked after the break timeout, and the operation proceeds', async () => {
      await lease(RWH, 'L1', { breakTimeoutMs: 150 });
      const t0 = Date.now();
      const hb = await other.open('s', '/f', { access: RW, owner: 'b' });
      const waited = Date.now() - t0;
      expect(waited).toBeGreaterThanOrEqual(140);
      expect(waited).toBeLessThan(2000);
      expect(breaks.map((b) => [b.from, b.to, b.revoked === true])).toEqual([[RWH, RH, false], [RWH, 0, true]]);
      expect(env.vfs.leases.size).toBe(0);
      await other.write(hb, 0, enc('after'));
      expect(() => holder.ackLeaseBreak('L1', RH)).toThrow(/no lease break/);
    });

    it('the same lease key never breaks its own lease; the same client under another key does not wait', async () => {
      const { h } = await lease(RWH);
      const again = await holder.withLeaseKey('L1', () => holder.open('s', '/f', { access: RW, owner: 'again' }));
      expect(holder.requestLease(again, { key: 'L1', level: RWH, onBreak: (ev) => breaks.push(ev) }).level).toBe(RWH);
      await holder.write(h, 0, enc('mine'));
      await holder.write(again, 0, enc('MINE'));
      await holder.withLeaseKey('L1', () => holder.setattr('s', '/f', { size: 2 }));
      expect(breaks).toEqual([]);
      // Another key of the same client: the break is sent, the open does not wait for it.
      const t0 = Date.now();
      await holder.withLeaseKey('L9', () => holder.open('s', '/f', { access: RO, owner: 'l9' }));
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(breaks).toEqual([expect.objectContaining({ from: RWH, to: RH })]);
    });

    it('an acknowledgement above the break target is refused; a second conflict during a break is sent after the ack', async () => {
      await lease(RWH);
      const opening = other.open('s', '/f', { access: RW, owner: 'b' });
      await sleep(10);
      expect(() => holder.ackLeaseBreak('L1', RWH)).toThrow(/above the break target/);
      holder.ackLeaseBreak('L1', RH);
      const hb = await opening;
      const writing = other.write(hb, 0, enc('z'));
      await sleep(10);
      expect(breaks.map((b) => [b.from, b.to])).toEqual([[RWH, RH], [RH, 0]]);
      holder.ackLeaseBreak('L1', 0);
      await writing;
    });

    it('a lease granted on a handle ends with its last handle; leases without handles end with the client', async () => {
      const { h } = await lease(RH);
      await holder.close(h);
      expect(env.vfs.leases.size).toBe(0);
      const h2 = await holder.open('s', '/f', { access: RO, owner: 'd' });
      holder.requestLease(h2, { key: 'deleg', level: RH, onBreak: () => undefined, bindToHandle: false });
      await holder.close(h2);
      expect(env.vfs.leases.size).toBe(1);
      await holder.end();
      expect(env.vfs.leases.size).toBe(0);
    });
  });
}
