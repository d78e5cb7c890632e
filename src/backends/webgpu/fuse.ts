import type { KVLayout, Weight } from "../backend.ts";

/**
 * The ops the forward pass hands the WebGPU backend, recorded before they are
 * dispatched so that runs of them that touch the same rows can become one
 * dispatch. Op records are taken from an OpPool and given back once recorded,
 * so a decode step allocates none.
 */
export type Op =
  | { k: "matmul"; out: number; x: number; w: Weight; T: number; scratch: number }
  | { k: "rmsnorm"; out: number; x: number; w: Weight; n: number; eps: number; T: number }
  | { k: "rope"; x: number; table: number; positions: number; T: number; nHeads: number; headDim: number; ropeDim: number; halves: boolean }
  | { k: "kvStore"; kv: KVLayout; layer: number; key: number; value: number; rows: number; T: number }
  | { k: "add"; out: number; a: number; b: number; n: number }
  | { k: "swiglu"; out: number; gate: number; up: number; n: number; T: number }
  | { k: "copy"; dst: number; src: number; bytes: number }
  | { k: "argmax"; out: number; x: number; n: number }
  | { k: "attention"; out: number; q: number; kv: KVLayout; layer: number; rows: number; T: number }
  | { k: "embed"; out: number; table: Weight; tokens: number; T: number }
  | { k: "sample"; params: Uint32Array }
  | { k: "layernorm"; out: number; x: number; w: Weight; n: number; eps: number; T: number }
  | { k: "addBias"; x: number; bias: Weight; rows: number; n: number }
  | { k: "gelu"; out: number; x: number; n: number; erf: boolean };

export type OpKind = Op["k"];
export type OpOf<K extends OpKind> = Extract<Op, { k: K }>;

// deno-lint-ignore no-explicit-any
const NO: any = null; // a group's op slots before it is first filled

/** A fresh record of each kind, its fields placeholders until the pool hands it out and the backend fills them. */
const FRESH: { [K in OpKind]: () => OpOf<K> } = {
  matmul: () => ({ k: "matmul", out: 0, x: 0, w: NO, T: 0, scratch: 0 }),
  rmsnorm: () => ({ k: "rmsnorm", out: 0, x: 0, w: NO, n: 0, eps: 0, T: 0 }),
  rope: () => ({ k: "rope", x: 0, table: 0, positions: 0, T: 0, nHeads: 0, headDim: 0, ropeDim: 0, halves: false }),
  kvStore: () => ({ k: "kvStore", kv: NO, layer: 0, key: 0, value: 0, rows: 0, T: 0 }),
  add: () => ({ k: "add", out: 0, a: 0, b: 0, n: 0 }),
  swiglu: () => ({ k: "swiglu", out: 0, gate: 0, up: 0, n: 0, T: 0 }),
  copy: () => ({ k: "copy", dst: 0, src: 0, bytes: 0 }),
  argmax: () => ({ k: "argmax", out: 0, x: 0, n: 0 }),
  attention: () => ({ k: "attention", out: 0, q: 0, kv: NO, layer: 0, rows: 0, T: 0 }),
  embed: () => ({ k: "embed", out: 0, table: NO, tokens: 0, T: 0 }),
  sample: () => ({ k: "sample", params: NO }),
  layernorm: () => ({ k: "layernorm", out: 0, x: 0, w: NO, n: 0, eps: 0, T: 0 }),
  addBias: () => ({ k: "addBias", x: 0, bias: NO, rows: 0, n: 0 }),
  gelu: () => ({ k: "gelu", out: 0, x: 0, n: 0, erf: false }),
};

/**
 * Op records for reuse: a decode step takes the same kinds in the same numbers every token, so after the
 * first step every record comes from a free list and none is allocated. Records are given back once recorded.
 */
export class OpPool {
  private readonly free: { [K in OpKind]: OpOf<K>[] } = {
    matmul: [],
    rmsnorm: [],
    rope: [],
    kvStore: [],
    add: [],
    swiglu: [],
    copy: [],
    argmax: [],
    attention: [],
    embed: [],
    sample: [],
    layernorm: [],
    addBias: [],
    gelu: [],
  };

  /** Records made so far (after the first decode step it stays put: tests check that). */
  created = 0;

