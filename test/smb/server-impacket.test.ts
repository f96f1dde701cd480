/**
 * The SMB server with impacket as the client, for what smbclient's commands cannot hold open:
 * share access as VFS share modes across protocols (a deny-write SMB open makes a WebDAV PUT 423
 * and a second SMB write open STATUS_SHARING_VIOLATION until it is closed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('SMB server with impacket', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('a deny-write open refuses a WebDAV PUT (423) and another SMB write open (SHARING_VIOLATION) until closed', async () => {
    const out = await runPython(
      `
import base64, urllib.request, urllib.error
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_READ_DATA, FILE_WRITE_DATA, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_OVERWRITE_IF, FILE_OPEN
def put():
    auth = base64.b64encode((inp['user'] + ':' + inp['password']).encode()).decode()
    req = urllib.request.Request('http://127.0.0.1:%d/disk/deny.txt' % inp['dav'], data=b'from dav', method='PUT', headers={'Authorization': 'Basic ' + auth})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('disk')
fid = c.createFile(tid, 'deny.txt', desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA, shareMode=FILE_SHARE_READ, creationDisposition=FILE_OVERWRITE_IF)
c.writeFile(tid, fid, b'held by smb')
held = put()
try:
    c.createFile(tid, 'deny.txt', desiredAccess=FILE_WRITE_DATA, shareMode=FILE_SHARE_READ | FILE_SHARE_WRITE, creationDisposition=FILE_OPEN)
    second = 'ok'
except Exception as e:
    second = str(e)
c.closeFile(tid, fid)
after = put()
out = {'held': held, 'second': second, 'after': after}
`,
      { smb: stack.smbPort, dav: stack.davPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.held).toBe(423);
    expect(out.second).toMatch(/STATUS_SHARING_VIOLATION/);
    expect([201, 204]).toContain(out.after);
  }, 40_000);
});
