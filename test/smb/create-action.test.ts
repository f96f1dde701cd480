/**
 * SMB CREATE's CreateAction comes from the core open itself (Handle.created), with impacket as the
 * client (its create() keeps only the FileId, so the response is read off recvSMB): OPEN_IF
 * creating and then opening, OVERWRITE_IF and SUPERSEDE of an existing file, and a create in a
 * drop box (write without read: the stat the server used to make before the open is refused there,
 * and the create was reported OPENED).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('SMB CREATE: CreateAction', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb({ shares: [{ name: 'drops', source: 'memory:', rules: [{ path: '/box', users: ['alice'], deny: ['read'] }] }] });
    await stack.gateway.vfs!.mkdir('drops', '/box');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('CREATED only when the open created the file; OPENED, OVERWRITTEN, SUPERSEDED otherwise; a drop-box create is CREATED', async () => {
    const out = await runPython(
      String.raw`
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import *
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
s = c.getSMBServer()
last = {}
orig = s.recvSMB
def rec(mid=None):
    p = orig(mid)
    if p['Command'] == SMB2_CREATE and p['Status'] == 0:
        last['action'] = SMB2Create_Response(p['Data'])['CreateAction']
    return p
s.recvSMB = rec
def action(tid, name, disp, access=FILE_READ_DATA | FILE_WRITE_DATA):
    fid = c.createFile(tid, name, desiredAccess=access, shareMode=FILE_SHARE_READ | FILE_SHARE_WRITE, creationDisposition=disp)
    c.closeFile(tid, fid)
    return last['action']
t = c.connectTree('mem')
out = {'mem': [action(t, 'ca.txt', FILE_OPEN_IF), action(t, 'ca.txt', FILE_OPEN_IF), action(t, 'ca.txt', FILE_OVERWRITE_IF), action(t, 'ca.txt', FILE_SUPERSEDE), action(t, 'ca.txt', FILE_OPEN)]}
d = c.connectTree('drops')
out['box'] = action(d, 'box\\dropped.txt', FILE_OPEN_IF, FILE_WRITE_DATA)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    // MS-SMB2 2.2.14: SUPERSEDED 0, OPENED 1, CREATED 2, OVERWRITTEN 3.
    expect(out.mem).toEqual([2, 1, 3, 0, 1]);
    expect(out.box).toBe(2);
  }, 60_000);
});