  /** A record of kind k (its fields as the last user left them: the caller sets every one). */
  take<K extends OpKind>(k: K): OpOf<K> {
    const op = (this.free[k] as OpOf<K>[]).pop();
    if (op) return op;
    this.created++;
    return FRESH[k]();
  }

  give(op: Op): void {
    (this.free[op.k] as Op[]).push(op);
  }
}

/**
 * One dispatch's worth of ops, found at the head of the queue:
 *   qkv        matmul q, k, v of one input; RoPE of q and k; kvStore of k and v (and the rmsnorm before, for one row)
 *   swiglu     matmul gate, up of one input; out = silu(gate) * up, written over gate (likewise)
 *   residual   matmul out; x += out
 *   store      rmsnorm, then a lone one-row matmul of its output (the classifier), the norm in the matmul
 *   normQuant  rmsnorm whose output the next (quantized) matmul reads
 *   attnQuant  attention whose output the next Q8_0/Q4_0 matmul reads (its Q8_0 blocks quantized in the attention kernel)
 *   copies     up to 7 word copies whose ranges do not overlap
 *   argmax     argmax, then a copy of its pick (the next step's token)
 *   single     anything else, as it was recorded
 * Each is one record per Fuser, filled again for every group found (nothing allocated per group).
 */
export type Group =
  | {
    g: "qkv";
    q: OpOf<"matmul">;
    key: OpOf<"matmul">;
    value: OpOf<"matmul">;
    ropeQ: OpOf<"rope">;
    ropeK: OpOf<"rope">;
    store: OpOf<"kvStore">;
    norm: OpOf<"rmsnorm"> | null;
  }
  | { g: "swiglu"; gate: OpOf<"matmul">; up: OpOf<"matmul">; act: OpOf<"swiglu">; norm: OpOf<"rmsnorm"> | null }
  | { g: "residual"; mm: OpOf<"matmul">; add: OpOf<"add"> }
  | { g: "store"; mm: OpOf<"matmul">; norm: OpOf<"rmsnorm"> }
  | { g: "normQuant"; norm: OpOf<"rmsnorm">; next: OpOf<"matmul"> }
  | { g: "attnQuant"; attn: OpOf<"attention">; next: OpOf<"matmul"> }
  | { g: "copies"; copies: OpOf<"copy">[]; count: number }
  | { g: "argmax"; pick: OpOf<"argmax">; copy: OpOf<"copy"> }
  | { g: "single"; op: Op };

type GroupOf<G extends Group["g"]> = Extract<Group, { g: G }>;

/** Ops a group can span at most: the fuser waits for this many before deciding (unless draining to the end). */
export const LOOKAHEAD = 8;
const MAX_COPIES = 7;

const overlaps = (a: number, aBytes: number, b: number, bBytes: number) => a < b + bBytes && b < a + aBytes;

/** The weight-side facts the fuser needs from the backend: can these weights share one fused dispatch? */
export interface FuseTarget {
  /** One binding holds the whole tensor (large tensors are dispatched in row ranges, never fused). */
  whole(w: Weight): boolean;
  /** The matmul's input is quantized for this weight type. */
  quantizesInput(w: Weight): boolean;
  /** The attention of these rows can quantize its output into Q8_0 blocks for a matmul of w (wgsl-ops.ts attentionKernel). */
  quantizesAttention(kv: KVLayout, T: number, w: Weight): boolean;
  /** A one-row matmul of w can stage its (normed, quantized) input row in workgroup memory. */
  stagesInput(w: Weight, T: number): boolean;
  /** An RMSNorm may be the prologue of a lone one-row matmul of w (not only of a q|k|v or gate|up group). */
  normsAlone(w: Weight): boolean;
}

/** ops[j] if it is within the first n and of kind k. */
function at<K extends OpKind>(ops: Op[], n: number, j: number, k: K): OpOf<K> | undefined {
  return j < n && ops[j].k === k ? ops[j] as OpOf<K> : undefined;
}

/** o reads mm's input as mm does (same shape and weight type), and one binding holds its weights. */
function sameInput(mm: OpOf<"matmul">, o: OpOf<"matmul"> | undefined, t: FuseTarget): o is OpOf<"matmul"> {
  return !!o && o.x === mm.x && o.T === mm.T && o.scratch === mm.scratch && o.w.type === mm.w.type && o.w.cols === mm.w.cols &&
    t.whole(o.w);
}

