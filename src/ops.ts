/**
 * kvasm/ops: the attention variants of the cheat sheet (../shared/seeds/003_5f010b61a428b23c.txt) as operators
 * over plain arrays, run by the WebAssembly SIMD kernels of assembly/variants.ts. One function per operator,
 * named as the fixture keys of ../shared/fixtures/seed-variants/variants.json in camelCase, each taking an
 * object with the fixture's field names:
 *
 *   aftFull, aftLocal, aftSimple      x (B,T,D), wq wk wv wo (D,D) [+ optional bq bk bv bo (D)];
 *                                     aftFull: u, v (1,M,w_dim); aftLocal: wbias (1,M,M), local_context
 *   linformer                         x (B,T,D), wq wk wv (HD,D), bq bk bv (HD), E F (k,M), bE bF (k), max_seq_len M, k
 *   sparseTopK                        query key value (B,T,D), k, num_chunks
 *   slidingWindowBidirectional        query key value (B,T,D), window_overlap
 *   quantizeAsymU8                    x (any shape) -> { scale, zeroPoint, q, dequant }
 *   denseAttention                    query key value (B,T,D) [, causal]: the softmax attention the others are measured against
 *
 * Arrays are `{ shape, data }` (data a number[] or any typed array) or a Float32Array carrying a `shape`
 * property; results are `{ shape, data: Float32Array }`. The AFT operators take `causal: true` for their
 * causal forms, and aftSimpleDecoder / aftLocalDecoder run those forms token by token with constant state.
 *
 * The API is async (the kernel module compiles once per process, on first use). Each call validates every
 * shape and parameter first (ParamError names the field), then sizes one private WebAssembly.Memory for
 * exactly what it needs, copies the inputs in, runs the kernels and copies the result out; nothing is kept.
 */
import { checkOptionNames, ContextLengthError, optionalBoolean, optionNames, ParamError, UnsupportedError } from "./errors.ts";
import { Arena, ArenaPlan } from "./memory/arena.ts";
import { hasRelaxedSimd, instantiateKernels, type Kernels, pickVariant } from "./kernels/wasm.ts";

/** An array argument: `{ shape, data }`, or a typed array with a `shape` property. */
export type TensorInput = { shape: readonly number[]; data: ArrayLike<number> } | (Float32Array & { shape: readonly number[] });
/** An operator's result, row-major. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}
/**
 * Per-call options: `relaxed` picks the relaxed-SIMD (fused multiply-add) or the plain SIMD kernels; default: relaxed
 * where the runtime has it.
 */
export interface OpsOptions {
  relaxed?: boolean;
}

/** OpsOptions' names: every operator refuses any other key (`relax: false` ran the relaxed kernels unseen). */
const OPS_OPTION_NAMES = optionNames<OpsOptions>()(["relaxed"]);

// ---------------------------------------------------------------- validation

interface Checked {
  name: string;
  shape: number[];
  data: ArrayLike<number>;
  size: number;
}

/**
 * A caller's argument object read field by field: JavaScript callers pass anything, so every field is checked. First
 * the names, of the options and of the arguments: `op` refuses one it does not take (`causal` misspelt ran the
 * operator unmasked); what is not an object is left to the fields' own checks ("args: must be an object ...").
 */
function fieldsOf<T extends object>(
  op: string,
  args: T,
  names: ReadonlyArray<keyof T>,
  opts: OpsOptions | undefined,
): Readonly<Record<string, unknown>> {
  checkOptionNames(`${op} options`, opts, OPS_OPTION_NAMES); // "denseAttention options: unknown option ..."
  if (typeof args === "object" && args !== null && !Array.isArray(args)) checkOptionNames(op, args, names);
  return args as Readonly<Record<string, unknown>>;
}

/** Each operator's argument names (its first parameter's keys). */
type ArgsOf<F extends (args: never, ...rest: never[]) => unknown> = Parameters<F>[0];

