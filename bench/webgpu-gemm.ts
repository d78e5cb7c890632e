/**
 * Many-row (prefill) quantized matmuls in isolation: today's tiled kernel (wgsl-tiled.ts tiledQuantKernel, tiles of
 * 32 or 64 token rows) against register-tiled shapes (tiledWideKernel: bm x bn tiles, tm x tn sums a thread, units
 * staged as vec4<u32>) on the same weights and activations, each timed as N back-to-back dispatches in one
 * timestamped pass, reported as microseconds a dispatch and TOPS (2 T R K integer operations a dispatch). Every
 * output is checked against today's kernel: the largest difference relative to the largest value, and whether all
 * of it is bit-identical. Shapes whose workgroup memory the adapter cannot give are skipped (and said so).
 *
 *   deno run -A bench/webgpu-gemm.ts [--cases gateup,down,qkv,out] [--types Q4_0] [--rows 128,512] [--n 20]
 */
import { GGMLType, type GGMLTypeId } from "../src/formats/ggml-types.ts";
import { f32ToF16 as f16 } from "../src/quant/half.ts";
import { prelude } from "../src/backends/webgpu/wgsl-common.ts";
import { tiledKernel, tiledWideKernel, type TileShape, tileStorageBytes, tileTokens } from "../src/backends/webgpu/wgsl-tiled.ts";
import { TILE_SHAPES } from "../src/backends/webgpu/wgsl-tiled.ts";
import { benchArgs, intFlag, intListFlag, listFlag } from "./cli.ts";
import { xorshift } from "./candidates.ts";
import { COPY_DST, MATRICES, matrixOf, openGpuBench, STORAGE } from "./webgpu-bench.ts";

// deno-lint-ignore no-explicit-any
type Gpu = any;
const USAGE = `Many-row quantized matmul kernels, today's tiles and register-tiled shapes, on the same weights (Deno, WebGPU).

  deno run -A bench/webgpu-gemm.ts [--cases LIST] [--types Q4_0,Q8_0] [--rows 128,512] [--n 20] [--variants LIST]

  --cases LIST     the 1B shape's qkv (3072 x 2048), gateup (16384 x 2048), down (2048 x 8192), out (2048 x 2048);
                   stories110M's qkv110 (2304 x 768), gateup110 (4096 x 768), down110 (768 x 2048), out110 (768 x 768)
  --types LIST     Q4_0, Q8_0, Q4_K, Q6_K
  --rows LIST      token rows T (default 128,512)
  --n N            dispatches a timed pass (default 20)
  --variants LIST  names to run (default: all; "today" always runs, it is the reference)
  --json FILE      also write the rows as JSON lines`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    cases: { type: "string", default: "gateup,down,qkv,out,gateup110,down110,qkv110,out110" },
    types: { type: "string", default: "Q4_0" },
    rows: { type: "string", default: "128,512" },
    n: { type: "string", default: "20" },
    variants: { type: "string", default: "all" },
    json: { type: "string", default: "" },
    help: { type: "boolean", short: "h" },
  },
});

// every flag held to what runs before the device opens: a misspelt case, type or variant ran nothing, or only today's
const cases = listFlag(USAGE, "cases", opts.cases, Object.keys(MATRICES));
const typeNames = listFlag(USAGE, "types", opts.types, ["Q4_0", "Q8_0", "Q4_K", "Q6_K"]);
const rowsList = intListFlag(USAGE, "rows", opts.rows), N = intFlag(USAGE, "n", opts.n);
const want = opts.variants === "all" ? null : new Set(listFlag(USAGE, "variants", opts.variants, [
  ...new Set(cases.flatMap((c) => rowsList.flatMap((T) => variants(T, matrixOf(c)[0]).map((v) => v.name)))),
]));

/** Bytes of a 32-element unit's share of a row (Q4_K / Q6_K: a 256-element super-block over 8 units). */
const ROW_BYTES_PER_32: Record<number, number> = { [GGMLType.Q4_0]: 18, [GGMLType.Q8_0]: 34, [GGMLType.Q4_K]: 18, [GGMLType.Q6_K]: 26.25 };

interface Variant {
  name: string;
  shape: TileShape | null; // null: today's kernel
  bm: number;
}

