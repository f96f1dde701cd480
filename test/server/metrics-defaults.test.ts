/**
 * The default process metrics (prom-client's collectDefaultMetrics) as src/metrics/metrics.ts sets
 * them up: the event-loop delay monitor runs at EVENT_LOOP_MONITOR_MS (100 ms), not prom-client's
 * 10 ms, which woke an idle gateway 100 times a second; and the lag gauges still show a stall of
 * the event loop.
 */
import perfHooks from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EVENT_LOOP_MONITOR_MS, Metrics } from '../../src/metrics/metrics.ts';

const gauge = (text: string, name: string): number => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} not in the exposition`);
  return Number(m[1]);
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('default process metrics', () => {
  it('monitor the event loop at 100 ms', () => {
    const spy = vi.spyOn(perfHooks, 'monitorEventLoopDelay');
    new Metrics();
    expect(EVENT_LOOP_MONITOR_MS).toBe(100);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0]![0]).toEqual({ resolution: EVENT_LOOP_MONITOR_MS });
  });

  it('still show a stall of the event loop in the lag gauges', async () => {
    const metrics = new Metrics();
    // Two ticks of the monitor, then a 300 ms block: the tick due inside it fires at its end, at
    // least 200 ms late (a loaded machine only makes it later).
    await new Promise((r) => setTimeout(r, 2.5 * EVENT_LOOP_MONITOR_MS));
    const end = performance.now() + 300;
    while (performance.now() < end) {
      // busy: the event loop is blocked
    }
    await new Promise((r) => setTimeout(r, 2.5 * EVENT_LOOP_MONITOR_MS));
    const text = await metrics.metricsText();
    expect(gauge(text, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.15);
  });
});
