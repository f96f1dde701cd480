/**
 * NFSv4 client state across time with the project's NFSv4.1 client: lease expiry frees a silent
 * client's opens and locks; after a gateway restart the grace period keeps a client's recorded
 * open for it (another client's conflicting open gets NFS4ERR_GRACE), the client reclaims it with
 * OPEN CLAIM_PREVIOUS (same owner, same verifier), and once it sent RECLAIM_COMPLETE the open's
 * deny mode holds against others again (SHARE_DENIED) and grace is over (NO_GRACE).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type Stateid } from './client41.ts';

let stack: NfsStack | undefined;
const clients: Nfs41Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stack?.stop();
  stack = undefined;
});

async function connect(port: number, o: Parameters<typeof Nfs41Client.connect>[1] = {}): Promise<Nfs41Client> {
  const c = await Nfs41Client.connect(port, o);
  clients.push(c);
  return c;
}

async function openFile(c: Nfs41Client, path: string, o: { access?: number; deny?: number; create?: 'unchecked' } = {}) {
  const parts = path.split('/').filter(Boolean);
  const name = parts.pop()!;
  return c.call([...c.lookupPath(parts.join('/')), ops.open(c.clientid, 'owner', name, o), ops.getfh()]);
}

describe('leases', () => {
  it('a client silent for two lease periods loses its session, opens and locks', async () => {
    stack = await startNfs();
    const a = await connect(stack.nfsPort);
    const b = await connect(stack.nfsPort);
    const oa = await openFile(a, '/mem/leased.txt', { create: 'unchecked' });
    expect(oa.status).toBe(NFS4ERR.OK);
    const fh = resultOf(oa, OP.GETFH)!.body!.fh as Buffer;
    const sa = resultOf(oa, OP.OPEN)!.body!.stateid as Stateid;
    expect((await a.call([ops.putfh(fh), ops.lock(sa, a.clientid, 'l', 0n, 10n)])).status).toBe(NFS4ERR.OK);
    const ob = await openFile(b, '/mem/leased.txt');
    const sb = resultOf(ob, OP.OPEN)!.body!.stateid as Stateid;
    expect((await b.call([ops.putfh(fh), ops.lock(sb, b.clientid, 'l', 0n, 10n)])).status).toBe(NFS4ERR.DENIED);
    // b keeps renewing; a does not: three lease periods later only a is expired.
    const server = stack.nfs.server!;
    for (const c of server.state.clients.values()) if (c.clientid === b.clientid) c.lastRenew = Date.now() + 270_000;
    await server.expire(Date.now() + 270_000);
    expect((await a.call([ops.putrootfh()])).status).toBe(NFS4ERR.BADSESSION);
    expect((await b.call([ops.putfh(fh), ops.lock(sb, b.clientid, 'l', 0n, 10n)])).status).toBe(NFS4ERR.OK);
  });
});

describe('grace after a restart', () => {
  it('keeps a recorded open for its client, which reclaims it with CLAIM_PREVIOUS', async () => {
    stack = await startNfs();
    const owner = 'reclaimer';
    const a = await connect(stack.nfsPort, { owner });
    const verifier = a.verifier;
    // Deny WRITE: the open's share bits are recorded for reclaim.
    const oa = await openFile(a, '/disk/held.txt', { create: 'unchecked', access: 1, deny: 2 });
    expect(oa.status).toBe(NFS4ERR.OK);
    const fh = resultOf(oa, OP.GETFH)!.body!.fh as Buffer;
    const port = stack.nfsPort;
    const tmp = stack.tmp;
    a.close();
    await stack.stop({ keep: true });
    stack = await startNfs({ tmp, nfsPort: port });

    const b = await connect(port);
    expect((await openFile(b, '/disk/held.txt', { access: 2 })).status).toBe(NFS4ERR.GRACE);
    // An unrelated file is not held up by grace.
    expect((await openFile(b, '/disk/other.txt', { access: 3, create: 'unchecked' })).status).toBe(NFS4ERR.OK);

    const a2 = await connect(port, { owner, verifier, reclaimComplete: false });
    const re = await a2.call([ops.putfh(fh), ops.openPrevious(a2.clientid, 'owner', { access: 1, deny: 2 })]);
    expect(re.status).toBe(NFS4ERR.OK);
    await a2.reclaimComplete();
    expect((await openFile(b, '/disk/held.txt', { access: 2 })).status).toBe(NFS4ERR.SHARE_DENIED);
    expect((await a2.call([ops.putfh(fh), ops.openPrevious(a2.clientid, 'owner2', { access: 1 })])).status).toBe(NFS4ERR.NO_GRACE);
  });
});
