/**
 * NFSv4 client state (RFC 8881 §2.4, §2.10, §8, §9; RFC 7530 §9): client records, 4.1 sessions
 * with their slot tables and replay caches, open and lock states with their stateids.
 *
 * Each NFSv4 client owns one core `ClientState` (a Session opened for it; calls go through
 * `Session.as(principal)` with each COMPOUND's credential), so its opens and locks belong to the
 * client across connections and are released when it goes (DESTROY_CLIENTID, a reboot with a new
 * verifier, or lease expiry).
 *
 * Ids carry the server's boot tag: a clientid, session id or stateid from before a restart is
 * recognised as stale (STALE_CLIENTID / BADSESSION / STALE_STATEID) rather than unknown, which is
 * what makes clients run their reboot recovery.
 */
import { randomBytes } from 'node:crypto';
import type { Handle } from '../../../src/vfs/vfs.ts';
import type { Session } from '../../../src/session/session.ts';
import type { Principal } from '../../../src/auth/authenticator.ts';
import type { CompoundRes } from '../compound.ts';
import type { ChannelAttrs4 } from '../xdr4/common.ts';

export const BOOT_TAG = randomBytes(4).readUInt32BE(0);

export interface Slot {
  seqid: number;
  busy: boolean;
  /** The reply of the last request on the slot (cached when the client asked, RFC 8881 §2.10.6.1.3). */
  reply?: CompoundRes;
}

export interface NfsSession {
  id: Buffer;
  idHex: string;
  client: NfsClient;
  slots: Slot[];
  fore: ChannelAttrs4;
  back: ChannelAttrs4;
}

export interface OpenState {
  kind: 'open';
  other: Buffer;
  key: string;
  seqid: number;
  client: NfsClient;
  share: string;
  fileId: bigint;
  ownerKey: string;
  /** Core handles of this open-owner on the file (one per OPEN that widened access). */
  handles: Handle[];
  access: number;
  deny: number;
  locks: Set<LockState>;
}

export interface LockState {
  kind: 'lock';
  other: Buffer;
  key: string;
  seqid: number;
  client: NfsClient;
  open: OpenState;
  lockOwnerKey: string;
  /** The owner id passed to Session.lockHandle (posix locks of one NFS lock-owner). */
  ownerId: string;
  /** The lock-owner as the client sent it, kept on its core locks (LockInfo.info) for LOCK4denied. */
  info?: unknown;
}

export type StateidState = OpenState | LockState;

export class NfsClient {
  readonly clientid: bigint;
  readonly ownerId: Buffer;
  readonly ownerHex: string;
  verifier: Buffer;
  confirmed = false;
  /** 4.0 SETCLIENTID confirm verifier. */
  confirm: Buffer = randomBytes(8);
  /** CREATE_SESSION sequence (RFC 8881 §18.36.4) and its cached reply. */
  csSeq = 0;
  csReply: unknown;
  lastRenew = Date.now();
  readonly session: Session;
  readonly sessions = new Map<string, NfsSession>();
  /** Open states by `<open-owner>/<file id>` (OPEN upgrades the owner's state on the file). */
  readonly opens = new Map<string, OpenState>();
  reclaimDone = false;
  ended = false;

  constructor(clientid: bigint, ownerId: Buffer, verifier: Buffer, session: Session) {
    this.clientid = clientid;
    this.ownerId = Buffer.from(ownerId);
    this.ownerHex = this.ownerId.toString('hex');
    this.verifier = Buffer.from(verifier);
    this.session = session;
  }

  get key(): string {
    return `nfs4:${this.ownerHex}`;
  }

  private readonly views = new WeakMap<Principal, Session>();

  /** This client's state as a call's principal (Session.as), one view per principal object. */
  viewAs(p: Principal): Session {
    let v = this.views.get(p);
    if (!v) {
      v = this.session.as(p);
      this.views.set(p, v);
    }
    return v;
  }
}

export class StateTable {
  private nextClient = 1;
  private nextState = 1n;
  private nextSession = 1;
  readonly clients = new Map<bigint, NfsClient>();
  readonly sessions = new Map<string, NfsSession>();
  readonly states = new Map<string, StateidState>();

  newClientid(): bigint {
    return (BigInt(BOOT_TAG) << 32n) | BigInt(this.nextClient++);
  }

  isCurrentBoot(clientid: bigint): boolean {
    return Number(clientid >> 32n) === BOOT_TAG;
  }

  newSessionId(): Buffer {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(BOOT_TAG, 0);
    b.writeUInt32BE(this.nextSession++, 4);
    randomBytes(8).copy(b, 8);
    return b;
  }

  newOther(): Buffer {
    const b = Buffer.alloc(12);
    b.writeUInt32BE(BOOT_TAG, 0);
    b.writeBigUInt64BE(this.nextState++, 4);
    return b;
  }

  static otherIsCurrentBoot(other: Buffer): boolean {
    return other.length === 12 && other.readUInt32BE(0) === BOOT_TAG;
  }

  sessionIsCurrentBoot(id: Buffer): boolean {
    return id.length === 16 && id.readUInt32BE(0) === BOOT_TAG;
  }

  clientByOwner(ownerHex: string): NfsClient[] {
    return [...this.clients.values()].filter((c) => c.ownerHex === ownerHex);
  }
}
