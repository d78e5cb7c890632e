// Dispatch encoding: the compiled pipelines, the bind groups, the params slots (one uniform buffer, 256 bytes a
// dispatch, written once a submit), the command encoder and its one compute pass, the submits, profiling's timed
// passes, and the plans (a decode step's dispatches recorded once and replayed). It knows kernels only by key and
// source: which kernel an op takes is choose.ts's, what it computes the backend's.
import type { Weight } from "../backend.ts";
import { COPY_DST, COPY_SRC, type Gpu, MAP_READ, STORAGE, UNIFORM } from "./device.ts";
import { type DeviceMemory, MAX_GROUPS } from "./memory.ts";
import { prelude } from "./wgsl-common.ts";

/** One dispatch's params: 128 bytes used, 256 apart (minUniformBufferOffsetAlignment). */
export const PARAM_SLOT = 256;
export const PARAM_WORDS = 32;
/** Params slots: dispatches a submit may hold at most. */
export const PARAM_SLOTS = 4096;
/** Timestamps a profiling query set holds: two a dispatch. */
export const MAX_QUERIES = 4096;

/**
 * A decode step's dispatches as replayForward recorded them: pipeline, bind group, params (PARAM_WORDS each) and
 * grid, replayed as they are on later steps. generation: the bind groups' (a grown state buffer drops them).
 * before/after: the PlanState (quantized-activation tracking) the recording started from and left.
 */
interface Plan {
  generation: number;
  before: number[];
  after: number[];
  pipes: Gpu[];
  groups: Gpu[];
  grid: number[];
  params: number[];
  words: Uint32Array;
  count: number;
}

/**
 * Host state a plan was recorded from and leaves (the backend's quantized-activation tracking): a plan replays only
 * where the state `matches` its start, and `set`s its end after.
 */
export interface PlanState {
  matches(a: number[]): boolean;
  get(): number[];
  set(a: number[]): void;
}

export class Recorder {
  /** Dispatches recorded so far (what fusion saves shows here). */
  dispatches = 0;
  private readonly layout: Gpu;
  private readonly pipelineLayout: Gpu;
  /** Fused matmuls bind up to four weight tensors (q, k, v or gate, up; and the RMSNorm weight of a norm prologue). */
  private readonly layout3: Gpu;
  private readonly pipelineLayout3: Gpu;
  private readonly pipelines = new Map<string, Gpu>();
  /** Bind groups of one weight range (by the weight's address (0: none), then the offset) and of fused matmuls (four addresses in turn). */
  private readonly bindGroups1 = new Map<number, Map<number, Gpu>>();
  private readonly bindGroups3 = new Map<number, unknown>();
  /** The memory generation the cached bind groups bind (a state buffer remade since drops them). */
  private groupsGeneration = -1;
  private readonly keys = new Map<number, string>();
  /** replayForward's plans by the caller's key, and the one being recorded (dispatch appends to it). */
  private plans = new WeakMap<object, Plan>();
  private recording: Plan | null = null;

  private readonly params: Gpu;
  /** The params' host copy (1 MiB), copied to `params` at each submit. */
  private readonly paramsHost = new Uint32Array((PARAM_SLOTS * PARAM_SLOT) / 4);
  private readonly paramOffset = new Uint32Array(1);
  private readonly dummy: Gpu;
  private slot = 0;
  private encoder: Gpu = null;
  private pass: Gpu = null;

  /** profile: GPU time per kernel (bench/webgpu.ts --profile), where the adapter has timestamp queries. */
  private readonly querySet: Gpu = null;
  private readonly slotKeys: string[] = [];
  private readonly profileReads: Promise<void>[] = [];
  private readonly gpuTime = new Map<string, { count: number; ns: number }>();

