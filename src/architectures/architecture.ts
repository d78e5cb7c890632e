/**
 * src/architectures/ owns each decoder family, one file each: its hyper-parameters
 * from GGUF keys, its Hugging Face config.json and tensor-name mapping, its
 * tensor table (names and shapes, which the loader checks), how its weights
 * bind, and its forward pass over a batch of rows. registry.ts lists them;
 * blocks.ts holds the pieces several share. This file declares what an
 * architecture provides and the run state every forward pass works in.
 */
import type { Backend, KVLayout } from "../backends/backend.ts";
import { ROW_FIELDS } from "../backends/backend.ts";
import type { ModelFile } from "../formats/types.ts";
import type { Derived, ModelConfig } from "../model/config.ts";
import type { HFMapping } from "../model/config-json.ts";
import type { WeightSet } from "../model/weights.ts";
import type { ArenaPlan, Placement, Region } from "../memory/arena.ts";
import type { ExpectedTensors } from "./blocks.ts";

/**
 * One architecture, typed over its own configuration C and bound weights W.
 * Adding one is its file plus one line in registry.ts. (Members are methods,
 * so an Architecture<GPTConfig, GPTWeights> is an Architecture<ModelConfig, unknown>
 * to the loader, which only passes back what the architecture gave it.)
 */
export interface Architecture<C extends ModelConfig = ModelConfig, W = unknown> {
  /** general.architecture values this file runs. */
  readonly names: readonly string[];
  /** Hugging Face model_type -> the GGUF keys and tensor names it becomes (src/model/hf-config.ts applies it). */
  readonly hf: Readonly<Record<string, HFMapping>>;
  /** The hyper-parameters, from GGUF-style metadata keys. */
  config(file: ModelFile): C;
  /** Every tensor the graph reads, with the ggml shape the configuration implies (the loader checks the file against it). */
  tensors(c: Derived<C>): ExpectedTensors;
  bind(c: Derived<C>, w: WeightSet): W;
  /** The forward pass over T rows (state.tokens, state.positions, state.rows); logits of `logitRows` to state.logits. */
  forward(b: Backend, c: Derived<C>, w: W, s: RunState, kv: KVLayout, T: number, logitRows: ArrayLike<number>): void;
}

/** An architecture whatever its configuration and weights (what the registry and the loader hold). */
export type SomeArchitecture = Architecture<ModelConfig, unknown>;

/** Greedy steps Model.decodeGreedy records between two readbacks (the size of its device scratch, RunState.greedy). */
export const GREEDY_ROWS = 64;

/**
 * Scratch for one forward pass of up to maxRows token rows, planned and placed
 * once at load (llama2.c's RunState). Addresses are in the backend's memory.
 * Every architecture works in these buffers; one that needs another declares
 * it here and sizes it in runStateBytes (the type keeps the two in step).
 */
export interface RunState {
  maxRows: number;
  maxLogitRows: number;
  x: number; // (T, dim) residual stream
  xb: number; // (T, max(dim, qDim)) normed input / attention output
  xb2: number; // (T, dim) projection output before the residual add
  q: number; // (T, qDim)
  k: number; // (T, kvDim)
  v: number; // (T, kvDim)
  hb: number; // (T, hidden) gate, then silu(gate) * up
  hb2: number; // (T, hidden) up
  xLast: number; // (L, dim) rows whose logits are wanted
  logits: number; // (L, vocab)
  tokens: number; // i32 (T)
  positions: number; // i32 (T)
  rows: number; // i32 (T, ROW_FIELDS) per-row KV metadata
  attScratch: number; // attention scores
  ropeTable: number; // (maxPos, ropeDim/2, 2) cos, sin
  greedy: number; // i32 decodeGreedy's device loop: picks (G), positions (G), row metadata (G, ROW_FIELDS)
}

/** The buffers of RunState (its other two fields are counts). */
export type RunBuffer = Exclude<keyof RunState, "maxRows" | "maxLogitRows">;

/** What the run state is sized for. */
export interface RunShape {
  /** Token rows per forward pass (T). */
  rows: number;
  /** Rows whose logits one pass returns (L). */
  logitRows: number;
  /** Positions per sequence: attention scores and the RoPE table. */
  positions: number;
  /** Copies of the attention scores' scratch the backend fills at once (Backend.attentionBands; default 1). */
  attentionBands?: number;
}

/** run.c's malloc_run_state: every buffer with its bytes; `satisfies` fails to compile if one is missing or unknown. */
export function runStateBytes(c: Derived, shape: RunShape): Record<RunBuffer, number> {
  const f = 4, T = shape.rows, L = shape.logitRows, ctx = shape.positions;
  return {
    x: T * c.dim * f,
    xb: T * Math.max(c.dim, c.qDim) * f,
    xb2: T * c.dim * f,
    q: T * c.qDim * f,
    k: T * c.kvDim * f,
    v: T * c.kvDim * f,
    hb: T * c.hiddenDim * f,
    hb2: T * c.hiddenDim * f,
    xLast: L * c.dim * f,
    logits: L * c.vocabSize * f,
    tokens: T * 4,
    positions: T * 4,
    rows: T * ROW_FIELDS * 4,
    attScratch: c.nHeads * ctx * f * (shape.attentionBands ?? 1),
    ropeTable: ctx * c.ropeDim * f,
    greedy: GREEDY_ROWS * (2 + ROW_FIELDS) * 4,
  } satisfies Record<RunBuffer, number>;
}

const CONTEXT_SIZED: ReadonlySet<string> = new Set<RunBuffer>(["attScratch", "ropeTable"]);

/** Adds every run-state buffer to the arena plan, in RunState's order; `runState` then reads their placed addresses. */
export function planRunState(plan: ArenaPlan, c: Derived, shape: RunShape): Record<RunBuffer, Region> {
  // the two buffers that grow with the context are left to be committed by their first writes (WebAssembly memory
  // starts zeroed): a forged context_length of 2^20 otherwise costs 64 MiB and seconds at load (fuzz, README)
  return mapRecord(runStateBytes(c, shape), (bytes, what) => plan.add(`scratch ${what}`, bytes, 64, { lazy: CONTEXT_SIZED.has(what) }));
}

export function runState(regions: Record<RunBuffer, Region>, at: Placement, shape: RunShape): RunState {
  return { maxRows: shape.rows, maxLogitRows: shape.logitRows, ...mapRecord(regions, (r) => at(r)) };
}

/** The same keys, each value mapped (in insertion order). */
function mapRecord<K extends string, A, B>(record: Record<K, A>, f: (value: A, key: K) => B): Record<K, B> {
  const out = {} as Record<K, B>; // every key is set below
  for (const key of Object.keys(record) as K[]) out[key] = f(record[key], key);
  return out;
}
