/**
 * The WebAssembly backend over several 32-bit memories, for models past 4 GiB (src/memory/memory-plan.ts
 * places them): one WasmBackend (or ThreadedWasmBackend, with its own Workers sharing its memory) per memory,
 * and this backend in front of them with the forward pass's Backend interface unchanged.
 *
 * Addresses name their memory. A weight or KV page lives in one memory: its address is
 * (memory + 1) * 2^32 + offset, exact in a double. Scratch, page tables and the RoPE table are shared: every
 * memory holds a copy at the same offset (below 2^32), so the kernel instance of any memory reads them at
 * the address the forward pass holds. An op runs in the memory of its weight (or its layer's KV pages);
 * ops without either run where the previous op ran. Before an op, the shared buffers it reads or writes are
 * brought up to date in its memory: each buffer keeps, per memory, the byte range written elsewhere since
 * (a hull), and only that range is copied, so at a layer boundary the residual rows move (a few KB per row)
 * and nothing else. Host writes (tokens, positions, page tables, RoPE rows) go to every memory.
 *
 * The KV cache's pages are striped: page p is one virtual page of the cache, and its layer l part lives in
 * the memory of layer l, at that memory's page p. A page copy (copy-on-write after a fork) copies page p's
 * part in every memory. Results are bit-identical to one memory: the same kernels run on the same bytes.
 */
import type { ByteSource } from "../io/source.ts";
import type { GGMLTypeId } from "../formats/ggml-types.ts";
import { fmtBytes } from "../memory/arena.ts";
import type { MemoryPlan } from "../memory/memory-plan.ts";
import { OutOfMemoryError, ParamError } from "../errors.ts";
import type { Backend, KVLayout, KVType, Weight } from "./backend.ts";
import type { WasmBackend } from "./wasm.ts";

const SPAN = 2 ** 32;
/** Virtual addresses of the striped KV pages: above every memory's tag. */
const KV_TAG = 0x10000 * SPAN;

/** A part is idle when no op of its Workers is pending (ThreadedWasmBackend.idle; one thread: always). */
function idle(b: WasmBackend): boolean {
  return (b as { idle?: boolean }).idle ?? true;
}

export class MultiMemoryBackend implements Backend {
  readonly name = "wasm-multi";
  /** The memory each op ran in last (ops without a weight or layer run there). */
  private current = 0;
  private lastMatmulMemory = -1;
  /** Shared region: [sharedBase, sharedBase + plan.sharedBytes) at the same offset in every memory. */
  private sharedBase = 0;
  private sharedTop = 0;
  /** Shared buffers, sorted by address, and per (buffer, memory) the range written elsewhere since. */
  private bufStart: number[] = [];
  private bufEnd: number[] = [];
  private staleLo: number[] = [];
  private staleHi: number[] = [];
  /** The striped KV region: virtual page size, and per memory with layers its first layer, layer count, base, page bytes. */
  private kv: {
    pageBytes: number;
    layerBytes: number;
    nPages: number;
    groups: Array<{ first: number; n: number; base: number; pageBytes: number }>;
  } | null = null;
  /** Local KV layouts by memory, made once per cache layout. */
  private readonly localKV = new Map<KVLayout, KVLayout[]>();
  /** Weights with their local address, by weight object (made once per weight, not per op). */
  private readonly localWeights = new Map<Weight, Weight>();
  /** Ops that could not run yet (a memory they copy between had Workers still running), in order. */
  private queue: Array<() => boolean> = [];

  constructor(readonly parts: WasmBackend[], readonly plan: MemoryPlan) {
    if (parts.length !== plan.memories) throw new ParamError("parts", `${parts.length} backends for ${plan.memories} memories`);
  }

  get memories(): number {
    return this.parts.length;
  }

