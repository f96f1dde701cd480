/**
 * Hard links seen over SMB (issue 9, "Identity"): on a local-disk share every name of a file gives
 * the same FileId (FileInternalInformation, FileIdInformation), whether the link was made before
 * or after the first name was opened. The VFS semantics are in test/vfs/hard-links.test.ts.
 */
import { linkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('hard links over SMB on a local disk', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('both names of a file give one FileId', async () => {
    writeFileSync(join(stack.diskDir, 'first.txt'), 'shared');
    const ids = async (): Promise<{ a: number; b: number; aId: number; bId: number }> =>
      (await runPython(
        `
import struct
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_READ_DATA, FILE_READ_ATTRIBUTES, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE, FILE_OPEN, SMB2_0_INFO_FILE
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('disk')
s = c.getSMBServer()
def ids(name):
    f = c.createFile(tid, name, desiredAccess=FILE_READ_DATA | FILE_READ_ATTRIBUTES, shareMode=FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, creationDisposition=FILE_OPEN)
    internal = struct.unpack('<Q', s.queryInfo(tid, f, infoType=SMB2_0_INFO_FILE, fileInfoClass=6)[:8])[0]
    idinfo = struct.unpack('<Q', s.queryInfo(tid, f, infoType=SMB2_0_INFO_FILE, fileInfoClass=59)[8:16])[0]
    c.closeFile(tid, f)
    return internal, idinfo
a, aId = ids('first.txt')
b, bId = ids('second.txt')
out = {'a': a, 'b': b, 'aId': aId, 'bId': bId}
`,
        { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
      )) as { a: number; b: number; aId: number; bId: number };
    // The first name is known (opened) before the second exists: the link is made outside.
    await runPython(
      `
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_READ_DATA, FILE_SHARE_READ, FILE_OPEN
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('disk')
c.closeFile(tid, c.createFile(tid, 'first.txt', desiredAccess=FILE_READ_DATA, shareMode=FILE_SHARE_READ, creationDisposition=FILE_OPEN))
out = {}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    linkSync(join(stack.diskDir, 'first.txt'), join(stack.diskDir, 'second.txt'));
    const out = await ids();
    expect(out.b).toBe(out.a);
    expect([out.aId, out.bId]).toEqual([out.a, out.a]);
  }, 60_000);
});
