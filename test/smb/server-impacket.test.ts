/**
 * The SMB server with impacket as the client, for what smbclient's commands cannot hold open:
 * share access as VFS share modes across protocols (a deny-write SMB open makes a WebDAV PUT 423
 * and a second SMB write open STATUS_SHARING_VIOLATION until it is closed), QUERY_DIRECTORY
 * patterns and the end of a scan, signing required (an unsigned request is refused), and byte-range
 * LOCK on the shared lock manager (impacket's own `lock` fails on Python 3, so the request is built
 * here from its structures).
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

  it('QUERY_DIRECTORY: *.txt, ?.bin and an exact name; a scan ends with STATUS_NO_MORE_FILES', async () => {
    const out = await runPython(
      String.raw`
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_OVERWRITE_IF, FILE_READ_DATA, FILE_READ_ATTRIBUTES, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, FILE_BOTH_DIRECTORY_INFORMATION
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
c.createDirectory('mem', 'pat')
for n in ['a1.txt', 'b2.txt', 'c.bin', 'Readme']:
    fid = c.createFile(tid, 'pat\\' + n, creationDisposition=FILE_OVERWRITE_IF)
    c.closeFile(tid, fid)
out = {}
out['txt'] = sorted(f.get_longname() for f in c.listPath('mem', 'pat\\*.txt'))
out['qm'] = sorted(f.get_longname() for f in c.listPath('mem', 'pat\\?.bin'))
out['exact'] = sorted(f.get_longname() for f in c.listPath('mem', 'pat\\Readme'))
s = c.getSMBServer()
fid = s.create(tid, 'pat', FILE_READ_DATA | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
first = s.queryDirectory(tid, fid, '*', 0, FILE_BOTH_DIRECTORY_INFORMATION, 65536)
try:
    s.queryDirectory(tid, fid, '*', 0, FILE_BOTH_DIRECTORY_INFORMATION, 65536)
    nxt = 'more'
except Exception as e:
    nxt = str(e)
s.close(tid, fid)
out['bytes'] = len(first)
out['next'] = nxt
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.txt).toEqual(['a1.txt', 'b2.txt']);
    expect(out.qm).toEqual(['c.bin']);
    expect(out.exact).toEqual(['Readme']);
    expect(out.bytes).toBeGreaterThan(6 * 94);
    expect(out.next).toMatch(/STATUS_NO_MORE_FILES/);
  }, 40_000);

  it('signing is required: after SESSION_SETUP an unsigned request is STATUS_ACCESS_DENIED (2.1, not encrypted)', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
c.connectTree('mem')
s = c.getSMBServer()
s._Session['SigningActivated'] = False
try:
    c.connectTree('disk')
    unsigned = 'accepted'
except Exception as e:
    unsigned = str(e)
out = {'unsigned': unsigned}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.unsigned).toMatch(/STATUS_ACCESS_DENIED/);
  }, 40_000);

  it("LOCK: an exclusive range refuses a second open's lock (LOCK_NOT_GRANTED) and write (FILE_LOCK_CONFLICT) and a WebDAV PUT (423); unlock frees it", async () => {
    const out = await runPython(
      `
import base64, urllib.request, urllib.error
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import SMB2_LOCK, SMB2Lock, SMB2_LOCK_ELEMENT, SMB2_LOCKFLAG_EXCLUSIVE_LOCK, SMB2_LOCKFLAG_SHARED_LOCK, SMB2_LOCKFLAG_UNLOCK, SMB2_LOCKFLAG_FAIL_IMMEDIATELY, FILE_READ_DATA, FILE_WRITE_DATA, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_OVERWRITE_IF, FILE_OPEN
from impacket.nt_errors import STATUS_SUCCESS
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
tid = c.connectTree('disk')
s = c.getSMBServer()
def lk(f, off, ln, flags):
    l = SMB2_LOCK_ELEMENT()
    l['Offset'] = off
    l['Length'] = ln
    l['Flags'] = flags
    p = s.SMB_PACKET()
    p['Command'] = SMB2_LOCK
    p['TreeID'] = tid
    b = SMB2Lock()
    b['FileID'] = f
    b['LockCount'] = 1
    b['LockSequence'] = 0
    b['Locks'] = l.getData()
    p['Data'] = b
    try:
        s.recvSMB(s.sendSMB(p)).isValidAnswer(STATUS_SUCCESS)
        return 'ok'
    except Exception as e:
        return str(e)
def w(f, off):
    try:
        c.writeFile(tid, f, b'xx', off)
        return 'ok'
    except Exception as e:
        return str(e)
def put():
    auth = base64.b64encode((inp['user'] + ':' + inp['password']).encode()).decode()
    req = urllib.request.Request('http://127.0.0.1:%d/disk/locked.txt' % inp['dav'], data=b'from dav', method='PUT', headers={'Authorization': 'Basic ' + auth})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
rw = FILE_READ_DATA | FILE_WRITE_DATA
both = FILE_SHARE_READ | FILE_SHARE_WRITE
f1 = c.createFile(tid, 'locked.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
c.writeFile(tid, f1, b'0123456789abcdef')
f2 = c.createFile(tid, 'locked.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
out = {}
out['lock'] = lk(f1, 0, 8, SMB2_LOCKFLAG_EXCLUSIVE_LOCK | SMB2_LOCKFLAG_FAIL_IMMEDIATELY)
out['lock2'] = lk(f2, 4, 8, SMB2_LOCKFLAG_SHARED_LOCK | SMB2_LOCKFLAG_FAIL_IMMEDIATELY)
out['write2'] = w(f2, 2)
out['outside'] = w(f2, 10)
out['dav'] = put()
out['unlock'] = lk(f1, 0, 8, SMB2_LOCKFLAG_UNLOCK)
out['unlockAgain'] = lk(f1, 0, 8, SMB2_LOCKFLAG_UNLOCK)
out['lock2After'] = lk(f2, 4, 8, SMB2_LOCKFLAG_SHARED_LOCK | SMB2_LOCKFLAG_FAIL_IMMEDIATELY)
`,
      { smb: stack.smbPort, dav: stack.davPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.lock).toBe('ok');
    expect(out.lock2).toMatch(/STATUS_LOCK_NOT_GRANTED/);
    expect(out.write2).toMatch(/STATUS_FILE_LOCK_CONFLICT/);
    expect(out.outside).toBe('ok');
    expect(out.dav).toBe(423);
    expect(out.unlock).toBe('ok');
    expect(out.unlockAgain).toMatch(/STATUS_RANGE_NOT_LOCKED/);
    expect(out.lock2After).toBe('ok');
  }, 40_000);

  it('the granted access of an open decides: WRITE on a read open and READ on a write open are ACCESS_DENIED', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_READ_DATA, FILE_WRITE_DATA, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_OVERWRITE_IF, FILE_OPEN
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
both = FILE_SHARE_READ | FILE_SHARE_WRITE
f = c.createFile(tid, 'acc.txt', desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
c.writeFile(tid, f, b'abc')
c.closeFile(tid, f)
out = {}
r = c.createFile(tid, 'acc.txt', desiredAccess=FILE_READ_DATA, shareMode=both, creationDisposition=FILE_OPEN)
try:
    c.writeFile(tid, r, b'x')
    out['writeOnRead'] = 'ok'
except Exception as e:
    out['writeOnRead'] = str(e)
out['read'] = c.readFile(tid, r).decode()
w = c.createFile(tid, 'acc.txt', desiredAccess=FILE_WRITE_DATA, shareMode=both, creationDisposition=FILE_OPEN)
try:
    c.readFile(tid, w)
    out['readOnWrite'] = 'ok'
except Exception as e:
    out['readOnWrite'] = str(e)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.writeOnRead).toMatch(/STATUS_ACCESS_DENIED/);
    expect(out.read).toBe('abc');
    expect(out.readOnWrite).toMatch(/STATUS_ACCESS_DENIED/);
  }, 40_000);

  it('the SMB1 multi-protocol start leads impacket to 3.0 (encrypted): shares over the srvsvc pipe (WRITE/READ), a listing', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
out = {'dialect': c.getDialect(), 'shares': [s['shi1_netname'][:-1] for s in c.listShares()], 'names': [f.get_longname() for f in c.listPath('mem', '*')]}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.dialect).toBe(0x300);
    expect(out.shares).toEqual(['mem', 'disk', 'IPC$']);
    expect(out.names).toContain('.');
  }, 40_000);

  it('a READ of more than 64 KiB charged one credit is STATUS_INVALID_PARAMETER; charged right it reads', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_READ_DATA, FILE_WRITE_DATA, FILE_SHARE_READ, FILE_OVERWRITE_IF, SMB2_READ
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
s = c.getSMBServer()
f = c.createFile(tid, 'charge.bin', desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA, shareMode=FILE_SHARE_READ, creationDisposition=FILE_OVERWRITE_IF)
c.writeFile(tid, f, b'z' * 200000)
out = {'right': len(s.read(tid, f, 0, 200000))}
orig = s.sendSMB
def undercharged(p):
    if p['Command'] == SMB2_READ:
        p['CreditCharge'] = 1
    return orig(p)
s.sendSMB = undercharged
try:
    s.read(tid, f, 0, 200000)
    out['under'] = 'ok'
except Exception as e:
    out['under'] = str(e)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.right).toBe(200000);
    expect(out.under).toMatch(/STATUS_INVALID_PARAMETER/);
  }, 40_000);

  it('a MessageId spent already or never granted ends the connection; in the window it is served', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
def attempt(shift):
    c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
    c.login(inp['user'], inp['password'])
    s = c.getSMBServer()
    s._Connection['SequenceWindow'] += shift
    try:
        c.connectTree('mem')
        return 'served'
    except Exception as e:
        return 'refused: ' + type(e).__name__
out = {'inWindow': attempt(0), 'reused': attempt(-2), 'ahead': attempt(100000)}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.inWindow).toBe('served');
    expect(out.reused).toMatch(/^refused/);
    expect(out.ahead).toMatch(/^refused/);
  }, 40_000);

  it('QUERY_INFO FileIdInformation carries the VFS id (as FileInternalInformation); NormalizedName is 3.1.1-only', async () => {
    const out = await runPython(
      `
import struct
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_READ_DATA, FILE_WRITE_DATA, FILE_READ_ATTRIBUTES, FILE_SHARE_READ, FILE_OVERWRITE_IF, SMB2_0_INFO_FILE
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
s = c.getSMBServer()
f = c.createFile(tid, 'idinfo.txt', desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES, shareMode=FILE_SHARE_READ, creationDisposition=FILE_OVERWRITE_IF)
internal = struct.unpack('<Q', s.queryInfo(tid, f, infoType=SMB2_0_INFO_FILE, fileInfoClass=6)[:8])[0]
idinfo = s.queryInfo(tid, f, infoType=SMB2_0_INFO_FILE, fileInfoClass=59)
try:
    s.queryInfo(tid, f, infoType=SMB2_0_INFO_FILE, fileInfoClass=48)
    normalized = 'ok'
except Exception as e:
    normalized = str(e)
out = {'internal': internal, 'idLen': len(idinfo), 'id': struct.unpack('<Q', idinfo[8:16])[0], 'idHigh': struct.unpack('<Q', idinfo[16:24])[0], 'normalized': normalized}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.idLen).toBe(24);
    expect(out.id).toBe(out.internal);
    expect(out.idHigh).toBe(0);
    expect(out.normalized).toMatch(/STATUS_NOT_SUPPORTED/);
  }, 40_000);

  it('a second NEGOTIATE on a negotiated connection ends it', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
s = c.getSMBServer()
try:
    s.negotiateSession(0x210)
    again = 'answered'
except Exception as e:
    again = 'ended: ' + type(e).__name__
out = {'again': again}
`,
      { smb: stack.smbPort },
    );
    expect(out.again).toBe('ended: NetBIOSError');
  }, 40_000);

  it('QUERY_DIRECTORY flags: RETURN_SINGLE_ENTRY gives one entry, RESTART_SCANS starts over after the end', async () => {
    const out = await runPython(
      `
import struct
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import SMB2_QUERY_DIRECTORY, SMB2QueryDirectory, SMB2QueryDirectory_Response, SMB2_RESTART_SCANS, SMB2_RETURN_SINGLE_ENTRY, FILE_READ_DATA, FILE_READ_ATTRIBUTES, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, FILE_OVERWRITE_IF
from impacket.nt_errors import STATUS_SUCCESS
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
s = c.getSMBServer()
c.createDirectory('mem', 'flags')
for n in ['x', 'y', 'z']:
    f = c.createFile(tid, 'flags\\\\' + n, creationDisposition=FILE_OVERWRITE_IF)
    c.closeFile(tid, f)
d = s.create(tid, 'flags', FILE_READ_DATA | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
def q(flags):
    p = s.SMB_PACKET()
    p['Command'] = SMB2_QUERY_DIRECTORY
    p['TreeID'] = tid
    b = SMB2QueryDirectory()
    b['FileInformationClass'] = 37
    b['Flags'] = flags
    b['FileIndex'] = 0
    b['FileID'] = d
    b['OutputBufferLength'] = 65536
    b['FileNameLength'] = 2
    b['Buffer'] = '*'.encode('utf-16le')
    p['Data'] = b
    try:
        ans = s.recvSMB(s.sendSMB(p))
        ans.isValidAnswer(STATUS_SUCCESS)
    except Exception as e:
        return str(e).split('(')[0]
    buf = SMB2QueryDirectory_Response(ans['Data'])['Buffer']
    names, at = [], 0
    while True:
        nxt = struct.unpack('<I', buf[at:at + 4])[0]
        ln = struct.unpack('<I', buf[at + 60:at + 64])[0]
        names.append(buf[at + 104:at + 104 + ln].decode('utf-16le'))
        if nxt == 0:
            break
        at += nxt
    return names
out = {'single': q(SMB2_RETURN_SINGLE_ENTRY), 'rest': q(0), 'end': q(0), 'restart': q(SMB2_RESTART_SCANS)}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.single).toEqual(['.']);
    expect(out.rest).toEqual(['..', 'x', 'y', 'z']);
    expect(out.end).toMatch(/STATUS_NO_MORE_FILES/);
    expect(out.restart).toEqual(['.', '..', 'x', 'y', 'z']);
  }, 40_000);

  it('IOCTL: DFS referrals are STATUS_FS_DRIVER_REQUIRED; QUERY_NETWORK_INTERFACE_INFO names the address reached', async () => {
    const out = await runPython(
      `
import struct
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import SMB2_0_IOCTL_IS_FSCTL
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
tid = c.connectTree('IPC$')
s = c.getSMBServer()
try:
    s.ioctl(tid, None, 0x00060194, SMB2_0_IOCTL_IS_FSCTL, b'\\x04\\x00' + '\\\\127.0.0.1\\\\mem'.encode('utf-16le') + b'\\x00\\x00', maxOutputResponse=4096)
    dfs = 'answered'
except Exception as e:
    dfs = str(e)
nics = s.ioctl(tid, None, 0x001401fc, SMB2_0_IOCTL_IS_FSCTL, b'', maxOutputResponse=65536)
fam = struct.unpack('<H', nics[24:26])[0]
addr = '.'.join(str(x) for x in nics[28:32])
out = {'dfs': dfs, 'len': len(nics), 'family': fam, 'addr': addr}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.dfs).toMatch(/STATUS_FS_DRIVER_REQUIRED/);
    expect(out.len).toBe(152);
    expect(out.family).toBe(2);
    expect(out.addr).toBe('127.0.0.1');
  }, 40_000);
});
