/**
 * Admission: per-client and per-user caps on open connections and on requests in flight, one set
 * of counters per gateway shared by every protocol (security issue 15: 500 slow connections from
 * one address held ~700 descriptors; four heavy requests from one client delayed everyone).
 *
 * Decisions (and why):
 * - Protocol-neutral. A protocol reports "a connection from this address opened/closed" and "a
 *   request from this address (and, once authenticated, this user) starts/ends"; what a refusal
 *   looks like on the wire is the protocol's business (WebDAV: the connection is closed at once, a
 *   request gets 503 + Retry-After; NFS will answer NFS4ERR_DELAY, SMB STATUS_INSUFFICIENT_RESOURCES
 *   or credit starvation). One instance per gateway (`admissionFor`), so a client's WebDAV, SMB and
 *   NFS connections count against one cap.
 * - A connection over the cap is refused at accept: the caller closes the socket at once, so a
 *   flood holds no descriptor longer than an accept and a close.
 * - A request over its cap waits, first come first served, for at most `inFlightWaitMs` (a burst of
 *   a sync client's parallel requests is smoothed instead of failed), then is refused. A freed slot
 *   goes to the oldest waiter directly, so a newcomer never overtakes a waiting request.
 * - Clients are keyed by address; IPv4-mapped IPv6 (`::ffff:192.0.2.1`) counts as the IPv4
 *   address (dual-stack listeners), and an IPv6 address by its /64 prefix: one host normally owns
 *   a whole /64 (privacy addresses rotate inside it), so per-address counting would let one host
 *   open a connection from each of 2^64 addresses.
 * - No per-user connection count: an HTTP connection belongs to no user (each request authenticates,
 *   and one connection may carry several users' requests), so for WebDAV the per-user bound is on
 *   requests in flight, which is what holds the server's work. SMB and NFS sessions are bound to a
 *   user; they can add a per-user connection count here when they land.
 * - Users are keyed by their canonical name. The guest principal is never capped per user: it is
 *   every anonymous client at once, and one of them must not be able to starve the others; anonymous
 *   traffic is bounded per client address instead.
 * - A cap of 0 means "no cap" (an operator can turn one off; behind a NAT every user shares one
 *   address and the per-client caps may need raising).
 * - The per-request pass is a small object released exactly once (a second release is ignored), so
 *   an error path that releases twice can never drive a counter negative and admit more than the cap.
 */

export interface AdmissionLimits {
  /** Open connections per client address (0 = no cap). */
  maxConnectionsPerClient: number;
  /** Requests in progress per client address (0 = no cap). */
  maxInFlightPerClient: number;
  /** Requests in progress per authenticated user, from any address (0 = no cap). */
  maxInFlightPerUser: number;
  /** How long a request over an in-flight cap waits for a slot before it is refused, ms. */
  inFlightWaitMs: number;
}

/**
 * Defaults (config `limits.*`; the schema takes them from here):
 * - 256 connections per address: browsers open 6 per host, rclone ~12 with its defaults, a small
 *   office behind one NAT address a few dozen; 256 leaves room for that and still keeps one address
 *   to a small share of the process's descriptors (ulimit -n is often 1024-65536).
 * - 64 requests in flight per address and per user: enough to keep the disk and both cores busy for
 *   one client (more in flight only queues inside the gateway), few enough that a second client's
 *   requests are not stuck behind hundreds of one client's.
 * - 1 s wait: longer than a burst of small requests takes, shorter than a client's request timeout.
 */
export const ADMISSION_DEFAULTS: AdmissionLimits = {
  maxConnectionsPerClient: 256,
  maxInFlightPerClient: 64,
  maxInFlightPerUser: 64,
  inFlightWaitMs: 1000,
};

export type AdmissionLimitName = 'maxInFlightPerClient' | 'maxInFlightPerUser';

/** A request refused because a cap stayed full for `inFlightWaitMs`. */
export class AdmissionRefused extends Error {
  readonly limit: AdmissionLimitName;
  readonly max: number;
  constructor(limit: AdmissionLimitName, max: number) {
    super(
      limit === 'maxInFlightPerClient'
        ? `too many requests in progress from this client address (limits.maxInFlightPerClient: ${max})`
        : `too many requests in progress for this user (limits.maxInFlightPerUser: ${max})`,
    );
    this.name = 'AdmissionRefused';
    this.limit = limit;
    this.max = max;
  }
}

interface Waiter {
  grant(): void;
  timer: NodeJS.Timeout;
}