function variants(T: number, R: number): Variant[] {
  const out: Variant[] = [{ name: "today", shape: null, bm: tileTokens(T, R) }];
  out.push({ name: `today-bm${tileTokens(T, R) === 64 ? 32 : 64}`, shape: null, bm: tileTokens(T, R) === 64 ? 32 : 64 });
  for (const [name, s] of Object.entries(TILE_SHAPES)) out.push({ name, shape: s, bm: s.bm });
  return out;
}

/** Rows of random quants with valid f16 scales (each type's scale fields set to values near 5e-4 or small ints). */
function weights(type: GGMLTypeId, rows: number, cols: number): Uint8Array {
  const rb = (cols / 32) * ROW_BYTES_PER_32[type];
  const bytes = new Uint8Array(rows * rb);
  const rnd = xorshift(7 + type);
  const w32 = new Uint32Array(bytes.buffer, 0, Math.floor(bytes.length / 4));
  for (let i = 0; i < w32.length; i++) w32[i] = rnd();
  const put16 = (o: number, v: number) => {
    bytes[o] = v & 0xff;
    bytes[o + 1] = v >> 8;
  };
  for (let r = 0; r < rows; r++) {
    const ro = r * rb;
    if (type === GGMLType.Q4_0 || type === GGMLType.Q8_0) {
      const bs = ROW_BYTES_PER_32[type];
      for (let b = 0; b < cols / 32; b++) put16(ro + b * bs, f16(0.0004 + (rnd() % 1000) * 2e-7));
    } else if (type === GGMLType.Q4_K) {
      for (let b = 0; b < cols / 256; b++) {
        put16(ro + b * 144, f16(0.0004 + (rnd() % 1000) * 2e-7));
        put16(ro + b * 144 + 2, f16(0.0002 + (rnd() % 1000) * 1e-7));
      }
    } else {
      for (let b = 0; b < cols / 256; b++) put16(ro + b * 210 + 208, f16(0.0004 + (rnd() % 1000) * 2e-7));
    }
  }
  return bytes;
}

const { adapter, device, hasDot4, timed, layout, pipelineLayout, upload, readWords, timeIt } = await openGpuBench(3);
const wgMem = Number(device.limits.maxComputeWorkgroupStorageSize);
console.log(
  `adapter: ${adapter.info?.description} | dot4I8Packed ${hasDot4} | timestamps ${timed} | workgroup memory ${wgMem} | ${
    new Date().toISOString()
  }`,
);
const U = COPY_DST, ST = STORAGE | COPY_DST;

/** Pipelines by source: a kernel's shapes (R, K, T) are uniforms, so each variant and type compiles once. */
const compiled = new Map<string, Gpu>();

async function pipeline(code: string): Promise<Gpu> {
  const done = compiled.get(code);
  if (done) return done;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: prelude(hasDot4, 1) + code });
  const p = device.createComputePipeline({ layout: pipelineLayout, compute: { module, entryPoint: "main" } });
  const e = await device.popErrorScope();
  if (e) throw new Error(e.message);
  compiled.set(code, p);
  return p;
}

