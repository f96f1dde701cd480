/**
 * Async replies, blocking LOCK and CANCEL with impacket as the client (protocols/smb/server/async.ts
 * and lock.ts). impacket has no blocking-lock call, so requests are built from its structures and
 * the responses read raw off its socket: the interim STATUS_PENDING (ASYNC_COMMAND, an AsyncId,
 * credits granted, unsigned), then the final one (same MessageId and AsyncId, no credits, signed).
 * The lock that blocks is released by another SMB connection, by a WebDAV UNLOCK, or the wait is
 * ended by CANCEL (by AsyncId, by MessageId), CLOSE, LOGOFF or the connection's loss.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, startSmb, type SmbStack } from './gateway.ts';
import { PYTHON, hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

/** Python helpers shared by the cases: connections, a raw LOCK, raw reads, signature checks. */
const PRELUDE = String.raw`
import base64, hmac, hashlib, struct, urllib.request, urllib.error
from impacket import crypto
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import *
from impacket.nt_errors import STATUS_SUCCESS
PENDING = 0x103
def connect(dialect):
    c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=dialect)
    c.login(inp['user'], inp['password'])
    tid = c.connectTree('disk')
    return c, c.getSMBServer(), tid
def lock_req(s, tid, fid, off, ln, flags, count=1):
    l = SMB2_LOCK_ELEMENT()
    l['Offset'] = off
    l['Length'] = ln
    l['Flags'] = flags
    p = s.SMB_PACKET()
    p['Command'] = SMB2_LOCK
    p['TreeID'] = tid
    b = SMB2Lock()
    b['FileID'] = fid
    b['LockCount'] = count
    b['LockSequence'] = 0
    b['Locks'] = l.getData() * count
    p['Data'] = b
    return s.sendSMB(p)
def lock(s, tid, fid, off, ln, flags):
    try:
        s.recvSMB(lock_req(s, tid, fid, off, ln, flags)).isValidAnswer(STATUS_SUCCESS)
        return 'ok'
    except Exception as e:
        return str(e)
from Cryptodome.Cipher import AES
seen = {'encrypted': False}
def raw(s):
    data = s._NetBIOSSession.recv_packet(60).get_trailer()
    seen['encrypted'] = data[:4] == b'\xfdSMB'
    if not seen['encrypted']:
        return data
    t = SMB2_TRANSFORM_HEADER(data)
    c = AES.new(s._Session['DecryptionKey'], AES.MODE_CCM, t['Nonce'][:11])
    c.update(t.getData()[20:])
    plain = c.decrypt(data[len(SMB2_TRANSFORM_HEADER()):])
    c.verify(t['Signature'])
    return plain
def hdr(data):
    p = SMB2PacketAsync(data)
    return {'status': p['Status'], 'flags': p['Flags'], 'mid': p['MessageID'], 'asyncId': p['AsyncID'], 'credits': p['CreditRequestResponse'], 'cmd': p['Command']}
def verify(s, data):
    d = bytearray(data)
    sig = bytes(d[48:64])
    d[48:64] = b'\0' * 16
    if s.getDialect() in (SMB2_DIALECT_002, SMB2_DIALECT_21):
        want = hmac.new(s._Session['SessionKey'], bytes(d), hashlib.sha256).digest()[:16]
    else:
        want = crypto.AES_CMAC(s._Session['SigningKey'], bytes(d), len(d))
    return sig == want
def cancel(s, mid, async_id=None):
    if async_id is None:
        s.cancel(mid)
        return
    p = SMB3PacketAsync() if s.SMB_PACKET is SMB3Packet else SMB2PacketAsync()
    p['Command'] = SMB2_CANCEL
    p['Flags'] = SMB2_FLAGS_ASYNC_COMMAND | SMB2_FLAGS_SIGNED
    p['MessageID'] = mid
    p['AsyncID'] = async_id
    p['SessionID'] = s._Session['SessionID']
    p['CreditCharge'] = 1
    p['Data'] = SMB2Cancel()
    s.signSMB(p)
    s._NetBIOSSession.send_packet(p.getData())
def close_req(s, tid, fid):
    p = s.SMB_PACKET()
    p['Command'] = SMB2_CLOSE
    p['TreeID'] = tid
    b = SMB2Close()
    b['FileID'] = fid
    p['Data'] = b
    return s.sendSMB(p)
rw = FILE_READ_DATA | FILE_WRITE_DATA
both = FILE_SHARE_READ | FILE_SHARE_WRITE
X = SMB2_LOCKFLAG_EXCLUSIVE_LOCK
NOW = SMB2_LOCKFLAG_FAIL_IMMEDIATELY
`;

