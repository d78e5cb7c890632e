/**
 * The sampler as one WGSL dispatch of one workgroup: logit bias and penalties
 * (in place, as the CPU sampler does), temperature, top-k, top-p, min-p and
 * the draw with xoshiro128**, so a sampled token never has to leave the device
 * (Model.decodeSampled). It follows src/sampling/sampler.ts step for step, in
 * f32 where the CPU sampler works in f64 (WGSL has no f64): the README's WebGPU
 * section says where that can move a draw.
 *
 * The sampler block (st words from P.a.x; layout in sample.ts):
 *   [0, 12)   unused here      [12, 16) xoshiro128** state s0..s3
 *   [16]      history length   [17, 17+G) picks, one per step of a run
 *   then V words each: bias (f32), counts (u32, whole history), last (u32, last history position of the id), w (f32 scratch)
 * Params: a = (block, logits, first pick slot, next-token word), b = (V, flags, temperature, topK),
 *         c = (topP, minP, repeatPenalty, repeatLastN as i32), d = (presence, frequency, bias offset, G)
 *         flags: 1 penalties, 2 bias.
 *
 * Why bisection: top-k and top-p need the k-th largest logit and the weight at
 * which the descending cumulative mass reaches topP * mass. Without a sort,
 * each is the largest threshold (over the f32 bit patterns, which order like
 * the values) whose count or mass still reaches the goal: 32 counting passes
 * over the vocabulary, all 256 threads at once, instead of a sort. Ties at the
 * threshold are taken in ascending id order, as the CPU sampler's heaps take them.
 *
 * Why four loads at a time: one workgroup's passes over the vocabulary are bound by load latency, not
 * bandwidth (a pass over 128256 logits took ~110 us on an H200 with one load in flight per thread). The
 * passes (the max without bias or penalties, the weights, top-k's and top-p's searches, top-p's mass, its
 * ties and the kept weights) issue four (top-p's search: eight) independent loads per thread, into scalars
 * (an array held in a loop went to slow local memory on NVIDIA), before using any; every thread still
 * visits its ids in the same order and adds in the same order, an id past the end adding exactly 0, so the
 * sums are those of one load at a time.
 */