function tensor(args: Record<string, unknown>, name: string, rank?: number): Checked {
  if (typeof args !== "object" || args === null) throw new ParamError("args", "must be an object of the operator's named inputs");
  const t = args[name] as { shape?: unknown; data?: unknown } | undefined;
  if (t === undefined || t === null) throw new ParamError(name, "is required");
  const shape = t.shape;
  const data = (ArrayBuffer.isView(t) ? t : t.data) as ArrayLike<number> | undefined;
  if (!Array.isArray(shape) || !shape.every((n) => Number.isInteger(n) && n > 0)) {
    throw new ParamError(name, "needs a shape: an array of positive integers ({ shape, data }, or a typed array with .shape)");
  }
  if (rank !== undefined && shape.length !== rank) throw new ParamError(name, `must have ${rank} dimensions, got shape [${shape}]`);
  if (!data || typeof data.length !== "number" || (typeof data !== "object")) {
    throw new ParamError(name, "needs data: a number[] or a typed array");
  }
  const size = shape.reduce((a: number, b: number) => a * b, 1);
  if (data.length !== size) throw new ParamError(name, `shape [${shape}] holds ${size} values but data has ${data.length}`);
  return { name, shape: shape as number[], data, size };
}

function optionalTensor(args: Record<string, unknown>, name: string, rank: number): Checked | undefined {
  return args[name] === undefined ? undefined : tensor(args, name, rank);
}

function int(args: Record<string, unknown>, name: string, lo: number, hi = Number.MAX_SAFE_INTEGER): number {
  if (typeof args !== "object" || args === null) throw new ParamError("args", "must be an object of the operator's named inputs");
  const n = args[name];
  if (typeof n !== "number" || !Number.isInteger(n)) throw new ParamError(name, `must be an integer, got ${JSON.stringify(n)}`);
  if (n < lo || n > hi) throw new ParamError(name, `must be in [${lo}, ${hi}], got ${n}`);
  return n;
}

function flag(args: Record<string, unknown>, name: string): boolean {
  return optionalBoolean(name, args[name]) ?? false;
}

function sameShape(a: Checked, expected: number[], hint: string): void {
  if (a.shape.length !== expected.length || a.shape.some((n, i) => n !== expected[i])) {
    throw new ParamError(a.name, `must have shape [${expected}] (${hint}), got [${a.shape}]`);
  }
}

// ---------------------------------------------------------------- one arena per call

/** A call's memory: laid out from the checked shapes (ArenaPlan), created once, filled, run, read back. */
class Scratch {
  readonly arena: Arena;
  private constructor(arena: Arena, readonly k: Kernels) {
    this.arena = arena;
  }
  static async create(plan: ArenaPlan, opts: OpsOptions = {}): Promise<Scratch> {
    if (optionalBoolean("relaxed", opts.relaxed) && !hasRelaxedSimd()) {
      throw new UnsupportedError("relaxed: this runtime does not run relaxed SIMD; leave relaxed unset");
    }
    const arena = new Arena(plan.bytes);
    const k = await instantiateKernels(arena.memory, pickVariant({ shared: false, relaxed: opts.relaxed }));
    return new Scratch(arena, k);
  }
  /** Copies a checked tensor in (converting to f32). */
  put(t: Checked): number {
    const p = this.arena.alloc(t.size * 4, 64, t.name);
    this.arena.f32(p, t.size).set(t.data);
    return p;
  }
  floats(n: number, what: string): number {
    return this.arena.alloc(Math.max(1, n) * 4, 64, what);
  }
  read(p: number, shape: number[]): Tensor {
    return { shape, data: this.arena.f32(p, shape.reduce((a, b) => a * b, 1)).slice() };
  }
}

function plan(items: Array<[string, number]>): ArenaPlan {
  const p = new ArenaPlan();
  for (const [what, floats] of items) p.add(what, Math.max(1, floats) * 4);
  return p;
}

// ---------------------------------------------------------------- AFT

interface AftChecked {
  x: Checked;
  B: number;
  T: number;
  D: number;
  w: Checked[]; // wq wk wv wo
  b: Array<Checked | undefined>; // bq bk bv bo
  causal: boolean;
}

function checkAft(args: Record<string, unknown>): AftChecked {
  const x = tensor(args, "x", 3);
  const [B, T, D] = x.shape;
  const w = ["wq", "wk", "wv", "wo"].map((n) => {
    const t = tensor(args, n, 2);
    sameShape(t, [D, D], `nn.Linear(${D}, ${D}) weight, [out, in]`);
    return t;
  });
  const b = ["bq", "bk", "bv", "bo"].map((n) => {
    const t = optionalTensor(args, n, 1);
    if (t) sameShape(t, [D], "a bias of the projection");
    return t;
  });
  return { x, B, T, D, w, b, causal: flag(args, "causal") };
}

