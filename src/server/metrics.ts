/**
 * The server's counters in Prometheus' text exposition format (version 0.0.4)
 * for `GET /metrics`: requests by status, tokens, the work admitted and
 * waiting, KV memory, and latency histograms. Observing costs a few additions;
 * the text is built only when scraped.
 */

export class Histogram {
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  /** `bounds`: the buckets' upper bounds, ascending (the +Inf bucket is implied). */
  constructor(readonly name: string, readonly help: string, readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (v <= this.bounds[i]) {
        this.counts[i]++;
        break;
      }
    }
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    let cumulative = 0;
    this.bounds.forEach((b, i) => {
      cumulative += this.counts[i];
      out.push(`${this.name}_bucket{le="${b}"} ${cumulative}`);
    });
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
  }
}

/** Gauges read at scrape time from whoever owns the number. */
export interface MetricGauges {
  queueDepth(): number;
  pendingChoices(): number;
  queuedTokens(): number;
  activeSequences(): number;
  freeKvPages(): number | undefined;
  cachedKvPages(): number | undefined;
  totalKvPages(): number | undefined;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ServerMetrics {
  private readonly byStatus = new Map<number, number>();
  promptTokens = 0;
  completionTokens = 0;
  readonly timeToFirstToken = new Histogram(
    "kvasm_time_to_first_token_seconds",
    "Seconds from admission to a request's first generated token.",
    LATENCY_BUCKETS,
  );
  readonly timePerToken = new Histogram(
    "kvasm_time_per_output_token_seconds",
    "Seconds between consecutive tokens of one choice.",
    LATENCY_BUCKETS,
  );

  constructor(private readonly gauges: MetricGauges) {}

  countResponse(status: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    metric(
      "kvasm_requests_total",
      "counter",
      "HTTP requests answered, by status code.",
      [...this.byStatus].sort((a, b) => a[0] - b[0]).map(([s, c]) => `kvasm_requests_total{status="${s}"} ${c}`),
    );
    metric("kvasm_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", [
      `kvasm_prompt_tokens_total ${this.promptTokens}`,
    ]);
    metric("kvasm_completion_tokens_total", "counter", "Tokens generated.", [`kvasm_completion_tokens_total ${this.completionTokens}`]);
    metric("kvasm_queue_depth", "gauge", "Generations waiting for the engine to schedule them.", [
      `kvasm_queue_depth ${this.gauges.queueDepth()}`,
    ]);
    metric("kvasm_pending_choices", "gauge", "Choices of admitted requests not yet answered (the --max-pending bound).", [
      `kvasm_pending_choices ${this.gauges.pendingChoices()}`,
    ]);
    metric("kvasm_queued_tokens", "gauge", "Tokens of work admitted and not yet answered (the --max-queued-tokens bound).", [
      `kvasm_queued_tokens ${this.gauges.queuedTokens()}`,
    ]);
    metric("kvasm_active_sequences", "gauge", "Sequences holding KV cache pages.", [
      `kvasm_active_sequences ${this.gauges.activeSequences()}`,
    ]);
    const free = this.gauges.freeKvPages();
    if (free !== undefined) metric("kvasm_kv_pages_free", "gauge", "KV cache pages free.", [`kvasm_kv_pages_free ${free}`]);
    const cached = this.gauges.cachedKvPages();
    if (cached !== undefined) {
      metric("kvasm_kv_pages_cached", "gauge", "KV cache pages kept by the prefix cache for reuse.", [`kvasm_kv_pages_cached ${cached}`]);
    }
    const total = this.gauges.totalKvPages();
    if (total !== undefined) metric("kvasm_kv_pages_total", "gauge", "KV cache pages in all.", [`kvasm_kv_pages_total ${total}`]);
    this.timeToFirstToken.render(out);
    this.timePerToken.render(out);
    return out.join("\n") + "\n";
  }
}