  /** Creates every memory at its planned size (the argument, one memory's plan, is not used). */
  async init(_bytes?: number): Promise<void> {
    for (let m = 0; m < this.parts.length; m++) {
      try {
        await this.parts[m].init(this.plan.memoryBytes[m]);
      } catch (e) {
        for (let k = 0; k < m; k++) await this.parts[k].close();
        throw e;
      }
      const base = this.parts[m].alloc(Math.max(this.plan.sharedBytes, 64), "shared regions");
      if (m === 0) this.sharedBase = this.sharedTop = base;
      else if (base !== this.sharedBase) throw new OutOfMemoryError(`memory ${m}: shared regions at ${base}, not ${this.sharedBase}`);
    }
  }

  /** A shared buffer: the same offset in every memory. */
  alloc(bytes: number, what: string, align = 64): number {
    const ptr = Math.ceil(this.sharedTop / align) * align;
    if (ptr + bytes > this.sharedBase + this.plan.sharedBytes) {
      throw new OutOfMemoryError(
        `shared regions full: ${what} needs ${fmtBytes(bytes)}, the plan reserved ${fmtBytes(this.plan.sharedBytes)}`,
      );
    }
    this.sharedTop = ptr + bytes;
    this.bufStart.push(ptr), this.bufEnd.push(ptr + bytes);
    for (let m = 0; m < this.parts.length; m++) this.staleLo.push(0), this.staleHi.push(0);
    return ptr;
  }

  /** A buffer in one memory (a weight): its address names the memory. */
  allocIn(memory: number, bytes: number, what: string, align = 64): number {
    return (memory + 1) * SPAN + this.parts[memory].alloc(bytes, what, align);
  }

  /**
   * The KV cache's pages, striped: each memory holding layers gets nPages pages of its layers' part
   * (layerBytes per layer and page). Returns the virtual address of page 0; pages are pageBytes apart.
   */
  allocKVPages(nPages: number, pageBytes: number, layerBytes: number): number {
    const groups = [];
    const lm = this.plan.layerMemory;
    for (let l = 0; l < lm.length;) {
      let e = l;
      while (e < lm.length && lm[e] === lm[l]) e++;
      const local = Math.ceil(((e - l) * layerBytes) / 16) * 16;
      // resident as the cache hands pages out (commit), as in one memory
      groups[lm[l]] = { first: l, n: e - l, base: this.parts[lm[l]].alloc(nPages * local, "kv cache pages", 64, false), pageBytes: local };
      l = e;
    }
    this.kv = { pageBytes, layerBytes, nPages, groups };
    return KV_TAG;
  }

  /** Makes KV pages resident: [ptr, ptr + bytes) of the striped region is the same pages' part in every memory holding layers. */
  commit(ptr: number, bytes: number): void {
    const kv = this.kv;
    if (ptr < KV_TAG || !kv) return; // weights and shared regions are resident from the start
    const first = (ptr - KV_TAG) / kv.pageBytes, n = bytes / kv.pageBytes;
    if (!Number.isInteger(first) || !Number.isInteger(n)) throw new ParamError("commit", "the striped KV cache commits whole pages only");
    for (let m = 0; m < kv.groups.length; m++) {
      const g = kv.groups[m];
      if (g) this.parts[m].commit(g.base + first * g.pageBytes, n * g.pageBytes);
    }
  }

  // ------------------------------------------------------------ addresses

  private memoryOf(ptr: number): number {
    return ptr >= SPAN && ptr < KV_TAG ? Math.floor(ptr / SPAN) - 1 : -1;
  }

  private weight(w: Weight): Weight {
    let local = this.localWeights.get(w);
    if (!local) {
      const m = this.memoryOf(w.ptr);
      if (m < 0) throw new ParamError("weight", `${w.name} is not in one of the memories (address ${w.ptr})`);
      local = { ...w, ptr: w.ptr - (m + 1) * SPAN };
      this.localWeights.set(w, local);
    }
    return local;
  }

  private weightMemory(w: Weight): number {
    return this.memoryOf(w.ptr);
  }

  private layerMemory(layer: number): number {
    return this.plan.layerMemory[layer];
  }

