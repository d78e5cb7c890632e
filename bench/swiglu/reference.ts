// SwiGLU through fused.ts's ggmlExpf4: assembly/f32.ts swiglu as it was before its expf went to f64 lanes (2026-12-05),
// the reference bench/swiglu.bench.ts checks the build's bits against.
import { expfGlibc } from "../../assembly/math";
import { ggmlExpf4 } from "../../assembly/fused";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

export function swiglu_ref(out: usize, gate: usize, up: usize, n: i32, T: i32): void {
  const one = f32x4.splat(1), zero = f32x4.splat(0);
  const nv = n & ~15;
  for (let t = 0; t < T; t++) {
    const row = (<usize>t * <usize>n) << 2;
    const o0 = out + row, g0 = gate + row, u0 = up + row;
    let i = 0;
    for (; i < nv; i += 4) {
      const o = <usize>i << 2;
      const g = v128.load(g0 + o);
      const silu = f32x4.div(g, f32x4.add(one, ggmlExpf4(f32x4.sub(zero, g))));
      v128.store(o0 + o, f32x4.mul(silu, v128.load(u0 + o)));
    }
    for (; i < n; i++) {
      const g = f32At(g0, i);
      setF32(o0, i, (g / (<f32>1 + expfGlibc(-g))) * f32At(u0, i));
    }
  }
}
