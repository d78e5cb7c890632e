/**
 * The kernel ABI, written once: every export of the kernel builds (assembly/index.ts), its arguments by
 * name and in order, what it returns, which arguments are f32, and, for the kernels the thread pool
 * splits, how (which argument range is divided, by rows, heads or elements, at what alignment, and how
 * far each pointer advances per unit). From it come the `Kernels` type, the load-time check of each
 * module's exports (checkKernelExports), the thread pool's typed split calls and the attention argument
 * slots.
 *
 * Written by hand rather than generated from `asc --bindings`: the split descriptions are not in the
 * signatures, and a generated file would still need this one beside it. tests/kernel-spec.test.ts holds
 * the two sides together: every build's exports against this table (name and arity), and the argument
 * names and f32 arguments of every `export function` in the assembly sources against it, so a kernel
 * whose arguments change fails that test until this table (and with it, by type, every call site whose
 * argument count changed) follows.
 *
 * Imports only the ggml block table (pure data), so the Worker entry could take it along.
 */
import { GGMLType, type GGMLTypeId } from "../formats/ggml-types.ts";
import { actBlockGeometry, Q8_S, Q8_SN } from "../quant/act-formats.ts";

/** How far a pointer argument advances per split unit: coefficient * the product of the named arguments' values, in bytes. */
export type Stride = readonly [bytes: number, ...times: string[]];

/**
 * How threads split a kernel:
 * - range: the kernel takes a range [lo, hi) of `total` units itself (matmul rows r0, r1); chunks start at multiples of align;
 * - offset: the `count` argument holds the units; a chunk [lo, hi) runs the kernel with count = hi - lo and each
 *   pointer in `advance` moved by lo strides;
 * - heads: attention over every query row of a batch, heads [lo, hi) per chunk (see src/threads/control.ts runAttention).
 */
export type Split =
  | { readonly by: "range"; readonly total: string; readonly lo: string; readonly hi: string; readonly align: number }
  | { readonly by: "offset"; readonly count: string; readonly advance: Readonly<Record<string, Stride>>; readonly align: number }
  | { readonly by: "heads"; readonly total: string; readonly lo: string; readonly hi: string; readonly align: number };

export interface KernelSpec {
  readonly args: readonly string[];
  /** f32 arguments (all others are i32 or pointers); the thread pool passes them as float bits. */
  readonly f32?: readonly string[];
  /** "f32" for the one kernel that returns a value (read_probe); else the kernel returns nothing. */
  readonly returns?: "f32";
  readonly split?: Readonly<Record<string, Split>>;
}

/** Matmul chunks start at multiples of this many rows, so a kernel's row groups (4 for f32/f16, 8 repacked) fall as on one thread. */
export const ROW_ALIGN = 16;
/** Elementwise chunks start at multiples of this many elements: SIMD bodies and scalar tails fall as on one thread. */
const ELEMENT_ALIGN = 64;

/** out (T x d) = x (T rows of n) . W (d rows of n)^T over weight rows [r0, r1); split by weight rows. */
const MATMUL_ROWS = { rows: { by: "range", total: "d", lo: "r0", hi: "r1", align: ROW_ALIGN } } as const;
const MATMUL = { args: ["out", "x", "w", "n", "d", "T", "r0", "r1"], split: MATMUL_ROWS } as const satisfies KernelSpec;
/**
 * The same over quantized (or BF16) activations xq, as quantize_<act> wrote them. T > 1 runs register tiles
 * (assembly/quant-gemm.ts: 4 weight x 4 activation rows for Q4_0 and Q8_0; Q4_K and Q6_K unpack a weight row
 * once for 4 activation rows; activation rows in L1-sized chunks), with each output's bits as at T = 1.
 */
const QMATMUL = { args: ["out", "xq", "w", "n", "d", "T", "r0", "r1"], split: MATMUL_ROWS } as const satisfies KernelSpec;
const DEQUANTIZE = { args: ["out", "w", "n"] } as const satisfies KernelSpec;
/**
 * Cross-row ("lanes") layouts, which interleave a group of rows (src/quant/kernels.ts LANES_KERNELS): repack_<type>_lanes
 * rewrites the d x n weight at w in place (tmp: a row group of scratch); dequantize_<type>_lanes gives row `row` of the
 * d-row weight at w (the weight's start: a row is spread over its group) as dequantize_<type> gives it from the natural one.
 * Rows past the last whole group stay in the natural layout, and the layout's matmul and dequantize read them there.
 */
