import type { KVLayout, Weight } from "../backend.ts";

/**
 * The ops the forward pass hands the WebGPU backend, recorded before they are
 * dispatched so that runs of them that touch the same rows can become one
 * dispatch. Ops the fuser never combines carry their own recorder (`run`).
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
  | { k: "other"; run: () => void };

type OpOf<K extends Op["k"]> = Extract<Op, { k: K }>;

/**
 * One dispatch's worth of ops, found at the head of the queue:
 *   qkv        matmul q, k, v of one input; RoPE of q and k; kvStore of k and v (and the rmsnorm before, for one row of F32/F16 weights)
 *   swiglu     matmul gate, up of one input; out = silu(gate) * up, written over gate (likewise)
 *   residual   matmul out; x += out
 *   store      rmsnorm, then a lone one-row matmul of its output (the classifier), the norm in the matmul
 *   normQuant  rmsnorm whose output the next (quantized) matmul reads
 *   attnQuant  attention whose output the next Q8_0/Q4_0 matmul reads (its Q8_0 blocks quantized in the attention kernel)
 *   copies     up to 7 word copies whose ranges do not overlap
 *   argmax     argmax, then a copy of its pick (the next step's token)
 *   single     anything else, as it was recorded
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
    norm?: OpOf<"rmsnorm">;
  }
  | { g: "swiglu"; gate: OpOf<"matmul">; up: OpOf<"matmul">; act: OpOf<"swiglu">; norm?: OpOf<"rmsnorm"> }
  | { g: "residual"; mm: OpOf<"matmul">; add: OpOf<"add"> }
  | { g: "store"; mm: OpOf<"matmul">; norm: OpOf<"rmsnorm"> }
  | { g: "normQuant"; norm: OpOf<"rmsnorm">; next: OpOf<"matmul"> }
  | { g: "attnQuant"; attn: OpOf<"attention">; next: OpOf<"matmul"> }
  | { g: "copies"; copies: OpOf<"copy">[] }
  | { g: "argmax"; pick: OpOf<"argmax">; copy: OpOf<"copy"> }
  | { g: "single"; op: Op };

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

/**
 * The group at ops[i], and how many ops it takes. Each rule checks that the
 * fused dispatch leaves memory exactly as the ops one by one would: the same
 * shapes, the intermediate buffers written too, no output overlapping an input.
 */
