/**
 * A full garbage collection when Bun's resident memory has grown past the
 * level after the last one by more than a slack.
 *
 * Why: JavaScriptCore starts a full collection when its own heap has grown
 * enough, and it cannot see the native memory that dead objects still pin
 * (a finished request's Request/Response/stream objects, strings and typed
 * arrays, all in mimalloc). Objects of a request that was in flight when an
 * eden collection ran are promoted and then wait for the next full one; under
 * a steady load that came every ~5,000 requests (bench/serve-load.ts, Bun
 * 1.4.5), while resident memory climbed from ~210 to ~370 MiB, most of it
 * garbage (after a forced full collection the JS heap is back at 48 MiB and
 * every Request, Response and ReadableStream of the run is gone). The
 * collector here bounds that climb: resident memory is read at most every
 * `intervalMs` as requests arrive, and past `floor + slack` one synchronous full
 * collection runs and the floor becomes what is resident after it, so a
 * working size that really grows costs one collection per `slack` of growth,
 * never a collection per request.
 */

export interface CollectorOptions {
  /** Bytes of resident growth over the level after the last full collection that trigger the next (default 16 MiB; 0: off). */
  slackBytes?: number;
  /** Least milliseconds between two readings of resident memory (default 250). */
  intervalMs?: number;
}

const DEFAULT_GC_SLACK_BYTES = 16 << 20;

export interface CollectorStats {
  /** Full collections run. */
  readonly collections: number;
  /** Milliseconds spent in them, in all. */
  readonly collectMs: number;
}

export class ResidentCollector implements CollectorStats {
  collections = 0;
  collectMs = 0;
  private floor: number;
  private lastReading = -Infinity;
  private readonly slack: number;
  private readonly interval: number;

  constructor(
    private readonly rss: () => number,
    private readonly fullCollection: () => void,
    opts: CollectorOptions = {},
  ) {
    this.slack = opts.slackBytes ?? DEFAULT_GC_SLACK_BYTES;
    this.interval = opts.intervalMs ?? 250;
    this.floor = rss();
  }

  /** Called as a request arrives: reads resident memory when due and collects when it is past the floor plus the slack. */
  check(now = performance.now()): void {
    if (this.slack <= 0 || now - this.lastReading < this.interval) return;
    this.lastReading = now;
    const resident = this.rss();
    if (resident <= this.floor + this.slack) return;
    const t0 = performance.now();
    this.fullCollection();
    const t1 = performance.now();
    this.collections++;
    this.collectMs += t1 - t0;
    this.floor = this.rss();
  }
}
