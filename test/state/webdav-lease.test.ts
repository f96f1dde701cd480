/**
 * WebDAV has no leases of its own, yet its writes break the leases other protocols hold: the VFS
 * breaks them before every conflicting operation. Here an SMB-style client (through the session
 * layer of the same gateway) holds an RWH lease with unflushed data; a real WebDAV PUT breaks it,
 * the holder flushes and acknowledges, and only then does the PUT write.
 */
import { describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';
import { alice, RW } from '../helpers/vfs-env.ts';
import { LEASE_H, LEASE_R, LEASE_W, type LeaseBreak } from '../../src/locks/leases.ts';

const RWH = LEASE_R | LEASE_W | LEASE_H;

describe('a WebDAV PUT breaks another protocol\'s lease before it writes', () => {
  let stack: DavStack;
  useDav((s) => (stack = s), { alice: 'alice-password' });

  it('RWH is broken to none, the holder flushes and acknowledges, then the PUT replaces the content', async () => {
    const sessions = stack.gateway.sessions!;
    const smb = sessions.openSession({ principal: alice, protocol: 'smb', clientAddress: '127.0.0.1' });
    smb.bindClient('smb:guid-put');
    const w = await smb.replaceContent('mem', '/doc.txt');
    await w.write(Buffer.from('v1'));
    await w.commit();
    const h = await smb.withLeaseKey('K', () => smb.open('mem', '/doc.txt', { access: RW, owner: 'o' }));
    const seen: Array<{ ev: LeaseBreak; before: string }> = [];
    const grant = smb.requestLease(h, {
      key: 'K',
      level: RWH,
      onBreak: (ev) => {
        // The client writes back what it cached (its own writes do not break its lease), then acks.
        void (async () => {
          const before = (await smb.read(h, 0, 100)).toString();
          seen.push({ ev, before });
          await smb.write(h, 0, Buffer.from('v2 cached'));
          await smb.flush(h);
          smb.ackLeaseBreak('K', ev.to);
        })();
      },
    });
    expect(grant.level).toBe(RWH);

    const res = await dav(stack, 'PUT', '/mem/doc.txt', { body: 'v3 from webdav', auth: ['alice', 'alice-password'] });
    expect(res.status).toBe(204);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.ev).toMatchObject({ from: RWH, ackRequired: true });
    expect(seen[0]!.ev.to & LEASE_W).toBe(0); // R-or-none: here none, a write breaks R
    expect(seen[0]!.before).toBe('v1'); // the PUT had not written when the holder was asked
    const get = await dav(stack, 'GET', '/mem/doc.txt', { auth: ['alice', 'alice-password'] });
    expect(get.text).toBe('v3 from webdav'); // the flush landed first, the PUT after it
    expect(stack.gateway.vfs!.leases.size).toBe(0);
    await smb.end();
  });
});