  /** The layout the kernels of a layer's memory read: that memory's pages and layers (the layer's index there: localLayer). */
  private kvLocal(kv: KVLayout, layer: number): KVLayout {
    const m = this.layerMemory(layer);
    let per = this.localKV.get(kv);
    if (!per) {
      per = [];
      for (let g = 0; g < this.kv!.groups.length; g++) {
        const grp = this.kv!.groups[g];
        if (grp) per[g] = { ...kv, base: grp.base, pageBytes: grp.pageBytes, nLayers: grp.n };
      }
      this.localKV.set(kv, per);
    }
    return per[m];
  }

  private localLayer(layer: number): number {
    return layer - this.kv!.groups[this.layerMemory(layer)].first;
  }

  private findBuffer(ptr: number): number {
    const s = this.bufStart;
    let lo = 0, hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] <= ptr) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && ptr < this.bufEnd[hi] ? hi : -1;
  }

  // ------------------------------------------------------------ keeping shared buffers current

  /** Can memory m take copies of the buffers at these addresses now (no Workers running in a memory involved)? */
  private ready(m: number, ptrs: ArrayLike<number>): boolean {
    const n = this.parts.length;
    for (let i = 0; i < ptrs.length; i++) {
      const b = this.findBuffer(ptrs[i]);
      if (b < 0) continue;
      const k = b * n + m;
      if (this.staleLo[k] >= this.staleHi[k]) continue;
      if (!idle(this.parts[m]) || !idle(this.parts[this.freshMemory(b)])) return false;
    }
    return true;
  }

  /** A memory holding all of buffer b current (the last writer always does). */
  private freshMemory(b: number): number {
    const n = this.parts.length;
    if (this.staleLo[b * n + this.current] >= this.staleHi[b * n + this.current]) return this.current;
    for (let m = 0; m < n; m++) if (this.staleLo[b * n + m] >= this.staleHi[b * n + m]) return m;
    throw new Error("unreachable: a shared buffer is stale in every memory");
  }

  /** Brings the buffers at these addresses up to date in memory m (ready() said it may). */
  private sync(m: number, ptrs: ArrayLike<number>): void {
    const n = this.parts.length;
    for (let i = 0; i < ptrs.length; i++) {
      const b = this.findBuffer(ptrs[i]);
      if (b < 0) continue;
      const k = b * n + m;
      const lo = this.staleLo[k], hi = this.staleHi[k];
      if (lo >= hi) continue;
      const from = this.parts[this.freshMemory(b)].arena.memory.buffer;
      new Uint8Array(this.parts[m].arena.memory.buffer, lo, hi - lo).set(new Uint8Array(from, lo, hi - lo));
      this.staleLo[k] = this.staleHi[k] = 0;
    }
  }

  /** Bytes [ptr, ptr + bytes) of a shared buffer were written in memory m: every other memory's copy is stale there. */
  private wrote(m: number, ptr: number, bytes: number): void {
    const b = this.findBuffer(ptr);
    if (b < 0 || bytes <= 0) return;
    const n = this.parts.length;
    const lo = ptr, hi = Math.min(ptr + bytes, this.bufEnd[b]);
    for (let k = 0; k < n; k++) {
      if (k === m) continue;
      const i = b * n + k;
      if (this.staleLo[i] >= this.staleHi[i]) this.staleLo[i] = lo, this.staleHi[i] = hi;
      else this.staleLo[i] = Math.min(this.staleLo[i], lo), this.staleHi[i] = Math.max(this.staleHi[i], hi);
    }
  }

  /** Address lists for ready/sync, reused (no allocation per op). */
  private readonly p1 = [0];
  private readonly p2 = [0, 0];
  private readonly p3 = [0, 0, 0];

  /** Runs op now, or queues it behind ops that wait for Workers (each op tries its ...Now form first, without a closure). */
  private exec(run: () => boolean): void {
    if (this.queue.length > 0 || !run()) this.queue.push(run);
  }

  // ------------------------------------------------------------ ops

  write(ptr: number, data: ArrayBufferView): void {
    if (this.queue.length > 0) {
      const copy = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      this.queue.push(() => (this.writeNow(ptr, copy), true));
      return;
    }
    this.writeNow(ptr, data);
  }

  private writeNow(ptr: number, data: ArrayBufferView): void {
    const m = this.memoryOf(ptr);
    if (m >= 0) return this.parts[m].write(ptr - (m + 1) * SPAN, data);
    // a shared buffer: the same bytes into every memory (stale ranges of it stay: a superset is still correct)
    for (const p of this.parts) p.write(ptr, data);
  }

  async upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void> {
    await this.drain();
    const m = this.memoryOf(ptr);
    if (m < 0) throw new ParamError("ptr", "uploads go to a weight's memory");
    await this.parts[m].upload(ptr - (m + 1) * SPAN, source, offset, bytes);
  }

  /**
   * A weight's load-time layout (KX today, the lanes layouts as they land) is its memory's backend's: that backend
   * prepares the weight at its local address, in place in its own memory (with its own copy of the shared matmul
   * scratch, never read across memories), and whatever it marks on the weight (its layout) is marked on the
   * weight the forward pass holds, so every memory's ops read that layout. The bytes stay where they were, so
   * the shared buffers and the layer-boundary copies are untouched.
   */
  prepareWeight(w: Weight): void {
    const m = this.weightMemory(w), part = this.parts[m];
    if (!part?.prepareWeight) return;
    const local = { ...w, ptr: w.ptr - (m + 1) * SPAN };
    part.prepareWeight(local);
    Object.assign(w, local, { ptr: w.ptr });
    this.localWeights.delete(w); // made again from w, its layout included, at its first op
  }

  async read(ptr: number, dest: Float32Array): Promise<void> {
    await this.drain();
    const m = this.memoryOf(ptr);
    if (m >= 0) return this.parts[m].read(ptr - (m + 1) * SPAN, dest);
    const b = this.findBuffer(ptr);
    await this.parts[b < 0 ? this.current : this.freshMemory(b)].read(ptr, dest);
  }

  supportsWeight(type: GGMLTypeId): boolean {
    return this.parts[0].supportsWeight(type);
  }

  supportsKV(type: KVType): boolean {
    return this.parts[0].supportsKV(type);
  }

  matmulScratchBytes(type: GGMLTypeId, n: number, T: number): number {
    return this.parts[0].matmulScratchBytes(type, n, T);
  }

  embed(out: number, table: Weight, tokens: number, T: number): void {
    if (this.queue.length > 0 || !this.embedNow(out, table, tokens, T)) this.exec(() => this.embedNow(out, table, tokens, T));
  }
  private embedNow(out: number, table: Weight, tokens: number, T: number): boolean {
    const m = this.weightMemory(table), p = this.p2;
    p[0] = out, p[1] = tokens;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].embed(out, this.weight(table), tokens, T);
    this.wrote(m, out, T * table.cols * 4);
    this.current = m;
    return true;
  }

  /** The matmul scratch is a shared region: each memory's backend quantizes into its own copy, never read across memories. */
  setMatmulScratch(ptr: number, bytes: number): void {
    for (const p of this.parts) p.setMatmulScratch(ptr, bytes);
  }

  matmul(out: number, x: number, w: Weight, T: number, sameInput = false): void {
    if (this.queue.length > 0 || !this.matmulNow(out, x, w, T, sameInput)) this.exec(() => this.matmulNow(out, x, w, T, sameInput));
  }
  private matmulNow(out: number, x: number, w: Weight, T: number, sameInput: boolean): boolean {
    const m = this.weightMemory(w), p = this.p2;
    p[0] = out, p[1] = x;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].matmul(out, x, this.weight(w), T, sameInput && this.lastMatmulMemory === m);
    this.wrote(m, out, T * w.rows * 4);
    this.current = this.lastMatmulMemory = m;
    return true;
  }

  rmsnorm(out: number, x: number, w: Weight, n: number, eps: number, T: number): void {
    if (this.queue.length > 0 || !this.normNow(out, x, w, undefined, n, eps, T, false)) {
      this.exec(() => this.normNow(out, x, w, undefined, n, eps, T, false));
    }
  }
  layernorm(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number): void {
    if (this.queue.length > 0 || !this.normNow(out, x, w, bias, n, eps, T, true)) {
      this.exec(() => this.normNow(out, x, w, bias, n, eps, T, true));
    }
  }
  private normNow(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number, layer: boolean): boolean {
    const m = this.weightMemory(w), p = this.p2;
    if (bias && this.weightMemory(bias) !== m) throw new ParamError("bias", `${bias.name} and ${w.name} lie in different memories`);
    p[0] = out, p[1] = x;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    if (layer) this.parts[m].layernorm(out, x, this.weight(w), bias && this.weight(bias), n, eps, T);
    else this.parts[m].rmsnorm(out, x, this.weight(w), n, eps, T);
    this.wrote(m, out, T * n * 4);
    this.current = m;
    return true;
  }

  addBias(x: number, bias: Weight, rows: number, n: number): void {
    if (this.queue.length > 0 || !this.addBiasNow(x, bias, rows, n)) this.exec(() => this.addBiasNow(x, bias, rows, n));
  }
  private addBiasNow(x: number, bias: Weight, rows: number, n: number): boolean {
    const m = this.weightMemory(bias), p = this.p1;
    p[0] = x;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].addBias(x, this.weight(bias), rows, n);
    this.wrote(m, x, rows * n * 4);
    this.current = m;
    return true;
  }

  rope(x: number, table: number, positions: number, T: number, nHeads: number, headDim: number, ropeDim: number, halves: boolean): void {
    if (this.queue.length > 0 || !this.ropeNow(x, table, positions, T, nHeads, headDim, ropeDim, halves)) {
      this.exec(() => this.ropeNow(x, table, positions, T, nHeads, headDim, ropeDim, halves));
    }
  }
  private ropeNow(
    x: number,
    table: number,
    positions: number,
    T: number,
    nHeads: number,
    headDim: number,
    ropeDim: number,
    halves: boolean,
  ) {
    const m = this.current, p = this.p3;
    p[0] = x, p[1] = table, p[2] = positions;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].rope(x, table, positions, T, nHeads, headDim, ropeDim, halves);
    this.wrote(m, x, T * nHeads * headDim * 4);
    return true;
  }

  add(out: number, a: number, b: number, n: number): void {
    if (this.queue.length > 0 || !this.binaryNow(out, a, b, n, 1, false)) this.exec(() => this.binaryNow(out, a, b, n, 1, false));
  }
  swiglu(out: number, gate: number, up: number, n: number, T: number): void {
    if (this.queue.length > 0 || !this.binaryNow(out, gate, up, n, T, true)) this.exec(() => this.binaryNow(out, gate, up, n, T, true));
  }
  /** add (T = 1) or swiglu: out (T, n) from a and b, in the current memory. */
  private binaryNow(out: number, a: number, b: number, n: number, T: number, swiglu: boolean): boolean {
    const m = this.current, p = this.p3;
    p[0] = out, p[1] = a, p[2] = b;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    if (swiglu) this.parts[m].swiglu(out, a, b, n, T);
    else this.parts[m].add(out, a, b, n);
    this.wrote(m, out, n * T * 4);
    return true;
  }

  gelu(out: number, x: number, n: number): void {
    if (this.queue.length > 0 || !this.unaryNow(out, x, n, false)) this.exec(() => this.unaryNow(out, x, n, false));
  }
  geluErf(out: number, x: number, n: number): void {
    if (this.queue.length > 0 || !this.unaryNow(out, x, n, true)) this.exec(() => this.unaryNow(out, x, n, true));
  }
  private unaryNow(out: number, x: number, n: number, erf: boolean): boolean {
    const m = this.current, p = this.p2;
    p[0] = out, p[1] = x;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    if (erf) this.parts[m].geluErf(out, x, n);
    else this.parts[m].gelu(out, x, n);
    this.wrote(m, out, n * 4);
    return true;
  }

  kvStore(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): void {
    if (this.queue.length > 0 || !this.kvStoreNow(kv, layer, k, v, rows, T)) this.exec(() => this.kvStoreNow(kv, layer, k, v, rows, T));
  }
  private kvStoreNow(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): boolean {
    const m = this.layerMemory(layer), p = this.p3;
    p[0] = k, p[1] = v, p[2] = rows; // page tables are written by the host, so current everywhere
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].kvStore(this.kvLocal(kv, layer), this.localLayer(layer), k, v, rows, T);
    this.current = m;
    return true;
  }

  attention(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, scratch: number): void {
    if (this.queue.length > 0 || !this.attentionNow(out, q, kv, layer, rows, T, scratch)) {
      this.exec(() => this.attentionNow(out, q, kv, layer, rows, T, scratch));
    }
  }
  private attentionNow(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, scratch: number): boolean {
    // scratch (scores, top-k selection) is the kernel's own; ALiBi slopes are host-written, current everywhere
    const m = this.layerMemory(layer), p = this.p3;
    p[0] = out, p[1] = q, p[2] = rows;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].attention(out, q, this.kvLocal(kv, layer), this.localLayer(layer), rows, T, scratch);
    this.wrote(m, out, T * kv.nHeads * kv.headDim * 4);
    this.current = m;
    return true;
  }

  copy(dst: number, src: number, bytes: number): void {
    if (dst >= KV_TAG) {
      if (this.queue.length > 0 || !this.copyPage(dst, src, bytes)) this.exec(() => this.copyPage(dst, src, bytes));
      return;
    }
    if (this.memoryOf(dst) >= 0 || this.memoryOf(src) >= 0) {
      throw new ParamError("copy", "copies within a weight's memory are not supported");
    }
    if (this.queue.length > 0 || !this.copyNow(dst, src, bytes)) this.exec(() => this.copyNow(dst, src, bytes));
  }
  /** A copy between shared buffers (row gathers), in the current memory. */
  private copyNow(dst: number, src: number, bytes: number): boolean {
    const m = this.current, p = this.p2;
    p[0] = dst, p[1] = src;
    if (!this.ready(m, p)) return false;
    this.sync(m, p);
    this.parts[m].copy(dst, src, bytes);
    this.wrote(m, dst, bytes);
    return true;
  }

  /** Copy-on-write of one striped KV page: its part in every memory holding layers. */
  private copyPage(dst: number, src: number, bytes: number): boolean {
    const kv = this.kv!;
    const to = (dst - KV_TAG) / kv.pageBytes, from = (src - KV_TAG) / kv.pageBytes;
    if (!Number.isInteger(to) || !Number.isInteger(from) || bytes !== kv.pageBytes) {
      throw new ParamError("copy", "the striped KV cache copies whole pages only");
    }
    for (let m = 0; m < kv.groups.length; m++) {
      const g = kv.groups[m];
      if (g) this.parts[m].copy(g.base + to * g.pageBytes, g.base + from * g.pageBytes, g.pageBytes);
    }
    return true;
  }

  /** Waits for every queued op and every memory's Workers. */
  async flush(): Promise<void> {
    await this.drain();
  }

  private async drain(): Promise<void> {
    for (;;) {
      for (const p of this.parts) await p.flush();
      while (this.queue.length > 0 && this.queue[0]()) this.queue.shift();
      if (this.queue.length === 0) break;
    }
    for (const p of this.parts) await p.flush();
  }

  async close(): Promise<void> {
    this.queue = [];
    for (const p of this.parts) await p.close();
  }
}
