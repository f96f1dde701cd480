/**
 * Owners as name@domain (protocols.nfs.idmapDomain) with the project's own client: GETATTR and
 * READDIR show the Portico user carrying the uid (a group: the user private group whose uid and
 * gid are the gid), numbers where no user does; SETATTR takes "name@domain" (domain without case)
 * and numbers; unknown names, other domains, bare names and groups that are no user private group
 * are NFS4ERR_BADOWNER. Without a domain owners stay numeric and names are BADOWNER.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FATTR4, NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { XdrReader } from '../../protocols/nfs/xdr.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type CompoundReply } from './client41.ts';

// Changing an owner takes the admin right (src/session/session.ts).
const OWN = { name: 'own', source: 'memory:', access: [{ users: ['*'], rights: ['read', 'write', 'admin'] }] };
const USERS = [
  { name: 'root', uid: 0 },
  { name: 'alice', uid: 1001 },
  { name: 'bob', uid: 1002, gid: 100 },
];

function owners(r: CompoundReply): [string, string] {
  const x = new XdrReader(resultOf(r, OP.GETATTR)!.body!.vals as Buffer);
  return [x.utf8(1024), x.utf8(1024)];
}

async function makeFile(c: Nfs41Client, name: string): Promise<Buffer> {
  const r = await c.call([...c.lookupPath('/own'), ops.open(c.clientid, 'idmap', name, { create: 'unchecked' }), ops.getfh()]);
  expect(r.status).toBe(NFS4ERR.OK);
  const fh = resultOf(r, OP.GETFH)!.body!.fh as Buffer;
  expect((await c.call([ops.putfh(fh), ops.close(resultOf(r, OP.OPEN)!.body!.stateid as never)])).status).toBe(NFS4ERR.OK);
  return fh;
}

describe('idmapDomain set', () => {
  let stack: NfsStack;
  let c: Nfs41Client;

  beforeAll(async () => {
    stack = await startNfs({ users: USERS, shares: [OWN], config: { 'protocols.nfs.idmapDomain': 'Example.COM' } });
    c = await Nfs41Client.connect(stack.nfsPort);
  }, 60_000);

  afterAll(async () => {
    c?.close();
    await stack?.stop();
  });

  it('GETATTR and READDIR name owners; SETATTR takes names and numbers', async () => {
    const fh = await makeFile(c, 'owned.txt');
    const get = () => c.call([ops.putfh(fh), ops.getattr([FATTR4.OWNER, FATTR4.OWNER_GROUP])]);
    expect(owners(await get())).toEqual(['root@example.com', 'root@example.com']);
    expect((await c.call([ops.putfh(fh), ops.setOwners('alice@EXAMPLE.com', 'alice@example.com')])).status).toBe(NFS4ERR.OK);
    expect(owners(await get())).toEqual(['alice@example.com', 'alice@example.com']);
    const srv = stack.nfs.server!;
    const a = await srv.base.as({ user: 'root', uid: 0, gid: 0, groups: [], guest: false }).getattr('own', '/owned.txt');
    expect([a.uid, a.gid]).toEqual([1001, 1001]);
    // Numbers too; bob's gid 100 is no user private group, so it stays a number; 4242 is nobody's.
    expect((await c.call([ops.putfh(fh), ops.setOwners('1002', '100')])).status).toBe(NFS4ERR.OK);
    expect(owners(await get())).toEqual(['bob@example.com', '100']);
    expect((await c.call([ops.putfh(fh), ops.setOwners('4242', '4242')])).status).toBe(NFS4ERR.OK);
    expect(owners(await get())).toEqual(['4242', '4242']);
    expect((await c.call([ops.putfh(fh), ops.setOwners('alice@example.com')])).status).toBe(NFS4ERR.OK);
    const ls = await c.call([...c.lookupPath('/own'), ops.readdir(0n, 8192, [FATTR4.OWNER])]);
    const body = resultOf(ls, OP.READDIR)!.body as { names: string[]; attrs: Buffer[] };
    const at = body.names.indexOf('owned.txt');
    expect(new XdrReader(body.attrs[at]!).utf8(1024)).toBe('alice@example.com');
  });

  it('BADOWNER for an unknown name, another domain, a bare name, a group that is no user private group', async () => {
    const fh = await makeFile(c, 'bad-owner.txt');
    for (const [owner, group] of [['carol@example.com', undefined], ['alice@example.org', undefined], ['alice', undefined], [undefined, 'bob@example.com'], ['-1', undefined]] as const) {
      expect((await c.call([ops.putfh(fh), ops.setOwners(owner, group)])).status, `${owner} ${group}`).toBe(NFS4ERR.BADOWNER);
    }
    expect(owners(await c.call([ops.putfh(fh), ops.getattr([FATTR4.OWNER, FATTR4.OWNER_GROUP])]))).toEqual(['root@example.com', 'root@example.com']);
  });
});

describe('no idmapDomain (the default)', () => {
  let stack: NfsStack;
  let c: Nfs41Client;

  beforeAll(async () => {
    stack = await startNfs({ users: USERS, shares: [OWN] });
    c = await Nfs41Client.connect(stack.nfsPort);
  }, 60_000);

  afterAll(async () => {
    c?.close();
    await stack?.stop();
  });

  it('owners are numeric strings and names are BADOWNER', async () => {
    const fh = await makeFile(c, 'numeric.txt');
    expect((await c.call([ops.putfh(fh), ops.setOwners('1001', '100')])).status).toBe(NFS4ERR.OK);
    expect(owners(await c.call([ops.putfh(fh), ops.getattr([FATTR4.OWNER, FATTR4.OWNER_GROUP])]))).toEqual(['1001', '100']);
    expect((await c.call([ops.putfh(fh), ops.setOwners('alice@example.com')])).status).toBe(NFS4ERR.BADOWNER);
  });
});
