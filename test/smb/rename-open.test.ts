/**
 * SET_INFO FileRenameInformation of a file that is open, with impacket against the real gateway:
 * the renaming open's own share mode never refuses its rename (an open that shares nothing renames
 * itself, as on Windows); another open of the file that shares delete follows the file (its
 * FileAllInformation names the new path, it reads on); an open of the parent directory with
 * DELETE access, or one that shares nothing, makes the rename a sharing violation, and a listing
 * open that shares all does not; a directory with a file open below it is not renamed
 * (ACCESS_DENIED, as on Windows) until that file is closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('SMB rename of an open file', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('the renaming open shares nothing and renames; another open follows; parent opens with DELETE or no sharing refuse', async () => {
    const out = await runPython(
      String.raw`
import struct
from impacket.smbconnection import SMBConnection, SessionError
from impacket.smb3 import SessionError as Smb3Error
from impacket.smb3structs import *
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
s = c.getSMBServer()
tid = c.connectTree('mem')
ALL = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
def st(fn):
    try:
        fn()
        return 'ok'
    except (SessionError, Smb3Error) as e:
        return '%#x' % (e.get_error_code() & 0xffffffff)
def rename(h, to):
    name = to.encode('utf-16le')
    blob = b'\x00' * 16 + struct.pack('<I', len(name)) + name
    return st(lambda: s.setInfo(tid, h, inputBlob=blob, infoType=SMB2_0_INFO_FILE, fileInfoClass=SMB2_FILE_RENAME_INFO))
def close(h):
    # impacket keys its file table by name: two opens of one name trip over each other at close.
    try:
        s.close(tid, h)
    except KeyError:
        pass
def name_of(h):
    b = s.queryInfo(tid, h, fileInfoClass=SMB2_FILE_ALL_INFO, infoType=SMB2_0_INFO_FILE)
    n = struct.unpack_from('<I', b, 96)[0]
    return b[100:100 + n].decode('utf-16le')
out = {}
c.createDirectory('mem', 'd')
# an open that shares nothing renames its own file
h = s.create(tid, 'd\\alone.txt', DELETE | FILE_READ_DATA | FILE_WRITE_DATA, 0, FILE_NON_DIRECTORY_FILE, FILE_CREATE, 0)
out['alone'] = rename(h, 'd\\alone2.txt')
close(h)
# a reader sharing delete stays open and follows the file
w = s.create(tid, 'd\\f.txt', FILE_WRITE_DATA, ALL, FILE_NON_DIRECTORY_FILE, FILE_CREATE, 0)
c.writeFile(tid, w, b'content')
close(w)
reader = s.create(tid, 'd\\f.txt', FILE_READ_DATA | FILE_READ_ATTRIBUTES, ALL, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0)
mover = s.create(tid, 'd\\f.txt', DELETE | FILE_READ_ATTRIBUTES, ALL, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0)
out['withReader'] = rename(mover, 'd\\g.txt')
out['readerName'] = name_of(reader)
out['readerData'] = s.read(tid, reader, 0, 100).decode()
close(mover)
close(reader)
# a reader that does not share delete: a DELETE open is refused
noshare = s.create(tid, 'd\\g.txt', FILE_READ_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0)
out['deleteOpenBeside'] = st(lambda: s.create(tid, 'd\\g.txt', DELETE, ALL, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0))
close(noshare)
# parent directory opens
for key, access, share in [('parentDelete', DELETE | FILE_LIST_DIRECTORY, ALL), ('parentNoShare', FILE_LIST_DIRECTORY, 0), ('parentListing', FILE_LIST_DIRECTORY, ALL)]:
    d = s.create(tid, 'd', access, share, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
    m = s.create(tid, 'd\\g.txt', DELETE, ALL, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0)
    out[key] = rename(m, 'd\\h.txt')
    if out[key] == 'ok':
        rename(m, 'd\\g.txt')
    close(m)
    close(d)
out['list'] = sorted(f.get_longname() for f in c.listPath('mem', 'd\\*'))
# a directory with a file open below it: its rename is ACCESS_DENIED; once closed it renames
inner = s.create(tid, 'd\\g.txt', FILE_READ_DATA, ALL, FILE_NON_DIRECTORY_FILE, FILE_OPEN, 0)
dm = s.create(tid, 'd', DELETE | FILE_READ_ATTRIBUTES, ALL, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
out['dirWithOpenFile'] = rename(dm, 'd2')
close(inner)
out['dirAfterClose'] = rename(dm, 'd2')
close(dm)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.alone).toBe('ok');
    expect(out.withReader).toBe('ok');
    expect(out.readerName).toBe('\\d\\g.txt');
    expect(out.readerData).toBe('content');
    expect(out.deleteOpenBeside).toBe('0xc0000043'); // SHARING_VIOLATION
    expect(out.parentDelete).toBe('0xc0000043');
    expect(out.parentNoShare).toBe('0xc0000043');
    expect(out.parentListing).toBe('ok');
    expect(out.list).toEqual(['.', '..', 'alone2.txt', 'g.txt']);
    expect(out.dirWithOpenFile).toBe('0xc0000022'); // ACCESS_DENIED
    expect(out.dirAfterClose).toBe('ok');
  }, 60_000);
});