export const SAMPLE = /* wgsl */ `
const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
var<workgroup> rf: array<f32, 256>;
var<workgroup> ru: array<u32, 256>;
var<workgroup> uf: f32;
var<workgroup> uu: u32;
var<workgroup> drawR: f32;
var<workgroup> searchHi: u32;
var<workgroup> ra: array<vec4<f32>, 256>;
var<workgroup> rb: array<vec4<f32>, 256>;

fn sum_f(li: u32, v: f32) -> f32 {
  rf[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { rf[li] = rf[li] + rf[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { uf = rf[0]; }
  return workgroupUniformLoad(&uf);
}

fn max_f(li: u32, v: f32) -> f32 {
  rf[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s && rf[li + s] > rf[li]) { rf[li] = rf[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { uf = rf[0]; }
  return workgroupUniformLoad(&uf);
}

fn sum_u(li: u32, v: u32) -> u32 {
  ru[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { ru[li] = ru[li] + ru[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { uu = ru[0]; }
  return workgroupUniformLoad(&uu);
}

/** Exclusive prefix of v over the threads in order (thread 0 walks the 256 partials: cheap, and the same sums every time). */
fn prefix_u(li: u32, v: u32) -> u32 {
  ru[li] = v;
  workgroupBarrier();
  if (li == 0u) {
    var acc = 0u;
    for (var t = 0u; t < WG; t++) { let x = ru[t]; ru[t] = acc; acc += x; }
  }
  workgroupBarrier();
  let p = ru[li];
  workgroupBarrier();
  return p;
}

/** f32 bits mapped so that unsigned order is the float order. */
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

/**
 * exp(y) for y <= 0 to about 2 ulp, from +, *, and a power-of-two scale: WGSL's exp may be
 * off by 3 + 2|y| ulp, and differently on each adapter. 0 below f32's range.
 */
fn exp_np(y: f32) -> f32 {
  if (!(y > -103.0)) { return 0.0; }
  let k = round(y * 1.44269504);
  let r = (y - k * 0.693145752) - k * 1.42860677e-6;
  let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166666672 + r * (0.0416666679 + r * (0.00833333377 + r * 0.00138888892)))));
  return ldexp(p, i32(k)); // exact scaling
}

/** Word i of the V-word vector at word address at, loaded unconditionally (clamped) so the four of a round are in flight together. */
fn ld_clamped(at: u32, i: u32, V: u32) -> f32 { return ldf(at + min(i, V - 1u)); }

/** A weight's share of the top-p masses at thresholds t (bit patterns): w where its bits reach t, else 0. */
fn mass_at(w: f32, t: vec4<u32>) -> vec4<f32> { return select(vec4<f32>(0.0), vec4<f32>(w), vec4<u32>(bitcast<u32>(w)) >= t); }
// The weights' mass at or above each of 8 thresholds (ta, tb: their bit patterns), summed over the workgroup into ra[0]
// and rb[0]: each thread adds its weights in index order with eight loads in flight, then a tree in a fixed order, so
// every caller's sums are bit-identical. Call it from uniform control flow (it has barriers).
fn mass8(li: u32, wb: u32, V: u32, ta: vec4<u32>, tb: vec4<u32>) {
  var sa = vec4<f32>(0.0);
  var sb = vec4<f32>(0.0);
  for (var i0 = li; i0 < V; i0 += 8u * WG) {
    // past the end: a zero weight, whose bits (0) are below every threshold (lo >= 1), adds exactly 0
    let ids = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u) * WG;
    let ids2 = ids + vec4<u32>(4u * WG);
    let wa = select(vec4<f32>(0.0),
      vec4<f32>(ld_clamped(wb, i0, V), ld_clamped(wb, i0 + WG, V), ld_clamped(wb, i0 + 2u * WG, V), ld_clamped(wb, i0 + 3u * WG, V)),
      ids < vec4<u32>(V));
    let wz = select(vec4<f32>(0.0),
      vec4<f32>(ld_clamped(wb, ids2.x, V), ld_clamped(wb, ids2.y, V), ld_clamped(wb, ids2.z, V), ld_clamped(wb, ids2.w, V)),
      ids2 < vec4<u32>(V));
    sa += mass_at(wa.x, ta); sb += mass_at(wa.x, tb);
    sa += mass_at(wa.y, ta); sb += mass_at(wa.y, tb);
    sa += mass_at(wa.z, ta); sb += mass_at(wa.z, tb);
    sa += mass_at(wa.w, ta); sb += mass_at(wa.w, tb);
    sa += mass_at(wz.x, ta); sb += mass_at(wz.x, tb);
    sa += mass_at(wz.y, ta); sb += mass_at(wz.y, tb);
    sa += mass_at(wz.z, ta); sb += mass_at(wz.z, tb);
    sa += mass_at(wz.w, ta); sb += mass_at(wz.w, tb);
  }
  ra[li] = sa;
  rb[li] = sb;
  workgroupBarrier();
  for (var h = 128u; h > 0u; h >>= 1u) {
    if (li < h) { ra[li] = ra[li] + ra[li + h]; rb[li] = rb[li] + rb[li + h]; }
    workgroupBarrier();
  }
}

/** A logit's weight at the temperature: exactly 1 at the max, 0 at -inf. */
fn weight_of(x: f32, mx: f32, temp: f32) -> f32 {
  if (x == mx) { return 1.0; }
  if (x > bitcast<f32>(0xff800000u)) { return exp_np((x - mx) / temp); }
  return 0.0;
}

/**
 * Whether a positive weight stays after min-p and top-p: at or above minP, and above the cut theta, or at it
 * while the mass before it is still short of the goal (ties at the cut go in ascending id order; rank: the
 * ties at theta before this id).
 */
fn kept(w: f32, rank: u32, minP: f32, topP: f32, theta: f32, gtMass: f32, goal: f32) -> bool {
  var keep = w >= minP;
  if (topP < 1.0) {
    if (w == theta) { keep = keep && gtMass + f32(rank) * theta < goal; } else { keep = keep && w > theta; }
  }
  return keep;
}

fn rotl(x: u32, k: u32) -> u32 { return (x << k) | (x >> (32u - k)); }

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  let blk = P.a.x; let logits = P.a.y; let pickAt = P.a.z; let nextTok = P.a.w;
  let V = P.b.x; let flags = P.b.y; let temp = bitcast<f32>(P.b.z); let topK = P.b.w;
  let topP = bitcast<f32>(P.c.x); let minP = bitcast<f32>(P.c.y); let rep = bitcast<f32>(P.c.z); let repN = bitcast<i32>(P.c.w);
  let pres = bitcast<f32>(P.d.x); let freq = bitcast<f32>(P.d.y);
  let bias = blk + P.d.z; let counts = bias + V; let last = counts + V; let wb = last + V;
  let hist = i32(st[blk + 16u]);
  let ninf = bitcast<f32>(0xff800000u);
  let chunk = (V + WG - 1u) / WG;
  let c0 = min(V, li * chunk); let c1 = min(V, c0 + chunk);

  // 1-3: bias, then repetition and presence/frequency penalties, in place; the max
  var m = ninf;
  // no bias or penalties (the usual case): the max alone, four loads in flight (a clamped id repeats one already seen)
  for (var i0 = li; flags == 0u && i0 < V; i0 += 4u * WG) {
    let xs = vec4<f32>(ld_clamped(logits, i0, V), ld_clamped(logits, i0 + WG, V), ld_clamped(logits, i0 + 2u * WG, V),
      ld_clamped(logits, i0 + 3u * WG, V));
    if (xs.x > m) { m = xs.x; }
    if (xs.y > m) { m = xs.y; }
    if (xs.z > m) { m = xs.z; }
    if (xs.w > m) { m = xs.w; }
  }
  for (var i = li; flags != 0u && i < V; i += WG) {
    var x = ldf(logits + i);
    if ((flags & 2u) != 0u) { x = x + ldf(bias + i); }
    if ((flags & 1u) != 0u) {
      let c = st[counts + i];
      if (c > 0u) {
        if (repN != 0 && (repN < 0 || i32(st[last + i]) >= hist - repN)) { x = select(x * rep, x / rep, x > 0.0); }
        x = x - (pres + freq * f32(c));
      }
    }
    if (flags != 0u) { stf(logits + i, x); }
    if (x > m) { m = x; }
  }
  let mx = max_f(li, m);
  if (!(mx > ninf)) {
    // nothing finite to draw from: the host reports it (NumericalError) after the readback
    if (li == 0u) { st[pickAt] = NONE; st[nextTok] = 0u; st[blk + 16u] = u32(hist + 1); }
    return;
  }

  // 6: weights at temperature; the max weighs exactly 1
  var tot = 0.0;
  var pos = 0u;
  for (var i0 = li; i0 < V; i0 += 4u * WG) {
    let xs = vec4<f32>(ld_clamped(logits, i0, V), ld_clamped(logits, i0 + WG, V), ld_clamped(logits, i0 + 2u * WG, V),
      ld_clamped(logits, i0 + 3u * WG, V));
    let ws = vec4<f32>(weight_of(xs.x, mx, temp), weight_of(xs.y, mx, temp), weight_of(xs.z, mx, temp), weight_of(xs.w, mx, temp));
    if (i0 < V) { stf(wb + i0, ws.x); tot += ws.x; pos += select(0u, 1u, ws.x > 0.0); }
    if (i0 + WG < V) { stf(wb + i0 + WG, ws.y); tot += ws.y; pos += select(0u, 1u, ws.y > 0.0); }
    if (i0 + 2u * WG < V) { stf(wb + i0 + 2u * WG, ws.z); tot += ws.z; pos += select(0u, 1u, ws.z > 0.0); }
    if (i0 + 3u * WG < V) { stf(wb + i0 + 3u * WG, ws.w); tot += ws.w; pos += select(0u, 1u, ws.w > 0.0); }
  }
  let total = sum_f(li, tot);
  let positive = sum_u(li, pos);
  storageBarrier();

  // 5: top-k by logit: the largest key with at least topK positive-weight ids at or above it
  var reference = total;
  if (topK > 0u && topK < positive) {
    var lo = 0u;
    var hi = NONE;
    while (lo < hi) {
      let mid = lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u);
      var n = 0u;
      for (var i0 = li; i0 < V; i0 += 4u * WG) {
        let ws = vec4<f32>(ld_clamped(wb, i0, V), ld_clamped(wb, i0 + WG, V),
          ld_clamped(wb, i0 + 2u * WG, V), ld_clamped(wb, i0 + 3u * WG, V));
        let xs = vec4<f32>(ld_clamped(logits, i0, V), ld_clamped(logits, i0 + WG, V), ld_clamped(logits, i0 + 2u * WG, V),
          ld_clamped(logits, i0 + 3u * WG, V));
        let ids = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u) * WG;
        let hit = (ids < vec4<u32>(V)) & (ws > vec4<f32>(0.0)) &
          (vec4<u32>(key(xs.x), key(xs.y), key(xs.z), key(xs.w)) >= vec4<u32>(mid));
        let c = select(vec4<u32>(0u), vec4<u32>(1u), hit);
        n += c.x + c.y + c.z + c.w;
      }
      if (sum_u(li, n) >= topK) { lo = mid; } else { hi = mid - 1u; }
    }
    var above = 0u;
    var ties = 0u;
    for (var i = c0; i < c1; i++) {
      if (ldf(wb + i) > 0.0) {
        let kx = key(ldf(logits + i));
        if (kx > lo) { above++; } else if (kx == lo) { ties++; }
      }
    }
    let need = topK - sum_u(li, above);
    var rank = prefix_u(li, ties);
    var kept = 0.0;
    for (var i = c0; i < c1; i++) {
      let w = ldf(wb + i);
      if (w > 0.0) {
        let kx = key(ldf(logits + i));
        var keep = kx > lo;
        if (kx == lo) { keep = rank < need; rank++; }
        if (keep) { kept += w; } else { stf(wb + i, 0.0); }
      }
    }
    reference = sum_f(li, kept);
    storageBarrier();
  }

  // 7-8: top-p: the largest weight theta whose at-or-above mass reaches topP * reference; min-p: w >= minP
  var theta = 0.0;
  var gtMass = 0.0;
  let goal = topP * reference;
  if (topP < 1.0) {
    // below (reference - goal) / V the ids weigh less than reference - goal together: half that is a safe floor
    var lo = max(1u, bitcast<u32>(0.5 * (reference - goal) / f32(V)));
    var hi = 0x3f800000u;
    // eight thresholds a pass (a pass is bound by the loads, not the compares): about 10 passes, not 30
    while (lo < hi) {
      let step = (hi - lo + 7u) / 8u;
      let ta = min(vec4<u32>(hi), lo + step * vec4<u32>(1u, 2u, 3u, 4u));
      let tb = min(vec4<u32>(hi), lo + step * vec4<u32>(5u, 6u, 7u, 8u));
      // the search's passes are most of the sampler's time
      mass8(li, wb, V, ta, tb);
      if (li == 0u) {
        // the largest threshold whose mass still reaches the goal narrows [lo, hi] to the step above it
        var nlo = lo;
        var nhi = ta.x - 1u;
        for (var j = 0u; j < 8u; j++) {
          let t = select(tb[j - 4u], ta[j], j < 4u);
          let m = select(rb[0][j - 4u], ra[0][j], j < 4u);
          if (m >= goal) { nlo = t; nhi = select(hi, select(tb[j - 3u], ta[j + 1u], j < 3u) - 1u, j < 7u); }
        }
        uu = nlo;
        searchHi = nhi;
      }
      lo = workgroupUniformLoad(&uu);
      hi = workgroupUniformLoad(&searchHi);
    }
    theta = bitcast<f32>(lo);
    var s = 0.0;
    for (var i0 = li; i0 < V; i0 += 4u * WG) {
      let ids = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u) * WG;
      let ws = vec4<f32>(ld_clamped(wb, i0, V), ld_clamped(wb, i0 + WG, V),
        ld_clamped(wb, i0 + 2u * WG, V), ld_clamped(wb, i0 + 3u * WG, V));
      let add = select(vec4<f32>(0.0), ws, (ids < vec4<u32>(V)) & (ws > vec4<f32>(theta)));
      s += add.x; s += add.y; s += add.z; s += add.w;
    }
    gtMass = sum_f(li, s);
  }
  var ties = 0u;
  // the thread's own chunk [c0, c1), four loads in flight (clamped to c1 - 1, masked by id)
  if (topP < 1.0) {
    for (var i0 = c0; i0 < c1; i0 += 4u) {
      let ids = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u);
      let ws = vec4<f32>(ld_clamped(wb, i0, c1), ld_clamped(wb, i0 + 1u, c1), ld_clamped(wb, i0 + 2u, c1), ld_clamped(wb, i0 + 3u, c1));
      let c = select(vec4<u32>(0u), vec4<u32>(1u), (ids < vec4<u32>(c1)) & (ws == vec4<f32>(theta)));
      ties += c.x + c.y + c.z + c.w;
    }
  }
  var rank = prefix_u(li, ties);
  var mass = 0.0;
  for (var i0 = c0; i0 < c1; i0 += 4u) {
    let ws = vec4<f32>(ld_clamped(wb, i0, c1), ld_clamped(wb, i0 + 1u, c1), ld_clamped(wb, i0 + 2u, c1), ld_clamped(wb, i0 + 3u, c1));
    if (i0 < c1 && ws.x > 0.0) {
      if (kept(ws.x, rank, minP, topP, theta, gtMass, goal)) { mass += ws.x; } else { stf(wb + i0, 0.0); }
      rank += select(0u, 1u, topP < 1.0 && ws.x == theta);
    }
    if (i0 + 1u < c1 && ws.y > 0.0) {
      if (kept(ws.y, rank, minP, topP, theta, gtMass, goal)) { mass += ws.y; } else { stf(wb + i0 + 1u, 0.0); }
      rank += select(0u, 1u, topP < 1.0 && ws.y == theta);
    }
    if (i0 + 2u < c1 && ws.z > 0.0) {
      if (kept(ws.z, rank, minP, topP, theta, gtMass, goal)) { mass += ws.z; } else { stf(wb + i0 + 2u, 0.0); }
      rank += select(0u, 1u, topP < 1.0 && ws.z == theta);
    }
    if (i0 + 3u < c1 && ws.w > 0.0) {
      if (kept(ws.w, rank, minP, topP, theta, gtMass, goal)) { mass += ws.w; } else { stf(wb + i0 + 3u, 0.0); }
      rank += select(0u, 1u, topP < 1.0 && ws.w == theta);
    }
  }
  rf[li] = mass;
  storageBarrier();
  workgroupBarrier();

  // 9: the draw, walking the kept ids in ascending order: thread 0 finds the chunk by the chunks' sums, then
  // the chunk goes through workgroup memory 256 ids at a time and thread 0 walks it there
  if (li == 0u) {
    var s0 = st[blk + 12u]; var s1 = st[blk + 13u]; var s2 = st[blk + 14u]; var s3 = st[blk + 15u];
    let result = rotl(s1 * 5u, 7u) * 9u;
    let t = s1 << 9u;
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11u);
    st[blk + 12u] = s0; st[blk + 13u] = s1; st[blk + 14u] = s2; st[blk + 15u] = s3;
    var keptMass = 0.0;
    for (var c = 0u; c < WG; c++) { keptMass += rf[c]; }
    let r = f32(result >> 8u) * (1.0 / 16777216.0) * keptMass;
    // the first chunk whose sum carries the running mass past r; the last kept chunk if rounding leaves r beyond them all
    var cum = 0.0;
    var sel = 0u;
    var before = 0.0;
    var found = false;
    for (var c = 0u; c < WG; c++) {
      if (rf[c] > 0.0 && !found) {
        sel = c;
        before = cum;
        cum += rf[c];
        found = cum > r;
      }
    }
    uu = sel;
    uf = before;
    drawR = r;
  }
  let sel = workgroupUniformLoad(&uu);
  let e = min(V, sel * chunk + chunk);
  var pick = NONE;
  var lastKept = NONE;
  var cum = uf;
  for (var seg = sel * chunk; seg < e; seg += WG) {
    let i = seg + li;
    rf[li] = select(0.0, ldf(wb + min(i, V - 1u)), i < e);
    workgroupBarrier();
    if (li == 0u) {
      for (var j = 0u; j < min(WG, e - seg) && pick == NONE; j++) {
        let w = rf[j];
        if (w > 0.0) {
          lastKept = seg + j;
          cum += w;
          if (cum > drawR) { pick = seg + j; }
        }
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    if (pick == NONE) { pick = lastKept; } // rounding left r at or past the chunk's walked sum
    st[pickAt] = pick;
    st[nextTok] = pick;
    st[counts + pick] = st[counts + pick] + 1u;
    st[last + pick] = u32(hist);
    st[blk + 16u] = u32(hist + 1);
  }
}
`;

