/**
 * A QUERY_DIRECTORY scan continued after changes (impacket, raw FileIdBothDirectoryInformation
 * entries): a first call with a small buffer returns `.` and `..`; a file's attributes are changed
 * and another file deleted over SMB; the next call of the same scan lists the file with its new
 * attributes and not the deleted one, as Windows reads entries at each call. (The server used to
 * read 512 entries ahead and serve them later as read.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('SMB QUERY_DIRECTORY continued after changes', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('the next call of a scan shows changed attributes and no deleted file', async () => {
    const out = await runPython(
      String.raw`
import struct
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import *
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
s = c.getSMBServer()
tid = c.connectTree('mem')
c.createDirectory('mem', 'scan')
for i in range(40):
    s.close(tid, s.create(tid, 'scan\\f%02d' % i, FILE_WRITE_DATA, 7, FILE_NON_DIRECTORY_FILE, FILE_CREATE, 0))
d = s.create(tid, 'scan', FILE_READ_DATA | FILE_READ_ATTRIBUTES, 7, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
def q(n):
    r = s.queryDirectory(tid, d, '*', informationClass=FILEID_BOTH_DIRECTORY_INFORMATION, maxBufferSize=n)
    out, off = [], 0
    while True:
        nxt, = struct.unpack_from('<I', r, off)
        attrs, nl = struct.unpack_from('<II', r, off + 56)
        out.append([r[off + 104:off + 104 + nl].decode('utf-16le'), attrs])
        if nxt == 0:
            return out
        off += nxt
out = {'first': q(300)}
h = s.create(tid, 'scan\\f20', FILE_WRITE_ATTRIBUTES, 7, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0)
s.setInfo(tid, h, inputBlob=struct.pack('<QQQQI', 0, 0, 0, 0, FILE_ATTRIBUTE_HIDDEN) + b'\0' * 4, infoType=SMB2_0_INFO_FILE, fileInfoClass=SMB2_FILE_BASIC_INFO)
s.close(tid, h)
c.deleteFile('mem', 'scan\\f21')
out['rest'] = q(65536)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.first.map((e: [string, number]) => e[0])).toEqual(['.', '..']);
    const rest = new Map<string, number>(out.rest);
    expect(rest.size).toBe(39);
    expect(rest.has('f21')).toBe(false);
    expect(rest.get('f20')).toBe(0x2);
    expect(rest.get('f22')).toBe(0x20);
  }, 60_000);
});
