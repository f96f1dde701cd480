/**
 * The command layouts no real client exercised in the smoke tests (LOCK, FLUSH, QUERY_DIRECTORY,
 * QUERY_INFO, SET_INFO, CHANGE_NOTIFY, the break notifications and acknowledgments, CREATE and
 * CLOSE responses with their fields and contexts), read by impacket's smb3structs — an
 * independent implementation of the same MS-SMB2 structures — field by field from Portico's
 * encoders; and impacket-built requests decoded by Portico.
 */
import { describe, expect, it } from 'vitest';
import { Command, HEADER_BYTES } from '../../protocols/smb/header.ts';
import type { WireWriter } from '../../protocols/smb/wire.ts';
import * as CR from '../../protocols/smb/messages/create.ts';
import * as F from '../../protocols/smb/messages/file-ops.ts';
import * as INF from '../../protocols/smb/messages/info.ts';
import * as BR from '../../protocols/smb/messages/break.ts';
import { element, hex } from './helpers.ts';
import { hasImpacket, runPython } from './python.ts';

const fid = { persistent: 0x0102030405060708n, volatile: 0x1112131415161718n };
const FID_HEX = '0807060504030201' + '1817161514131211';
const body = (command: number, enc: (w: WireWriter) => void): string => element(command, enc).subarray(HEADER_BYTES).toString('hex');

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('impacket smb3structs reads Portico\'s encodings', () => {
  it('every layout, field by field', async () => {
    const bodies = {
      lock: body(Command.LOCK, (w) => F.encodeLockRequest(w, { lockSequence: 0x21, fileId: fid, locks: [{ offset: 5n, length: 10n, flags: 0x12 }, { offset: 100n, length: 1n, flags: 4 }] })),
      flush: body(Command.FLUSH, (w) => F.encodeFlushRequest(w, { fileId: fid })),
      qdir: body(Command.QUERY_DIRECTORY, (w) => INF.encodeQueryDirectoryRequest(w, { infoClass: 37, flags: 1, fileIndex: 0, fileId: fid, pattern: '*.txt', outputBufferLength: 65536 })),
      qinfo: body(Command.QUERY_INFO, (w) => INF.encodeQueryInfoRequest(w, { infoType: 1, infoClass: 18, outputBufferLength: 4096, input: hex('aabb'), additionalInformation: 7, flags: 1, fileId: fid })),
      setinfo: body(Command.SET_INFO, (w) => INF.encodeSetInfoRequest(w, { infoType: 1, infoClass: 20, additionalInformation: 0, fileId: fid, buffer: hex('0010000000000000') })),
      notify: body(Command.CHANGE_NOTIFY, (w) => INF.encodeChangeNotifyRequest(w, { flags: 1, outputBufferLength: 2048, fileId: fid, completionFilter: 0x17 })),
      output: body(Command.QUERY_INFO, (w) => INF.encodeOutputResponse(w, hex('0102030405'))),
      oplock: body(Command.OPLOCK_BREAK, (w) => BR.encodeBreakAck(w, { kind: 'oplock', oplockLevel: 1, fileId: fid })),
      leaseAck: body(Command.OPLOCK_BREAK, (w) => BR.encodeBreakAck(w, { kind: 'lease', flags: 0, leaseKey: Buffer.alloc(16, 0xab), leaseState: 3, leaseDuration: 0n })),
      leaseBreak: body(Command.OPLOCK_BREAK, (w) => BR.encodeLeaseBreakNotification(w, { newEpoch: 2, flags: 1, leaseKey: Buffer.alloc(16, 0xcd), currentLeaseState: 7, newLeaseState: 1 })),
      create: body(Command.CREATE, (w) => CR.encodeCreateResponse(w, {
        oplockLevel: 0, flags: 0, createAction: 2, creationTime: 11n, lastAccessTime: 12n, lastWriteTime: 13n, changeTime: 14n, allocationSize: 4096n, endOfFile: 123n,
        fileAttributes: 0x20, fileId: fid, contexts: [{ name: Buffer.from('MxAc'), data: hex('00000000ff011f00') }, { name: Buffer.from('QFid'), data: Buffer.alloc(32, 1) }],
      })),
      close: body(Command.CLOSE, (w) => F.encodeCloseResponse(w, { flags: 1, creationTime: 1n, lastAccessTime: 2n, lastWriteTime: 3n, changeTime: 4n, allocationSize: 8192n, endOfFile: 5000n, fileAttributes: 0x80 })),
      read: body(Command.READ, (w) => F.encodeReadResponse(w, { data: Buffer.from('hello'), dataRemaining: 0 })),
    };
    const py = await runPython(`from impacket import smb3structs as S
b = {k: h(v) for k, v in inp.items()}
def fid(x): return x.getData().hex() if hasattr(x, 'getData') else bytes(x).hex()
out = {}
l = S.SMB2Lock(b['lock']); locks = l['Locks']
out['lock'] = [l['LockCount'], l['LockSequence'], fid(l['FileID']), [[int.from_bytes(locks[i*24:i*24+8], 'little'), int.from_bytes(locks[i*24+8:i*24+16], 'little'), int.from_bytes(locks[i*24+16:i*24+20], 'little')] for i in range(l['LockCount'])]]
f = S.SMB2Flush(b['flush']); out['flush'] = fid(f['FileID'])
q = S.SMB2QueryDirectory(b['qdir']); out['qdir'] = [q['FileInformationClass'], q['Flags'], q['FileNameOffset'], q['Buffer'][:q['FileNameLength']].decode('utf-16le'), q['OutputBufferLength'], fid(q['FileID'])]
q = S.SMB2QueryInfo(b['qinfo']); out['qinfo'] = [q['InfoType'], q['FileInfoClass'], q['OutputBufferLength'], q['InputBufferLength'], q['Buffer'][:q['InputBufferLength']].hex(), q['AdditionalInformation'], q['Flags'], fid(q['FileID'])]
q = S.SMB2SetInfo(b['setinfo']); out['setinfo'] = [q['InfoType'], q['FileInfoClass'], q['BufferLength'], q['Buffer'][:q['BufferLength']].hex(), fid(q['FileID'])]
q = S.SMB2ChangeNotify(b['notify']); out['notify'] = [q['Flags'], q['OutputBufferLength'], fid(q['FileID']), q['CompletionFilter']]
q = S.SMB2QueryInfo_Response(b['output']); out['output'] = q['Buffer'][:q['OutputBufferLength']].hex()
q = S.SMB2OplockBreakNotification(b['oplock']); out['oplock'] = [q['OplockLevel'], fid(q['FileID'])]
q = S.SMB2LeaseBreakAcknowledgement(b['leaseAck']); out['leaseAck'] = [q['LeaseKey'].hex(), q['LeaseState'], q['LeaseDuration']]
q = S.SMB2LeaseBreakNotification(b['leaseBreak']); out['leaseBreak'] = [q['NewEpoch'], q['Flags'], q['LeaseKey'].hex(), q['CurrentLeaseState'], q['NewLeaseState']]
q = S.SMB2Create_Response(b['create'])
ctx = []; buf = q['Buffer']; at = 0
while True:
    c = S.SMB2CreateContext(buf[at:])
    ctx.append([buf[at + c['NameOffset']:at + c['NameOffset'] + c['NameLength']].decode(), buf[at + c['DataOffset']:at + c['DataOffset'] + c['DataLength']].hex()])
    if c['Next'] == 0: break
    at += c['Next']
out['create'] = [q['CreateAction'], q['CreationTime'], q['ChangeTime'], q['AllocationSize'], q['EndOfFile'], q['FileAttributes'], fid(q['FileID']), ctx]
q = S.SMB2Close_Response(b['close']); out['close'] = [q['Flags'], q['CreationTime'], q['LastWriteTime'], q['AllocationSize'], q['EndofFile'], q['FileAttributes']]
q = S.SMB2Read_Response(b['read']); out['read'] = [q['DataOffset'], q['Buffer'][:q['DataLength']].decode()]`, bodies);
    expect(py.lock).toEqual([2, 0x21, FID_HEX, [[5, 10, 0x12], [100, 1, 4]]]);
    expect(py.flush).toBe(FID_HEX);
    expect(py.qdir).toEqual([37, 1, 96, '*.txt', 65536, FID_HEX]);
    expect(py.qinfo).toEqual([1, 18, 4096, 2, 'aabb', 7, 1, FID_HEX]);
    expect(py.setinfo).toEqual([1, 20, 8, '0010000000000000', FID_HEX]);
    expect(py.notify).toEqual([1, 2048, FID_HEX, 0x17]);
    expect(py.output).toBe('0102030405');
    expect(py.oplock).toEqual([1, FID_HEX]);
    expect(py.leaseAck).toEqual(['ab'.repeat(16), 3, 0]);
    expect(py.leaseBreak).toEqual([2, 1, 'cd'.repeat(16), 7, 1]);
    expect(py.create).toEqual([2, 11, 14, 4096, 123, 0x20, FID_HEX, [['MxAc', '00000000ff011f00'], ['QFid', '01'.repeat(32)]]]);
    expect(py.close).toEqual([1, 1, 3, 8192, 5000, 0x80]);
    expect(py.read).toEqual([0x50, 'hello']);
  });

  it('impacket-built requests decode in Portico: CREATE with contexts, LOCK, QUERY_DIRECTORY, SET_INFO', async () => {
    const py = await runPython(`from impacket import smb3structs as S
out = {}
c = S.SMB2Create()
c['RequestedOplockLevel'] = 0; c['ImpersonationLevel'] = 2; c['DesiredAccess'] = 0x120089; c['FileAttributes'] = 0x80
c['ShareAccess'] = 7; c['CreateDisposition'] = 1; c['CreateOptions'] = 0x40
name = 'dir\\\\file.txt'.encode('utf-16le'); c['NameLength'] = len(name)
ctx = S.SMB2CreateContext(); ctx['Next'] = 0; ctx['NameOffset'] = 16; ctx['NameLength'] = 4; ctx['DataOffset'] = 24; ctx['DataLength'] = 8
ctx['Buffer'] = b'MxAc' + b'\\0' * 4 + (5).to_bytes(8, 'little')
pad = b'\\0' * ((8 - (56 + 64 + len(name)) % 8) % 8)
c['CreateContextsOffset'] = 64 + 56 + len(name) + len(pad); c['CreateContextsLength'] = len(ctx.getData())
c['Buffer'] = name + pad + ctx.getData()
out['create'] = c.getData().hex()
l = S.SMB2Lock(); l['LockCount'] = 1; l['LockSequence'] = 0; l['FileID'] = b'\\x01' * 16
l['Locks'] = (7).to_bytes(8, 'little') + (3).to_bytes(8, 'little') + (0x12).to_bytes(4, 'little') + b'\\0' * 4
out['lock'] = l.getData().hex()
q = S.SMB2QueryDirectory(); q['FileInformationClass'] = 37; q['Flags'] = 1; q['FileID'] = b'\\x02' * 16
q['FileNameLength'] = len('*'.encode('utf-16le')); q['OutputBufferLength'] = 65535; q['Buffer'] = '*'.encode('utf-16le')
out['qdir'] = q.getData().hex()
s = S.SMB2SetInfo(); s['InfoType'] = 1; s['FileInfoClass'] = 13; s['FileID'] = b'\\x03' * 16; s['BufferLength'] = 1; s['Buffer'] = b'\\x01'
out['setinfo'] = s.getData().hex()`, {});
    const el = (cmd: number, b: string) => element(cmd, (w) => w.bytes(hex(b)));
    const c = CR.decodeCreateRequest(el(Command.CREATE, py.create));
    expect(c).toMatchObject({ impersonationLevel: 2, desiredAccess: 0x120089, shareAccess: 7, createDisposition: 1, createOptions: 0x40, name: 'dir\\file.txt' });
    expect(c.contexts).toEqual([{ name: Buffer.from('MxAc'), data: hex('0500000000000000') }]);
    expect(F.decodeLockRequest(el(Command.LOCK, py.lock)).locks).toEqual([{ offset: 7n, length: 3n, flags: 0x12 }]);
    expect(INF.decodeQueryDirectoryRequest(el(Command.QUERY_DIRECTORY, py.qdir))).toMatchObject({ infoClass: 37, flags: 1, pattern: '*', outputBufferLength: 65535 });
    expect(INF.decodeSetInfoRequest(el(Command.SET_INFO, py.setinfo))).toMatchObject({ infoType: 1, infoClass: 13, buffer: hex('01') });
  });
});