const REPACK_LANES = { args: ["w", "n", "d", "tmp"] } as const satisfies KernelSpec;
const DEQUANTIZE_LANES = { args: ["out", "w", "n", "row", "d"] } as const satisfies KernelSpec;

/** quantize_<act>(out, x, n, T): T rows of n f32 into the activation format act; split by rows. */
interface QuantizeSpec extends KernelSpec {
  readonly args: readonly ["out", "x", "n", "T"];
  readonly split: { readonly rows: Split };
}
function quantizeSpec(act: GGMLTypeId): QuantizeSpec {
  const [elements, bytes] = actBlockGeometry(act)!;
  return {
    args: ["out", "x", "n", "T"],
    split: { rows: { by: "offset", count: "T", advance: { out: [bytes / elements, "n"], x: [4, "n"] }, align: 1 } },
  } as const satisfies KernelSpec;
}

/**
 * Paged attention of one query row, heads [h0, h1): the cache's layout, then the heads and positions, then
 * ALiBi slopes and top-k; the Q8_0 and u8_asym caches' kernels take qBlock between the two.
 */
const ATTENTION_CACHE = ["out", "q", "att", "kvBase", "pageTable", "pageSize", "pageBytes", "kOff", "vOff", "kvDim"] as const;
const ATTENTION_ROWS = ["nHeads", "nKvHeads", "headDim", "start", "end", "h0", "h1"] as const;
const ATTENTION_ARGS = [...ATTENTION_CACHE, ...ATTENTION_ROWS, "slopes", "topK", "sel"] as const;
type Tail3<A extends readonly string[]> = A extends readonly [string, string, string, ...infer R] ? R : never;
const HEADS = { by: "heads", total: "nHeads", lo: "h0", hi: "h1", align: 1 } as const;
const ATTENTION = { args: ATTENTION_ARGS, split: { heads: HEADS } } as const satisfies KernelSpec;
/** A run of nRows query rows of one sequence at consecutive positions (assembly/attn-run.ts); no top-k. */
const ATTENTION_RUN = {
  args: [...ATTENTION_CACHE, ...ATTENTION_ROWS, "slopes", "nRows"],
  split: { heads: HEADS },
} as const satisfies KernelSpec;
const ATTENTION_BLOCKED = {
  args: [...ATTENTION_CACHE, "qBlock", ...ATTENTION_ROWS, "slopes", "topK", "sel"],
} as const satisfies KernelSpec;

const KV_STORE_BLOCKED = { args: ["dst", "src", "n", "qBlock"] } as const satisfies KernelSpec;
const KV_LOAD_BLOCKED = { args: ["out", "src", "n", "qBlock"] } as const satisfies KernelSpec;
const UNARY = { args: ["out", "x", "n"] } as const satisfies KernelSpec;

