/**
 * Causal attention for many query rows (prefill): one workgroup of 128
 * threads per (query head, 16 consecutive rows), so each K and V position
 * read from the paged cache serves up to 16 rows instead of one (the per-row
 * kernel, wgsl-ops.ts ATTENTION, reads the whole prefix again for every row
 * and head, which made it a third of a 512-row prefill on an H200).
 *
 * Rows that share a sequence (the same page table and first position) are
 * taken together in one pass over chunks of 32 positions: the chunk's K is
 * staged in workgroup memory, each row's 8 threads score 4 positions each
 * (positions at or past a row's own are masked), every thread of a row
 * updates that row's online softmax (running max and sum) from the staged
 * scores, then V is staged over K and each thread sums headDim / 8 of its
 * row's dimensions. Rows of other sequences in the same tile (batched steps)
 * get passes of their own, so the kernel is correct for any row layout.
 *
 * headDim <= 64 and a multiple of 8 (a compile-time D): q rows, one chunk of K or V (rows padded
 * to D + 1 words, so neighbouring positions fall in different banks) and the
 * scores take 14.6 KiB of workgroup memory at D = 64.
 * Params as ATTENTION's: a = (out, q, rows, base), b = (pageBytes, pageSize, kvDim, headDim),
 * c = (nHeads, nKvHeads, kOff, vOff), d = (alibi, slopes), e.x = T.
 */
export const ROWS_PER_TILE = 16;
export const MAX_TILE_HEAD_DIM = 64;

