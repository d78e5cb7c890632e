/**
 * Placement of a model over several 32-bit WebAssembly memories, for models past one memory's 4 GiB. Layers
 * go whole (their weights and their KV pages) into contiguous groups, one group per memory; the tensors
 * before the first layer (token embeddings) go to the first memory, the ones after the last (output norm and
 * classifier) to the last. Everything else (scratch, page tables, RoPE table) is `shared`: each memory holds
 * its own copy at the same address, so a scratch pointer means the same buffer in every memory.
 */
import { OutOfMemoryError, ParamError } from "../errors.ts";
import { fmtBytes, MAX_ARENA_BYTES, RESERVED } from "./arena.ts";

/** What the planner places: weight bytes by tensor name, KV bytes per layer, and the bytes every memory holds. */
export interface PlacementInput {
  tensors: Array<{ name: string; bytes: number }>;
  nLayers: number;
  /** KV page bytes of one layer (all pages), which live in that layer's memory. */
  kvLayerBytes: number;
  /** Scratch and the other shared regions: held once per memory. */
  sharedBytes: number;
  /** Spread over exactly this many memories (tests force a small model into several); default: as few as hold it. */
  memories?: number;
  /** Bytes one memory may hold (default: 4 GiB, the most a 32-bit memory addresses); tests plan with less. */
  memoryBytes?: number;
}

export interface MemoryPlan {
  memories: number;
  /** Memory of each layer (non-decreasing). */
  layerMemory: Int32Array;
  /** Bytes each memory is created with (its weights, KV pages, shared regions and alignment slack). */
  memoryBytes: number[];
  sharedBytes: number;
  memoryOf(tensorName: string): number;
}

/** Alignment slack per region and per memory (allocations are 64-byte aligned; KV pages round to 16). */
const SLACK_PER_REGION = 64, SLACK_PER_MEMORY = 1 << 20;

/** The layer a tensor belongs to (blk.N.*), -1 before the layers, nLayers after them (output*). */
function tensorLayer(name: string, nLayers: number): number {
  const m = /^blk\.(\d+)\./.exec(name);
  if (m) return Math.min(Number(m[1]), nLayers - 1);
  return name.startsWith("output") ? nLayers : -1;
}

export function planMemories(input: PlacementInput): MemoryPlan {
  const { nLayers, kvLayerBytes, sharedBytes } = input;
  const cap = (input.memoryBytes ?? MAX_ARENA_BYTES) - RESERVED - SLACK_PER_MEMORY - sharedBytes;
  const layerBytes = new Float64Array(nLayers);
  let head = 0, tail = 0;
  for (const t of input.tensors) {
    const l = tensorLayer(t.name, nLayers);
    const b = t.bytes + SLACK_PER_REGION;
    if (l < 0) head += b;
    else if (l >= nLayers) tail += b;
    else layerBytes[l] += b;
  }
  for (let l = 0; l < nLayers; l++) layerBytes[l] += kvLayerBytes + SLACK_PER_REGION;
  const total = head + tail + layerBytes.reduce((a, b) => a + b, 0);
  const tooBig = (what: string, bytes: number) =>
    new OutOfMemoryError(
      `${what} needs ${fmtBytes(bytes)}, more than one WebAssembly memory holds beside the shared scratch ` +
        `(${fmtBytes(Math.max(0, cap))}); use a smaller quantization, context or batch`,
    );
  if (cap <= 0) throw tooBig("the shared scratch", sharedBytes);
  for (let l = 0; l < nLayers; l++) if (layerBytes[l] > cap) throw tooBig(`layer ${l}`, layerBytes[l]);
  if (head > cap) throw tooBig("the token embeddings", head);
  if (tail > cap) throw tooBig("the output layer", tail);

  let layerMemory: Int32Array;
  let count: number;
  if (input.memories !== undefined) {
    count = input.memories;
    if (!(Number.isInteger(count) && count >= 1 && count <= Math.max(1, nLayers))) {
      throw new ParamError("memories", `must be an integer from 1 to the model's ${nLayers} layers, got ${count}`);
    }
    // equal layer counts: what a test wants (every memory holds layers)
    layerMemory = Int32Array.from({ length: nLayers }, (_, l) => Math.floor((l * count) / nLayers));
  } else {
    layerMemory = greedy(layerBytes, head, tail, cap);
    count = layerMemory.length ? Math.max(layerMemory[nLayers - 1] + 1, 1) : 1;
    const lastHoldsTail = fill(layerBytes, layerMemory, head, 0, count - 1) + tail <= cap;
    if (!lastHoldsTail) count++;
    // as many memories as greedy needs, but layers spread by bytes: memories of similar size
    if (count > 1) {
      const balanced = new Int32Array(nLayers);
      let before = head;
      for (let l = 0; l < nLayers; l++) {
        balanced[l] = Math.min(count - 1, Math.floor(((before + layerBytes[l] / 2) / total) * count));
        before += layerBytes[l];
      }
      if (fits(balanced, layerBytes, head, tail, cap, count)) layerMemory = balanced;
    }
  }
  if (!fits(layerMemory, layerBytes, head, tail, cap, count)) {
    throw new OutOfMemoryError(
      `the model (${fmtBytes(total)} without scratch) does not fit ${count} WebAssembly memories of ${fmtBytes(cap)} each`,
    );
  }
  const memoryBytes: number[] = [];
  for (let m = 0; m < count; m++) {
    memoryBytes.push(fill(layerBytes, layerMemory, head, tail, m, count) + sharedBytes + SLACK_PER_MEMORY);
  }
  return {
    memories: count,
    layerMemory,
    memoryBytes,
    sharedBytes,
    memoryOf(name: string): number {
      const l = tensorLayer(name, nLayers);
      return l < 0 ? 0 : l >= nLayers ? count - 1 : layerMemory[l];
    },
  };
}

/** Fills memories front to back, a new one when the next layer does not fit. */
function greedy(layerBytes: Float64Array, head: number, _tail: number, cap: number): Int32Array {
  const out = new Int32Array(layerBytes.length);
  let m = 0, used = head;
  for (let l = 0; l < layerBytes.length; l++) {
    if (used + layerBytes[l] > cap) m++, used = 0;
    out[l] = m;
    used += layerBytes[l];
  }
  return out;
}

/** Placed bytes of memory m (its layers; the head in memory 0, the tail in the last). */
function fill(layerBytes: Float64Array, layerMemory: Int32Array, head: number, tail: number, m: number, count = Infinity): number {
  let n = m === 0 ? head : 0;
  if (m === count - 1) n += tail;
  for (let l = 0; l < layerBytes.length; l++) if (layerMemory[l] === m) n += layerBytes[l];
  return n;
}

function fits(layerMemory: Int32Array, layerBytes: Float64Array, head: number, tail: number, cap: number, count: number): boolean {
  for (let m = 0; m < count; m++) if (fill(layerBytes, layerMemory, head, tail, m, count) > cap) return false;
  return true;
}
