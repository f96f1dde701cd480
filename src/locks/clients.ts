/**
 * Who a request comes from, for the state that belongs to clients rather than to calls: leases
 * (leases.ts), durable handles (durable-handles.ts) and client records with grace (client-records.ts).
 *
 * A protocol names its clients with its own stable key (SMB: the ClientGuid, NFSv4: the client's
 * co_ownerid / nfs_client_id4 id) and binds a ClientState to it (Session.bindClient). The VFS only
 * sees owner strings (`${clientState.id}:...`, Session.open) and handles, so the directory maps a
 * ClientState id back to its client key.
 *
 * The request context (AsyncLocalStorage) carries, through the Session's unchanged calls into the
 * VFS hooks, what a request says about itself beyond its owner: the lease key it acts under (an SMB
 * CREATE's lease context, a SET_INFO rename on a leased handle, every NFS call of a client holding
 * delegations) and whether it is a reclaim. Widening every VFS signature for that would touch every
 * operation; the context is read only where a lease or a grace period exists.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface Requester {
  /** The client key (bound) or `state:<ClientState id>` for an unbound client; undefined: unknown. */
  client?: string;
  /** The lease key the request acts under (SMB lease key; NFS: the client's delegation key). */
  key?: string;
  /** A reclaim after a restart (client-records.ts): passes the grace period's guard. */
  reclaim?: boolean;
}

const context = new AsyncLocalStorage<Requester>();

/** Runs `fn` (and everything it awaits) as `who`. */
export function actingAs<T>(who: Requester, fn: () => T): T {
  return context.run(who, fn);
}

/** The requester the current call runs as, when a protocol said so (actingAs). */
export function currentRequester(): Requester | undefined {
  return context.getStore();
}

/** ClientState id → the protocol's client key. */
export class ClientDirectory {
  readonly #byState = new Map<string, string>();

  bind(stateId: string, clientKey: string): void {
    this.#byState.set(stateId, clientKey);
  }

  unbind(stateId: string): void {
    this.#byState.delete(stateId);
  }

  /** The client key of a ClientState id; `state:<id>` when the protocol bound none. */
  clientOfState(stateId: string): string {
    return this.#byState.get(stateId) ?? `state:${stateId}`;
  }

  /** The bound client key of a ClientState id, or undefined. */
  bound(stateId: string): string | undefined {
    return this.#byState.get(stateId);
  }

  /** The client of an owner string `${clientState.id}:...` (Session.open, replaceContent). */
  clientOfOwner(owner: string): string | undefined {
    const i = owner.indexOf(':');
    return i <= 0 ? undefined : this.clientOfState(owner.slice(0, i));
  }
}