  /**
   * submitEvery: dispatches a submit holds at most; profile: each dispatch in its own timed pass (where the device
   * has timestamp-query); hasDot4: WGSL's packed 4x8 integer dot product, for the kernels' prelude.
   */
  constructor(
    private readonly device: Gpu,
    private readonly memory: DeviceMemory,
    private readonly submitEvery: number,
    profile: boolean,
    private readonly hasDot4: boolean,
  ) {
    if (profile && device.features.has("timestamp-query")) {
      this.querySet = device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
    }
    this.layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: 4, buffer: { type: "storage" } },
        { binding: 1, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 2, visibility: 4, buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAM_WORDS * 4 } },
      ],
    });
    this.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.layout] });
    this.layout3 = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: 4, buffer: { type: "storage" } },
        { binding: 1, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 2, visibility: 4, buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAM_WORDS * 4 } },
        { binding: 3, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 4, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 5, visibility: 4, buffer: { type: "read-only-storage" } },
      ],
    });
    this.pipelineLayout3 = device.createPipelineLayout({ bindGroupLayouts: [this.layout3] });
    this.params = device.createBuffer({ size: PARAM_SLOTS * PARAM_SLOT, usage: UNIFORM | COPY_DST });
    this.dummy = device.createBuffer({ size: 16, usage: STORAGE });
  }

  /** Whether dispatches run in timed passes (profile, with timestamp queries): plans are not kept then. */
  get profiling(): boolean {
    return this.querySet !== null;
  }

  /** Whether the pipeline of `key` is built (its source need not be made again). */
  built(key: string): boolean {
    return this.pipelines.has(key);
  }

  /** Destroys the params and the dummy binding and forgets every pipeline, bind group and plan (the device is being closed). */
  destroy(): void {
    this.params?.destroy();
    this.dummy?.destroy();
    this.bindGroups1.clear();
    this.bindGroups3.clear();
    this.pipelines.clear();
    this.plans = new WeakMap();
  }

  private open(): Gpu {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.encoder;
  }

  /** The open encoder with no compute pass open, for a copy (memory.ts read). */
  copyEncoder(): Gpu {
    const enc = this.open();
    this.pass.end();
    this.pass = null;
    return enc;
  }

  /** Ends the pass and submits everything recorded, with its params. */
  submit(): void {
    if (!this.encoder) return;
    if (this.pass) this.pass.end();
    if (this.slot > 0) this.device.queue.writeBuffer(this.params, 0, this.paramsHost, 0, (this.slot * PARAM_SLOT) / 4);
    const timed = this.querySet && this.slot > 0 ? this.resolveTimes(this.encoder, this.slot) : null;
    this.device.queue.submit([this.encoder.finish()]);
    if (timed) this.profileReads.push(timed());
    this.encoder = this.pass = null;
    this.slot = 0;
  }

  /** Profiling: copies this submit's timestamps out; the returned reader adds them to gpuTime once the GPU is done. */
  private resolveTimes(enc: Gpu, slots: number): () => Promise<void> {
    const bytes = slots * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: 0x200 | COPY_SRC }); // QUERY_RESOLVE
    const host = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
    enc.resolveQuerySet(this.querySet, 0, 2 * slots, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, host, 0, bytes);
    const keys = this.slotKeys.slice(0, slots);
    return async () => {
      await host.mapAsync(1);
      const t = new BigUint64Array(host.getMappedRange());
      keys.forEach((key, i) => {
        const e = this.gpuTime.get(key) ?? { count: 0, ns: 0 };
        e.count++;
        e.ns += Number(t[2 * i + 1] - t[2 * i]);
        this.gpuTime.set(key, e);
      });
      host.unmap();
      host.destroy();
      resolved.destroy();
    };
  }

  /** Profiling: GPU nanoseconds per kernel (pipeline key) since the last call, once the work submitted is done. */
  async gpuTimes(): Promise<Map<string, { count: number; ns: number }>> {
    await Promise.all(this.profileReads.splice(0));
    const out = new Map(this.gpuTime);
    this.gpuTime.clear();
    return out;
  }

  /** The pipeline of `key`, compiled from `source` the first time (a function: only called then). */
  private pipeline(key: string, source: string | (() => string), weights = 1, vec4Weights = false): Gpu {
    let p = this.pipelines.get(key);
    if (!p) {
      const code = typeof source === "string" ? source : source();
      const module = this.device.createShaderModule({ code: prelude(this.hasDot4, weights, vec4Weights) + code, label: key });
      const layout = weights > 1 ? this.pipelineLayout3 : this.pipelineLayout;
      p = this.device.createComputePipeline({ layout, compute: { module, entryPoint: "main" }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * A kernel's key for a numeric signature (its parameters packed into one number), made once: template
   * strings built per dispatch would allocate every token.
   */
  keyFor(signature: number, make: (s: number) => string): string {
    let k = this.keys.get(signature);
    if (k === undefined) this.keys.set(signature, k = make(signature));
    return k;
  }

  /** Bind group for the state buffer plus one weight range (or none), cached by the range's address (no key string). */
  private bindGroup(w: Weight | null, offset = 0, size = 0): Gpu {
    const ptr = w ? w.ptr : 0;
    let byOffset = this.bindGroups1.get(ptr);
    if (!byOffset) this.bindGroups1.set(ptr, byOffset = new Map());
    let g = byOffset.get(offset);
    if (!g) {
      const wb = w ? this.memory.weightBuffer(w) : undefined;
      const buf = wb ? wb.buffer : this.dummy;
      const entry = w ? { buffer: buf, offset: wb!.base + offset, size: size || wb!.size - offset } : { buffer: buf };
      g = this.device.createBindGroup({
        layout: this.layout,
        entries: [{ binding: 0, resource: { buffer: this.memory.stateBuffer() } }, { binding: 1, resource: entry }, {
          binding: 2,
          resource: { buffer: this.params, size: PARAM_WORDS * 4 },
        }],
      });
      byOffset.set(offset, g);
    }
    return g;
  }

  /**
   * Bind group for the state buffer plus up to four weight tensors (a fused matmul; the fourth the norm weight of
   * a prologue); a row view binds at its offset. Cached in maps keyed by each tensor's address in turn.
   */
  private bindGroup3(ws: Array<Weight | null>): Gpu {
    let m: Map<number, unknown> = this.bindGroups3;
    for (let i = 0; i < 3; i++) {
      const k = ws[i]?.ptr ?? 0;
      let next = m.get(k) as Map<number, unknown> | undefined;
      if (!next) m.set(k, next = new Map());
      m = next;
    }
    const last = ws[3]?.ptr ?? 0;
    let g = m.get(last);
    if (!g) {
      const res = (i: number) => {
        if (!ws[i]) return { buffer: this.dummy };
        const wb = this.memory.weightBuffer(ws[i]!);
        return wb.base === 0 ? { buffer: wb.buffer } : { buffer: wb.buffer, offset: wb.base, size: wb.size };
      };
      g = this.device.createBindGroup({
        layout: this.layout3,
        entries: [
          { binding: 0, resource: { buffer: this.memory.stateBuffer() } },
          { binding: 1, resource: res(0) },
          { binding: 2, resource: { buffer: this.params, size: PARAM_WORDS * 4 } },
          { binding: 3, resource: res(1) },
          { binding: 4, resource: res(2) },
          { binding: 5, resource: res(3) },
        ],
      });
      m.set(last, g);
    }
    return g;
  }

  /**
   * Records one dispatch. params: up to 32 u32 (addresses already in words), read before this returns (the
   * callers fill one array of the backend's). (gx, gy) workgroups, or gy = 0: gx is a 1-D count of
   * 256-thread groups, folded into x and y. w: one weight range, or the four tensors of a fused matmul.
   */
  dispatch(
    key: string,
    source: string | (() => string),
    params: ArrayLike<number>,
    gx: number,
    gy: number,
    w: Weight | Array<Weight | null> | null = null,
    wOffset = 0,
    wSize = 0,
    weightBindings = 1,
    vec4Weights = false,
  ): void {
    if (this.memory.stateBuffer() && this.groupsGeneration !== this.memory.generation) {
      // the state buffer was remade: bind groups made before bind the old one
      this.bindGroups1.clear();
      this.bindGroups3.clear();
      this.groupsGeneration = this.memory.generation;
    }
    if (this.slot >= this.submitEvery) this.submit();
    const multi = Array.isArray(w);
    const pipe = this.pipeline(key, source, multi ? Math.max(3, weightBindings) : 1, vec4Weights);
    const bg = multi ? this.bindGroup3(w) : this.bindGroup(w, wOffset, wSize);
    if (this.querySet) {
      // one timed pass per dispatch
      this.open();
      this.pass.end();
      this.pass = this.encoder.beginComputePass({
        timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * this.slot, endOfPassWriteIndex: 2 * this.slot + 1 },
      });
      this.slotKeys[this.slot] = key;
    }
    if (gy === 0) {
      gy = Math.ceil(gx / MAX_GROUPS);
      gx = Math.min(gx, MAX_GROUPS);
    }
    const base = this.encode(pipe, bg, params, 0, gx, gy);
    const rec = this.recording;
    if (rec) {
      rec.pipes.push(pipe);
      rec.groups.push(bg);
      rec.grid.push(gx, gy);
      for (let i = 0; i < PARAM_WORDS; i++) rec.params.push(this.paramsHost[base + i]);
      rec.count++;
    }
  }

  /**
   * One dispatch into the open pass (opened here): PARAM_WORDS params from `params[from]` (zeros past its end) into
   * the next slot, the pipeline, the bind group at that slot's offset, and the grid (none where it is empty). Returns
   * the slot's first word in paramsHost. dispatch and a plan's replay both end here.
   */
  private encode(pipe: Gpu, bg: Gpu, params: ArrayLike<number>, from: number, gx: number, gy: number): number {
    this.open();
    const base = (this.slot * PARAM_SLOT) / 4, host = this.paramsHost;
    for (let i = 0; i < PARAM_WORDS; i++) host[base + i] = from + i < params.length ? params[from + i] : 0;
    this.dispatches++;
    this.pass.setPipeline(pipe);
    // the typed-array form: Deno converts a plain array of offsets element by element (0.5 us a dispatch)
    this.paramOffset[0] = this.slot * PARAM_SLOT;
    this.pass.setBindGroup(0, bg, this.paramOffset, 0, 1);
    this.slot++;
    if (gx > 0 && gy > 0) this.pass.dispatchWorkgroups(gx, gy);
    return base;
  }

  /**
   * The plan of `key` replayed, where there is one for this state buffer whose start `state` matches (then set to
   * its end): its dispatches encoded again as recorded, with no fusing, key or bind group lookup. False where not.
   */
  replay(key: object, state: PlanState): boolean {
    const p = this.plans.get(key);
    if (!p || p.generation !== this.memory.generation || !state.matches(p.before)) return false;
    for (let d = 0; d < p.count; d++) {
      if (this.slot >= this.submitEvery) this.submit();
      this.encode(p.pipes[d], p.groups[d], p.words, d * PARAM_WORDS, p.grid[2 * d], p.grid[2 * d + 1]);
    }
    state.set(p.after);
    return true;
  }

  /**
   * Records the dispatches `run` makes as the plan of `key`, from and to `state`'s values. Kept unless the state
   * buffer was remade meanwhile (its bind groups would name the old one).
   */
  record(key: object, state: PlanState, run: () => void): void {
    const before = state.get();
    const rec: Plan = {
      generation: this.memory.generation,
      before,
      after: before,
      pipes: [],
      groups: [],
      grid: [],
      params: [],
      words: new Uint32Array(0),
      count: 0,
    };
    this.recording = rec;
    try {
      run();
    } finally {
      this.recording = null;
    }
    if (rec.generation !== this.memory.generation) return void this.plans.delete(key);
    rec.after = state.get();
    rec.words = Uint32Array.from(rec.params);
    rec.params = [];
    this.plans.set(key, rec);
  }
}
