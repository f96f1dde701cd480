/**
 * The FUSE front-end as a protocol plugin: `portico serve … --fuse-mount DIR` (and `portico mount
 * SOURCE DIR`) mounts the shares under DIR through the gateway's SessionManager — the same VFS,
 * lock manager, caches and metrics as the network protocols.
 *
 * Config (protocols.fuse): `mountpoint` (null: not mounted), `user` (the Portico principal the
 * mount acts as; default the first-run `admin`), `share` (mount that one share as the root instead
 * of one subdirectory per share), `attrTimeout`/`entryTimeout` seconds (default 1, as nfs-ganesha's
 * and the VFS's attribute cache), `allowOther`, `writeback` (the kernel's writeback cache),
 * `invalidate` (kernel cache invalidation on other protocols' changes; default true).
 */
import type { ProtocolContext, ProtocolDescriptor, ProtocolPlugin } from '../../src/server/plugin.ts';
import { FuseMount } from './mount.ts';
import { fuseAvailability } from './native.ts';

export interface FuseConfig {
  mountpoint: string | null;
  user?: string;
  share?: string;
  attrTimeout?: number;
  entryTimeout?: number;
  allowOther?: boolean;
  writeback?: boolean;
  invalidate?: boolean;
}

export const FUSE_DEFAULT_USER = 'admin';

export class FusePlugin implements ProtocolPlugin {
  readonly name = 'fuse';
  private m: FuseMount | undefined;
  private where = 'fuse (not mounted)';

  ready(): boolean {
    return this.m?.isMounted ?? false;
  }

  describe(): string {
    return this.where;
  }

  /** The mount (tests). */
  get mount(): FuseMount | undefined {
    return this.m;
  }

  async start(ctx: ProtocolContext): Promise<void> {
    const c = ctx.config.protocols.fuse as FuseConfig;
    if (!c.mountpoint) return;
    const a = fuseAvailability();
    if (!a.available) throw new Error(`FUSE unavailable: ${a.reason}; enable with: ${a.enable}`);
    const user = c.user ?? FUSE_DEFAULT_USER;
    const principal = await ctx.sessions.authenticator.principalFor(user);
    if (!principal) throw new Error(`fuse: no Portico user named ${user} (set protocols.fuse.user or --fuse-user)`);
    const shares = ctx.sessions.sharesFor(principal, 'fuse');
    if (c.share !== undefined && !shares.some((s) => s.toLowerCase() === c.share!.toLowerCase())) {
      throw new Error(`fuse: share ${c.share} does not exist or is not visible to ${user} through fuse`);
    }
    const m = new FuseMount({
      mountpoint: c.mountpoint,
      sessions: ctx.sessions,
      principal,
      shares,
      ...(c.share !== undefined ? { single: c.share } : {}),
      attrTimeout: c.attrTimeout ?? 1,
      entryTimeout: c.entryTimeout ?? 1,
      invalidate: c.invalidate ?? true,
      allowOther: c.allowOther ?? false,
      writeback: c.writeback ?? false,
      logger: ctx.logger,
    });
    await m.mount();
    this.m = m;
    this.where = `fuse at ${m.mountpoint} as ${user} (libfuse ${a.libfuse})`;
    void m.ended.then(() => {
      if (this.m === m) ctx.logger.warn({ mountpoint: m.mountpoint }, 'fuse: the mount went away');
    });
  }

  async stop(_graceMs: number): Promise<void> {
    const m = this.m;
    this.m = undefined;
    await m?.unmount();
  }
}

export const fuseProtocol: ProtocolDescriptor = {
  name: 'fuse',
  defaultPort: 0,
  create: () => new FusePlugin(),
  availability: () => {
    const a = fuseAvailability();
    return a.available ? { available: true, detail: `libfuse ${a.libfuse}` } : a;
  },
};