/** The four projections' inputs in the arena, and q, k, v, y = x W^T (+ b) for one batch row at a time. */
class AftLayer {
  readonly x: number;
  readonly w: number[];
  readonly b: Array<number | undefined>;
  readonly q: number;
  readonly k: number;
  readonly v: number;
  readonly y: number;
  readonly out: number;
  constructor(readonly s: Scratch, readonly c: AftChecked) {
    this.x = s.put(c.x);
    this.w = c.w.map((t) => s.put(t));
    this.b = c.b.map((t) => (t ? s.put(t) : undefined));
    const n = c.T * c.D;
    [this.q, this.k, this.v, this.y] = ["q", "k", "v", "mix"].map((what) => s.floats(n, what));
    this.out = s.floats(c.B * n, "out");
  }
  static floats(c: AftChecked): Array<[string, number]> {
    const n = c.T * c.D;
    return [
      ["x", c.B * n],
      ...c.w.map((t): [string, number] => [t.name, t.size]),
      ...c.b.map((t): [string, number] => [t?.name ?? "bias", t?.size ?? 0]),
      ["q", n],
      ["k", n],
      ["v", n],
      ["mix", n],
      ["out", c.B * n],
    ];
  }
  private linear(out: number, x: number, i: number): void {
    const { T, D } = this.c;
    this.s.k.matmul_f32(out, x, this.w[i], D, D, T, 0, D);
    const b = this.b[i];
    if (b !== undefined) this.s.k.add_bias(out, b, D, T);
  }
  /** Projects batch row `bi` into q, k, v. */
  project(bi: number): void {
    const xb = this.x + bi * this.c.T * this.c.D * 4;
    this.linear(this.q, xb, 0);
    this.linear(this.k, xb, 1);
    this.linear(this.v, xb, 2);
  }
  /** out[bi] = mix W_o^T (+ b_o). */
  output(bi: number): void {
    this.linear(this.out + bi * this.c.T * this.c.D * 4, this.y, 3);
  }
  result(): Tensor {
    return this.s.read(this.out, [this.c.B, this.c.T, this.c.D]);
  }
}

const AFT_FULL_ARGS = optionNames<ArgsOf<typeof aftFull>>()(["x", "wq", "wk", "wv", "wo", "u", "v", "bq", "bk", "bv", "bo", "causal"]);

/**
 * AFT-full (seed: AFTFull): y = (sigmoid(Q) * (exp(w) @ (exp(K) * V)) / (exp(w) @ exp(K))) W_o^T with w = (u v^T)[:T, :T],
 * exp(w) shifted by each row's maximum and exp(K) by each position's maximum over its channels, as the seed does.
 * The bias is computed a row at a time from u and v (never T x T in memory). `causal: true` masks t' > t.
 */
export async function aftFull(args: {
  x: TensorInput;
  wq: TensorInput;
  wk: TensorInput;
  wv: TensorInput;
  wo: TensorInput;
  u: TensorInput;
  v: TensorInput;
  bq?: TensorInput;
  bk?: TensorInput;
  bv?: TensorInput;
  bo?: TensorInput;
  causal?: boolean;
}, opts?: OpsOptions): Promise<Tensor> {
  const a = fieldsOf("aftFull", args, AFT_FULL_ARGS, opts);
  const c = checkAft(a);
  const u = tensor(a, "u", 3), v = tensor(a, "v", 3);
  const [, M, W] = u.shape;
  sameShape(u, [1, M, W], "(1, max_seq_len, w_dim)");
  sameShape(v, [1, M, W], "like u");
  if (c.T > M) throw new ParamError("x", `has ${c.T} positions but u and v cover max_seq_len ${M}`);
  const s = await Scratch.create(
    plan([...AftLayer.floats(c), ["u", u.size], ["v", v.size], ["ek", c.T * c.D], ["ekv", c.T * c.D], ["wrow", c.T], ["den", c.D]]),
    opts,
  );
  const layer = new AftLayer(s, c);
  const up = s.put(u), vp = s.put(v);
  const ek = s.floats(c.T * c.D, "ek"), ekv = s.floats(c.T * c.D, "ekv"), wrow = s.floats(c.T, "wrow"), den = s.floats(c.D, "den");
  for (let bi = 0; bi < c.B; bi++) {
    layer.project(bi);
    s.k.aft_keys(ek, ekv, layer.k, layer.v, c.T, c.D);
    s.k.aft_mix(layer.y, layer.q, ek, ekv, c.T, c.D, 0, 0, up, vp, W, 0, c.causal ? 1 : 0, wrow, den);
    layer.output(bi);
  }
  return layer.result();
}

