/**
 * DCE/RPC PDUs and srvsvc NDR: round trips, bounds, and impacket's srvs module (an independent
 * NDR implementation) encoding requests Portico decodes and decoding the responses Portico
 * encodes. The real client check is smbclient -L in smbclient.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  BindResult, PTYPE, SYNTAX, ShareType, WERR, bindResults, decodePdu, decodeShareEnumAll, decodeShareEnumAllResponse, decodeShareGetInfo,
  encodeBind, encodeBindAck, encodeRequest, encodeResponse, encodeShareEnumAllRequest, encodeShareEnumAllResponse, encodeShareGetInfoResponse, uuidBytes,
} from '../../protocols/smb/dcerpc.ts';
import { SmbDecodeError, tryDecode } from '../../protocols/smb/wire.ts';
import { hasImpacket, runPython } from './python.ts';

const SHARES = [
  { name: 'data', type: ShareType.DISKTREE, remark: 'Portico data' },
  { name: 'ünï', type: ShareType.DISKTREE, remark: '' },
  { name: 'IPC$', type: (ShareType.IPC | ShareType.SPECIAL) >>> 0, remark: 'IPC Service' },
];

describe('PDUs', () => {
  it('BIND -> BIND_ACK: srvsvc over NDR accepted, NDR64 and unknown interfaces rejected, bind-time features acknowledged', () => {
    const bind = encodeBind(2, [
      { contextId: 0, abstract: SYNTAX.SRVSVC, transfer: [SYNTAX.NDR] },
      { contextId: 1, abstract: SYNTAX.SRVSVC, transfer: [SYNTAX.NDR64] },
      { contextId: 2, abstract: { uuid: '12345778-1234-abcd-ef00-0123456789ac', version: 1 }, transfer: [SYNTAX.NDR] },
      { contextId: 3, abstract: SYNTAX.SRVSVC, transfer: [{ uuid: '6cb71c2c-9812-4540-0300-000000000000', version: 1 }] },
    ]);
    const d = decodePdu(bind);
    expect(d.kind).toBe('bind');
    if (d.kind !== 'bind') return;
    expect(d.pdu.contexts[0]!.abstract).toEqual(SYNTAX.SRVSVC);
    const results = bindResults(d.pdu, [SYNTAX.SRVSVC]);
    expect(results.map((r) => r.result)).toEqual([BindResult.ACCEPTANCE, BindResult.PROVIDER_REJECTION, BindResult.PROVIDER_REJECTION, BindResult.NEGOTIATE_ACK]);
    const ack = encodeBindAck(d.pdu, results, '\\PIPE\\srvsvc', 7);
    expect(ack[2]).toBe(PTYPE.BIND_ACK);
    expect(ack.readUInt16LE(8)).toBe(ack.length);
    expect(ack.readUInt32LE(12)).toBe(2);
  });

  it('uuids are written in NDR order', () => {
    expect(uuidBytes(SYNTAX.NDR.uuid).toString('hex')).toBe('045d888aeb1cc9119fe808002b104860');
  });

  it('a RESPONSE longer than a fragment is split with FIRST/LAST flags and alloc hints', () => {
    const req = decodePdu(encodeRequest(5, 0, 15, Buffer.alloc(8)));
    if (req.kind !== 'request') throw new Error('not a request');
    const frags = encodeResponse(req.pdu, Buffer.alloc(10000, 1), 4280);
    expect(frags.map((f) => f[3])).toEqual([1, 0, 2]);
    expect(frags.map((f) => f.readUInt32LE(16))).toEqual([10000, 10000 - 4256, 10000 - 2 * 4256]);
  });

  it('bounds: frag_length that lies, big-endian NDR, authentication, fragmented requests, too many contexts: SmbDecodeError', () => {
    const ok = encodeRequest(1, 0, 15, Buffer.alloc(8));
    const cases: [number, number][] = [[8, 0xff], [4, 0x00], [10, 1], [3, 0x01]];
    for (const [at, v] of cases) {
      const b = Buffer.from(ok);
      b[at] = v;
      const r = tryDecode(() => decodePdu(b));
      expect(r.ok, `byte ${at}`).toBe(false);
    }
    const bind = encodeBind(1, [{ contextId: 0, abstract: SYNTAX.SRVSVC, transfer: [SYNTAX.NDR] }]);
    const many = Buffer.from(bind);
    many[24] = 200;
    expect(tryDecode(() => decodePdu(many)).ok).toBe(false);
    for (let n = 0; n < bind.length; n++) {
      const t = Buffer.from(bind.subarray(0, n));
      if (t.length >= 10) t.writeUInt16LE(n, 8);
      const r = tryDecode(() => decodePdu(t));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBeInstanceOf(SmbDecodeError);
    }
  });
});

describe('srvsvc NDR', () => {
  it('NetrShareEnumAll request and level-1 response round-trip', () => {
    expect(decodeShareEnumAll(encodeShareEnumAllRequest('\\\\127.0.0.1'))).toEqual({ serverName: '\\\\127.0.0.1', level: 1, preferredMaximumLength: 0xffffffff, resumeHandle: 0 });
    expect(decodeShareEnumAllResponse(encodeShareEnumAllResponse(SHARES, true))).toEqual({ shares: SHARES, total: 3, werror: 0 });
    expect(decodeShareEnumAllResponse(encodeShareEnumAllResponse([], false))).toEqual({ shares: [], total: 0, werror: 0 });
  });

  it('strings that lie about their lengths are refused', () => {
    const stub = encodeShareEnumAllRequest('\\\\srv');
    for (const [at, v] of [[4, 0], [8, 1], [12, 0xffff]] as const) {
      const b = Buffer.from(stub);
      b.writeUInt32LE(v, at);
      expect(tryDecode(() => decodeShareEnumAll(b)).ok).toBe(false);
    }
    for (let n = 0; n < stub.length; n++) expect(tryDecode(() => decodeShareEnumAll(stub.subarray(0, n))).ok).toBe(false);
  });

  it('impacket encodes requests Portico decodes, and decodes Portico\'s responses', async () => {
    if (!(await hasImpacket())) return;
    const py = await runPython(`from impacket.dcerpc.v5 import srvs
from impacket.dcerpc.v5.dtypes import NULL
r = srvs.NetrShareEnum(); r['ServerName'] = '\\\\\\\\srv\\x00'; r['PreferedMaximumLength'] = 0xffffffff; r['ResumeHandle'] = 0
r['InfoStruct']['Level'] = 1; r['InfoStruct']['ShareInfo']['tag'] = 1; r['InfoStruct']['ShareInfo']['Level1']['Buffer'] = NULL
g = srvs.NetrShareGetInfo(); g['ServerName'] = NULL; g['NetName'] = 'data\\x00'; g['Level'] = 1
resp = srvs.NetrShareEnumResponse(h(inp['enum']))
shares = [[e['shi1_netname'][:-1], e['shi1_type'], e['shi1_remark'][:-1]] for e in resp['InfoStruct']['ShareInfo']['Level1']['Buffer']]
gi = srvs.NetrShareGetInfoResponse(h(inp['get']))
out = {'enumReq': r.getData().hex(), 'getReq': g.getData().hex(), 'shares': shares, 'total': resp['TotalEntries'], 'err': resp['ErrorCode'],
       'get': [gi['InfoStruct']['ShareInfo1']['shi1_netname'][:-1], gi['InfoStruct']['ShareInfo1']['shi1_type'], gi['ErrorCode']]}`,
      { enum: encodeShareEnumAllResponse(SHARES, true).toString('hex'), get: encodeShareGetInfoResponse(SHARES[0], WERR.OK).toString('hex') });
    expect(decodeShareEnumAll(Buffer.from(py.enumReq, 'hex'))).toEqual({ serverName: '\\\\srv', level: 1, preferredMaximumLength: 0xffffffff, resumeHandle: 0 });
    expect(decodeShareGetInfo(Buffer.from(py.getReq, 'hex'))).toEqual({ netName: 'data', level: 1 });
    expect(py.shares).toEqual(SHARES.map((s) => [s.name, s.type, s.remark]));
    expect([py.total, py.err]).toEqual([3, 0]);
    expect(py.get).toEqual(['data', 0, 0]);
  });
});