/** Thresholds one pass of the spread top-p search weighs: 128 workgroups of 8 (three passes narrow any range of f32 bits to one). */
export const SPREAD_THRESHOLDS = 1024;
export const SPREAD_GROUPS = SPREAD_THRESHOLDS / 8;
/**
 * Passes of the spread top-p and top-k searches (f32 bits below 1.0, and all u32 keys, narrowed 1024-fold a pass), and
 * the words their masses or counts take after the sampler block's V-word vectors (one vector per pass).
 */
export const SPREAD_PASSES = 3;
export const SPREAD_K_PASSES = 4;
export const SPREAD_WORDS = SPREAD_K_PASSES * SPREAD_THRESHOLDS;

const mark = (s: string, at: string) => {
  const i = s.indexOf(at);
  if (i < 0) throw new Error(`wgsl-sample.ts: marker not found: ${at}`);
  return i;
};
const HELPERS = SAMPLE.slice(0, mark(SAMPLE, "@compute"));
const MAIN = SAMPLE.slice(mark(SAMPLE, "@compute"), mark(SAMPLE, "  // 1-3:"));
const HEAD = SAMPLE.slice(mark(SAMPLE, "  // 1-3:"), mark(SAMPLE, "  // 7-8:"));
const WEIGHTS = SAMPLE.slice(mark(SAMPLE, "  // 1-3:"), mark(SAMPLE, "  // 5: top-k"));
const TOP_K_CUT = SAMPLE.slice(mark(SAMPLE, "    var above = 0u;"), mark(SAMPLE, "  // 7-8:"));
const TIES = "  var ties = 0u;\n  // the thread's own chunk";
const THETA = "    theta = bitcast<f32>(lo);\n";
const GT_MASS = SAMPLE.slice(mark(SAMPLE, THETA) + THETA.length, mark(SAMPLE, TIES));
const TAIL = SAMPLE.slice(mark(SAMPLE, TIES));
const EMPTY = "if (li == 0u) { st[pickAt] = NONE;";

