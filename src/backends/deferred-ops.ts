/**
 * The threaded backend's queue of ops issued while the Workers still run an earlier one (ThreadedWasmBackend):
 * each op a record (op code, up to 8 numbers, up to 2 object references: a weight, a KV layout, a kernel name,
 * bytes to write) in a ring that is made once and grows only when a longer run of ops queues up than ever
 * before. A closure per op, as before, was one allocation per op and token whether or not anything was pending.
 */

/** What a queued op does: which backend method runs it again from its record. */
export const Op = {
  matmul: 0,
  matmulSplit: 1,
  attention: 2,
  rmsnorm: 3,
  rope: 4,
  add: 5,
  swiglu: 6,
  embed: 7,
  kvStore: 8,
  copy: 9,
  layernorm: 10,
  addBias: 11,
  gelu: 12,
  geluErf: 13,
  write: 14,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** First ring size: a forward pass issues about 15 ops a layer, so a few layers' worth queue behind a slow op before it grows. */
const FIRST_CAPACITY = 256;

export class DeferredOps {
  /** Numbers a record holds. */
  static readonly ARGS = 8;
  ops: Uint8Array;
  args: Float64Array;
  refA: unknown[];
  refB: unknown[];
  private head = 0;
  private count = 0;

  constructor(capacity = FIRST_CAPACITY) {
    this.ops = new Uint8Array(capacity);
    this.args = new Float64Array(capacity * DeferredOps.ARGS);
    this.refA = new Array(capacity).fill(undefined);
    this.refB = new Array(capacity).fill(undefined);
  }

  /** Ops queued. */
  get size(): number {
    return this.count;
  }

  /** Queues an op last in line. */
  push(op: Op, a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, refA?: unknown, refB?: unknown): void {
    if (this.count === this.ops.length) this.grow();
    this.set((this.head + this.count) % this.ops.length, op, a0, a1, a2, a3, a4, a5, a6, a7, refA, refB);
    this.count++;
  }

  /** Queues an op first in line. */
  unshift(op: Op, a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, refA?: unknown, refB?: unknown): void {
    if (this.count === this.ops.length) this.grow();
    this.head = (this.head + this.ops.length - 1) % this.ops.length;
    this.set(this.head, op, a0, a1, a2, a3, a4, a5, a6, a7, refA, refB);
    this.count++;
  }

  /** The first op's record index (into ops, refA, refB; its numbers at args[index * ARGS ...]); only while size > 0. */
  first(): number {
    return this.head;
  }

  /** Drops the first op (its references with it, so the queue keeps nothing alive). */
  shift(): void {
    if (this.count === 0) return;
    this.refA[this.head] = this.refB[this.head] = undefined;
    this.head = (this.head + 1) % this.ops.length;
    this.count--;
  }

  clear(): void {
    while (this.count > 0) this.shift();
    this.head = 0;
  }

  private set(
    i: number,
    op: Op,
    a0: number,
    a1: number,
    a2: number,
    a3: number,
    a4: number,
    a5: number,
    a6: number,
    a7: number,
    refA: unknown,
    refB: unknown,
  ): void {
    const a = this.args, at = i * DeferredOps.ARGS;
    this.ops[i] = op;
    a[at] = a0, a[at + 1] = a1, a[at + 2] = a2, a[at + 3] = a3, a[at + 4] = a4, a[at + 5] = a5, a[at + 6] = a6, a[at + 7] = a7;
    this.refA[i] = refA;
    this.refB[i] = refB;
  }

  /** Doubles the ring, the queued ops moved to its start in order. */
  private grow(): void {
    const n = this.ops.length, bigger = new DeferredOps(2 * n);
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) % n, at = i * DeferredOps.ARGS;
      bigger.ops[k] = this.ops[i];
      bigger.args.set(this.args.subarray(at, at + DeferredOps.ARGS), k * DeferredOps.ARGS);
      bigger.refA[k] = this.refA[i];
      bigger.refB[k] = this.refB[i];
    }
    this.ops = bigger.ops, this.args = bigger.args, this.refA = bigger.refA, this.refB = bigger.refB;
    this.head = 0;
  }
}