const out: unknown[] = [];
for (const cname of cases) {
  const [R, K] = matrixOf(cname);
  for (const tname of typeNames) {
    const type = (GGMLType as unknown as Record<string, GGMLTypeId>)[tname];
    if (ROW_BYTES_PER_32[type] === undefined) throw new Error(`unknown type ${tname}`);
    const w = weights(type, R, K), rb = w.length / R;
    const wbuf = upload(w);
    for (const T of rowsList) {
      // state words: activations (T rows of Q8_0 blocks, 9 words each, or Q8_K super-blocks, 81), then the output (T x R)
      const q8k = type === GGMLType.Q4_K || type === GGMLType.Q6_K;
      const ACT = 64, actWords = q8k ? T * (K / 256) * 81 : T * (K / 32) * 9, OUT = ACT + actWords, stWords = OUT + T * R;
      const st = device.createBuffer({ size: stWords * 4, usage: ST | 0x04 });
      const host = new Uint32Array(actWords), hf = new Float32Array(host.buffer), rnd = xorshift(99 + T);
      const bw = q8k ? 81 : 9;
      for (let b = 0; b < actWords / bw; b++) {
        hf[bw * b] = 0.01 + (rnd() % 100) * 1e-4;
        for (let j = 1; j < bw; j++) host[bw * b + j] = rnd();
        if (q8k) {
          // the 16 block sums (i32) of the super-block's quants, as the quantizer writes them
          const q = new Int8Array(host.buffer, (bw * b + 17) * 4, 256);
          for (let s = 0; s < 16; s++) {
            let sum = 0;
            for (let e = 0; e < 16; e++) sum += q[16 * s + e];
            host[bw * b + 1 + s] = sum >>> 0;
          }
        }
      }
      device.queue.writeBuffer(st, ACT * 4, host);
      const params = new Uint32Array(64);
      params.set([0, ACT, K, T, R, 0, R, rb, OUT, 0, 0, 0]);
      const pb = device.createBuffer({ size: 256, usage: 0x40 | U });
      device.queue.writeBuffer(pb, 0, params);
      const bg = device.createBindGroup({
        layout,
        entries: [0, 1, 2].map((i) => ({ binding: i, resource: { buffer: i === 0 ? st : i === 2 ? pb : wbuf } })),
      });
      let ref: Float32Array | null = null, todayNs = 0, best = { name: "today", ns: Infinity };
      for (const v of variants(T, R)) {
        if (want && !want.has(v.name) && v.name !== "today") continue;
        if (v.shape && tileStorageBytes(v.shape) > wgMem) {
          console.log(`${cname} ${tname} T=${T} ${v.name}: needs ${tileStorageBytes(v.shape)} bytes of workgroup memory (${wgMem})`);
          continue;
        }
        const code = v.shape ? tiledWideKernel(type, "store", v.shape) : tiledKernel(type, "store", v.bm);
        let p: Gpu;
        try {
          p = await pipeline(code);
        } catch (e) {
          console.log(`${cname} ${tname} T=${T} ${v.name}: does not compile: ${(e as Error).message.split("\n")[0]}`);
          continue;
        }
        const bn = v.shape ? v.shape.bn : 64, gx = Math.ceil(R / bn), gy = Math.ceil(T / v.bm);
        // clear the output, so a kernel that writes nothing cannot pass for the previous one
        device.queue.writeBuffer(st, OUT * 4, new Uint32Array(T * R).fill(0x7fc00000));
        const ns = await timeIt(p, bg, gx, gy, N);
        const got = await readWords(st, OUT * 4, T * R);
        let err = 0, same = true;
        // every output written and finite (the NaN fill above stays where a kernel missed one)
        if (!got.every(Number.isFinite)) err = Infinity, same = false;
        else if (!ref) ref = got;
        else {
          let scale = 0;
          for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
          const gu = new Uint32Array(got.buffer), ru = new Uint32Array(ref.buffer);
          for (let i = 0; i < ref.length; i++) {
            const d = Math.abs(got[i] - ref[i]) / (scale || 1);
            err = Math.max(err, Number.isNaN(d) ? Infinity : d);
            if (gu[i] !== ru[i]) same = false;
          }
        }
        const tops = (2 * T * R * K) / ns / 1000;
        if (v.name === "today") todayNs = ns;
        if (err <= 1e-5 && ns < best.ns) best = { name: v.name, ns };
        const row = {
          case: cname,
          rows: R,
          cols: K,
          T,
          type: tname,
          variant: v.name,
          us: +(ns / 1000).toFixed(2),
          TOPS: +tops.toFixed(2),
          err,
          bitIdentical: same,
        };
        out.push(row);
        console.log(
          `${cname.padEnd(9)} ${tname} T=${String(T).padEnd(4)} ${v.name.padEnd(18)} ${(ns / 1000).toFixed(1).padStart(9)} us ${
            tops.toFixed(2).padStart(7)
          } TOPS  err ${err.toExponential(1)}${same ? " bit-identical" : ""}${err > 1e-5 ? "  MISMATCH" : ""}`,
        );
      }
      // the fastest variant that agrees with today's, against today's (the same run, the same buffers)
      console.log(`${cname} ${tname} T=${T}: fastest ${best.name}, ${(todayNs / best.ns).toFixed(2)}x today's`);
      out.push({ case: cname, type: tname, T, fastest: best.name, overToday: +(todayNs / best.ns).toFixed(3) });
      st.destroy();
      pb.destroy();
    }
    wbuf.destroy();
  }
}
if (opts.json) await Deno.writeTextFile(opts.json, out.map((r) => JSON.stringify(r)).join("\n") + "\n");
