/**
 * Test helpers for the NFS wire layer: a stub NFSv4 server on 127.0.0.1 and a small RPC client
 * over TCP that frames calls, reassembles replies and matches them by xid.
 */
import { connect, type Socket } from 'node:net';
import { RpcServer, type RpcProgram, type RpcServerOptions } from '../../protocols/nfs/rpc-server.ts';
import { nfs4Program, notSupportedDispatcher, type Nfs4Dispatcher } from '../../protocols/nfs/nfs4-program.ts';
import { RecordParser, frameRecord } from '../../protocols/nfs/record-marking.ts';
import { AUTH_FLAVOR, decodeReply, encodeAuthSys, encodeCall, type DecodedReply, type OpaqueAuth } from '../../protocols/nfs/rpc.ts';
import { XdrWriter } from '../../protocols/nfs/xdr.ts';

export async function startServer(
  opts: RpcServerOptions & { dispatcher?: Nfs4Dispatcher; programs?: RpcProgram[] } = {},
): Promise<{ server: RpcServer; port: number }> {
  const programs = opts.programs ?? [nfs4Program(opts.dispatcher ?? notSupportedDispatcher)];
  const server = new RpcServer(programs, opts);
  const addr = await server.listen(0, '127.0.0.1');
  return { server, port: addr.port };
}

export const AUTH_SYS_ROOT: OpaqueAuth = {
  flavor: AUTH_FLAVOR.SYS,
  body: encodeAuthSys({ stamp: 1, machineName: 'test', uid: 0, gid: 0, gids: [] }),
};

/** A call record (unframed): header, credential, then `args`. */
export function callRecord(c: {
  xid: number;
  prog?: number;
  vers?: number;
  proc: number;
  cred?: OpaqueAuth;
  rpcvers?: number;
  args?: Buffer;
}): Buffer {
  const w = new XdrWriter();
  encodeCall(w, { xid: c.xid, prog: c.prog ?? 100003, vers: c.vers ?? 4, proc: c.proc, cred: c.cred ?? AUTH_SYS_ROOT, ...(c.rpcvers !== undefined ? { rpcvers: c.rpcvers } : {}) });
  const head = w.toBuffer();
  return c.args ? Buffer.concat([head, c.args]) : head;
}

export class RpcClient {
  readonly socket: Socket;
  private readonly parser = new RecordParser(64 * 1024 * 1024);
  private readonly waiting = new Map<number, (r: DecodedReply) => void>();
  readonly order: number[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const rec of this.parser.push(chunk)) {
        const reply = decodeReply(rec);
        this.order.push(reply.xid);
        const w = this.waiting.get(reply.xid);
        this.waiting.delete(reply.xid);
        w?.(reply);
      }
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RpcClient(s)));
      s.once('error', reject);
    });
  }

  /** Sends a framed record (or raw bytes) and waits for the reply to `xid`. */
  call(xid: number, record: Buffer, opts: { fragment?: number; timeoutMs?: number } = {}): Promise<DecodedReply> {
    const p = this.reply(xid, opts.timeoutMs);
    this.socket.write(frameRecord(record, opts.fragment));
    return p;
  }

  reply(xid: number, timeoutMs = 5000): Promise<DecodedReply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(xid);
        reject(new Error(`no reply to xid ${xid} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(xid, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