/** o's output overlaps neither mm's input nor p's output. */
function clear(mm: OpOf<"matmul">, o: OpOf<"matmul">, p: OpOf<"matmul"> | null): boolean {
  const bytes = o.T * o.w.rows * 4;
  return !overlaps(o.out, bytes, mm.x, mm.T * mm.w.cols * 4) && (!p || p === o || !overlaps(o.out, bytes, p.out, p.T * p.w.rows * 4));
}

/**
 * Finds the groups at the head of the queue. Each rule checks that the fused dispatch leaves memory exactly
 * as the ops one by one would: the same shapes, the intermediate buffers written too, no output overlapping an input.
 */
export class Fuser {
  private readonly qkv: GroupOf<"qkv"> = { g: "qkv", q: NO, key: NO, value: NO, ropeQ: NO, ropeK: NO, store: NO, norm: null };
  private readonly swiglu: GroupOf<"swiglu"> = { g: "swiglu", gate: NO, up: NO, act: NO, norm: null };
  private readonly residual: GroupOf<"residual"> = { g: "residual", mm: NO, add: NO };
  private readonly store: GroupOf<"store"> = { g: "store", mm: NO, norm: NO };
  private readonly normQuant: GroupOf<"normQuant"> = { g: "normQuant", norm: NO, next: NO };
  private readonly attnQuant: GroupOf<"attnQuant"> = { g: "attnQuant", attn: NO, next: NO };
  private readonly copies: GroupOf<"copies"> = { g: "copies", copies: [], count: 0 };
  private readonly argmax: GroupOf<"argmax"> = { g: "argmax", pick: NO, copy: NO };
  private readonly single: GroupOf<"single"> = { g: "single", op: NO };
  /** The group the last groupAt found (valid until the next call). */
  group: Group = this.single;

  constructor(private readonly t: FuseTarget) {}

  /** Finds the group at ops[i] among the first n ops (into `group`) and returns how many ops it takes. */
  groupAt(ops: Op[], i: number, n: number): number {
    const op = ops[i], t = this.t;
    if (op.k === "matmul") return this.matmulAt(ops, i, n, op);
    if (op.k === "rmsnorm") {
      // one row: the norm becomes the prologue of the q|k|v or gate|up matmul that reads it, or of a lone matmul
      const mmLen = i + 1 < n && ops[i + 1].k === "matmul" ? this.matmulAt(ops, i + 1, n, ops[i + 1] as OpOf<"matmul">) : 0;
      const g = this.group;
      const mm = !mmLen
        ? undefined
        : g.g === "qkv"
        ? g.q
        : g.g === "swiglu"
        ? g.gate
        : g.g === "single"
        ? g.op as OpOf<"matmul">
        : undefined;
      if (
        mm && mm.x === op.out && op.T === 1 && mm.T === 1 && mm.w.cols === op.n && t.stagesInput(mm.w, 1) &&
        !overlaps(op.out, op.n * 4, op.x, op.n * 4)
      ) {
        if (g.g === "qkv" || g.g === "swiglu") {
          g.norm = op;
          return mmLen + 1;
        }
        if (
          g.g === "single" && t.normsAlone(mm.w) && !overlaps(mm.out, mm.w.rows * 4, op.out, op.n * 4) &&
          !overlaps(mm.out, mm.w.rows * 4, op.x, op.n * 4)
        ) {
          this.store.mm = mm;
          this.store.norm = op;
          this.group = this.store;
          return 2;
        }
      }
      const next = at(ops, n, i + 1, "matmul");
      if (
        next && next.x === op.out && next.T === op.T && next.w.cols === op.n && t.quantizesInput(next.w) &&
        !overlaps(op.out, op.T * op.n * 4, op.x, op.T * op.n * 4)
      ) {
        this.normQuant.norm = op;
        this.normQuant.next = next;
        this.group = this.normQuant;
        return 1; // the matmul stays queued: it finds its input quantized
      }
    } else if (op.k === "attention") {
      const next = at(ops, n, i + 1, "matmul");
      if (
        next && next.x === op.out && next.T === op.T && next.w.cols === op.kv.nHeads * op.kv.headDim &&
        t.quantizesAttention(op.kv, op.T, next.w) &&
        !overlaps(next.scratch, op.T * (next.w.cols / 32) * 36, op.out, op.T * next.w.cols * 4)
      ) {
        this.attnQuant.attn = op;
        this.attnQuant.next = next;
        this.group = this.attnQuant;
        return 1; // the matmul stays queued: it finds its input quantized
      }
    } else if (op.k === "argmax") {
      const copy = at(ops, n, i + 1, "copy");
      if (copy && copy.src === op.out && copy.bytes === 4) {
        this.argmax.pick = op;
        this.argmax.copy = copy;
        this.group = this.argmax;
        return 2;
      }
    } else if (op.k === "copy") {
      const copies = this.copies.copies;
      copies[0] = op;
      let count = 1;
      for (let j = 1; j < MAX_COPIES; j++) {
        const c = at(ops, n, i + j, "copy");
        if (!c || c.bytes % 4 || c.dst % 4 || c.src % 4) break;
        let apart = true;
        for (let m = 0; m < count && apart; m++) {
          const p = copies[m];
          apart = !overlaps(p.dst, p.bytes, c.dst, c.bytes) && !overlaps(p.dst, p.bytes, c.src, c.bytes) &&
            !overlaps(p.src, p.bytes, c.dst, c.bytes);
        }
        if (!apart) break;
        copies[count++] = c;
      }
      if (count > 1) {
        this.copies.count = count;
        this.group = this.copies;
        return count;
      }
    }
    return this.alone(op);
  }

