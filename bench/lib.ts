/**
 * Shared pieces of the benchmarks: the real Portico stack (session -> VFS -> instrumented
 * LocalBackend, with Prometheus metrics and a file audit log switched on, wired as
 * src/server/gateway.ts wires a share), timing,
 * memory sampling and the report table.
 *
 * The stack is built here from src/ rather than taken from test/helpers, so the benchmark does not
 * depend on test code.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MetadataStore } from '../src/store/metadata-store.ts';
import { Vfs } from '../src/vfs/vfs.ts';
import { buildVolumeStack } from '../src/vfs/volume-stack.ts';
import { SessionManager } from '../src/session/session-manager.ts';
import type { Session } from '../src/session/session.ts';
import { refuseAllLogins, type Principal } from '../src/auth/authenticator.ts';
import { Metrics } from '../src/metrics/metrics.ts';
import { createAuditLogger, createLogger } from '../src/log/logger.ts';
import { LocalBackend } from '../backends/local/local-backend.ts';

export const benchUser: Principal = { user: 'bench', uid: 1001, gid: 1001, groups: ['staff'], guest: false };

export interface PorticoStack {
  session: Session;
  vfs: Vfs;
  metrics: Metrics;
  /** Directory the LocalBackend serves (share "s"). */
  root: string;
  auditFile: string;
  close(): Promise<void>;
}

/** One share "s" over a LocalBackend at `<base>/portico`, state in `<base>/state`, audit in `<base>/audit.log`. */
export function makePorticoStack(base: string): PorticoStack {
  const root = join(base, 'portico');
  const stateDir = join(base, 'state');
  const auditFile = join(base, 'audit.log');
  mkdirSync(root, { recursive: true });
  const store = MetadataStore.open(stateDir);
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage') });
  const metrics = new Metrics();
  // As src/server/gateway.ts wires a share: the backend is wrapped by the metrics layer.
  vfs.addVolume('s', buildVolumeStack(new LocalBackend(root, process.env.BENCH_INLINE_IO === '0' ? { inlineIo: false } : {}), { metrics, metricsLabel: 's' }), { caseSensitive: true });
  const audit: Logger = createAuditLogger({ level: 'info', format: 'json', audit: { enabled: true, file: auditFile } });
  const logger: Logger = createLogger({ level: 'info', format: 'json', audit: { enabled: false, file: '-' } }, {
    destination: process.stderr,
  });
  const sessions = new SessionManager({ vfs, shares: [{ name: 's', caseSensitive: true }], authenticator: refuseAllLogins, metrics, audit, logger });
  const session = sessions.openSession({ principal: benchUser, protocol: 'bench', clientAddress: '127.0.0.1' });
  return {
    session,
    vfs,
    metrics,
    root,
    auditFile,
    close: async () => {
      await sessions.closeAll();
      await vfs.shutdown();
      store.close();
    },
  };
}

/** Sum of every sample of a counter in the Prometheus exposition (robust to how Metrics stores it). */
export async function counterTotal(metrics: Metrics, name: string): Promise<number> {
  let total = 0;
  for (const line of (await metrics.metricsText()).split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

export async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** The same bounded fan-out LocalBackend.list uses. */
export { mapLimit } from '../src/util/map-limit.ts';

/**
 * Writes back dirty pages before a timed streaming run, so one side's writeback never lands in the
 * other side's measurement.
 */
export function flushDirtyPages(): void {
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // No sync(1): the alternating order still spreads writeback over both sides.
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Peak resident set size in bytes: the kernel's high-water mark (getrusage ru_maxrss). Not sampled:
 * reading /proc for RSS costs ~150 µs a call here and would run inside the timed sections.
 */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export interface Row {
  workload: string;
  unit: string;
  raw: number;
  portico: number | undefined;
  /** Portico speed / raw speed (>1: Portico faster). */
  ratio: number | undefined;
  aim: number | undefined;
  note?: string;
  /** Every round's time in ms, for the JSON (noise on a shared machine shows here). */
  samplesMs?: { raw: number[]; portico: number[] };
}

function fmt(n: number | undefined): string {
  if (n === undefined) return '-';
  if (n >= 1000) return Math.round(n).toLocaleString('en-US');
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function verdict(r: Row): string {
  if (r.aim === undefined || r.ratio === undefined) return 'info';
  return r.ratio >= r.aim ? 'PASS' : 'BELOW';
}

export function renderTable(rows: Row[]): string {
  const head = ['workload', 'unit', 'raw', 'portico', 'portico/raw', 'aim', 'verdict'];
  const body = rows.map((r) => [
    r.workload + (r.note ? ` (${r.note})` : ''),
    r.unit,
    fmt(r.raw),
    fmt(r.portico),
    r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
    r.aim === undefined ? '-' : `>= ${r.aim}x`,
    verdict(r),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 || i === 1 || i === 6 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
