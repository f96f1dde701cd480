/**
 * Hard links seen over NFS (issue 9, "Identity"): on a local-disk share every name of a file gives
 * the same fileid (and numlinks), whether the link was made by an NFS LINK or outside Portico, and
 * a REMOVE of one name leaves the other with that fileid. The VFS semantics behind it are in
 * test/vfs/hard-links.test.ts.
 */
import { linkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FATTR4, NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type OpEnc } from './client41.ts';

let stack: NfsStack;
let c: Nfs41Client;

beforeAll(async () => {
  stack = await startNfs();
  c = await Nfs41Client.connect(stack.nfsPort);
}, 60_000);

afterAll(async () => {
  c?.close();
  await stack?.stop();
});

/** LINK4args: the new name; the saved filehandle is the file, the current one the directory. */
const link = (name: string): OpEnc => ({ op: OP.LINK, write: (w) => void w.u32(OP.LINK).string(name) });

/** fileid (u64) and numlinks (u32) of a path, as the GETATTR reply encodes them. */
async function idOf(path: string): Promise<{ fileid: bigint; numlinks: number }> {
  const r = await c.call([...c.lookupPath(path), ops.getattr([FATTR4.FILEID, FATTR4.NUMLINKS])]);
  expect(r.status).toBe(NFS4ERR.OK);
  const vals = resultOf(r, OP.GETATTR)!.body!.vals as Buffer;
  return { fileid: vals.readBigUInt64BE(0), numlinks: vals.readUInt32BE(8) };
}

describe('hard links over NFS on a local disk', () => {
  it('a LINK and an outside link give the same fileid through every name; a REMOVE keeps it for the rest', async () => {
    writeFileSync(join(stack.diskDir, 'a'), 'shared');
    const a = await idOf('/disk/a');
    expect(a.numlinks).toBe(1);
    const r = await c.call([...c.lookupPath('/disk/a'), ops.savefh(), ...c.lookupPath('/disk'), link('b')]);
    expect(r.status).toBe(NFS4ERR.OK);
    linkSync(join(stack.diskDir, 'a'), join(stack.diskDir, 'c'));
    const b = await idOf('/disk/b');
    const cc = await idOf('/disk/c');
    expect([b.fileid, cc.fileid]).toEqual([a.fileid, a.fileid]);
    expect(cc.numlinks).toBe(3);
    expect((await c.call([...c.lookupPath('/disk'), ops.remove('a')])).status).toBe(NFS4ERR.OK);
    expect((await idOf('/disk/b')).fileid).toBe(a.fileid);
    expect((await idOf('/disk/c')).fileid).toBe(a.fileid);
  });
});