/**
 * The spread search's ranges. Words of the sampler block: [0] 1 while the step has something to draw from (0: the
 * head wrote the pick), [1] the top-p goal's bits, [3 + 2p, 4 + 2p] range p of the search (0: the head's, [lo, hi]
 * as SAMPLE's search starts it). Range p + 1 is the largest of pass p's thresholds whose mass reaches the goal and
 * the step below the next one: SAMPLE's narrowing, 1024 thresholds at a time. A threshold's mass is monotone in it
 * (its terms only drop out as it rises, and rounding is monotone), so the thresholds that reach the goal are a
 * prefix and their count finds the cut: the search ends on the threshold SAMPLE's finds.
 */
const SPREAD_RANGE = /* wgsl */ `
const SPREAD: u32 = ${SPREAD_THRESHOLDS}u;
var<workgroup> range2: vec2<u32>;
fn spread_t(r: vec2<u32>, step: u32, j: u32) -> u32 { return min(r.y, r.x + step * j); }
/** Range p (pass p's), from range p - 1 and pass p - 1's masses (p = 0: the head's). */
fn spread_range(li: u32, blk: u32, masses: u32, p: u32, goal: f32) -> vec2<u32> {
  let prev = select(0u, p - 1u, p > 0u);
  if (li == 0u) { range2 = vec2<u32>(st[blk + 3u + 2u * prev], st[blk + 4u + 2u * prev]); }
  let r = workgroupUniformLoad(&range2);
  if (p == 0u || r.x >= r.y) { return r; }
  let step = (r.y - r.x + SPREAD - 1u) / SPREAD;
  var n = 0u;
  for (var j = li; j < SPREAD; j += WG) { n += select(0u, 1u, ldf(masses + prev * SPREAD + j) >= goal); }
  let count = sum_u(li, n);
  if (count == 0u) { return vec2<u32>(r.x, spread_t(r, step, 1u) - 1u); }
  return vec2<u32>(spread_t(r, step, count), select(r.y, spread_t(r, step, count + 1u) - 1u, count < SPREAD));
}
`;

