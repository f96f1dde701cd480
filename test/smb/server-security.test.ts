/**
 * SMB security descriptors (QUERY_INFO / SET_INFO SMB2_0_INFO_SECURITY) in the real gateway, read
 * by two independent parsers: impacket's `ldaptypes.SR_SECURITY_DESCRIPTOR` and smbclient's
 * `showacls`.
 * The descriptor states Portico's rights: owner S-1-22-1-<uid>, group S-1-22-2-<gid>, allow ACEs
 * for the caller, Authenticated Users and BUILTIN\Guests with their `Session.access` masks, and a
 * deny ACE where a rule takes from a user what `*` grants. SET_INFO succeeds only when it changes
 * nothing.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

const PARSE = String.raw`
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import *
from impacket.ldap import ldaptypes
def parse(b):
    sd = ldaptypes.SR_SECURITY_DESCRIPTOR(data=b)
    r = {'control': sd['Control'], 'owner': None, 'group': None, 'dacl': None}
    if sd['OffsetOwner']: r['owner'] = sd['OwnerSid'].formatCanonical()
    if sd['OffsetGroup']: r['group'] = sd['GroupSid'].formatCanonical()
    if sd['OffsetDacl']: r['dacl'] = [[a['AceType'], a['AceFlags'], a['Ace']['Mask']['Mask'], a['Ace']['Sid'].formatCanonical()] for a in sd['Dacl'].aces]
    return r
def err(f):
    try:
        f()
        return 'ok'
    except Exception as e:
        return str(e).split('(')[0].strip()
`;

describe.skipIf(!HAVE)('SMB security descriptors', () => {
  let stack: SmbStack;
  let tmp: string;
  beforeAll(async () => {
    // A local share with /ro made beforehand: the rule keeps alice from making it herself.
    tmp = mkdtempSync(join(tmpdir(), 'portico-smb-sec-'));
    mkdirSync(join(tmp, 'sec', 'ro'), { recursive: true });
    stack = await startSmb({
      shares: [{ name: 'sec', source: join(tmp, 'sec'), guest: 'read', rules: [{ path: '/ro', users: ['alice'], deny: ['write'] }] }],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('QUERY_INFO SECURITY: owner and group S-1-22, a DACL of the real rights, AdditionalInformation honoured, BUFFER_TOO_SMALL with the size', async () => {
    const out = await runPython(
      PARSE +
        String.raw`
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('sec')
s = c.getSMBServer()
fid = c.createFile(tid, 'f.txt', creationDisposition=FILE_OVERWRITE_IF)
c.closeFile(tid, fid)
out = {}
fid = c.openFile(tid, 'f.txt', desiredAccess=READ_CONTROL | FILE_READ_ATTRIBUTES)
full = s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=7)
out['file'] = parse(full)
out['owner'] = parse(s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=1))
out['dacl'] = parse(s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=4))
out['sacl'] = err(lambda: s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=8))
# A buffer too small: STATUS_BUFFER_TOO_SMALL and, before 3.1.1, the 4-byte size needed.
p = s.SMB_PACKET()
p['Command'] = SMB2_QUERY_INFO
p['TreeID'] = tid
q = SMB2QueryInfo()
q['FileID'] = fid
q['InfoType'] = 3
q['FileInfoClass'] = 0
q['OutputBufferLength'] = 16
q['AdditionalInformation'] = 7
q['InputBufferOffset'] = 0
q['Buffer'] = '\x00'
p['Data'] = q
ans = s.recvSMB(s.sendSMB(p))
data = ans['Data']
out['small'] = [ans['Status'], int.from_bytes(data[4:8], 'little'), int.from_bytes(data[8:12], 'little'), len(full)]
c.closeFile(tid, fid)
fid = c.openFile(tid, 'f.txt', desiredAccess=FILE_READ_ATTRIBUTES)
out['noReadControl'] = err(lambda: s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=7))
c.closeFile(tid, fid)
fid = s.create(tid, 'ro', READ_CONTROL | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
out['ro'] = parse(s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=7))
c.closeFile(tid, fid)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    const alice = `S-1-22-1-${ALICE.uid}`;
    // Owner and group: the creator's uid and gid in Samba's Unix mapping.
    expect(out.file.owner).toBe(alice);
    expect(out.file.group).toBe(`S-1-22-2-${ALICE.uid}`);
    // SELF_RELATIVE | DACL_PROTECTED | DACL_PRESENT.
    expect(out.file.control & 0x9004).toBe(0x9004);
    // Default access `*` read,write: alice and Authenticated Users may modify; the guest reads.
    expect(out.file.dacl).toEqual([
      [0, 0, 0x1301bf, alice],
      [0, 0, 0x1301bf, 'S-1-5-11'],
      [0, 0, 0x1200a9, 'S-1-5-32-546'],
    ]);
    expect(out.owner).toEqual({ control: 0x8000, owner: alice, group: null, dacl: null });
    expect(out.dacl.owner).toBeNull();
    expect(out.dacl.group).toBeNull();
    expect(out.dacl.dacl).toEqual(out.file.dacl);
    expect(out.sacl).toMatch(/STATUS_ACCESS_DENIED/);
    expect(out.small[0]).toBe(0xc0000023);
    expect(out.small[1]).toBe(4);
    expect(out.small[2]).toBe(out.small[3]);
    expect(out.noReadControl).toMatch(/STATUS_ACCESS_DENIED/);
    // Under /ro a rule denies alice write: a deny ACE for what `*` would give her, inheritable on a directory.
    expect(out.ro.dacl).toEqual([
      [1, 3, 0x1301bf & ~0x1200a9, alice],
      [0, 3, 0x1200a9, alice],
      [0, 3, 0x1301bf, 'S-1-5-11'],
      [0, 3, 0x1200a9, 'S-1-5-32-546'],
    ]);
  }, 40_000);

  it('SET_INFO SECURITY: the descriptor read back is accepted, a changed DACL or owner is ACCESS_DENIED', async () => {
    const out = await runPython(
      PARSE +
        String.raw`
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('sec')
s = c.getSMBServer()
fid = c.createFile(tid, 'set.txt', creationDisposition=FILE_OVERWRITE_IF)
c.closeFile(tid, fid)
fid = c.openFile(tid, 'set.txt', desiredAccess=READ_CONTROL | WRITE_DAC | WRITE_OWNER)
raw = s.queryInfo(tid, fid, infoType=3, fileInfoClass=0, additionalInformation=7)
out = {}
out['same'] = err(lambda: s.setInfo(tid, fid, inputBlob=raw, infoType=3, fileInfoClass=0, additionalInformation=7))
sd = ldaptypes.SR_SECURITY_DESCRIPTOR(data=raw)
sd['Dacl'].aces[1]['Ace']['Mask']['Mask'] = 0x1f01ff
out['changed'] = err(lambda: s.setInfo(tid, fid, inputBlob=sd.getData(), infoType=3, fileInfoClass=0, additionalInformation=4))
sd = ldaptypes.SR_SECURITY_DESCRIPTOR(data=raw)
sd['OwnerSid'].fromCanonical('S-1-5-32-544')
out['owner'] = err(lambda: s.setInfo(tid, fid, inputBlob=sd.getData(), infoType=3, fileInfoClass=0, additionalInformation=1))
out['garbage'] = err(lambda: s.setInfo(tid, fid, inputBlob=b'\x01\x00', infoType=3, fileInfoClass=0, additionalInformation=4))
c.closeFile(tid, fid)
fid = c.openFile(tid, 'set.txt', desiredAccess=READ_CONTROL)
out['noWriteDac'] = err(lambda: s.setInfo(tid, fid, inputBlob=raw, infoType=3, fileInfoClass=0, additionalInformation=4))
c.closeFile(tid, fid)
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.same).toBe('ok');
    expect(out.changed).toMatch(/STATUS_ACCESS_DENIED/);
    expect(out.owner).toMatch(/STATUS_ACCESS_DENIED/);
    expect(out.garbage).toMatch(/STATUS_INVALID_PARAMETER/);
    expect(out.noWriteDac).toMatch(/STATUS_ACCESS_DENIED/);
  }, 40_000);

  it.skipIf(!HAVE_SMBCLIENT)("smbclient's showacls reads the same descriptor", async () => {
    const r = await smbclient(['//127.0.0.1/sec', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-c', 'put /etc/hostname acl.txt; showacls; ls acl.txt']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/type: 0x9004: SEC_DESC_DACL_PRESENT SEC_DESC_DACL_PROTECTED SEC_DESC_SELF_RELATIVE/);
    expect(r.out).toContain(`Owner SID:\tS-1-22-1-${ALICE.uid}`);
    expect(r.out).toContain(`Group SID:\tS-1-22-2-${ALICE.uid}`);
    const aces = [...r.out.matchAll(/type: ACCESS (ALLOWED|DENIED)[^\n]*\n[^\n]*\n\s*Permissions: (0x[0-9a-f]+)[^\n]*\n\s*SID: (\S+)/g)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    expect(aces).toEqual([`ALLOWED 0x1301bf S-1-22-1-${ALICE.uid}`, 'ALLOWED 0x1301bf S-1-5-11', 'ALLOWED 0x1200a9 S-1-5-32-546']);
  }, 40_000);
});
