// llama.cpp (node-llama-cpp 3.22.1's prebuilt CPU build) measured as bench/peers.ts measures kvasm: ../shared/peers/llamacpp.mjs
// (the same prompt ids, context, batch and greedy decode; a longer context where NPROMPT needs it), except that it runs
// NPREFILLS prefills of the prompt, each on the cleared sequence, and prints every one's rate (prefillRuns) beside the best
// (prefillTps): bench/peers.ts picks from them exactly as from kvasm's. With NPREFILLS 1 and NPROMPT 128 it measures what
// ../shared/peers/llamacpp.mjs measures.
// Usage (from bench/peers-install/, where node-llama-cpp is installed):
//   node peers-llamacpp.mjs MODEL.gguf NPROMPT NDECODE THREADS NPREFILLS
import { getLlama } from "node-llama-cpp";
const [modelPath, nPrompt = "128", nDecode = "48", threads = "1", nPrefills = "1"] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath });
// the shared harness's context of 512, or the prompt, the decode steps and 16 more where that is longer (bench/peers.ts --prompt)
const contextSize = Math.max(512, Number(nPrompt) + Number(nDecode) + 16);
const ctx = await model.createContext({ contextSize, batchSize: 512, threads: Number(threads) });
const seq = ctx.getSequence();
let s = 12345;
const ids = [1];
while (ids.length < Number(nPrompt)) {
  s = (s * 1103515245 + 12345) >>> 0;
  ids.push(3 + (s % 31990));
}
const prefillRuns = [];
for (let r = 0; r < Number(nPrefills); r++) {
  if (r > 0) await seq.clearHistory(); // untimed: the next prefill starts from an empty sequence, as kvasm's new one does
  const t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(ids);
  prefillRuns.push(ids.length / ((performance.now() - t0) / 1000));
}
let n = 0;
const t0 = performance.now();
for await (const _ of seq.evaluate([ids[5]], { temperature: 0 })) if (++n >= Number(nDecode)) break;
const decodeMs = performance.now() - t0;
console.log(JSON.stringify({
  engine: "llama.cpp",
  model: modelPath.split("/").pop(),
  threads: Number(threads),
  prefillTps: Math.max(...prefillRuns),
  prefillRuns,
  decodeTps: n / (decodeMs / 1000),
}));
process.exit(0);