// The table's type is its value's (as const): writing it out a second time would be the hand-kept ABI this file
// replaces. JSR therefore checks this one symbol from source (it is a "slow type"; tests/jsr.test.ts asserts it is
// the only one, which is why deno lint's no-slow-types rule is off).
export const KERNEL_SPEC = {
  // assembly/f32.ts
  matmul_f32: MATMUL,
  matmul_f16: MATMUL,
  round_f16: {
    args: ["out", "x", "n"],
    split: { elements: { by: "offset", count: "n", advance: { out: [4], x: [4] }, align: ELEMENT_ALIGN } },
  },
  dequantize_f32: DEQUANTIZE,
  dequantize_f16: DEQUANTIZE,
  rmsnorm: {
    args: ["out", "x", "w", "n", "eps", "T"],
    f32: ["eps"],
    split: { rows: { by: "offset", count: "T", advance: { out: [4, "n"], x: [4, "n"] }, align: 1 } },
  },
  add: {
    args: ["out", "a", "b", "n"],
    split: { elements: { by: "offset", count: "n", advance: { out: [4], a: [4], b: [4] }, align: ELEMENT_ALIGN } },
  },
  swiglu: {
    args: ["out", "gate", "up", "n", "T"],
    split: {
      // rows whose width is a multiple of 16 group alike as one long row (n * T elements, T = 1)
      elements: { by: "offset", count: "n", advance: { out: [4], gate: [4], up: [4] }, align: ELEMENT_ALIGN },
      rows: { by: "offset", count: "T", advance: { out: [4, "n"], gate: [4, "n"], up: [4, "n"] }, align: 1 },
    },
  },
  rope: {
    args: ["x", "cs", "pos", "T", "nHeads", "headDim", "ropeDim", "halves"],
    split: { rows: { by: "offset", count: "T", advance: { x: [4, "nHeads", "headDim"], pos: [4] }, align: 1 } },
  },
  attention: ATTENTION,
  copy: { args: ["dst", "src", "n"] },
  /** Reads n floats as fast as a kernel can: the benchmarks' bandwidth probe (bench/threads.ts splits it in 16 KiB pieces). */
  read_probe: {
    args: ["x", "n"],
    returns: "f32",
    split: { elements: { by: "offset", count: "n", advance: { x: [4] }, align: 4096 } },
  },
  // assembly/quant-act.ts
  quantize_q8_0: quantizeSpec(GGMLType.Q8_0),
  quantize_q8_s: quantizeSpec(Q8_S),
  quantize_q8_1: quantizeSpec(GGMLType.Q8_1),
  quantize_q8_k: quantizeSpec(GGMLType.Q8_K),
  quantize_q8_kx: quantizeSpec(GGMLType.Q8_K),
  quantize_bf16: quantizeSpec(GGMLType.BF16),
  // assembly/quant-matmul.ts
  matmul_bf16: QMATMUL,
  matmul_q8_0: QMATMUL,
  matmul_q4_0: QMATMUL,
  matmul_q4_1: QMATMUL,
  matmul_q5_0: QMATMUL,
  matmul_q5_1: QMATMUL,
  matmul_q2_k: QMATMUL,
  matmul_q3_k: QMATMUL,
  matmul_q4_k: QMATMUL,
  matmul_q5_k: QMATMUL,
  matmul_q6_k: QMATMUL,
  // assembly/*-ggml.ts: llama.cpp's summation order (ggmlOrder); *_vecdot_ggml are the non-repacked paths, exported for tests
  matmul_q8_0_ggml: QMATMUL,
  matmul_q4_0_vecdot_ggml: QMATMUL,
  matmul_q4_1_ggml: QMATMUL,
  matmul_q5_0_ggml: QMATMUL,
  matmul_q5_1_ggml: QMATMUL,
  matmul_q4_k_ggml: QMATMUL,
  matmul_q2_k_ggml: QMATMUL,
  matmul_q4_0_ggml: QMATMUL,
  matmul_bf16_ggml: QMATMUL,
  matmul_f16_ggml: MATMUL,
  matmul_f32_ggml: MATMUL,
  matmul_q6_k_ggml: QMATMUL,
  matmul_q5_k_ggml: QMATMUL,
  matmul_q3_k_ggml: QMATMUL,
  matmul_q4_k_vecdot_ggml: QMATMUL,
  matmul_q2_k_vecdot_ggml: QMATMUL,
  // assembly/quant-dequant.ts
  dequantize_bf16: DEQUANTIZE,
  dequantize_q8_0: DEQUANTIZE,
  dequantize_q4_0: DEQUANTIZE,
  dequantize_q4_1: DEQUANTIZE,
  dequantize_q5_0: DEQUANTIZE,
  dequantize_q5_1: DEQUANTIZE,
  dequantize_q2_k: DEQUANTIZE,
  dequantize_q3_k: DEQUANTIZE,
  dequantize_q4_k: DEQUANTIZE,
  dequantize_q5_k: DEQUANTIZE,
  dequantize_q6_k: DEQUANTIZE,
  // assembly/kquant-decode.ts: Q6_K and Q4_K in the KX layout (weights repacked at load, activations by quantize_q8_kx)
  matmul_q6_kx: QMATMUL,
  dequantize_q6_kx: DEQUANTIZE,
  /** Rewrites nb Q6_K blocks at w in place into the KX layout; tmp: 256 bytes of scratch. */
  repack_q6_kx: { args: ["w", "nb", "tmp"] },
  matmul_q4_kx: QMATMUL,
  dequantize_q4_kx: DEQUANTIZE,
  /** Rewrites nb Q4_K blocks at w in place into the KX layout; tmp: 256 bytes of scratch. */
  repack_q4_kx: { args: ["w", "nb", "tmp"] },
  // assembly/lanes-q8_0.ts: Q8_0 in the lanes layout (4 rows interleaved per 4 bytes; Q8_S activations, as matmul_q8_0)
  matmul_q8_0_lanes: QMATMUL,
  repack_q8_0_lanes: REPACK_LANES,
  dequantize_q8_0_lanes: DEQUANTIZE_LANES,
  // assembly/lanes-q8_0-nib.ts: the same layout against Q8_SN activations (Q8_S rows and their nibble planes), Bun's form
  quantize_q8_sn: quantizeSpec(Q8_SN),
  matmul_q8_0_nib: QMATMUL,
  repack_q8_0_nib: REPACK_LANES,
  // assembly/lanes-kquant.ts: Q4_K in the lanes layout (quads of rows interleaved; KX Q8_K activations, as matmul_q4_kx)
  matmul_q4_k_lanes: QMATMUL,
  // (the d % 4 last rows are in the KX layout, where matmul_q4_k_lanes and dequantize_q4_k_lanes read them)
  repack_q4_k_lanes: REPACK_LANES,
  dequantize_q4_k_lanes: DEQUANTIZE_LANES,
  // assembly/kv.ts (kv_load_*: tests and debugging)
  kv_store_q8: KV_STORE_BLOCKED,
  kv_load_q8: KV_LOAD_BLOCKED,
  attention_q8: ATTENTION_BLOCKED,
  kv_store_u8: KV_STORE_BLOCKED,
  kv_load_u8: KV_LOAD_BLOCKED,
  attention_u8: ATTENTION_BLOCKED,
  // assembly/nn.ts
  layernorm: { args: ["out", "x", "w", "b", "n", "eps", "T"], f32: ["eps"] },
  add_bias: { args: ["x", "bias", "n", "T"] },
  gelu_tanh: UNARY,
  gelu_erf: UNARY,
  // assembly/kv16.ts
  kv_store_f16: { args: ["dst", "src", "n"] },
  kv_load_f16: { args: ["out", "src", "n"] },
  attention_f16: ATTENTION,
  /** The F16 cache without ggmlOrder: the f32 cache's two passes over halves (not llama.cpp's arithmetic). */
  attention_f16_twopass: ATTENTION,
  attention_f16_split: ATTENTION,
  attention_f16_tiled: ATTENTION,
  /** attention_f16_split's chunk pass alone (tests/ggml-order-split.test.ts checks it against llama.cpp's chunking). */
  attention_f16_chunks: {
    args: [
      "out",
      "q",
      "scratch",
      ...ATTENTION_CACHE.slice(3) as Tail3<typeof ATTENTION_CACHE>,
      ...ATTENTION_ROWS,
      "nKv",
      "nChunks",
      "slopes",
    ],
  },
  // assembly/variants.ts (kvasm/ops)
  aft_keys: { args: ["ek", "ekv", "k", "v", "T", "D"] },
  aft_mix: { args: ["out", "q", "ek", "ekv", "T", "D", "bias", "biasStride", "u", "ub", "wdim", "window", "causal", "wrow", "den"] },
  aft_local_step: { args: ["out", "q", "k", "v", "ek", "ekv", "wbiasRow", "pos", "window", "D", "wts", "den"] },
  aft_simple: { args: ["out", "q", "k", "v", "T", "D", "state"] },
  aft_simple_step: { args: ["out", "q", "k", "v", "T", "D", "state"] },
  attention_window: { args: ["out", "q", "k", "v", "Tq", "Tk", "D", "Dv", "window", "causal", "sc"] },
  sparse_topk_attention: { args: ["out", "q", "k", "v", "Tq", "Tk", "D", "Dv", "topk", "sel"] },
  linformer_project: { args: ["out", "e", "be", "x", "T", "K", "D", "eStride"] },
  quantize_asym_u8: { args: ["q", "x", "n", "params"] },
  dequantize_asym_u8: { args: ["out", "q", "n", "scale", "zp"], f32: ["scale", "zp"] },
  // assembly/lanes-q4_0.ts: Q4_0 in the lanes layout (quads of rows, 4 qs bytes of each per 16-byte vector; Q8_S activations)
  matmul_q4_0_lanes: QMATMUL,
  repack_q4_0_lanes: REPACK_LANES,
  dequantize_q4_0_lanes: DEQUANTIZE_LANES,
  // assembly/lanes-q6_k.ts: Q6_K in the lanes layout (quads of rows interleaved; KX Q8_K activations, as matmul_q6_kx)
  matmul_q6_k_lanes: QMATMUL,
  // (the d % 4 last rows are in the KX layout, where matmul_q6_k_lanes and dequantize_q6_k_lanes read them)
  repack_q6_k_lanes: REPACK_LANES,
  dequantize_q6_k_lanes: DEQUANTIZE_LANES,
  // assembly/lanes-q4_0.ts: matmul_q4_0_lanes in the forms JavaScriptCore runs fast (T = 1 one quad per pass, T > 1 tiles of two
  // activation rows): Bun's Q4_0 matmul
  matmul_q4_0_lanes_q1: QMATMUL,
  // assembly/attn-stream.ts: the decode rows' attention, `attention` and attention_f16_twopass with each page's K and V
  // swept into cache before a pass works on it (the same bits)
  attention_stream: ATTENTION,
  attention_f16_stream: ATTENTION,
  // assembly/lanes-kquant.ts: matmul_q4_k_lanes with T = 1 one quad per pass (the form JavaScriptCore runs fast): Bun's Q4_K matmul
  matmul_q4_k_lanes_q1: QMATMUL,
  // assembly/lanes-q6_k.ts: matmul_q6_k_lanes in the form JavaScriptCore runs fast (the fourth chunk of each packed quad by
  // byte averages instead of shifts): Bun's Q6_K matmul
  matmul_q6_k_lanes_q1: QMATMUL,
  // assembly/lanes-q8_0-vnni.ts: Q8_0's lanes layout with unsigned weight bytes (w + 128), one relaxed dot-add per 16 bytes;
  // the backend takes it only where dotAddIsExactU8S8() (src/kernels/wasm.ts) finds that op exact for u8 x s8
  matmul_q8_0_vnni: QMATMUL,
  repack_q8_0_vnni: REPACK_LANES,
  dequantize_q8_0_vnni: DEQUANTIZE_LANES,
  // assembly/lanes-kquant.ts: matmul_q4_k_lanes with T = 1 through the i32 dot-add, exact where that op is a u8 x s8 dot (V8
  // with AVX-VNNI: the backend takes it where dotAddIsExactU8S8()); the plain build's is matmul_q4_k_lanes
  matmul_q4_k_lanes_u8: QMATMUL,
  // assembly/attn-run.ts: `attention` for a run of a prefill chunk's rows in one call (each K and V row read once for the
  // run; each row with the one-row kernel's bits): src/backends/attention-runs.ts
  attention_run: ATTENTION_RUN,
} as const satisfies Record<string, KernelSpec>;