const FLAG_SKIP = "st[blk] = 0u; ";

/**
 * SAMPLE in three kernels for large vocabularies: the head (bias, penalties, the max, weights, top-k; the top-p
 * goal and the search's first range), SPREAD_PASSES passes of SAMPLE_PASS over 128 workgroups, each weighing 8 of
 * 1024 thresholds at once where SAMPLE weighs 8 a pass in one workgroup (about 10 passes one after another at
 * 128256 logits), and the tail (top-p's cut, min-p, the draw). Each threshold's mass is summed as SAMPLE sums it
 * (a thread's ids in ascending order, then the same tree), so the cut, the picks and the RNG are SAMPLE's, bit for bit.
 * Params: SAMPLE's; e.x = the pass.
 */
const HEAD_END = /* wgsl */ `
  let goal = topP * reference;
  if (li == 0u) {
    st[blk] = 1u;
    st[blk + 1u] = bitcast<u32>(goal);
    st[blk + 3u] = max(1u, bitcast<u32>(0.5 * (reference - goal) / f32(V)));
    st[blk + 4u] = 0x3f800000u;
  }
}
`;

/** A head's text with the empty case flagged for the kernels after it. */
const flagged = (head: string) =>
  head.slice(0, mark(head, EMPTY)) + `if (li == 0u) { ${FLAG_SKIP}st[pickAt] = NONE;` + head.slice(mark(head, EMPTY) + EMPTY.length);