export function attentionRowsKernel(headDim: number): string {
  if (headDim % 8 !== 0 || headDim > MAX_TILE_HEAD_DIM) throw new Error(`attentionRowsKernel: headDim ${headDim}`);
  const D = headDim, S = D + 1;
  // each thread's output dimensions sub + 8 k, as plain variables (an array indexed in a loop may live in local memory)
  const per = (line: (k: number) => string) => Array.from({ length: D / 8 }, (_, k) => line(k)).join("\n");
  return /* wgsl */ `
const D: u32 = ${D}u;
const S: u32 = ${S}u;
const QT: u32 = ${ROWS_PER_TILE}u;
const CK: u32 = 32u;
var<workgroup> qs: array<f32, ${ROWS_PER_TILE * S}>;
var<workgroup> kv: array<f32, ${32 * S}>;
var<workgroup> sc: array<f32, ${ROWS_PER_TILE * 32}>;
var<workgroup> slots: array<u32, 32>;
var<workgroup> done: array<u32, ${ROWS_PER_TILE}>;
// this pass's sequence: page table word, first position, one past the last position of its rows, 1 while a pass remains
var<workgroup> pass_: vec4<u32>;

fn row_meta(t: u32) -> vec3<u32> {
  let r = P.a.z + t * 4u;
  return vec3<u32>(st[r] >> 2u, st[r + 2u], st[r + 1u] + 1u); // page table, start, end
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let q = P.a.y; let base = P.a.w;
  let pageBytes = P.b.x; let pageSize = P.b.y; let kvDim = P.b.z;
  let nHeads = P.c.x; let nKvHeads = P.c.y; let kOff = P.c.z >> 2u; let vOff = P.c.w >> 2u;
  let T = P.e.x;
  let h = wg.x;
  let t0 = wg.y * QT;
  let rows = min(QT, T - t0);
  let kvh = (h / (nHeads / nKvHeads)) * D;
  let scale = 1.0 / sqrt(f32(D));
  var slope = 0.0;
  if (P.d.x != 0u) { slope = ldf(P.d.y + h); }
  for (var i = li; i < QT * D; i += 128u) {
    let rr = i / D;
    let d = i % D;
    qs[rr * S + d] = select(0.0, ldf(q + ((t0 + rr) * nHeads + h) * D + d), rr < rows);
  }
  if (li < QT) { done[li] = select(1u, 0u, li < rows); }
  // thread li serves row rr: positions sub + 8 k of a chunk, dimensions sub + 8 k of the output
  let rr = li / 8u;
  let sub = li % 8u;
  let mine = row_meta(t0 + min(rr, rows - 1u));
  let own = mine.z - 1u; // the row's own position: the last it sees
  var m = -3.0e38;
  var l = 0.0;
${per((k) => `  var o${k} = 0.0;`)}
  loop {
    workgroupBarrier();
    if (li == 0u) {
      // the first row not yet done leads; rows of its sequence join it
      var lead = QT;
      for (var r = 0u; r < rows; r++) { if (done[r] == 0u) { lead = r; break; } }
      if (lead == QT) { pass_ = vec4<u32>(0u, 0u, 0u, 0u); } else {
        let lm = row_meta(t0 + lead);
        var end = lm.z;
        for (var r = lead; r < rows; r++) {
          let rm = row_meta(t0 + r);
          if (done[r] == 0u && rm.x == lm.x && rm.y == lm.y) { end = max(end, rm.z); }
        }
        pass_ = vec4<u32>(lm.x, lm.y, end, 1u);
      }
    }
    let ps = workgroupUniformLoad(&pass_);
    if (ps.w == 0u) { break; }
    let joins = rr < rows && done[rr] == 0u && mine.x == ps.x && mine.y == ps.y;
    workgroupBarrier();
    if (joins && sub == 0u) { done[rr] = 1u; }
    for (var c0 = ps.y; c0 < ps.z; c0 += CK) {
      let cn = min(CK, ps.z - c0);
      if (li < cn) {
        let p = c0 + li;
        let page = st[ps.x + p / pageSize];
        slots[li] = (base + page * pageBytes + (p % pageSize) * kvDim * 4u) >> 2u;
      }
      workgroupBarrier();
      for (var i = li; i < cn * D; i += 128u) {
        let j = i / D;
        kv[j * S + i % D] = ldf(slots[j] + kOff + kvh + i % D);
      }
      workgroupBarrier();
      // scores: this thread's 4 positions of its row
      if (joins) {
        var s4 = vec4<f32>(0.0);
        for (var d = 0u; d < D; d++) {
          s4 += qs[rr * S + d] * vec4<f32>(kv[sub * S + d], kv[(sub + 8u) * S + d], kv[(sub + 16u) * S + d], kv[(sub + 24u) * S + d]);
        }
        s4 *= scale;
        if (P.d.x != 0u) { s4 += slope * (f32(c0 + sub) + vec4<f32>(0.0, 8.0, 16.0, 24.0) - f32(own)); }
${
    [0, 1, 2, 3].map((k) =>
      `        sc[rr * CK + sub + ${8 * k}u] = select(-3.0e38, s4[${k}], sub + ${8 * k}u < cn && c0 + sub + ${8 * k}u <= own);`
    ).join("\n")
  }
      }
      workgroupBarrier();
      // the row's new running max (every thread of the row alike), while V replaces K
      var newM = m;
      if (joins) {
        for (var j = 0u; j < cn; j++) { newM = max(newM, sc[rr * CK + j]); }
      }
      for (var i = li; i < cn * D; i += 128u) {
        let j = i / D;
        kv[j * S + i % D] = ldf(slots[j] + vOff + kvh + i % D);
      }
      workgroupBarrier();
      // this thread's 4 scores become weights
      if (joins) {
        for (var k = 0u; k < 4u; k++) {
          let j = rr * CK + sub + 8u * k;
          sc[j] = select(0.0, exp(sc[j] - newM), sub + 8u * k < cn && c0 + sub + 8u * k <= own);
        }
      }
      workgroupBarrier();
      if (joins) {
        let corr = exp(m - newM);
        m = newM;
        var part = 0.0;
${per((k) => `        o${k} *= corr;`)}
        for (var j = 0u; j < cn; j++) {
          let w = sc[rr * CK + j];
          part += w;
          let kr = j * S + sub;
${per((k) => `          o${k} += w * kv[kr + ${8 * k}u];`)}
        }
        l = l * corr + part;
      }
      workgroupBarrier();
    }
    if (joins) {
      let oo = out + ((t0 + rr) * nHeads + h) * D + sub;
${per((k) => `      stf(oo + ${8 * k}u, o${k} / l);`)}
    }
  }
}
`;
}
