/**
 * The NFSv4 RPC program (100003, version 4): NULL and COMPOUND, wired from the RPC server to a
 * dispatcher that executes decoded operations. The dispatcher is where the semantics live (the
 * operations over the Session's by-id API, next); until then `notSupportedDispatcher` answers
 * every operation NFS4ERR_NOTSUPP so the wire can be driven end to end by real clients.
 *
 * Credentials: NULL is answered for any flavor (clients ping with AUTH_NONE); COMPOUND needs
 * AUTH_SYS unless `allowAuthNone` — AUTH_NONE is then refused with AUTH_TOOWEAK (RFC 5531 §9:
 * the flavor is understood but too weak for this procedure).
 */
import { AUTH_FLAVOR, AUTH_STAT, type RpcCall } from './rpc.ts';
import type { RpcConnectionInfo, RpcOutcome, RpcProcedure, RpcProgram } from './rpc-server.ts';
import {
  decodeCompound,
  encodeCompoundRes,
  runCompound,
  type CompoundArgs,
  type CompoundOptions,
  type CompoundRes,
} from './compound.ts';
import { NFS4ERR, NFS4_PROGRAM, NFS4_VERSION, NFSPROC4, OP } from './nfs4-types.ts';
import { giveBackRecord } from './record-buffers.ts';

/**
 * Operations that keep no view of their arguments once they are done (handles are copied or
 * looked up, stateids and session ids looked up, WRITE data written before the call returns).
 */
const KEEPS_NOTHING = new Set<number>([OP.SEQUENCE, OP.PUTFH, OP.PUTROOTFH, OP.GETFH, OP.SAVEFH, OP.RESTOREFH, OP.GETATTR, OP.WRITE, OP.COMMIT]);

/**
 * Whether a COMPOUND's record may be reused once its reply is written (record-buffers.ts): a 4.1+
 * COMPOUND of only such operations whose reply the slot does not keep (sa_cachethis: a replay
 * would resend the reply, whose tag is a view of the record).
 */
function recordFreeAfterReply(args: CompoundArgs): boolean {
  const first = args.ops[0];
  if (args.minorversion === 0 || first?.op !== OP.SEQUENCE || first.args.cacheThis) return false;
  for (const o of args.ops) if (!KEEPS_NOTHING.has(o.op)) return false;
  return true;
}

export interface Nfs4CallContext {
  call: RpcCall;
  conn: RpcConnectionInfo;
}

export interface Nfs4Dispatcher {
  compound(args: CompoundArgs, ctx: Nfs4CallContext): CompoundRes | Promise<CompoundRes>;
}

export interface Nfs4ProgramOptions extends CompoundOptions {
  allowAuthNone?: boolean;
}

/** Every operation NFS4ERR_NOTSUPP: the stand-in until the operations are built. */
export const notSupportedDispatcher: Nfs4Dispatcher = {
  compound: (args) => runCompound(args, (op) => ({ op: op.op, status: NFS4ERR.NOTSUPP })),
};

export function nfs4Program(dispatcher: Nfs4Dispatcher, opts: Nfs4ProgramOptions = {}): RpcProgram {
  const nullProc: RpcProcedure = () => ({ kind: 'success', encode: () => {} });
  const compound: RpcProcedure = async (call, conn): Promise<RpcOutcome> => {
    const d = decodeCompound(call.args, opts);
    if (d.kind === 'garbage') return { kind: 'garbage_args' };
    const res: CompoundRes =
      d.kind === 'refuse' ? { status: d.status, tag: d.tag, results: [] } : await dispatcher.compound(d.args, { call, conn });
    if (d.kind === 'ok' && recordFreeAfterReply(d.args)) return { kind: 'success', encode: (w) => encodeCompoundRes(w, res), sent: () => giveBackRecord(call.args) };
    return { kind: 'success', encode: (w) => encodeCompoundRes(w, res) };
  };
  return {
    prog: NFS4_PROGRAM,
    versions: new Map([
      [
        NFS4_VERSION,
        {
          procedures: new Map<number, RpcProcedure>([
            [NFSPROC4.NULL, nullProc],
            [NFSPROC4.COMPOUND, compound],
          ]),
          checkAuth: (call: RpcCall) =>
            call.proc === NFSPROC4.COMPOUND && call.cred.flavor === AUTH_FLAVOR.NONE && !opts.allowAuthNone ? AUTH_STAT.TOOWEAK : AUTH_STAT.OK,
        },
      ],
    ]),
  };
}
