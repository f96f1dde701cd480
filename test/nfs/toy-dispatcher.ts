/**
 * A toy NFSv4.0 dispatcher over a fixed in-memory tree, for tests only: just enough operations
 * (SETCLIENTID, PUTROOTFH, LOOKUP, GETATTR, READDIR, OPEN, READ, CLOSE, …) for libnfs to mount,
 * list and read, so the wire layer's result encoders are checked by a real client. It is not the
 * NFS server's semantics (those come with the operations over the Session's by-id API).
 */
import { runCompound, type DecodedOp, type OpResult } from '../../protocols/nfs/compound.ts';
import { encodeFattr, fattrToBuffer, type AttrValues } from '../../protocols/nfs/fattr4.ts';
import { FATTR4, FH4, NF4, NFS4ERR, OP, OPEN_DELEGATE } from '../../protocols/nfs/nfs4-types.ts';
import type { Nfs4Dispatcher } from '../../protocols/nfs/nfs4-program.ts';
import { bitmapOf } from '../../protocols/nfs/xdr4/common.ts';
import type { XdrWriter } from '../../protocols/nfs/xdr.ts';

interface Node {
  id: number;
  parent: number;
  name: string;
  dir: boolean;
  data: Buffer;
}

export const TOY_FILE = Buffer.from('hello world\n'.repeat(1000));
/** 3 MiB and a bit: several READs, each a view of this buffer in the reply. */
export const TOY_BIG = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 1234 }, (_, i) => (i * 131 + (i >> 10)) & 0xff));

const NODES: Node[] = [
  { id: 1, parent: 1, name: '', dir: true, data: Buffer.alloc(0) },
  { id: 2, parent: 1, name: 'hello.txt', dir: false, data: TOY_FILE },
  { id: 3, parent: 1, name: 'sub', dir: true, data: Buffer.alloc(0) },
  { id: 4, parent: 3, name: 'inner.txt', dir: false, data: Buffer.from('inner\n') },
  { id: 5, parent: 3, name: 'big.bin', dir: false, data: TOY_BIG },
];
const byId = new Map(NODES.map((n) => [n.id, n]));
const SUPPORTED = bitmapOf([
  FATTR4.SUPPORTED_ATTRS, FATTR4.TYPE, FATTR4.FH_EXPIRE_TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.LINK_SUPPORT, FATTR4.SYMLINK_SUPPORT,
  FATTR4.NAMED_ATTR, FATTR4.FSID, FATTR4.UNIQUE_HANDLES, FATTR4.LEASE_TIME, FATTR4.RDATTR_ERROR, FATTR4.FILEHANDLE, FATTR4.FILEID,
  FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_METADATA,
  FATTR4.TIME_MODIFY, FATTR4.MOUNTED_ON_FILEID, FATTR4.MAXREAD, FATTR4.MAXWRITE, FATTR4.MAXNAME,
]);

const fhOf = (id: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(id));
  return b;
};

function attrs(n: Node): AttrValues {
  const t = { seconds: 1_700_000_000n, nseconds: 0 };
  return {
    supportedAttrs: SUPPORTED, type: n.dir ? NF4.DIR : NF4.REG, fhExpireType: FH4.PERSISTENT, change: 1n, size: BigInt(n.data.length),
    linkSupport: true, symlinkSupport: true, namedAttr: false, fsid: { major: 1n, minor: 1n }, uniqueHandles: true, leaseTime: 90,
    rdattrError: 0, filehandle: fhOf(n.id), fileid: BigInt(n.id), mode: n.dir ? 0o755 : 0o644, numlinks: n.dir ? 2 : 1, owner: '0',
    ownerGroup: '0', spaceUsed: BigInt(n.data.length), timeAccess: t, timeMetadata: t, timeModify: t, mountedOnFileid: BigInt(n.id),
    maxread: 1048576n, maxwrite: 1048576n, maxname: 255,
  };
}

const CINFO = { atomic: true, before: 1n, after: 1n };
const STATEID = { seqid: 1, other: Buffer.alloc(12, 7) };

