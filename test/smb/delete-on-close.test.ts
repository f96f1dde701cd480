/**
 * FILE_DELETE_ON_CLOSE asked at CREATE, with impacket's SMB3 connection (raw create/close calls,
 * statuses read from its SessionError), against the real gateway on the memory share:
 *
 * - the mark is set when that open closes (MS-FSA 2.1.5.5), not at CREATE: another open that
 *   shares delete opens the file meanwhile; once the delete-on-close open is closed the file is
 *   delete pending (new opens DELETE_PENDING) until the last open goes, then it is gone;
 * - it needs DELETE access (ACCESS_DENIED without);
 * - a read-only file: STATUS_CANNOT_DELETE, whether it exists or the CREATE would make it
 *   read-only, and SET_INFO FileDispositionInformation on it too (MS-FSA 2.1.5.1.1, 2.1.5.1.2.1,
 *   2.1.5.15.3);
 * - a directory that is not empty opens with it; at CLOSE it stays, its files too, and the CLOSE
 *   answers DIRECTORY_NOT_EMPTY (Samba's answer); an empty one is removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('SMB delete-on-close at CREATE', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('marks at close, not at open; needs DELETE; read-only is CANNOT_DELETE; a non-empty directory stays', async () => {
    const out = await runPython(
      String.raw`
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
        return ('ok', fn())
    except (SessionError, Smb3Error) as e:
        return ('%#x' % (e.get_error_code() & 0xffffffff), None)
def create(name, access, options=0, disposition=FILE_OPEN, attrs=0, share=ALL):
    return s.create(tid, name, access, share, options, disposition, attrs)
def exists(name):
    return st(lambda: s.close(tid, create(name, FILE_READ_ATTRIBUTES)))[0]
out = {}
# a file: the delete-on-close open, then a reader that shares delete
s.close(tid, create('doc.txt', GENERIC_WRITE, FILE_NON_DIRECTORY_FILE, FILE_OVERWRITE_IF))
doc = create('doc.txt', DELETE | FILE_READ_DATA, FILE_NON_DIRECTORY_FILE | FILE_DELETE_ON_CLOSE)
out['secondOpen'], reader = st(lambda: create('doc.txt', FILE_READ_DATA))
s.close(tid, doc)
out['afterDocClose'] = st(lambda: create('doc.txt', FILE_READ_DATA))[0]
out['stillThere'] = 'doc.txt' in [f.get_longname() for f in c.listPath('mem', '*')]
if reader is not None:
    s.close(tid, reader)
out['afterLastClose'] = exists('doc.txt')
# no DELETE access
s.close(tid, create('nodel.txt', GENERIC_WRITE, FILE_NON_DIRECTORY_FILE, FILE_OVERWRITE_IF))
out['noDelete'] = st(lambda: create('nodel.txt', FILE_READ_DATA, FILE_DELETE_ON_CLOSE))[0]
# read-only
out['newReadOnly'] = st(lambda: create('ro-new.txt', DELETE | GENERIC_WRITE, FILE_NON_DIRECTORY_FILE | FILE_DELETE_ON_CLOSE, FILE_CREATE, FILE_ATTRIBUTE_READONLY))[0]
out['newReadOnlyThere'] = exists('ro-new.txt')
s.close(tid, create('ro.txt', GENERIC_WRITE, FILE_NON_DIRECTORY_FILE, FILE_CREATE, FILE_ATTRIBUTE_READONLY))
out['existingReadOnly'] = st(lambda: create('ro.txt', DELETE | FILE_READ_DATA, FILE_DELETE_ON_CLOSE))[0]
h = create('ro.txt', DELETE | FILE_READ_DATA)
out['dispositionReadOnly'] = st(lambda: s.setInfo(tid, h, inputBlob=b'\x01', infoType=SMB2_0_INFO_FILE, fileInfoClass=SMB2_FILE_DISPOSITION_INFO))[0]
s.close(tid, h)
out['readOnlyThere'] = exists('ro.txt')
# directories
c.createDirectory('mem', 'full')
s.close(tid, create('full\\inner.txt', GENERIC_WRITE, FILE_NON_DIRECTORY_FILE, FILE_CREATE))
out['fullOpen'], d = st(lambda: create('full', DELETE | FILE_READ_ATTRIBUTES, FILE_DIRECTORY_FILE | FILE_DELETE_ON_CLOSE))
out['fullClose'] = st(lambda: s.close(tid, d))[0] if d is not None else 'not opened'
out['fullThere'] = exists('full')
out['innerThere'] = exists('full\\inner.txt')
c.createDirectory('mem', 'empty')
d = create('empty', DELETE | FILE_READ_ATTRIBUTES, FILE_DIRECTORY_FILE | FILE_DELETE_ON_CLOSE)
out['emptyClose'] = st(lambda: s.close(tid, d))[0]
out['emptyThere'] = exists('empty')
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.secondOpen).toBe('ok');
    expect(out.afterDocClose).toBe('0xc0000056'); // DELETE_PENDING
    expect(out.stillThere).toBe(true);
    expect(out.afterLastClose).toBe('0xc0000034'); // OBJECT_NAME_NOT_FOUND
    expect(out.noDelete).toBe('0xc0000022'); // ACCESS_DENIED
    expect(out.newReadOnly).toBe('0xc0000121'); // CANNOT_DELETE
    expect(out.newReadOnlyThere).toBe('0xc0000034');
    expect(out.existingReadOnly).toBe('0xc0000121');
    expect(out.dispositionReadOnly).toBe('0xc0000121');
    expect(out.readOnlyThere).toBe('ok');
    expect(out.fullOpen).toBe('ok');
    expect(out.fullClose).toBe('0xc0000101'); // DIRECTORY_NOT_EMPTY
    expect(out.fullThere).toBe('ok');
    expect(out.innerThere).toBe('ok');
    expect(out.emptyClose).toBe('ok');
    expect(out.emptyThere).toBe('0xc0000034');
  }, 60_000);
});
