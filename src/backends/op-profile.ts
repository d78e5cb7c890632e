/**
 * An opt-in time profile of a WASM backend's kernel calls, by op class: set
 * `backend.profile = new OpProfile()` and every op adds its wall time under a
 * key ("matmul Q4_0 768x2048", "attention", "quantize act", ...). When the
 * field is null (the default) each op pays one null check and nothing else.
 * What the ops do not account for, of a step's wall time, is the JS between
 * the calls (the forward pass, the step's bookkeeping, the timer itself).
 */
export class OpProfile {
  /** Milliseconds and calls per key, in the order keys first appeared. */
  readonly totals: Map<string, { ms: number; calls: number }> = new Map();
  readonly now: () => number = performance.now.bind(performance);

  private readonly keys = new WeakMap<object, string>();

  /** The key of an op on this object (a weight), made once: building strings per call would time the profiler. */
  keyOf(of: object, make: () => string): string {
    let k = this.keys.get(of);
    if (k === undefined) this.keys.set(of, k = make());
    return k;
  }

  /** Adds the time since t0 (a value of `now()`) under key. */
  add(key: string, t0: number): void {
    const ms = this.now() - t0;
    const e = this.totals.get(key);
    if (e) {
      e.ms += ms;
      e.calls++;
    } else this.totals.set(key, { ms, calls: 1 });
  }

  reset(): void {
    this.totals.clear();
  }

  /** Milliseconds in all ops, and the number of timed calls. */
  sum(): { ms: number; calls: number } {
    let ms = 0, calls = 0;
    for (const e of this.totals.values()) {
      ms += e.ms;
      calls += e.calls;
    }
    return { ms, calls };
  }

  /**
   * The cost of one now() pair, in ms (the median of a few runs of 10k), to take out of the overhead. The readings are
   * summed and kept: JavaScriptCore drops a now() whose value is unused (0.6 ns a call in Bun 1.4.5, against 43 ns read).
   */
  timerCost(): number {
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      let sum = 0;
      const t0 = this.now();
      for (let i = 0; i < 10_000; i++) sum += this.now();
      runs.push((this.now() - t0) / 10_000);
      this.timerSink += sum;
    }
    runs.sort((a, b) => a - b);
    return 2 * runs[2];
  }

  /** Where timerCost's readings go, so that no engine can drop them. */
  private timerSink = 0;
}
