/**
 * Names Windows cannot use (protocols/smb/server/names.ts): invalid characters, DOS device names
 * with or without extension, trailing dots and spaces are refused with STATUS_OBJECT_NAME_INVALID
 * when an SMB client would create them (CREATE, mkdir, rename target); such names made over WebDAV
 * are listed and open by their exact name.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveDots, streamlessPath } from '../../protocols/smb/server/names.ts';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe('CREATE names as share paths (streamlessPath, resolveDots)', () => {
  it('turns backslashes into slashes, drops leading and trailing separators and an explicit ::$DATA; any other stream form is undefined', () => {
    const cases: [string, string | undefined][] = [
      ['', '/'], ['f0001', '/f0001'], ['dir\\sub\\f', '/dir/sub/f'], ['\\\\a\\b\\\\', '/a/b'], ['a/b/', '/a/b'], ['/a', '/a'],
      ['a::$DATA', '/a'], ['d\\a::$data', '/d/a'], ['a::$DATA\\', '/a'], ['a:b', undefined], ['a:b:$DATA', undefined], ['a::foo', undefined],
      ['a:', undefined], [':', undefined], ['a::$DATA::$DATA', undefined], ['a\\b::$DATA:', undefined], ['..\\x', '/../x'],
    ];
    for (const [wire, want] of cases) expect([wire, streamlessPath(wire)]).toEqual([wire, want]);
    expect(resolveDots('/../x')).toBeUndefined();
  });
});

describe.skipIf(!HAVE)('SMB reserved names and invalid characters', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('creating, mkdir and renaming to a name Windows cannot use is OBJECT_NAME_INVALID; look-alikes are fine', async () => {
    const out = await runPython(
      String.raw`
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_OVERWRITE_IF, FILE_CREATE, FILE_OPEN_IF
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
def create(name, disp=FILE_OVERWRITE_IF):
    try:
        c.closeFile(tid, c.createFile(tid, name, creationDisposition=disp))
        return 'ok'
    except Exception as e:
        return str(e)
out = {'bad': {}, 'good': {}}
for n in inp['bad']:
    out['bad'][n] = create(n, FILE_CREATE) + ' | ' + create(n, FILE_OPEN_IF)
for n in inp['good']:
    out['good'][n] = create(n)
try:
    c.createDirectory('mem', 'AUX')
    out['mkdir'] = 'ok'
except Exception as e:
    out['mkdir'] = str(e)
c.closeFile(tid, c.createFile(tid, 'movable.txt', creationDisposition=FILE_OVERWRITE_IF))
try:
    c.rename('mem', 'movable.txt', 'PRN.txt')
    out['rename'] = 'ok'
except Exception as e:
    out['rename'] = str(e)
try:
    c.rename('mem', 'movable.txt', 'what?.txt')
    out['renameChar'] = 'ok'
except Exception as e:
    out['renameChar'] = str(e)
out['list'] = sorted(f.get_longname() for f in c.listPath('mem', '*'))
`,
      {
        smb: stack.smbPort,
        user: ALICE.name,
        password: ALICE.password,
        bad: ['CON', 'nul.txt', 'Com1.tar.gz', 'lpt9', 'aux .txt', 'a*b', 'a?b', 'a<b', 'a>b', 'a"b', 'a|b', 'tab\tname', 'bell\u0007', 'dot.', 'space '],
        good: ['CONSOLE', 'con1', 'COM10', 'LPT0', 'my.con', 'nul_', '.hidden', 'a b', 'trailing.dot.x'],
      },
    );
    for (const [n, r] of Object.entries(out.bad)) expect(String(r).split(' | ').every((x) => x.includes('STATUS_OBJECT_NAME_INVALID')), `${n}: ${r}`).toBe(true);
    for (const [n, r] of Object.entries(out.good)) expect(r, n).toBe('ok');
    expect(out.mkdir).toMatch(/STATUS_OBJECT_NAME_INVALID/);
    expect(out.rename).toMatch(/STATUS_OBJECT_NAME_INVALID/);
    expect(out.renameChar).toMatch(/STATUS_OBJECT_NAME_INVALID/);
    expect(out.list).toEqual(['.', '..', '.hidden', 'COM10', 'CONSOLE', 'LPT0', 'a b', 'con1', 'movable.txt', 'my.con', 'nul_', 'trailing.dot.x'].sort());
  }, 60_000);

  it('names made over WebDAV that Windows cannot use are listed over SMB and open by their exact name', async () => {
    const out = await runPython(
      String.raw`
import base64, urllib.request, urllib.parse
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_OPEN, FILE_READ_DATA, FILE_SHARE_READ
auth = 'Basic ' + base64.b64encode((inp['user'] + ':' + inp['password']).encode()).decode()
names = ['CON', 'nul.txt', 'what?.txt', 'star*', 'pipe|d', 'dot.']
for n in names:
    url = 'http://127.0.0.1:%d/disk/odd/%s' % (inp['dav'], urllib.parse.quote(n))
    if n == names[0]:
        urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:%d/disk/odd/' % inp['dav'], method='MKCOL', headers={'Authorization': auth}))
    urllib.request.urlopen(urllib.request.Request(url, data=('body of ' + n).encode(), method='PUT', headers={'Authorization': auth}))
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x210)
c.login(inp['user'], inp['password'])
tid = c.connectTree('disk')
out = {'list': sorted(f.get_longname() for f in c.listPath('disk', 'odd\\*')), 'read': {}}
for n in names:
    try:
        f = c.openFile(tid, 'odd\\' + n, desiredAccess=FILE_READ_DATA, shareMode=FILE_SHARE_READ, creationOption=0x40, creationDisposition=FILE_OPEN)
        out['read'][n] = c.readFile(tid, f).decode()
        c.closeFile(tid, f)
    except Exception as e:
        out['read'][n] = str(e)
`,
      { smb: stack.smbPort, dav: stack.davPort, user: ALICE.name, password: ALICE.password },
    );
    const names = ['CON', 'nul.txt', 'what?.txt', 'star*', 'pipe|d', 'dot.'];
    expect(out.list).toEqual(['.', '..', ...names].sort());
    for (const n of names) expect(out.read[n], n).toBe(`body of ${n}`);
  }, 60_000);

  it('stream names: a::$DATA opens a; a:b, a:b:$DATA, a::foo and a: are OBJECT_NAME_INVALID (no named streams, as FAT or Samba without streams); . and .. resolve inside the share', async () => {
    const out = await runPython(
      String.raw`
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_OPEN, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE_IF, FILE_READ_DATA, FILE_SHARE_READ
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
tid = c.connectTree('mem')
f = c.createFile(tid, 'plain.txt', creationDisposition=FILE_OVERWRITE_IF)
c.writeFile(tid, f, b'plain body')
c.closeFile(tid, f)
def attempt(name, disp):
    try:
        f = c.openFile(tid, name, desiredAccess=FILE_READ_DATA, shareMode=FILE_SHARE_READ, creationOption=0x40, creationDisposition=disp)
        data = c.readFile(tid, f).decode()
        c.closeFile(tid, f)
        return 'read:' + data
    except Exception as e:
        return str(e)
out = {}
for n in inp['names']:
    out[n] = [attempt(n, d) for d in (FILE_OPEN, FILE_CREATE, FILE_OPEN_IF)]
out['list'] = sorted(f.get_longname() for f in c.listPath('mem', '*'))
c.createDirectory('mem', 'sub')
out['dotdot'] = attempt('sub\\..\\plain.txt', FILE_OPEN)
out['dot'] = attempt('.\\sub\\.\\..\\plain.txt', FILE_OPEN)
out['above'] = attempt('..\\..\\plain.txt', FILE_OPEN)
out['aboveCreate'] = attempt('sub\\..\\..\\new.txt', FILE_CREATE)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password, names: ['plain.txt::$DATA', 'plain.txt::$data', 'plain.txt:b', 'plain.txt:b:$DATA', 'plain.txt::foo', 'plain.txt:', 'nothere:b', 'nothere:b:$DATA'] },
    );
    expect(out['plain.txt::$DATA'][0]).toBe('read:plain body');
    expect(out['plain.txt::$data'][0]).toBe('read:plain body');
    expect(out['plain.txt::$DATA'][1]).toMatch(/STATUS_OBJECT_NAME_COLLISION/);
    for (const n of ['plain.txt:b', 'plain.txt:b:$DATA', 'plain.txt::foo', 'plain.txt:', 'nothere:b', 'nothere:b:$DATA']) {
      for (const r of out[n]) expect(r, n).toMatch(/STATUS_OBJECT_NAME_INVALID/);
    }
    expect(out.list).not.toContain('nothere');
    // `.` and `..` resolve inside the share, as Windows' server canonicalizes; above its root is
    // OBJECT_PATH_SYNTAX_BAD.
    expect(out.dotdot).toBe('read:plain body');
    expect(out.dot).toBe('read:plain body');
    expect(out.above).toMatch(/STATUS_OBJECT_PATH_SYNTAX_BAD/);
    expect(out.aboveCreate).toMatch(/STATUS_OBJECT_PATH_SYNTAX_BAD/);
  }, 60_000);

  it.skipIf(!HAVE_SMBCLIENT)('smbclient: put to CON and to a name with a trailing dot is NT_STATUS_OBJECT_NAME_INVALID', async () => {
    const src = join(stack.tmp, 'names-src.txt');
    writeFileSync(src, 'x');
    const r = await smbclient(['//127.0.0.1/mem', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-m', 'SMB3_11', '-c', `put ${src} CON; put ${src} "trail."; put ${src} fine.txt; ls`]);
    expect(r.out.match(/NT_STATUS_OBJECT_NAME_INVALID/g)?.length, r.out).toBe(2);
    expect(r.out).toMatch(/fine\.txt/);
  }, 60_000);
});
