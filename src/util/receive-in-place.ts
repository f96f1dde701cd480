/**
 * An accepted TCP socket re-made as a socket that reads into buffers of the caller's (the NFS RPC
 * server and the SMB server use it for their connections).
 *
 * net.Socket's documented `onread` option (the buffer may be a function called before each read)
 * is not offered by net.Server for the sockets it accepts, so the accepted socket (paused:
 * pauseOnConnect) hands its handle over — the private `_handle`, the one undocumented piece. When
 * it is missing or the new socket cannot be made, the answer is undefined and the caller reads the
 * accepted socket as usual ('data' events), so a Node that changes the internal loses speed, not
 * function.
 *
 * Why: a socket reads each chunk (up to 64 KiB) into a new ArrayBuffer outside the JS heap. A
 * 1 MiB NFS WRITE was 16 of them and an 8 MiB SMB WRITE 128, each copied into the message buffer
 * and left to the collector, whose external-memory pressure made V8 run mark-compacts every few
 * MiB written (most of a put's CPU). With this, a read lands in one 64 KiB buffer per connection
 * (small messages are copied out of it) or straight in the large message being received.
 *
 * The adopted socket is not in net.Server's connection count: servers that use it keep their own
 * bound on connections and end the connections they adopted themselves on close.
 */
import { Socket, type OnReadOpts } from 'node:net';

export function receiveInPlace(accepted: Socket, onread: OnReadOpts): Socket | undefined {
  const raw = accepted as unknown as { _handle?: unknown };
  const handle = raw._handle;
  if (handle === null || typeof handle !== 'object') return undefined;
  let sock: Socket;
  try {
    sock = new Socket({ handle, onread } as ConstructorParameters<typeof Socket>[0]);
  } catch {
    return undefined;
  }
  // The accepted socket lets go of the handle: destroying it closes nothing now.
  raw._handle = null;
  accepted.destroy();
  return sock;
}
