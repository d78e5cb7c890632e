/**
 * The near-tie rule: when is a backend that does not follow llama.cpp's arithmetic bit for bit (WebGPU on
 * any adapter) allowed to part from llama.cpp's greedy ids? Only at a step where the reference itself was
 * a near tie: llama.cpp's own top two logits closer than NEAR_TIE, and the backend picked llama.cpp's
 * runner-up. Never elsewhere, and never by looking at the backend's own logits, so the verdict is the same
 * on every adapter. After a departure the texts legitimately differ, so the comparison stops there.
 *
 * The goldens carry llama.cpp's ids, not always its margins; kvasm's exact mode (WASM, F16 cache,
 * ggmlOrder) reproduces llama.cpp's logits bit for bit, so it recomputes them, teacher-forced along the
 * reference ids, and checks on the way that it picks those very ids (else the margins would not be the
 * reference's).
 */
import { assert } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";

/** Logits closer than this at the top are a near tie of the reference (stories260K's typical margins are 0.1 to 30). */
export const NEAR_TIE = 0.02;

export interface GreedyReference {
  prompt_ids: number[];
  greedy_ids: number[];
}

/** The reference's own top two at each greedy step. */
export interface ReferenceSteps {
  ids: number[];
  /** Top logit minus the runner-up's. */
  margins: number[];
  runnerUps: number[];
}

function top2(l: Float32Array): [number, number] {
  let a = 0, b = -1;
  for (let i = 1; i < l.length; i++) {
    if (l[i] > l[a]) [a, b] = [i, a];
    else if (b < 0 || l[i] > l[b]) b = i;
  }
  return [a, b];
}

/** The reference's margins at every step of `ref`, from kvasm's exact mode on `modelPath`. */
export async function referenceSteps(modelPath: string, ref: GreedyReference): Promise<ReferenceSteps> {
  const model = await loadModel(modelPath, {
    kvCacheType: "f16",
    ggmlOrder: true,
    threads: 1,
    contextLength: ref.prompt_ids.length + ref.greedy_ids.length + 1,
  });
  try {
    const seq = model.newSequence();
    let logits = await model.prefill(seq, ref.prompt_ids);
    const margins: number[] = [], runnerUps: number[] = [];
    for (let i = 0; i < ref.greedy_ids.length; i++) {
      const [first, second] = top2(logits);
      assert(
        first === ref.greedy_ids[i],
        `exact mode departs from the reference at step ${i} (${first} vs ${ref.greedy_ids[i]}): it no longer reproduces llama.cpp`,
      );
      margins.push(logits[first] - logits[second]);
      runnerUps.push(second);
      logits = await model.decodeOne(seq, ref.greedy_ids[i]);
    }
    return { ids: ref.greedy_ids, margins, runnerUps };
  } finally {
    await model.close();
  }
}

/** Throws unless picking `pick` at `step` is a departure the rule allows. */
export function assertAllowedDeparture(step: number, pick: number, ref: ReferenceSteps): void {
  const margin = ref.margins[step], runnerUp = ref.runnerUps[step];
  assert(
    margin < NEAR_TIE && pick === runnerUp,
    `step ${step}: picked ${pick}, the reference ${ref.ids[step]} (its margin ${margin.toFixed(4)} over its runner-up ${runnerUp}; ` +
      `a departure is allowed only below ${NEAR_TIE}, to the runner-up)`,
  );
}

/** Ids a backend produced, checked against the reference by the rule; returns how many steps agree. */
export function compareGreedyIds(ids: number[], ref: ReferenceSteps): number {
  for (let i = 0; i < Math.min(ids.length, ref.ids.length); i++) {
    if (ids[i] !== ref.ids[i]) {
      assertAllowedDeparture(i, ids[i], ref);
      return i;
    }
  }
  assert(ids.length >= ref.ids.length, `${ids.length} ids, the reference has ${ref.ids.length}`);
  return ref.ids.length;
}

/** Greedy decoding on `model` (any backend) against the reference, one step at a time; returns the steps that agree. */
export async function greedyAgainst(model: Model, ref: GreedyReference, steps: ReferenceSteps): Promise<number> {
  const seq = model.newSequence();
  try {
    let logits = await model.prefill(seq, ref.prompt_ids);
    for (let i = 0; i < ref.greedy_ids.length; i++) {
      const [first] = top2(logits);
      if (first !== ref.greedy_ids[i]) {
        assertAllowedDeparture(i, first, steps);
        return i;
      }
      logits = await model.decodeOne(seq, first);
    }
    return ref.greedy_ids.length;
  } finally {
    model.releaseSequence(seq);
  }
}

/**
 * Which kind of adapter this is, for the test log. Mesa's llvmpipe describes itself the same way through
 * Vulkan (lavapipe) and through OpenGL ES (wgpu's GL backend); the GL one offers the ETC2 textures of GL ES
 * and lacks shader-f16, which is how they are told apart here.
 */
export function adapterKind(description: string | undefined, features: string[] = [], isFallback = false): string {
  const d = description ?? "";
  const gles = features.includes("texture-compression-etc2") && !features.includes("shader-f16");
  if (/llvmpipe|lavapipe/i.test(d)) return gles ? "Mesa llvmpipe over OpenGL ES" : "lavapipe (Mesa's software Vulkan)";
  if (/\bgl\b|opengl|angle/i.test(d) || gles) return "OpenGL";
  if (/swiftshader/i.test(d) || isFallback) return "software fallback";
  return "GPU";
}