export function groupAt(ops: Op[], i: number, t: FuseTarget): { group: Group; len: number } {
  const op = ops[i];
  const at = <K extends Op["k"]>(j: number, k: K) => (ops[i + j]?.k === k ? ops[i + j] as OpOf<K> : undefined);
  if (op.k === "matmul") {
    const mm = op;
    const sameInput = (o: OpOf<"matmul"> | undefined): o is OpOf<"matmul"> =>
      !!o && o.x === mm.x && o.T === mm.T && o.scratch === mm.scratch && o.w.type === mm.w.type && o.w.cols === mm.w.cols && t.whole(o.w);
    const writes = (o: OpOf<"matmul">) => [o.out, o.T * o.w.rows * 4] as const;
    const inBytes = mm.T * mm.w.cols * 4;
    const clearOfInput = (...os: OpOf<"matmul">[]) =>
      os.every((o) => !overlaps(...writes(o), mm.x, inBytes)) &&
      os.every((o, a) => os.every((p, b) => a === b || !overlaps(...writes(o), ...writes(p))));
    if (t.whole(mm.w)) {
      const key = at(1, "matmul"), value = at(2, "matmul"), ropeQ = at(3, "rope"), ropeK = at(4, "rope"), store = at(5, "kvStore");
      if (
        sameInput(key) && sameInput(value) && ropeQ && ropeK && store && clearOfInput(mm, key, value) &&
        ropeQ.x === mm.out && ropeK.x === key.out && ropeQ.T === mm.T && ropeK.T === mm.T && ropeQ.table === ropeK.table &&
        ropeQ.positions === ropeK.positions &&
        ropeQ.headDim === ropeK.headDim && ropeQ.ropeDim === ropeK.ropeDim && ropeQ.halves === ropeK.halves &&
        ropeQ.nHeads * ropeQ.headDim === mm.w.rows &&
        ropeK.nHeads * ropeK.headDim === key.w.rows && ropeQ.ropeDim % 2 === 0 && ropeQ.ropeDim <= ropeQ.headDim &&
        ropeQ.headDim % 2 === 0 &&
        store.key === key.out && store.value === value.out && store.T === mm.T && store.kv.kvType === "f32" &&
        store.kv.kvDim === key.w.rows && value.w.rows === key.w.rows
      ) return { group: { g: "qkv", q: mm, key, value, ropeQ, ropeK, store }, len: 6 };
      const up = at(1, "matmul"), act = at(2, "swiglu");
      if (
        sameInput(up) && act && clearOfInput(mm, up) && act.gate === mm.out && act.out === mm.out && act.up === up.out &&
        act.n === mm.w.rows && act.T === mm.T && up.w.rows === mm.w.rows
      ) {
        return { group: { g: "swiglu", gate: mm, up, act }, len: 3 };
      }
      const add = at(1, "add");
      if (
        add && add.a === add.out && add.b === mm.out && add.n === mm.T * mm.w.rows && !overlaps(add.out, add.n * 4, mm.out, add.n * 4) &&
        !overlaps(add.out, add.n * 4, mm.x, inBytes)
      ) {
        return { group: { g: "residual", mm, add }, len: 2 };
      }
    }
  } else if (op.k === "rmsnorm") {
    // one row: the norm becomes the prologue of the q|k|v or gate|up matmul that reads it
    const after = ops[i + 1]?.k === "matmul" ? groupAt(ops, i + 1, t) : undefined;
    const mm = after?.group.g === "qkv" ? after.group.q : after?.group.g === "swiglu" ? after.group.gate : undefined;
    if (
      after && mm && (after.group.g === "qkv" || after.group.g === "swiglu") && mm.x === op.out && op.T === 1 && mm.T === 1 &&
      mm.w.cols === op.n &&
      t.stagesInput(mm.w, 1) && !overlaps(op.out, op.n * 4, op.x, op.n * 4)
    ) return { group: { ...after.group, norm: op }, len: after.len + 1 };
    const lone = after?.group.g === "single" ? after.group.op : undefined;
    if (
      lone?.k === "matmul" && lone.x === op.out && op.T === 1 && lone.T === 1 && lone.w.cols === op.n && t.normsAlone(lone.w) &&
      t.stagesInput(lone.w, 1) && !overlaps(op.out, op.n * 4, op.x, op.n * 4) && !overlaps(lone.out, lone.w.rows * 4, op.out, op.n * 4) &&
      !overlaps(lone.out, lone.w.rows * 4, op.x, op.n * 4)
    ) return { group: { g: "store", mm: lone, norm: op }, len: 2 };
    const next = at(1, "matmul");
    if (
      next && next.x === op.out && next.T === op.T && next.w.cols === op.n && t.quantizesInput(next.w) &&
      !overlaps(op.out, op.T * op.n * 4, op.x, op.T * op.n * 4)
    ) {
      return { group: { g: "normQuant", norm: op, next }, len: 1 }; // the matmul stays queued: it finds its input quantized
    }
  } else if (op.k === "attention") {
    const next = at(1, "matmul");
    if (
      next && next.x === op.out && next.T === op.T && next.w.cols === op.kv.nHeads * op.kv.headDim &&
      t.quantizesAttention(op.kv, op.T, next.w) &&
      !overlaps(next.scratch, op.T * (next.w.cols / 32) * 36, op.out, op.T * next.w.cols * 4)
    ) {
      return { group: { g: "attnQuant", attn: op, next }, len: 1 }; // the matmul stays queued: it finds its input quantized
    }
  } else if (op.k === "argmax") {
    const copy = at(1, "copy");
    if (copy && copy.src === op.out && copy.bytes === 4) return { group: { g: "argmax", pick: op, copy }, len: 2 };
  } else if (op.k === "copy") {
    const copies = [op];
    for (let j = 1; j < MAX_COPIES; j++) {
      const c = at(j, "copy");
      if (!c || c.bytes % 4 || c.dst % 4 || c.src % 4) break;
      if (
        copies.some((p) =>
          overlaps(p.dst, p.bytes, c.dst, c.bytes) || overlaps(p.dst, p.bytes, c.src, c.bytes) || overlaps(p.src, p.bytes, c.dst, c.bytes)
        )
      ) break;
      copies.push(c);
    }
    if (copies.length > 1) return { group: { g: "copies", copies }, len: copies.length };
  }
  return { group: { g: "single", op }, len: 1 };
}