export type KernelName = keyof typeof KERNEL_SPEC;
/** Every kernel's name, in the table's order: the thread pool's kernel index list. */
export const KERNEL_NAMES: readonly KernelName[] = Object.keys(KERNEL_SPEC) as KernelName[];

type Spec<K extends KernelName> = (typeof KERNEL_SPEC)[K];
/** A kernel's argument names, in order. */
export type KernelArgNames<K extends KernelName> = Spec<K>["args"];
/** One number per argument: a call with the wrong count does not compile. */
export type KernelArgs<K extends KernelName> = Numbers<KernelArgNames<K>>;
type Numbers<A extends readonly string[]> = { -readonly [I in keyof A]: number };
export type KernelArg<K extends KernelName> = KernelArgNames<K>[number];
type Returns<K extends KernelName> = Spec<K> extends { returns: "f32" } ? number : void;

/** The kernel exports, as the TypeScript side calls them. Pointers are byte addresses in the arena. */
export type Kernels = { readonly [K in KernelName]: (...args: KernelArgs<K>) => Returns<K> };

/** Kernels with the given named split. */
export type SplitKernel<S extends string> = {
  [K in KernelName]: Spec<K> extends { split: { [P in S]: Split } } ? K : never;
}[KernelName];

/** Kernels of one argument list, picked by GGML type through src/quant/kernels.ts. */
export type MatmulKernel = { [K in KernelName]: Spec<K> extends typeof MATMUL | typeof QMATMUL ? K : never }[KernelName];
export type DequantizeKernel = { [K in KernelName]: Spec<K> extends typeof DEQUANTIZE ? K : never }[KernelName];
/** The cross-row layouts' repack and one-row dequantize kernels (REPACK_LANES, DEQUANTIZE_LANES). */
export type LanesRepackKernel = { [K in KernelName]: Spec<K> extends typeof REPACK_LANES ? K : never }[KernelName];
export type LanesDequantizeKernel = { [K in KernelName]: Spec<K> extends typeof DEQUANTIZE_LANES ? K : never }[KernelName];
export type QuantizeKernel = Extract<KernelName, `quantize_${"q8_0" | "q8_s" | "q8_sn" | "q8_1" | "q8_k" | "q8_kx" | "bf16"}`>;
/** The paged attention kernels the backends pick per cache type and batch shape; ATTENTION_ARGS, qBlock for the 8-bit caches. */
export type AttentionKernel =
  | "attention"
  | "attention_stream"
  | "attention_f16_stream"
  | "attention_q8"
  | "attention_u8"
  | "attention_f16"
  | "attention_f16_twopass"
  | "attention_f16_split"
  | "attention_f16_tiled"
  | "attention_run";