/** Counts per key, capped, with a FIFO of waiters per key. Keys at zero are forgotten (bounded memory). */
class CappedCounter {
  private readonly counts = new Map<string, number>();
  private readonly waiters = new Map<string, Waiter[]>();

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  tryTake(key: string, max: number): boolean {
    const n = this.counts.get(key) ?? 0;
    if (max > 0 && (n >= max || this.waiters.has(key))) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  /** Takes a slot, waiting up to waitMs; false when none freed up in time. */
  take(key: string, max: number, waitMs: number): boolean | Promise<boolean> {
    if (this.tryTake(key, max)) return true;
    if (waitMs <= 0) return false;
    return new Promise<boolean>((resolve) => {
      const w: Waiter = {
        // The releasing side already counted this slot for us (handed over, never freed).
        grant: () => {
          clearTimeout(w.timer);
          resolve(true);
        },
        timer: setTimeout(() => {
          const q = this.waiters.get(key);
          const i = q ? q.indexOf(w) : -1;
          if (q && i >= 0) q.splice(i, 1);
          if (q && q.length === 0) this.waiters.delete(key);
          resolve(false);
        }, waitMs),
      };
      // A waiting request must not keep a stopping process alive.
      w.timer.unref();
      const q = this.waiters.get(key);
      if (q) q.push(w);
      else this.waiters.set(key, [w]);
    });
  }

  give(key: string): void {
    const q = this.waiters.get(key);
    if (q) {
      // Hand the slot to the oldest waiter: the count stays as it is.
      const w = q.shift()!;
      if (q.length === 0) this.waiters.delete(key);
      w.grant();
      return;
    }
    const n = (this.counts.get(key) ?? 0) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }
}

/** A request's admission: release it once when the request is over. */
export interface AdmissionPass {
  /** Takes the per-user slot once the user is known; rejects with AdmissionRefused. */
  enterUser(user: string, guest: boolean): Promise<void> | void;
  release(): void;
}

export class Admission {
  readonly limits: AdmissionLimits;
  private readonly connections = new CappedCounter();
  private readonly clientRequests = new CappedCounter();
  private readonly userRequests = new CappedCounter();

  constructor(limits: AdmissionLimits) {
    this.limits = { ...limits };
  }

  /**
   * A connection from `address` was accepted. Returns its release function (call once, when it
   * closes), or undefined when the client is over its cap: close the connection at once.
   */
  openConnection(address: string): (() => void) | undefined {
    const key = clientKey(address);
    if (!this.connections.tryTake(key, this.limits.maxConnectionsPerClient)) return undefined;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.connections.give(key);
    };
  }

  /** Open connections of a client (tests, metrics). */
  connectionsOf(address: string): number {
    return this.connections.count(clientKey(address));
  }

  /** Requests in progress of a client (tests, metrics). */
  inFlightOf(address: string): number {
    return this.clientRequests.count(clientKey(address));
  }

  /**
   * A request from `address` starts: resolves to its pass once under the per-client cap (at once in
   * the common case), or rejects with AdmissionRefused after `inFlightWaitMs`.
   */
  enter(address: string): AdmissionPass | Promise<AdmissionPass> {
    const key = clientKey(address);
    const got = this.clientRequests.take(key, this.limits.maxInFlightPerClient, this.limits.inFlightWaitMs);
    if (got === true) return new Pass(this, key);
    if (got === false) throw new AdmissionRefused('maxInFlightPerClient', this.limits.maxInFlightPerClient);
    return got.then((ok) => {
      if (!ok) throw new AdmissionRefused('maxInFlightPerClient', this.limits.maxInFlightPerClient);
      return new Pass(this, key);
    });
  }

  /** @internal */
  takeUser(user: string): boolean | Promise<boolean> {
    return this.userRequests.take(user, this.limits.maxInFlightPerUser, this.limits.inFlightWaitMs);
  }

  /** @internal */
  giveUser(user: string): void {
    this.userRequests.give(user);
  }

  /** @internal */
  giveClient(key: string): void {
    this.clientRequests.give(key);
  }
}

class Pass implements AdmissionPass {
  private readonly admission: Admission;
  private client: string | undefined;
  private user: string | undefined;

  constructor(admission: Admission, client: string) {
    this.admission = admission;
    this.client = client;
  }

  enterUser(user: string, guest: boolean): Promise<void> | void {
    if (guest || this.user !== undefined || this.client === undefined) return;
    const max = this.admission.limits.maxInFlightPerUser;
    const got = this.admission.takeUser(user);
    if (got === true) {
      this.user = user;
      return;
    }
    if (got === false) throw new AdmissionRefused('maxInFlightPerUser', max);
    return got.then((ok) => {
      if (!ok) throw new AdmissionRefused('maxInFlightPerUser', max);
      // Released while waiting (the request ended): hand the slot straight back.
      if (this.client === undefined) this.admission.giveUser(user);
      else this.user = user;
    });
  }

  release(): void {
    if (this.user !== undefined) this.admission.giveUser(this.user);
    if (this.client !== undefined) this.admission.giveClient(this.client);
    this.user = undefined;
    this.client = undefined;
  }
}

/**
 * The key a client address is counted under: IPv4 as is, IPv4-mapped IPv6 as its IPv4 address,
 * other IPv6 by its /64 prefix (see the decisions above). Anything unparsable counts as itself.
 */
export function clientKey(address: string): string {
  if (!address.includes(':')) return address;
  const lower = address.toLowerCase();
  const zone = lower.indexOf('%');
  const a = zone >= 0 ? lower.slice(0, zone) : lower;
  const mapped = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1]!;
  const halves = a.split('::');
  if (halves.length > 2) return address;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : [];
  // An embedded IPv4 tail (::1.2.3.4) takes two groups; only the first four groups matter here.
  const groups = halves.length === 2 ? [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail] : head;
  if (groups.length < 4) return address;
  const prefix = groups.slice(0, 4).map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? g.replace(/^0+(?=.)/, '') : g));
  return `${prefix.join(':')}::/64`;
}

const perGateway = new WeakMap<object, Admission>();

/**
 * The one Admission of a gateway: keyed by an object every protocol plugin of that gateway is
 * handed (its SessionManager), created by the first plugin that asks, with the config's
 * `limits`. A second gateway in the same process (tests) gets its own counters.
 */
export function admissionFor(owner: object, limits: AdmissionLimits): Admission {
  let a = perGateway.get(owner);
  if (!a) perGateway.set(owner, (a = new Admission(limits)));
  return a;
}