export const SAMPLE_HEAD = HELPERS + MAIN + flagged(HEAD) + HEAD_END;

/**
 * With a top-k, the head in two around SPREAD_K_PASSES passes of SAMPLE_K_PASS, whose 128 workgroups each count the
 * ids at or above 8 of 1024 key thresholds where SAMPLE's bisection counts one a pass (32 passes one after another).
 * Counts are integers, exact in any order, and monotone in the threshold, so the cut is the bisection's. Words of the
 * block: [2] the total weight's bits, [11] the positive weights, [3 + 2p, 4 + 2p] range p of the key search (the
 * top-p search takes those words over after it). SAMPLE_HEAD_K1 stops after the weights; SAMPLE_HEAD_K2 cuts at the
 * key found and ends as SAMPLE_HEAD ends.
 */
export const SAMPLE_HEAD_K1 = HELPERS + MAIN + flagged(WEIGHTS) + /* wgsl */ `
  if (li == 0u) {
    st[blk] = 1u;
    st[blk + 2u] = bitcast<u32>(total);
    st[blk + 11u] = positive;
    st[blk + 3u] = 0u;
    st[blk + 4u] = NONE;
  }
}
`;

/** Range p of the key search (thresholds t_j = lo + j * step, the last one hi), from range p - 1 and pass p - 1's counts. */
const SPREAD_K_RANGE = /* wgsl */ `
fn spread_kt(r: vec2<u32>, step: u32, j: u32) -> u32 { return select(r.x + min(r.y - r.x, step * j), r.y, j >= SPREAD); }
fn spread_k_range(li: u32, blk: u32, counts: u32, p: u32, topK: u32) -> vec2<u32> {
  let prev = select(0u, p - 1u, p > 0u);
  if (li == 0u) { range2 = vec2<u32>(st[blk + 3u + 2u * prev], st[blk + 4u + 2u * prev]); }
  let r = workgroupUniformLoad(&range2);
  if (p == 0u || r.x >= r.y) { return r; }
  let step = (r.y - r.x) / SPREAD + 1u;
  var n = 0u;
  for (var j = li; j < SPREAD; j += WG) { n += select(0u, 1u, st[counts + prev * SPREAD + j] >= topK); }
  let count = sum_u(li, n);
  if (count == 0u) { return vec2<u32>(r.x, spread_kt(r, step, 1u) - 1u); }
  return vec2<u32>(spread_kt(r, step, count), select(r.y, spread_kt(r, step, count + 1u) - 1u, count < SPREAD));
}
`;

