/**
 * CHANGE_NOTIFY (protocols/smb/server/notify.ts) with impacket building the requests and reading
 * the responses raw: a request with nothing to report goes async and completes with the change
 * (made over WebDAV, or by another SMB connection); changes between requests are kept and answered
 * at once; WATCH_TREE reports below; the completion filter picks; a buffer too small is
 * NOTIFY_ENUM_DIR; CANCEL → CANCELLED; CLOSE → NOTIFY_CLEANUP. On the memory share: a local disk's
 * inotify echoes are filtered within a time window (src/session/watch.ts), which a loaded machine
 * could miss.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALICE, HAVE_SMBCLIENT, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

const PRELUDE = String.raw`
import base64, urllib.request, urllib.parse
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import *
PENDING = 0x103
auth = 'Basic ' + base64.b64encode((inp['user'] + ':' + inp['password']).encode()).decode()
def dav(method, path, data=None, headers={}):
    h = {'Authorization': auth}
    h.update(headers)
    return urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:%d/mem/%s' % (inp['dav'], path), data=data, method=method, headers=h)).status
def connect():
    c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
    c.login(inp['user'], inp['password'])
    return c, c.getSMBServer(), c.connectTree('mem')
def opendir(s, tid, path):
    return s.create(tid, path, FILE_READ_DATA | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
def notify_req(s, tid, fid, flt, tree=False, size=4096):
    p = s.SMB_PACKET()
    p['Command'] = SMB2_CHANGE_NOTIFY
    p['TreeID'] = tid
    b = SMB2ChangeNotify()
    b['Flags'] = 1 if tree else 0
    b['OutputBufferLength'] = size
    b['FileID'] = fid
    b['CompletionFilter'] = flt
    p['Data'] = b
    return s.sendSMB(p)
def raw(s):
    d = s._NetBIOSSession.recv_packet(60).get_trailer()
    p = SMB2PacketAsync(d)
    return {'status': p['Status'], 'flags': p['Flags'], 'mid': p['MessageID'], 'asyncId': p['AsyncID'], 'data': p['Data']}
def entries(r):
    if r['status'] != 0:
        return []
    body = SMB2ChangeNotify_Response(r['data'])
    buf = body['Buffer']
    out = []
    off = 0
    while buf:
        e = FILE_NOTIFY_INFORMATION(buf[off:])
        out.append([e['Action'], e['FileName'].decode('utf-16le')])
        if e['NextEntryOffset'] == 0:
            break
        off += e['NextEntryOffset']
    return out
NAMES = 0x1 | 0x2
FILE_NAME = 0x1
`;

describe.skipIf(!HAVE)('SMB CHANGE_NOTIFY (impacket)', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  const args = () => ({ smb: stack.smbPort, dav: stack.davPort, user: ALICE.name, password: ALICE.password });

  it('goes async and completes with a WebDAV create; changes between requests are kept; WATCH_TREE reports below', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
dav('MKCOL', 'w1/')
dav('MKCOL', 'w1/sub/')
c, s, tid = connect()
d = opendir(s, tid, 'w1')
out = {}
mid = notify_req(s, tid, d, NAMES)
out['interim'] = {k: v for k, v in raw(s).items() if k != 'data'}
dav('PUT', 'w1/new.txt', b'x')
f = raw(s)
out['final'] = {'status': f['status'], 'mid': f['mid'], 'asyncId': f['asyncId'], 'entries': entries(f)}
out['mid'] = mid
# while no request waits: a rename over WebDAV and a mkdir over another SMB connection
dav('MOVE', 'w1/new.txt', headers={'Destination': 'http://127.0.0.1:%d/mem/w1/renamed.txt' % inp['dav']})
c2, s2, tid2 = connect()
c2.createDirectory('mem', 'w1\\made')
notify_req(s, tid, d, NAMES)
r = raw(s)
out['kept'] = {'status': r['status'], 'async': r['flags'] & 2, 'entries': entries(r)}
# WATCH_TREE on another open: a file created in a subdirectory
t = opendir(s, tid, 'w1')
notify_req(s, tid, t, NAMES, tree=True)
raw(s)
dav('PUT', 'w1/sub/deep.txt', b'y')
out['tree'] = entries(raw(s))
`,
      args(),
    );
    expect(out.interim.status).toBe(0x103);
    expect(out.interim.flags & 2).toBe(2);
    expect(out.final).toMatchObject({ status: 0, mid: out.mid, asyncId: out.interim.asyncId, entries: [[1, 'new.txt']] });
    expect(out.kept.status).toBe(0);
    expect(out.kept.async).toBe(0); // answered at once
    expect(out.kept.entries).toEqual([[4, 'new.txt'], [5, 'renamed.txt'], [1, 'made']]);
    expect(out.tree).toEqual([[1, 'sub\\deep.txt']]);
  }, 60_000);

  it('the completion filter picks (FILE_NAME skips a mkdir); a buffer too small is NOTIFY_ENUM_DIR; CANCEL → CANCELLED; CLOSE → NOTIFY_CLEANUP', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
dav('MKCOL', 'w2/')
c, s, tid = connect()
out = {}
d = opendir(s, tid, 'w2')
notify_req(s, tid, d, FILE_NAME)
raw(s)
dav('MKCOL', 'w2/adir/')
dav('PUT', 'w2/afile', b'x')
out['filtered'] = entries(raw(s))
small = opendir(s, tid, 'w2')
notify_req(s, tid, small, NAMES, size=8)
raw(s)
dav('PUT', 'w2/a-rather-long-name.txt', b'x')
out['small'] = raw(s)['status']
m = notify_req(s, tid, small, NAMES)
i = raw(s)
s.cancel(m)
r = raw(s)
out['cancel'] = {'status': r['status'], 'mid': r['mid'], 'same': r['asyncId'] == i['asyncId'], 'mine': m}
w = opendir(s, tid, 'w2')
mn = notify_req(s, tid, w, NAMES)
raw(s)
p = s.SMB_PACKET()
p['Command'] = SMB2_CLOSE
p['TreeID'] = tid
b = SMB2Close()
b['FileID'] = w
p['Data'] = b
mc = s.sendSMB(p)
got = {}
for _ in range(2):
    r = raw(s)
    got[r['mid']] = r['status']
out['cleanup'] = got[mn]
out['close'] = got[mc]
`,
      args(),
    );
    expect(out.filtered).toEqual([[1, 'afile']]);
    expect(out.small).toBe(0x10c);
    expect(out.cancel).toMatchObject({ status: 0xc0000120, same: true });
    expect(out.cancel.mid).toBe(out.cancel.mine);
    expect(out.cleanup).toBe(0x10b);
    expect(out.close).toBe(0);
  }, 60_000);
  it('more changes than the watch keeps are NOTIFY_ENUM_DIR; TREE_DISCONNECT and LOGOFF end a waiting notify with NOTIFY_CLEANUP; deleting the directory with DELETE_PENDING', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
dav('MKCOL', 'w3/')
c, s, tid = connect()
out = {}
d = opendir(s, tid, 'w3')
notify_req(s, tid, d, NAMES)
raw(s)
out['first'] = entries(raw(s)) if dav('PUT', 'w3/first', b'x') else None
# nothing waits now: 520 creates from another connection overflow the 512 kept
c2, s2, tid2 = connect()
for i in range(520):
    s2.close(tid2, s2.create(tid2, 'w3\\f%03d' % i, FILE_WRITE_DATA, FILE_SHARE_READ, 0, FILE_OVERWRITE_IF, 0))
notify_req(s, tid, d, NAMES)
out['overflow'] = raw(s)['status']
# TREE_DISCONNECT while a notify waits
d2 = opendir(s2, tid2, 'w3')
mn = notify_req(s2, tid2, d2, NAMES)
raw(s2)
p = s2.SMB_PACKET()
p['Command'] = SMB2_TREE_DISCONNECT
p['TreeID'] = tid2
p['Data'] = SMB2TreeDisconnect()
mt = s2.sendSMB(p)
got = {}
for _ in range(2):
    r = raw(s2)
    got[r['mid']] = r['status']
out['treeDisconnect'] = [got[mn], got[mt]]
# the watched directory deleted over WebDAV
dav('MKCOL', 'w4/')
d4 = opendir(s, tid, 'w4')
notify_req(s, tid, d4, NAMES)
raw(s)
out['delete'] = dav('DELETE', 'w4/')
out['deleted'] = raw(s)['status']
# LOGOFF while a notify waits
c3, s3, tid3 = connect()
d3 = opendir(s3, tid3, 'w3')
mn = notify_req(s3, tid3, d3, NAMES)
raw(s3)
p = s3.SMB_PACKET()
p['Command'] = SMB2_LOGOFF
p['Data'] = SMB2Logoff()
mo = s3.sendSMB(p)
got = {}
for _ in range(2):
    r = raw(s3)
    got[r['mid']] = r['status']
out['logoff'] = [got[mn], got[mo]]
`,
      args(),
    );
    expect(out.first).toEqual([[1, 'first']]);
    expect(out.overflow).toBe(0x10c);
    expect(out.treeDisconnect).toEqual([0x10b, 0]);
    expect(out.delete).toBe(204);
    expect(out.deleted).toBe(0xc0000056);
    expect(out.logoff).toEqual([0x10b, 0]);
  }, 180_000);
  it("a filter Portico reports nothing for waits (until CANCEL); the first request's buffer size is the open's (smbtorture valid-req)", async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
dav('MKCOL', 'w7/')
c, s, tid = connect()
out = {}
d = opendir(s, tid, 'w7')
m = notify_req(s, tid, d, 0x200)
out['streamName'] = raw(s)['status']
s.cancel(m)
out['streamNameCancel'] = raw(s)['status']
e = opendir(s, tid, 'w7')
notify_req(s, tid, e, NAMES, size=1)
raw(s)
dav('PUT', 'w7/a', b'x')
out['small'] = raw(s)['status']
notify_req(s, tid, e, NAMES, size=65536)
raw(s)
dav('PUT', 'w7/b', b'x')
out['later'] = raw(s)['status']
`,
      args(),
    );
    expect(out.streamName).toBe(0x103);
    expect(out.streamNameCancel).toBe(0xc0000120);
    expect(out.small).toBe(0x10c);
    expect(out.later).toBe(0x10c);
  }, 60_000);

  it('a directory made delete pending by another open (delete-on-close, then CLOSE) ends a waiting notify with DELETE_PENDING at once', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
dav('MKCOL', 'w8/')
c, s, tid = connect()
c2, s2, tid2 = connect()
d = opendir(s, tid, 'w8')
notify_req(s, tid, d, NAMES)
raw(s)
x = s2.create(tid2, 'w8', DELETE | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, FILE_DIRECTORY_FILE | FILE_DELETE_ON_CLOSE, FILE_OPEN, 0)
s2.close(tid2, x)
out = {'status': raw(s)['status']}
`,
      args(),
    );
    expect(out.status).toBe(0xc0000056);
  }, 60_000);

  it('256 directory opens of a session may watch; the next CHANGE_NOTIFY that would start a watch is INSUFFICIENT_RESOURCES', async () => {
    const out = await runPython(
      PRELUDE +
        String.raw`
dav('MKCOL', 'w6/')
c, s, tid = connect()
statuses = []
cancelled = 0
for i in range(257):
    d = opendir(s, tid, 'w6')
    m = notify_req(s, tid, d, NAMES)
    statuses.append(raw(s)['status'])
    if statuses[-1] == PENDING:
        # the request ends, the open's watch stays: only the watch bound can refuse the last one
        s.cancel(m)
        cancelled += raw(s)['status'] == 0xc0000120
out = {'pending': statuses[:256].count(PENDING), 'last': statuses[256], 'cancelled': cancelled}
`,
      args(),
    );
    expect(out.pending).toBe(256);
    expect(out.cancelled).toBe(256);
    expect(out.last).toBe(0xc000009a);
  }, 120_000);

  for (const protection of ['sign', 'encrypt']) it.skipIf(!HAVE_SMBCLIENT)(`smbclient notify (3.1.1, ${protection}: smbclient checks the final responses; the interim ones are unsigned) prints changes made over WebDAV`, async () => {
    const w = `w5-${protection}`;
    const auth = `Basic ${Buffer.from(`${ALICE.name}:${ALICE.password}`).toString('base64')}`;
    const dav = (method: string, path: string, body?: string) => fetch(`http://127.0.0.1:${stack.davPort}/mem/${path}`, { method, headers: { authorization: auth }, ...(body !== undefined ? { body } : {}) });
    expect((await dav('MKCOL', `${w}/`)).status).toBe(201);
    const dir = mkdtempSync(join(tmpdir(), 'portico-smbclient-'));
    const conf = join(dir, 'smb.conf');
    writeFileSync(conf, '[global]\n  workgroup = WORKGROUP\n');
    const child = spawn('stdbuf', ['-oL', 'smbclient', '-s', conf, '//127.0.0.1/mem', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-m', 'SMB3_11', `--client-protection=${protection}`, '-c', `notify ${w}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    try {
      // smbclient's request may not be there yet when a change is made (that one is not reported):
      // changes are made one by one until one is printed, then one more must follow.
      for (let i = 0; i < 200 && !/f\d+/.test(out) && child.exitCode === null; i++) {
        expect((await dav('PUT', `${w}/f${i}`, 'x')).status).toBe(201);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(out).toMatch(/0001 f\d+/);
      expect((await dav('PUT', `${w}/last.txt`, 'x')).status).toBe(201);
      for (let i = 0; i < 200 && !out.includes('last.txt') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(/0001 last\.txt/);
      expect(child.exitCode, out).toBe(null);
    } finally {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