function checkWbias(a: Record<string, unknown>, T: number): { wbias: Checked; M: number } {
  const wbias = tensor(a, "wbias", 3);
  const M = wbias.shape[1];
  sameShape(wbias, [1, M, M], "(1, max_seq_len, max_seq_len)");
  if (T > M) throw new ParamError("x", `has ${T} positions but wbias covers max_seq_len ${M}`);
  return { wbias, M };
}

const AFT_LOCAL_ARGS = optionNames<ArgsOf<typeof aftLocal>>()([
  "x",
  "wq",
  "wk",
  "wv",
  "wo",
  "wbias",
  "local_context",
  "bq",
  "bk",
  "bv",
  "bo",
  "causal",
]);

/**
 * AFT-local (seed: AFTLocal): AFT with the learned bias wbias[:T, :T] kept where |t - t'| < local_context and
 * -inf elsewhere, so each row mixes 2 local_context - 1 positions (local_context when causal).
 */
export async function aftLocal(args: {
  x: TensorInput;
  wq: TensorInput;
  wk: TensorInput;
  wv: TensorInput;
  wo: TensorInput;
  wbias: TensorInput;
  local_context: number;
  bq?: TensorInput;
  bk?: TensorInput;
  bv?: TensorInput;
  bo?: TensorInput;
  causal?: boolean;
}, opts?: OpsOptions): Promise<Tensor> {
  const a = fieldsOf("aftLocal", args, AFT_LOCAL_ARGS, opts);
  const c = checkAft(a);
  const { wbias, M } = checkWbias(a, c.T);
  const S = int(a, "local_context", 1);
  const s = await Scratch.create(
    plan([...AftLayer.floats(c), ["wbias", wbias.size], ["ek", c.T * c.D], ["ekv", c.T * c.D], ["wrow", c.T], ["den", c.D]]),
    opts,
  );
  const layer = new AftLayer(s, c);
  const wb = s.put(wbias);
  const ek = s.floats(c.T * c.D, "ek"), ekv = s.floats(c.T * c.D, "ekv"), wrow = s.floats(c.T, "wrow"), den = s.floats(c.D, "den");
  for (let bi = 0; bi < c.B; bi++) {
    layer.project(bi);
    s.k.aft_keys(ek, ekv, layer.k, layer.v, c.T, c.D);
    s.k.aft_mix(layer.y, layer.q, ek, ekv, c.T, c.D, wb, M, 0, 0, 0, S, c.causal ? 1 : 0, wrow, den);
    layer.output(bi);
  }
  return layer.result();
}