export const SAMPLE_K_PASS = HELPERS + SPREAD_RANGE + SPREAD_K_RANGE + /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let blk = P.a.x; let logits = P.a.y; let V = P.b.x; let topK = P.b.w;
  let wb = blk + P.d.z + 3u * V; let counts = wb + V; let p = P.e.x;
  if (li == 0u) { uu = st[blk]; searchHi = st[blk + 11u]; }
  let stepLive = workgroupUniformLoad(&uu);
  let positive = workgroupUniformLoad(&searchHi);
  if (stepLive == 0u || !(topK > 0u && topK < positive)) { return; }
  let r = spread_k_range(li, blk, counts, p, topK);
  if (p > 0u && wg.x == 0u && li == 0u) { st[blk + 3u + 2u * p] = r.x; st[blk + 4u + 2u * p] = r.y; }
  if (r.x >= r.y) { return; }
  let step = (r.y - r.x) / SPREAD + 1u;
  let j = wg.x * 8u + 1u;
  let ta = vec4<u32>(spread_kt(r, step, j), spread_kt(r, step, j + 1u), spread_kt(r, step, j + 2u), spread_kt(r, step, j + 3u));
  let tb = vec4<u32>(spread_kt(r, step, j + 4u), spread_kt(r, step, j + 5u), spread_kt(r, step, j + 6u), spread_kt(r, step, j + 7u));
  var na = vec4<u32>(0u);
  var nb = vec4<u32>(0u);
  for (var i0 = li; i0 < V; i0 += 4u * WG) {
    let ws = vec4<f32>(ld_clamped(wb, i0, V), ld_clamped(wb, i0 + WG, V),
      ld_clamped(wb, i0 + 2u * WG, V), ld_clamped(wb, i0 + 3u * WG, V));
    let xs = vec4<f32>(ld_clamped(logits, i0, V), ld_clamped(logits, i0 + WG, V), ld_clamped(logits, i0 + 2u * WG, V),
      ld_clamped(logits, i0 + 3u * WG, V));
    let ids = vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u) * WG;
    let live = (ids < vec4<u32>(V)) & (ws > vec4<f32>(0.0));
    let ks = vec4<u32>(key(xs.x), key(xs.y), key(xs.z), key(xs.w));
    for (var e = 0u; e < 4u; e++) {
      if (live[e]) {
        na += select(vec4<u32>(0u), vec4<u32>(1u), vec4<u32>(ks[e]) >= ta);
        nb += select(vec4<u32>(0u), vec4<u32>(1u), vec4<u32>(ks[e]) >= tb);
      }
    }
  }
  ra[li] = bitcast<vec4<f32>>(na);
  rb[li] = bitcast<vec4<f32>>(nb);
  workgroupBarrier();
  for (var h = 128u; h > 0u; h >>= 1u) {
    if (li < h) {
      ra[li] = bitcast<vec4<f32>>(bitcast<vec4<u32>>(ra[li]) + bitcast<vec4<u32>>(ra[li + h]));
      rb[li] = bitcast<vec4<f32>>(bitcast<vec4<u32>>(rb[li]) + bitcast<vec4<u32>>(rb[li + h]));
    }
    workgroupBarrier();
  }
  if (li < 8u) {
    let c = select(bitcast<vec4<u32>>(rb[0])[(li + 4u) & 3u], bitcast<vec4<u32>>(ra[0])[li & 3u], li < 4u);
    st[counts + p * SPREAD + wg.x * 8u + li] = c;
  }
}
`;

export const SAMPLE_HEAD_K2 = HELPERS + SPREAD_RANGE + SPREAD_K_RANGE + MAIN + /* wgsl */ `
  let keyCounts = wb + V;
  if (li == 0u) { uu = st[blk]; searchHi = st[blk + 11u]; }
  let stepLive = workgroupUniformLoad(&uu);
  let positive = workgroupUniformLoad(&searchHi);
  if (stepLive == 0u) { return; }
  let total = bitcast<f32>(st[blk + 2u]);
  var reference = total;
  if (topK > 0u && topK < positive) {
    let lo = spread_k_range(li, blk, keyCounts, ${SPREAD_K_PASSES}u, topK).x;
` + TOP_K_CUT + HEAD_END;

export const SAMPLE_PASS = HELPERS + SPREAD_RANGE + /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let blk = P.a.x; let V = P.b.x; let topP = bitcast<f32>(P.c.x);
  let wb = blk + P.d.z + 3u * V; let masses = wb + V; let p = P.e.x;
  if (li == 0u) { uu = st[blk]; }
  if (workgroupUniformLoad(&uu) == 0u || !(topP < 1.0)) { return; }
  let goal = bitcast<f32>(st[blk + 1u]);
  let r = spread_range(li, blk, masses, p, goal);
  if (p > 0u && wg.x == 0u && li == 0u) { st[blk + 3u + 2u * p] = r.x; st[blk + 4u + 2u * p] = r.y; }
  if (r.x >= r.y) { return; }
  let step = (r.y - r.x + SPREAD - 1u) / SPREAD;
  let j = wg.x * 8u + 1u;
  let ta = min(vec4<u32>(r.y), r.x + step * (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u)));
  let tb = min(vec4<u32>(r.y), r.x + step * (vec4<u32>(j) + vec4<u32>(4u, 5u, 6u, 7u)));
  // SAMPLE's search pass, each threshold's terms added in the same order
  mass8(li, wb, V, ta, tb);
  if (li < 8u) {
    let m = select(rb[0][(li + 4u) & 3u], ra[0][li & 3u], li < 4u);
    stf(masses + p * SPREAD + wg.x * 8u + li, m);
  }
}
`;

export const SAMPLE_TAIL = HELPERS + SPREAD_RANGE + MAIN + /* wgsl */ `
  let masses = wb + V;
  if (li == 0u) { uu = st[blk]; }
  if (workgroupUniformLoad(&uu) == 0u) { return; }
  var theta = 0.0;
  var gtMass = 0.0;
  let goal = bitcast<f32>(st[blk + 1u]);
  if (topP < 1.0) {
    theta = bitcast<f32>(spread_range(li, blk, masses, ${SPREAD_PASSES}u, goal).x);
` + GT_MASS + TAIL;
