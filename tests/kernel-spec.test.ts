// The kernel specification (src/kernels/spec.ts) against what it describes: each of the four builds'
// exports (name and arity, through the same check the loader runs), the assembly sources' exported
// signatures (argument names in order, f32 arguments, return), and assembly/ggml-common.ts's block layouts
// against the TypeScript table (src/formats/ggml-types.ts).
import { assert, assertEquals, assertRejects, REPO, test } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { KERNEL_NAMES, KERNEL_SPEC, type KernelSpec } from "../src/kernels/spec.ts";
import { checkKernelExports, kernelModule } from "../src/kernels/wasm.ts";
import type { KernelVariant } from "../src/kernels/binaries.ts";
import { blockGeometry, GGMLType } from "../src/formats/ggml-types.ts";
import { KernelBuildError } from "../src/errors.ts";

const VARIANTS: KernelVariant[] = ["simd", "relaxed", "simd-shared", "relaxed-shared"];

async function exportsOf(variant: KernelVariant): Promise<WebAssembly.Exports> {
  const shared = variant.endsWith("-shared");
  const memory = new WebAssembly.Memory({ initial: 1, maximum: shared ? 65536 : undefined, shared });
  return (await WebAssembly.instantiate(await kernelModule(variant), { env: { memory } })).exports;
}

for (const variant of VARIANTS) {
  test(`kernel spec: the ${variant} build exports exactly the spec's kernels, each of its arity`, async () => {
    const exports = await exportsOf(variant);
    const fns = Object.entries(exports).filter(([, v]) => typeof v === "function");
    assertEquals(fns.map(([n]) => n).sort(), [...KERNEL_NAMES].sort(), "exported functions");
    for (const [name, fn] of fns) {
      assertEquals((fn as (...a: number[]) => unknown).length, KERNEL_SPEC[name as keyof typeof KERNEL_SPEC].args.length, name);
    }
    checkKernelExports(exports, variant); // the loader's own check passes
  });
}

test("kernel spec: a build that lacks a kernel, takes other arguments or exports one the spec lacks is a KernelBuildError naming it", async () => {
  const real = Object.fromEntries(Object.entries(await exportsOf("simd")));
  const cases: Array<[string, Record<string, unknown>]> = [
    ["rmsnorm", { ...real, rmsnorm: undefined }],
    ["attention_q8", { ...real, attention_q8: (_a: number, _b: number) => {} }],
    ["softmax", { ...real, softmax: (_x: number, _n: number) => {} }],
  ];
  for (const [kernel, exports] of cases) {
    const err = await assertRejects(
      () => Promise.resolve().then(() => checkKernelExports(exports as WebAssembly.Exports, "simd")),
      KernelBuildError,
    );
    assertEquals((err as KernelBuildError).kernel, kernel, "the kernel named");
    assertEquals((err as KernelBuildError).code, "unsupported", "code");
    assert(err.message.includes(kernel) && err.message.includes("npm run build:kernels"), err.message);
  }
});

/** `export function name(args): ret` of every file assembly/index.ts re-exports (through `export *`): argument names (a leading _ dropped), f32 arguments, return type. */
function assemblySignatures(): Map<string, { args: string[]; f32: string[]; returns: string }> {
  const dir = path.join(REPO, "assembly");
  const out = new Map<string, { args: string[]; f32: string[]; returns: string }>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = fs.readFileSync(path.join(dir, `${file}.ts`), "utf8");
    for (const m of src.matchAll(/^export \* from "\.\/([\w-]+)"/gm)) visit(m[1]);
    if (file === "index") return;
    for (const m of src.matchAll(/^(?:@inline )?export function (\w+)\(([^)]*)\)\s*:\s*(\w+)/gm)) {
      const params = m[2].split(",").map((p) => p.trim()).filter(Boolean).map((p) => p.split(":").map((s) => s.trim()));
      out.set(m[1], {
        args: params.map(([name]) => name.replace(/^_/, "")),
        f32: params.filter(([, type]) => type === "f32").map(([name]) => name.replace(/^_/, "")),
        returns: m[3],
      });
    }
  };
  visit("index");
  assert(seen.size > 10, "assembly/index.ts re-exports the kernel files");
  return out;
}

test("kernel spec: argument names and order, f32 arguments and returns match the assembly sources", () => {
  const sigs = assemblySignatures();
  assertEquals([...sigs.keys()].sort(), [...KERNEL_NAMES].sort(), "exported functions of the assembly sources");
  for (const name of KERNEL_NAMES) {
    const spec: KernelSpec = KERNEL_SPEC[name], sig = sigs.get(name)!;
    assertEquals([...spec.args], sig.args, `${name}: arguments`);
    assertEquals([...(spec.f32 ?? [])], sig.f32, `${name}: f32 arguments`);
    assertEquals(spec.returns ?? "void", sig.returns, `${name}: returns`);
  }
});

test("kernel spec: every split names arguments the kernel takes", () => {
  let splits = 0;
  for (const name of KERNEL_NAMES) {
    const spec: KernelSpec = KERNEL_SPEC[name];
    for (const [how, s] of Object.entries(spec.split ?? {})) {
      splits++;
      const named = s.by === "offset"
        ? [s.count, ...Object.keys(s.advance), ...Object.values(s.advance).flatMap(([, ...times]) => times)]
        : [s.total, s.lo, s.hi];
      for (const a of named) assert(spec.args.includes(a), `${name} split ${how}: ${a} is not an argument`);
      assert(Number.isInteger(s.align) && s.align >= 1, `${name} split ${how}: align ${s.align}`);
    }
  }
  assert(splits > 40, `splits described: ${splits}`);
});

test("block layouts: assembly/ggml-common.ts agrees with src/formats/ggml-types.ts", () => {
  const src = fs.readFileSync(path.join(REPO, "assembly", "ggml-common.ts"), "utf8");
  const consts = new Map([...src.matchAll(/^(?:@inline )?export const (\w+): \w+ = (\d+);/gm)].map((m) => [m[1], Number(m[2])]));
  const ids = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "BF16"] as const;
  for (const t of ids) {
    assertEquals(consts.get(t), GGMLType[t], `${t} type id`);
    if (t === "BF16") continue;
    const [elements, bytes] = blockGeometry(GGMLType[t])!;
    assertEquals(consts.get(`${t}_BYTES`), bytes, `${t} bytes per block`);
    assertEquals(elements, t.endsWith("_K") ? consts.get("QK_K") : consts.get("QK"), `${t} elements per block`);
  }
});