const AFT_SIMPLE_ARGS = optionNames<ArgsOf<typeof aftSimple>>()(["x", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo", "causal"]);

/**
 * AFT-simple (seed: AFTSimple): y = (sigmoid(Q) * sum_t softmax_t(K) * V) W_o^T, softmax over the sequence per
 * channel. `causal: true` sums t' <= t only, by the recurrence aftSimpleDecoder steps through (T * D time).
 */
export async function aftSimple(args: {
  x: TensorInput;
  wq: TensorInput;
  wk: TensorInput;
  wv: TensorInput;
  wo: TensorInput;
  bq?: TensorInput;
  bk?: TensorInput;
  bv?: TensorInput;
  bo?: TensorInput;
  causal?: boolean;
}, opts?: OpsOptions): Promise<Tensor> {
  const c = checkAft(fieldsOf("aftSimple", args, AFT_SIMPLE_ARGS, opts));
  const s = await Scratch.create(plan([...AftLayer.floats(c), ["state", 3 * c.D]]), opts);
  const layer = new AftLayer(s, c);
  const state = s.floats(3 * c.D, "state");
  const m = s.arena.f32(state, c.D);
  for (let bi = 0; bi < c.B; bi++) {
    layer.project(bi);
    if (c.causal) {
      m.fill(-Infinity);
      s.arena.f32(state + c.D * 4, 2 * c.D).fill(0);
      s.k.aft_simple_step(layer.y, layer.q, layer.k, layer.v, c.T, c.D, state);
    } else {
      s.k.aft_simple(layer.y, layer.q, layer.k, layer.v, c.T, c.D, state);
    }
    layer.output(bi);
  }
  return layer.result();
}

// ---------------------------------------------------------------- AFT decoders (causal, one token at a time)

/** A causal AFT mixer run token by token: step(q, k, v) takes one position's projected rows (dim floats each). */
export interface AftDecoder {
  readonly dim: number;
  /** Positions consumed so far (the next step's position). */
  readonly position: number;
  /** Bytes of state the decoder keeps, whatever the sequence length. */
  readonly stateBytes: number;
  /** sigmoid(q) * (the causal mix up to this position): a view valid until the next step. Multiply by W_o yourself. */
  step(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>): Float32Array;
  /** Back to position 0. */
  reset(): void;
}

class DecoderIO {
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly out: Float32Array;
  constructor(readonly s: Scratch, readonly dim: number) {
    [this.q, this.k, this.v, this.out] = ["q", "k", "v", "out"].map((what) => s.arena.f32(s.floats(dim, what), dim));
  }
  /** Checks all three rows, then copies them in (no allocation per token). */
  load(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>): void {
    this.check("q", q);
    this.check("k", k);
    this.check("v", v);
    this.q.set(q);
    this.k.set(k);
    this.v.set(v);
  }
  private check(name: string, a: ArrayLike<number>): void {
    if (!a || a.length !== this.dim) throw new ParamError(name, `must hold dim = ${this.dim} values, got ${a?.length}`);
  }
}

const AFT_SIMPLE_DECODER_ARGS = optionNames<ArgsOf<typeof aftSimpleDecoder>>()(["dim"]);

/**
 * Causal AFT-simple as a recurrence: per channel a running max, numerator and denominator (3 dim floats of
 * state), updated in O(dim) per token; step t returns what aftSimple({ causal: true }) gives at row t, before W_o.
 */
export async function aftSimpleDecoder(args: { dim: number }, opts?: OpsOptions): Promise<AftDecoder> {
  const dim = int(fieldsOf("aftSimpleDecoder", args, AFT_SIMPLE_DECODER_ARGS, opts), "dim", 1, 1 << 24);
  const s = await Scratch.create(plan([["q", dim], ["k", dim], ["v", dim], ["out", dim], ["state", 3 * dim]]), opts);
  const io = new DecoderIO(s, dim);
  const state = s.floats(3 * dim, "state");
  const stateView = s.arena.f32(state, 3 * dim);
  let position = 0;
  const reset = () => {
    stateView.fill(-Infinity, 0, dim);
    stateView.fill(0, dim);
    position = 0;
  };
  reset();
  return {
    dim,
    get position() {
      return position;
    },
    stateBytes: 3 * dim * 4,
    step(q, k, v) {
      io.load(q, k, v);
      s.k.aft_simple_step(io.out.byteOffset, io.q.byteOffset, io.k.byteOffset, io.v.byteOffset, 1, dim, state);
      position++;
      return io.out;
    },
    reset,
  };
}

const AFT_LOCAL_DECODER_ARGS = optionNames<ArgsOf<typeof aftLocalDecoder>>()(["dim", "wbias", "local_context"]);

/**
 * Causal AFT-local token by token: a ring of the last local_context positions' exp-weighted keys and values
 * (2 local_context dim floats of state) and the bias row wbias[t]; step t returns what
 * aftLocal({ causal: true }) gives at row t, before W_o. Positions run to wbias's max_seq_len (its bias is
 * indexed by absolute position), past which step throws ContextLengthError.
 */
export async function aftLocalDecoder(
  args: { dim: number; wbias: TensorInput; local_context: number },
  opts?: OpsOptions,
): Promise<AftDecoder> {
  const a = fieldsOf("aftLocalDecoder", args, AFT_LOCAL_DECODER_ARGS, opts);
  const dim = int(a, "dim", 1, 1 << 24);
  const { wbias, M } = checkWbias(a, 1);
  const S = int(a, "local_context", 1, M);
  const s = await Scratch.create(
    plan([["q", dim], ["k", dim], ["v", dim], ["out", dim], ["wbias", wbias.size], ["ek", S * dim], ["ekv", S * dim], ["wts", M], [
      "den",
      dim,
    ]]),
    opts,
  );
  const io = new DecoderIO(s, dim);
  const wb = s.put(wbias);
  const ek = s.floats(S * dim, "ek"), ekv = s.floats(S * dim, "ekv"), den = s.floats(dim, "den");
  const wts = s.floats(M, "wts"); // the step's weights, indexed by position (scratch, not state)
  let position = 0;
  return {
    dim,
    get position() {
      return position;
    },
    stateBytes: 2 * S * dim * 4,
    step(q, k, v) {
      if (position >= M) throw new ContextLengthError(position + 1, M, "AFT-local decoder (wbias's max_seq_len)");
      io.load(q, k, v);
      const wrow = wb + position * M * 4;
      s.k.aft_local_step(io.out.byteOffset, io.q.byteOffset, io.k.byteOffset, io.v.byteOffset, ek, ekv, wrow, position, S, dim, wts, den);
      position++;
      return io.out;
    },
    reset() {
      position = 0;
    },
  };
}

// ---------------------------------------------------------------- softmax attention and its sparse forms

interface QkvChecked {
  q: Checked;
  k: Checked;
  v: Checked;
  B: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
}

function checkQkv(a: Record<string, unknown>, sameLength: boolean): QkvChecked {
  const q = tensor(a, "query", 3), k = tensor(a, "key", 3), v = tensor(a, "value", 3);
  const [B, Tq, D] = q.shape;
  const Tk = k.shape[1], Dv = v.shape[2];
  sameShape(k, [B, Tk, D], "batch and width of query");
  sameShape(v, [B, Tk, Dv], "batch and length of key");
  if (sameLength && Tk !== Tq) throw new ParamError("key", `must have as many positions as query (${Tq}), got ${Tk}`);
  return { q, k, v, B, Tq, Tk, D, Dv };
}

async function runAttention(
  c: QkvChecked,
  rows: number,
  opts: OpsOptions | undefined,
  scratchFloats: number,
  run: (s: Scratch, out: number, q: number, k: number, v: number, scratch: number) => void,
): Promise<Tensor> {
  const s = await Scratch.create(
    plan([["query", c.q.size], ["key", c.k.size], ["value", c.v.size], ["out", c.B * rows * c.Dv], ["scratch", scratchFloats]]),
    opts,
  );
  const q = s.put(c.q), k = s.put(c.k), v = s.put(c.v);
  const out = s.floats(c.B * rows * c.Dv, "out"), scratch = s.floats(scratchFloats, "scratch");
  for (let bi = 0; bi < c.B; bi++) {
    run(s, out + bi * rows * c.Dv * 4, q + bi * c.Tq * c.D * 4, k + bi * c.Tk * c.D * 4, v + bi * c.Tk * c.Dv * 4, scratch);
  }
  return s.read(out, [c.B, rows, c.Dv]);
}

const DENSE_ATTENTION_ARGS = optionNames<ArgsOf<typeof denseAttention>>()(["query", "key", "value", "causal"]);

/** Dense softmax attention, softmax(Q K^T / sqrt(D)) V, optionally causal: the baseline the variants are measured against. */
// deno-lint-ignore require-await -- async so that a bad argument is a rejected promise, as for every other operator
export async function denseAttention(
  args: { query: TensorInput; key: TensorInput; value: TensorInput; causal?: boolean },
  opts?: OpsOptions,
): Promise<Tensor> {
  const a = fieldsOf("denseAttention", args, DENSE_ATTENTION_ARGS, opts);
  const causal = flag(a, "causal");
  const c = checkQkv(a, causal);
  return runAttention(
    c,
    c.Tq,
    opts,
    c.Tk,
    (s, out, q, k, v, sc) => s.k.attention_window(out, q, k, v, c.Tq, c.Tk, c.D, c.Dv, -1, causal ? 1 : 0, sc),
  );
}

const SLIDING_WINDOW_ARGS = optionNames<ArgsOf<typeof slidingWindowBidirectional>>()(["query", "key", "value", "window_overlap"]);

/**
 * Longformer's bidirectional sliding window (seed: _sliding_chunks_query_key_matmul and its mask, here as the
 * dense masked reference make.py computes): row t attends keys |t - t'| <= window_overlap. Only the band is
 * computed: T (2w + 1) (D + Dv) time, no T x T scores.
 */
// deno-lint-ignore require-await -- async so that a bad argument is a rejected promise, as for every other operator
export async function slidingWindowBidirectional(
  args: { query: TensorInput; key: TensorInput; value: TensorInput; window_overlap: number },
  opts?: OpsOptions,
): Promise<Tensor> {
  const a = fieldsOf("slidingWindowBidirectional", args, SLIDING_WINDOW_ARGS, opts);
  const c = checkQkv(a, true);
  const w = int(a, "window_overlap", 0);
  return runAttention(c, c.Tq, opts, c.Tk, (s, out, q, k, v, sc) => s.k.attention_window(out, q, k, v, c.Tq, c.Tk, c.D, c.Dv, w, 0, sc));
}

const SPARSE_TOPK_ARGS = optionNames<ArgsOf<typeof sparseTopK>>()(["query", "key", "value", "k", "num_chunks"]);

/**
 * Sparse top-k attention (seed: sparse_top_k_attention): each query keeps its k largest scores over all keys,
 * softmaxes them and mixes those k values. The seed walks the queries in num_chunks chunks of floor(T / num_chunks)
 * rows, so its output has num_chunks * floor(T / num_chunks) rows (a remainder is dropped); this does the same.
 */
// deno-lint-ignore require-await -- async so that a bad argument is a rejected promise, as for every other operator
export async function sparseTopK(
  args: { query: TensorInput; key: TensorInput; value: TensorInput; k: number; num_chunks: number },
  opts?: OpsOptions,
): Promise<Tensor> {
  const a = fieldsOf("sparseTopK", args, SPARSE_TOPK_ARGS, opts);
  const c = checkQkv(a, false);
  const topk = int(a, "k", 1, c.Tk);
  const chunks = int(a, "num_chunks", 1, c.Tq);
  const rows = chunks * Math.floor(c.Tq / chunks);
  return runAttention(
    c,
    rows,
    opts,
    2 * topk,
    (s, out, q, k, v, sel) => s.k.sparse_topk_attention(out, q, k, v, rows, c.Tk, c.D, c.Dv, topk, sel),
  );
}

// ---------------------------------------------------------------- Linformer

const LINFORMER_ARGS = optionNames<ArgsOf<typeof linformer>>()([
  "x",
  "wq",
  "bq",
  "wk",
  "bk",
  "wv",
  "bv",
  "E",
  "bE",
  "F",
  "bF",
  "max_seq_len",
  "k",
]);

/**
 * Linformer (seed: LinearSelfAttention, one head): q, k, v = x W^T + b (HD wide); K and V are projected along
 * the sequence by E and F (nn.Linear(max_seq_len, k) after zero padding T to max_seq_len); out = softmax(q K'^T /
 * sqrt(HD)) V', shape (B, T, HD), before the seed's wo. Attention costs T k HD instead of T^2 HD.
 */
export async function linformer(args: {
  x: TensorInput;
  wq: TensorInput;
  bq: TensorInput;
  wk: TensorInput;
  bk: TensorInput;
  wv: TensorInput;
  bv: TensorInput;
  E: TensorInput;
  bE: TensorInput;
  F: TensorInput;
  bF: TensorInput;
  max_seq_len: number;
  k: number;
}, opts?: OpsOptions): Promise<Tensor> {
  const a = fieldsOf("linformer", args, LINFORMER_ARGS, opts);
  const x = tensor(a, "x", 3);
  const [B, T, D] = x.shape;
  const M = int(a, "max_seq_len", 1);
  const K = int(a, "k", 1);
  if (T > M) throw new ParamError("x", `has ${T} positions but max_seq_len is ${M}`);
  const wq = tensor(a, "wq", 2);
  const HD = wq.shape[0];
  const ws = [wq, tensor(a, "wk", 2), tensor(a, "wv", 2)];
  for (const w of ws) sameShape(w, [HD, D], `nn.Linear(${D}, head_dim) weight, [out, in]`);
  const bs = ["bq", "bk", "bv"].map((n) => tensor(a, n, 1));
  for (const b of bs) sameShape(b, [HD], "bias of the projection");
  const E = tensor(a, "E", 2), F = tensor(a, "F", 2);
  for (const p of [E, F]) sameShape(p, [K, M], "nn.Linear(max_seq_len, k) weight, [k, max_seq_len]");
  const bE = tensor(a, "bE", 1), bF = tensor(a, "bF", 1);
  for (const p of [bE, bF]) sameShape(p, [K], "bias of the sequence projection");
  const n = T * HD;
  const s = await Scratch.create(
    plan([
      ["x", x.size],
      ...[...ws, ...bs, E, F, bE, bF].map((t): [string, number] => [t.name, t.size]),
      ["q", n],
      ["k", n],
      ["v", n],
      ["k'", K * HD],
      ["v'", K * HD],
      ["out", B * n],
      ["scores", K],
    ]),
    opts,
  );
  const xp = s.put(x);
  const [wqp, wkp, wvp] = ws.map((t) => s.put(t));
  const [bqp, bkp, bvp] = bs.map((t) => s.put(t));
  const Ep = s.put(E), Fp = s.put(F), bEp = s.put(bE), bFp = s.put(bF);
  const q = s.floats(n, "q"), k = s.floats(n, "k"), v = s.floats(n, "v");
  const kp = s.floats(K * HD, "k'"), vp = s.floats(K * HD, "v'");
  const out = s.floats(B * n, "out"), sc = s.floats(K, "scores");
  for (let bi = 0; bi < B; bi++) {
    const xb = xp + bi * T * D * 4;
    for (const [o, w, b] of [[q, wqp, bqp], [k, wkp, bkp], [v, wvp, bvp]]) {
      s.k.matmul_f32(o, xb, w, D, HD, T, 0, HD);
      s.k.add_bias(o, b, HD, T);
    }
    s.k.linformer_project(kp, Ep, bEp, k, T, K, HD, M);
    s.k.linformer_project(vp, Fp, bFp, v, T, K, HD, M);
    s.k.attention_window(out + bi * n * 4, q, kp, vp, T, K, HD, HD, -1, 0, sc);
  }
  return s.read(out, [B, T, HD]);
}

// ---------------------------------------------------------------- asymmetric u8 quantization

/** The seed's quantize_tensor(x, 8) and dequantize_tensor, per tensor. */
export interface AsymU8 {
  scale: number;
  zeroPoint: number;
  q: { shape: number[]; data: Uint8Array };
  dequant: Tensor;
}

const QUANTIZE_ASYM_U8_ARGS = optionNames<ArgsOf<typeof quantizeAsymU8>>()(["x"]);

/**
 * Per-tensor asymmetric 8-bit quantization as the seed defines it: scale = (max - min) / 255,
 * zeroPoint = -min / scale (not rounded), q = clamp(round(x / scale + zeroPoint), 0, 255) with ties to even,
 * dequant = scale (q - zeroPoint); all f32, as PyTorch computes them. A constant or non-finite x has no such
 * scale: ParamError.
 */
export async function quantizeAsymU8(args: { x: TensorInput }, opts?: OpsOptions): Promise<AsymU8> {
  const x = tensor(fieldsOf("quantizeAsymU8", args, QUANTIZE_ASYM_U8_ARGS, opts), "x");
  // the range check before any memory is reserved (the kernel computes scale and zero point itself)
  let lo = Infinity, hi = -Infinity, finite = true;
  for (let i = 0; i < x.size; i++) {
    const a = x.data[i];
    finite &&= Number.isFinite(a);
    if (a < lo) lo = a;
    if (a > hi) hi = a;
  }
  if (!finite || !(hi > lo)) {
    throw new ParamError("x", `needs finite values with max > min for an asymmetric scale (got min ${lo}, max ${hi})`);
  }
  const s = await Scratch.create(plan([["x", x.size], ["q", Math.ceil(x.size / 4)], ["dequant", x.size], ["params", 2]]), opts);
  const xp = s.put(x);
  const q = s.arena.alloc(x.size, 64, "q"), dq = s.floats(x.size, "dequant"), params = s.floats(2, "params");
  s.k.quantize_asym_u8(q, xp, x.size, params);
  const [scale, zeroPoint] = s.arena.f32(params, 2);
  if (!(scale > 0) || !Number.isFinite(scale) || !Number.isFinite(zeroPoint)) {
    throw new ParamError("x", `needs finite values with max > min for an asymmetric scale (got scale ${scale}, zero point ${zeroPoint})`);
  }
  s.k.dequantize_asym_u8(dq, q, x.size, scale, zeroPoint);
  return { scale, zeroPoint, q: { shape: x.shape.slice(), data: s.arena.u8(q, x.size).slice() }, dequant: s.read(dq, x.shape.slice()) };
}
