/**
 * Progress of a long shard command (pack, verify, repack): on a terminal a bar redrawn in place at
 * most 5 times a second (files, bytes, rate, ETA); otherwise a plain line every `intervalMs`, so
 * logs of a batch job show steady progress without control characters.
 */
export type ProgressMode = 'tty' | 'plain' | 'none';

export interface ProgressOptions {
  label: string;
  totalFiles: number;
  totalBytes: number;
  mode: ProgressMode;
  out: NodeJS.WritableStream;
  intervalMs?: number;
}

const MiB = 1024 * 1024;

function fmtBytes(n: number): string {
  if (n >= 1024 * MiB) return `${(n / 1024 / MiB).toFixed(2)} GiB`;
  return `${(n / MiB).toFixed(1)} MiB`;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : String(m)}:${String(sec).padStart(2, '0')}`;
}

export class Progress {
  files = 0;
  bytes = 0;
  private readonly o: ProgressOptions;
  private readonly t0 = performance.now();
  private last = 0;
  private readonly interval: number;

  constructor(o: ProgressOptions) {
    this.o = o;
    this.interval = o.mode === 'tty' ? 200 : (o.intervalMs ?? 10_000);
    this.last = performance.now();
  }

  add(files: number, bytes: number): void {
    this.files += files;
    this.bytes += bytes;
    const now = performance.now();
    if (this.o.mode !== 'none' && now - this.last >= this.interval) {
      this.last = now;
      this.render(false);
    }
  }

  line(): string {
    const secs = (performance.now() - this.t0) / 1000;
    const rate = secs > 0 ? this.bytes / secs : 0;
    const frate = secs > 0 ? this.files / secs : 0;
    const frac = this.o.totalBytes > 0 ? this.bytes / this.o.totalBytes : this.o.totalFiles > 0 ? this.files / this.o.totalFiles : 1;
    const eta = rate > 0 ? (this.o.totalBytes - this.bytes) / rate : frate > 0 ? (this.o.totalFiles - this.files) / frate : NaN;
    return `${this.o.label}: ${this.files}/${this.o.totalFiles} files, ${fmtBytes(this.bytes)}/${fmtBytes(this.o.totalBytes)}, ` +
      `${(rate / MiB).toFixed(1)} MiB/s, ${frate.toFixed(0)} files/s, ${(Math.min(1, frac) * 100).toFixed(0)}%, ETA ${fmtTime(eta)}`;
  }

  private render(final: boolean): void {
    if (this.o.mode === 'tty') {
      const frac = this.o.totalBytes > 0 ? Math.min(1, this.bytes / this.o.totalBytes) : 1;
      const w = 24;
      const full = Math.round(frac * w);
      this.o.out.write(`\r\u001b[2K[${'#'.repeat(full)}${'.'.repeat(w - full)}] ${this.line()}${final ? '\n' : ''}`);
    } else if (this.o.mode === 'plain') this.o.out.write(`${this.line()}\n`);
  }

  done(): void {
    if (this.o.mode !== 'none') this.render(true);
  }
}