export const toyDispatcher: Nfs4Dispatcher = {
  compound: (args) => {
    let cur: Node | undefined;
    let saved: Node | undefined;
    const exec = (op: DecodedOp): OpResult => {
      const need = (): Node | number => cur ?? NFS4ERR.NOFILEHANDLE;
      switch (op.op) {
        case OP.SETCLIENTID:
          return { op: op.op, status: 0, res: { clientid: 1n, confirm: Buffer.alloc(8, 1) } };
        case OP.SETCLIENTID_CONFIRM:
        case OP.RENEW:
          return { op: op.op, status: 0 };
        case OP.PUTROOTFH:
        case OP.PUTPUBFH:
          cur = byId.get(1);
          return { op: op.op, status: 0 };
        case OP.PUTFH: {
          const id = op.args.fh.length === 8 ? Number(op.args.fh.readBigUInt64BE(0)) : 0;
          cur = byId.get(id);
          return { op: op.op, status: cur ? 0 : NFS4ERR.BADHANDLE };
        }
        case OP.SAVEFH:
          saved = cur;
          return { op: op.op, status: cur ? 0 : NFS4ERR.NOFILEHANDLE };
        case OP.RESTOREFH:
          cur = saved;
          return { op: op.op, status: cur ? 0 : NFS4ERR.RESTOREFH };
        case OP.GETFH: {
          const n = need();
          return typeof n === 'number' ? { op: op.op, status: n } : { op: op.op, status: 0, res: { fh: fhOf(n.id) } };
        }
        case OP.LOOKUP: {
          const n = need();
          if (typeof n === 'number') return { op: op.op, status: n };
          if (!n.dir) return { op: op.op, status: NFS4ERR.NOTDIR };
          cur = NODES.find((c) => c.parent === n.id && c.id !== n.id && c.name === op.args.name);
          return { op: op.op, status: cur ? 0 : NFS4ERR.NOENT };
        }
        case OP.LOOKUPP: {
          const n = need();
          if (typeof n === 'number') return { op: op.op, status: n };
          cur = byId.get(n.parent);
          return { op: op.op, status: 0 };
        }
        case OP.GETATTR: {
          const n = need();
          if (typeof n === 'number') return { op: op.op, status: n };
          const req = op.args.request;
          return { op: op.op, status: 0, res: { writeAttrs: (w: XdrWriter) => void encodeFattr(w, req, attrs(n)) } };
        }
        case OP.ACCESS:
          return { op: op.op, status: 0, res: { supported: op.args.access, access: op.args.access } };
        case OP.READDIR: {
          const n = need();
          if (typeof n === 'number') return { op: op.op, status: n };
          const kids = NODES.filter((c) => c.parent === n.id && c.id !== n.id && BigInt(c.id) + 10n > op.args.cookie);
          const req = op.args.request;
          const entries = kids.map((c) => ({ cookie: BigInt(c.id) + 10n, name: c.name, attrs: fattrToBuffer(req, attrs(c)) }));
          return { op: op.op, status: 0, res: { cookieverf: Buffer.alloc(8), entries, eof: true } };
        }
        case OP.OPEN: {
          const n = need();
          if (typeof n === 'number') return { op: op.op, status: n };
          if (op.args.create) return { op: op.op, status: NFS4ERR.ROFS };
          if (op.args.claim.type === 0) {
            const name = op.args.claim.name;
            cur = NODES.find((c) => c.parent === n.id && c.id !== n.id && c.name === name);
            if (!cur) return { op: op.op, status: NFS4ERR.NOENT };
          }
          return { op: op.op, status: 0, res: { stateid: STATEID, cinfo: CINFO, rflags: 0, attrSet: [], delegation: { type: OPEN_DELEGATE.NONE } } };
        }
        case OP.OPEN_CONFIRM:
        case OP.CLOSE:
        case OP.OPEN_DOWNGRADE:
          return { op: op.op, status: 0, res: { stateid: STATEID } };
        case OP.READ: {
          const n = need();
          if (typeof n === 'number') return { op: op.op, status: n };
          const start = Number(op.args.offset);
          const data = n.data.subarray(Math.min(start, n.data.length), Math.min(start + op.args.count, n.data.length));
          return { op: op.op, status: 0, res: { eof: start + data.length >= n.data.length, data } };
        }
        default:
          return { op: op.op, status: NFS4ERR.NOTSUPP };
      }
    };
    return runCompound(args, exec);
  },
};