/** Position of a named argument in a kernel's argument list; -1 when the kernel has no such argument. */
export function argIndex<K extends KernelName>(kernel: K, arg: KernelArg<K> | string): number {
  return (KERNEL_SPEC[kernel].args as readonly string[]).indexOf(arg);
}

/** Bit i set when argument i of the kernel is an f32. */
export function floatMask(kernel: KernelName): number {
  const spec: KernelSpec = KERNEL_SPEC[kernel];
  let mask = 0;
  for (const a of spec.f32 ?? []) mask |= 1 << spec.args.indexOf(a);
  return mask;
}

/** Every argument name of the attention kernels (qBlock only in the 8-bit caches' kernels, nRows only in the run kernel, attention_run). */
const FRAME_ARGS = [...ATTENTION_BLOCKED.args, "nRows"] as const;
export type AttentionArg = (typeof FRAME_ARGS)[number];

/**
 * One attention kernel's arguments in an array made once and reused for every row, set by name at the
 * spec's positions: the call sites name each argument once and never spell the positional list.
 */
export class AttentionFrame<K extends AttentionKernel = AttentionKernel> {
  readonly args: number[];
  private readonly at: Readonly<Record<AttentionArg, number>>;

  constructor(readonly kernel: K) {
    const names: readonly string[] = KERNEL_SPEC[kernel].args;
    this.args = names.map(() => 0);
    this.at = Object.fromEntries(FRAME_ARGS.map((a) => [a, names.indexOf(a)])) as Record<AttentionArg, number>;
  }

  /** Sets an argument; one the kernel does not take (qBlock of the f32 and F16 kernels, topK of attention_run) is skipped. */
  set(arg: AttentionArg, value: number): this {
    const i = this.at[arg];
    if (i >= 0) this.args[i] = value;
    return this;
  }

  call(kernels: Kernels): void {
    Reflect.apply(kernels[this.kernel], undefined, this.args);
  }
}
