// AssemblyScript, compiled by bench/swiglu.bench.ts (a few seconds): SwiGLU as built (assembly/f32.ts swiglu, ggml's
// expf on two lanes kept in f64) against swiglu_ref, the same function through fused.ts's ggmlExpf4 (each fused
// multiply-add promoted to f64 and back per call; the build's kernel before 2026-12-05): bits and speed.
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
export { swiglu } from "../../assembly/f32";
export { swiglu_ref } from "./reference";