  private alone(op: Op): number {
    this.single.op = op;
    this.group = this.single;
    return 1;
  }

  private matmulAt(ops: Op[], i: number, n: number, mm: OpOf<"matmul">): number {
    const t = this.t;
    if (!t.whole(mm.w)) return this.alone(mm);
    const key = at(ops, n, i + 1, "matmul"), value = at(ops, n, i + 2, "matmul"), ropeQ = at(ops, n, i + 3, "rope");
    const ropeK = at(ops, n, i + 4, "rope"), store = at(ops, n, i + 5, "kvStore");
    if (
      sameInput(mm, key, t) && sameInput(mm, value, t) && ropeQ && ropeK && store && clear(mm, mm, key) && clear(mm, mm, value) &&
      clear(mm, key, value) && clear(mm, key, mm) && clear(mm, value, mm) && clear(mm, value, key) &&
      ropeQ.x === mm.out && ropeK.x === key.out && ropeQ.T === mm.T && ropeK.T === mm.T && ropeQ.table === ropeK.table &&
      ropeQ.positions === ropeK.positions &&
      ropeQ.headDim === ropeK.headDim && ropeQ.ropeDim === ropeK.ropeDim && ropeQ.halves === ropeK.halves &&
      ropeQ.nHeads * ropeQ.headDim === mm.w.rows &&
      ropeK.nHeads * ropeK.headDim === key.w.rows && ropeQ.ropeDim % 2 === 0 && ropeQ.ropeDim <= ropeQ.headDim &&
      ropeQ.headDim % 2 === 0 &&
      store.key === key.out && store.value === value.out && store.T === mm.T && store.kv.kvType === "f32" &&
      store.kv.kvDim === key.w.rows && value.w.rows === key.w.rows
    ) {
      const g = this.qkv;
      g.q = mm;
      g.key = key;
      g.value = value;
      g.ropeQ = ropeQ;
      g.ropeK = ropeK;
      g.store = store;
      g.norm = null;
      this.group = g;
      return 6;
    }
    const up = key, act = at(ops, n, i + 2, "swiglu");
    if (
      sameInput(mm, up, t) && act && clear(mm, mm, up) && clear(mm, up, mm) && act.gate === mm.out && act.out === mm.out &&
      act.up === up.out && act.n === mm.w.rows && act.T === mm.T && up.w.rows === mm.w.rows
    ) {
      const g = this.swiglu;
      g.gate = mm;
      g.up = up;
      g.act = act;
      g.norm = null;
      this.group = g;
      return 3;
    }
    const add = at(ops, n, i + 1, "add");
    if (
      add && add.a === add.out && add.b === mm.out && add.n === mm.T * mm.w.rows && !overlaps(add.out, add.n * 4, mm.out, add.n * 4) &&
      !overlaps(add.out, add.n * 4, mm.x, mm.T * mm.w.cols * 4)
    ) {
      this.residual.mm = mm;
      this.residual.add = add;
      this.group = this.residual;
      return 2;
    }
    return this.alone(mm);
  }
}