describe.skipIf(!HAVE)('SMB async replies: blocking LOCK and CANCEL (impacket)', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  const args = () => ({ smb: stack.smbPort, dav: stack.davPort, user: ALICE.name, password: ALICE.password });

  for (const [name, dialect] of [['2.1', 0x210], ['3.0', 0x300]] as const) {
    it(`${name}: a blocking LOCK goes async (PENDING, AsyncId, credits), the connection serves meanwhile, and another SMB connection's unlock completes it (signed)`, async () => {
      const out = await runPython(
        PRELUDE +
          String.raw`
a, sa, ta = connect(inp['dialect'])
b, sb, tb = connect(inp['dialect'])
fa = a.createFile(ta, 'blk-%x.txt' % inp['dialect'], desiredAccess=rw, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
a.writeFile(ta, fa, b'0123456789abcdef')
fb = b.createFile(tb, 'blk-%x.txt' % inp['dialect'], desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
out = {'held': lock(sa, ta, fa, 0, 8, X | NOW)}
mid = lock_req(sb, tb, fb, 4, 8, X)
interim = raw(sb)
out['interim'] = hdr(interim)
out['interimSigned'] = bool(out['interim']['flags'] & SMB2_FLAGS_SIGNED)
# the connection is not held by the waiting lock: a read outside the range is served
out['read'] = b.readFile(tb, fb, 12, 4).decode()
out['unlock'] = lock(sa, ta, fa, 0, 8, SMB2_LOCKFLAG_UNLOCK)
final = raw(sb)
out['final'] = hdr(final)
out['finalEncrypted'] = seen['encrypted']
out['finalVerifies'] = seen['encrypted'] or verify(sb, final)
out['mid'] = mid
# granted for real: a's lock on the range now waits on b's, refused at once
out['after'] = lock(sa, ta, fa, 4, 1, X | NOW)
`,
        { ...args(), dialect },
      );
      expect(out.held).toBe('ok');
      expect(out.interim.status).toBe(0x103);
      expect(out.interim.flags & 0x2).toBe(2); // ASYNC_COMMAND
      expect(out.interim.mid).toBe(out.mid);
      expect(out.interim.asyncId).toBeGreaterThan(0);
      expect(out.interim.credits).toBeGreaterThanOrEqual(1);
      expect(out.interimSigned).toBe(false);
      expect(out.read).toBe('cdef');
      expect(out.unlock).toBe('ok');
      expect(out.final).toMatchObject({ status: 0, mid: out.mid, asyncId: out.interim.asyncId, credits: 0, cmd: 0x0a });
      expect(out.final.flags & 0x2).toBe(2);
      // Signed like any response to a signed request, or encrypted when the session encrypts
      // (impacket encrypts 3.0 sessions here: the final response is encrypted, its tag checked).
      if (!out.finalEncrypted) expect(out.final.flags & 0x8).toBe(8);
      expect(out.finalVerifies).toBe(true);
      expect(out.after).toMatch(/STATUS_LOCK_NOT_GRANTED/);
    }, 60_000);
  }

  it('a WebDAV UNLOCK wakes the SMB lock waiting on its WebDAV lock (one lock manager)', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
auth = 'Basic ' + base64.b64encode((inp['user'] + ':' + inp['password']).encode()).decode()
url = 'http://127.0.0.1:%d/disk/dav-held.txt' % inp['dav']
urllib.request.urlopen(urllib.request.Request(url, data=b'dav', method='PUT', headers={'Authorization': auth}))
body = b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'
r = urllib.request.urlopen(urllib.request.Request(url, data=body, method='LOCK', headers={'Authorization': auth, 'Content-Type': 'application/xml', 'Timeout': 'Second-600'}))
token = r.headers['Lock-Token']
b, sb, tb = connect(0x210)
fb = b.createFile(tb, 'dav-held.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
out = {'now': lock(sb, tb, fb, 0, 3, X | NOW)}
mid = lock_req(sb, tb, fb, 0, 3, X)
out['interim'] = hdr(raw(sb))
u = urllib.request.urlopen(urllib.request.Request(url, method='UNLOCK', headers={'Authorization': auth, 'Lock-Token': token}))
out['unlock'] = u.status
out['final'] = hdr(raw(sb))
out['mid'] = mid
`,
      args(),
    );
    expect(out.now).toMatch(/STATUS_LOCK_NOT_GRANTED/);
    expect(out.interim.status).toBe(0x103);
    expect(out.unlock).toBe(204);
    expect(out.final).toMatchObject({ status: 0, mid: out.mid, asyncId: out.interim.asyncId });
  }, 60_000);

  it("an NFS-style (posix) lock released through another protocol's Session wakes the SMB lock waiting on it", async () => {
    // The NFS server takes LOCK/LOCKU as posix locks of a lock-owner through Session.lockHandle /
    // unlockHandle; this takes one the same way (protocol 'nfs'), then releases it while impacket
    // waits: the python side prints its interim response and waits for a line before reading on.
    const sessions = stack.gateway.sessions!;
    const principal = await sessions.authenticate(ALICE.name, ALICE.password, { protocol: 'nfs', clientAddress: 'test' });
    const nfs = sessions.openSession({ principal, protocol: 'nfs', clientAddress: 'test' });
    const h = await nfs.open('disk', '/nfs-held.txt', { access: { read: true, write: true, delete: false }, disposition: 'createOrTruncate', owner: 'nfs-open' });
    const range = { start: 0n, end: 100n };
    await nfs.lockHandle(h, { kind: 'exclusive', style: 'posix', ownerId: 'lock-owner-1', range });
    const script = PRELUDE + String.raw`
b, sb, tb = connect(0x210)
fb = b.createFile(tb, 'nfs-held.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
now = lock(sb, tb, fb, 10, 10, X | NOW)
mid = lock_req(sb, tb, fb, 10, 10, X)
interim = hdr(raw(sb))
print(json.dumps({'now': now, 'interim': interim}), flush=True)
sys.stdin.readline()
final = hdr(raw(sb))
print(json.dumps({'final': final, 'mid': mid}), flush=True)
`;
    const child = spawn(PYTHON, ['-c', `import json, sys\ninp = json.loads(sys.stdin.readline())\n${script}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async (): Promise<any> => {
      const r = await lines.next();
      if (r.done) throw new Error(`python ended: ${err}`);
      return JSON.parse(r.value);
    };
    try {
      child.stdin.write(JSON.stringify(args()) + '\n');
      const first = await next();
      expect(first.now).toMatch(/STATUS_LOCK_NOT_GRANTED/);
      expect(first.interim.status).toBe(0x103);
      await nfs.unlockHandle(h, range, 'posix', 'lock-owner-1');
      child.stdin.write('go\n');
      const second = await next();
      expect(second.final).toMatchObject({ status: 0, mid: second.mid, asyncId: first.interim.asyncId });
    } finally {
      child.kill('SIGKILL');
      await nfs.close(h).catch(() => undefined);
      await nfs.end();
    }
  }, 60_000);

  it('CANCEL by AsyncId and by MessageId ends a waiting lock with STATUS_CANCELLED; CANCEL itself is not answered', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
a, sa, ta = connect(0x300)
b, sb, tb = connect(0x300)
fa = a.createFile(ta, 'cancel.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
fb = b.createFile(tb, 'cancel.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
out = {'held': lock(sa, ta, fa, 0, 100, X | NOW)}
m1 = lock_req(sb, tb, fb, 0, 10, X)
i1 = hdr(raw(sb))
cancel(sb, m1, i1['asyncId'])
out['byAsyncId'] = hdr(raw(sb))
# the session encrypts (3.0 with impacket): the CANCEL above went as a plain signed message, not
# sealed, and still cancelled (MS-SMB2 3.3.5.16: CANCEL is looked up as it arrives); the final
# response is sealed like every answer to the sealed LOCK
out['cancelledEncrypted'] = seen['encrypted']
out['m1'] = m1
m2 = lock_req(sb, tb, fb, 10, 10, X)
i2 = hdr(raw(sb))
cancel(sb, m2)
out['byMessageId'] = hdr(raw(sb))
out['m2'] = m2
# nothing else was sent for either CANCEL: the next packet answers this ECHO
out['echo'] = sb.echo()
# the cancelled waits took nothing: the holder unlocks, b locks at once
out['unlock'] = lock(sa, ta, fa, 0, 100, SMB2_LOCKFLAG_UNLOCK)
out['after'] = lock(sb, tb, fb, 0, 20, X | NOW)
`,
      args(),
    );
    expect(out.held).toBe('ok');
    expect(out.byAsyncId).toMatchObject({ status: 0xc0000120, mid: out.m1, credits: 0 });
    expect(out.cancelledEncrypted).toBe(true);
    expect(out.byMessageId).toMatchObject({ status: 0xc0000120, mid: out.m2 });
    expect(out.echo).toBe(true);
    expect(out.unlock).toBe('ok');
    expect(out.after).toBe('ok');
  }, 60_000);

  it('CLOSE of the open, TREE_DISCONNECT and LOGOFF end a waiting lock with STATUS_RANGE_NOT_LOCKED; a lost connection drops its wait', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
a, sa, ta = connect(0x210)
fa = a.createFile(ta, 'gone.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
out = {'held': lock(sa, ta, fa, 0, 100, X | NOW)}
# CLOSE: both the lock's final response and the CLOSE's come
b, sb, tb = connect(0x210)
fb = b.createFile(tb, 'gone.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
ml = lock_req(sb, tb, fb, 0, 10, X)
out['interim'] = hdr(raw(sb))
mc = close_req(sb, tb, fb)
got = {}
for _ in range(2):
    h = hdr(raw(sb))
    got[h['mid']] = h
out['lockAfterClose'] = got[ml]['status']
out['close'] = got[mc]['status']
# LOGOFF
c, sc, tc = connect(0x210)
fc = c.createFile(tc, 'gone.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
ml = lock_req(sc, tc, fc, 0, 10, X)
raw(sc)
p = sc.SMB_PACKET()
p['Command'] = SMB2_LOGOFF
p['Data'] = SMB2Logoff()
mo = sc.sendSMB(p)
got = {}
for _ in range(2):
    h = hdr(raw(sc))
    got[h['mid']] = h
out['lockAfterLogoff'] = got[ml]['status']
out['logoff'] = got[mo]['status']
# TREE_DISCONNECT
t, st, tt = connect(0x210)
ft = t.createFile(tt, 'gone.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
ml = lock_req(st, tt, ft, 0, 10, X)
raw(st)
p = st.SMB_PACKET()
p['Command'] = SMB2_TREE_DISCONNECT
p['TreeID'] = tt
p['Data'] = SMB2TreeDisconnect()
mt = st.sendSMB(p)
got = {}
for _ in range(2):
    h = hdr(raw(st))
    got[h['mid']] = h
out['lockAfterTreeDisconnect'] = got[ml]['status']
out['treeDisconnect'] = got[mt]['status']
# connection lost while waiting: its wait must not be granted later
d, sd, td = connect(0x210)
fd = d.createFile(td, 'gone.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
lock_req(sd, td, fd, 0, 10, X)
raw(sd)
sd._NetBIOSSession.close()
out['unlock'] = lock(sa, ta, fa, 0, 100, SMB2_LOCKFLAG_UNLOCK)
e, se, te = connect(0x210)
fe = e.createFile(te, 'gone.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
out['fresh'] = lock(se, te, fe, 0, 10, X)
`,
      args(),
    );
    expect(out.held).toBe('ok');
    expect(out.interim.status).toBe(0x103);
    expect(out.lockAfterClose).toBe(0xc000007e);
    expect(out.close).toBe(0);
    expect(out.lockAfterLogoff).toBe(0xc000007e);
    expect(out.logoff).toBe(0);
    expect(out.lockAfterTreeDisconnect).toBe(0xc000007e);
    expect(out.treeDisconnect).toBe(0);
    expect(out.unlock).toBe('ok');
    expect(out.fresh).toBe('ok');
  }, 60_000);

  it('waits per session are bounded (INSUFFICIENT_RESOURCES past 256); more than one element without FAIL_IMMEDIATELY is INVALID_PARAMETER', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
a, sa, ta = connect(0x210)
fa = a.createFile(ta, 'many.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
out = {'held': lock(sa, ta, fa, 0, 100000, X | NOW)}
b, sb, tb = connect(0x210)
fb = b.createFile(tb, 'many.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
pending = 0
for i in range(256):
    lock_req(sb, tb, fb, i, 1, X)
    if hdr(raw(sb))['status'] == PENDING:
        pending += 1
out['pending'] = pending
out['over'] = lock(sb, tb, fb, 300, 1, X)
out['multi'] = lock_req(sb, tb, fb, 400, 1, X, count=2)
out['multiStatus'] = hdr(raw(sb))['status']
`,
      args(),
    );
    expect(out.held).toBe('ok');
    expect(out.pending).toBe(256);
    expect(out.over).toMatch(/STATUS_INSUFFICIENT_RESOURCES/);
    expect(out.multiStatus).toBe(0xc000000d);
  }, 60_000);
  it('LOCK validation as smbtorture smb2.lock checks it: zero-byte locks, UNLOCK with other flags, the 64-bit end, a FileId with the wrong persistent half', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
a, sa, ta = connect(0x210)
fa = a.createFile(ta, 'valid.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OVERWRITE_IF)
fb = a.createFile(ta, 'valid.txt', desiredAccess=rw, shareMode=both, creationDisposition=FILE_OPEN)
M = 0xffffffffffffffff
out = {}
out['zero'] = lock(sa, ta, fa, 10, 0, X | NOW)
out['around'] = lock(sa, ta, fb, 9, 2, X | NOW)
out['edge'] = lock(sa, ta, fb, 10, 2, X | NOW)
out['zeroUnlock'] = lock(sa, ta, fa, 10, 0, SMB2_LOCKFLAG_UNLOCK)
out['unlockShared'] = lock(sa, ta, fb, 10, 2, SMB2_LOCKFLAG_UNLOCK | SMB2_LOCKFLAG_SHARED_LOCK)
out['unlockNow'] = lock(sa, ta, fb, 10, 2, SMB2_LOCKFLAG_UNLOCK | NOW)
out['max1'] = lock(sa, ta, fa, M, 1, X | NOW)
out['max2'] = lock(sa, ta, fa, M, 2, X | NOW)
bad = bytearray(fa)
bad[0] ^= 1
out['persistent'] = lock(sa, ta, bytes(bad), 0, 1, X | NOW)
`,
      args(),
    );
    expect(out.zero).toBe('ok');
    expect(out.around).toMatch(/STATUS_LOCK_NOT_GRANTED/);
    expect(out.edge).toBe('ok');
    expect(out.zeroUnlock).toBe('ok');
    expect(out.unlockShared).toMatch(/STATUS_INVALID_PARAMETER/);
    expect(out.unlockNow).toMatch(/STATUS_INVALID_PARAMETER/);
    expect(out.max1).toBe('ok');
    expect(out.max2).toMatch(/STATUS_INVALID_LOCK_RANGE|0xc00001a1/i);
    expect(out.persistent).toMatch(/STATUS_FILE_CLOSED/);
  }, 60_000);
});
