#!/usr/bin/env bash
# One device-tool run of the WebGPU work on a real GPU (NVIDIA, Vulkan): the
# machine has no Deno and no ../shared, so both travel in .gpucarry (see
# docs/webgpu.md, "To reproduce"); the Vulkan loader travels in .gl.
#   usage (on the device): bash scripts/gpu/device-run.sh [tests|bench|all|peer|profile|quick|prefill|batch|tiles|gen|split|fold|compare|foldvs|trees|matvec|gemm|decide|branchvs]
# fold: the tests, then issue 19's before/after in one run: each model with the RMSNorm/quantize dispatches apart
# (off), folded into the layers' matmuls (layers) and into the classifier too (on), each with the sampler's top-p
# search in one workgroup and over 128 (--spread-from 1e9,0); dispatches per token, greedy and sampled tok/s and
# their ratios to the first variant (`gain`), then the per-kernel GPU time of the 1B token unfolded and folded (layers)
# (`fold 110m` or `fold 1b`: one half).
# foldvs: from a copy of a branch inside the sent tree (.gpuwt), the tests, then each model with main's tree, then the branch's
# fold x spread variants (as fold), in one call; then the branch's 1B per-kernel profile, fold off and layers.
# matvec: bench/webgpu-matvec.ts (one-row matmul candidates, MATVEC_ARGS, then MATVEC_ARGS2 if set), no tests.
# decide: the one call that decides issue 19's open defaults from this tree, within one device command's 10 minutes:
# the row kernels (trees: 1B Q4_0 rows off / auto / auto with fold layers, 110M Q4_0 off / auto, and the 1B's
# per-kernel profiles), then bench/webgpu-gemm.ts (prefill's tiles, every shape, TOPS), then a 1B prefill with
# today's tiles and two register-tiled shapes in one process (today again last), then the tests, then
# bench/webgpu-matvec.ts with what time is left. Each part has its own timeout, so a slow one cannot eat the rest.
# branchvs: a branch (a copy in .gpuwt) against main's tree in one call: trees of 110M F32, 110M Q4_0 and the 1B Q4_0
# (twice), this tree's per-kernel profiles, GEMM_ARGS and MATVEC_ARGS benches where set, then the tests (timeouts each).
# gemm: bench/webgpu-gemm.ts (prefill's tiled matmuls, today's tiles against register-tiled shapes, GEMM_ARGS), no tests.
# trees: RUNS and PROFILES of bench/webgpu.ts from several trees (main's, branch copies) on the same files, one call.
# compare: from a copy of a branch inside the sent tree (.gpuwt), main's tree and the branch's one after the other on the
# same files, twice, then the branch's 1B per-kernel profile (no tests: CI=true tests run first unless SKIP_TESTS=1).
# gen: the tests, then decode of 256 tokens (calls of 64, one call, generate(), sampled) of three models.
# split: each WebGPU call's host time per greedy token (bench/webgpu-host.ts), with and without the timers and 512 batch rows.
# quick: the tests, then prefill (128 and 512 rows) and greedy decode of three models, with the 1B's per-kernel profile.
# peer: llama.cpp (CUDA) builds in the background (scripts/gpu/peer.sh) while
# the tests and kvasm's benchmark run; then llama-bench and kvasm's benchmark
# run again, one after the other on a quiet machine, on the same GGUF files (PEER_110M=F32,Q4_0 PEER_1B=Q4_0: fewer types;
# PEER_DEADLINE: seconds from the start to wait for the build, default 470).
set -uo pipefail
what=${1:-all}
# --help: the comment above, before anything is unpacked or run
if [ "$what" = -h ] || [ "$what" = --help ]; then sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi
OUT=${OUT:-/tmp/out}
start=$SECONDS
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ "$what" = peer ] && [ ! -e /tmp/llamacpp/built ] && ! pgrep -f "peer.sh build" >/dev/null; then
  setsid nohup bash scripts/gpu/peer.sh build >/tmp/peer-build.log 2>&1 </dev/null &
fi
ldconfig -p | grep libvulkan | tee "$OUT/adapter.txt"
xz -dc .gpucarry/deno.xz > /tmp/deno && chmod +x /tmp/deno
[ -e ../shared ] || ln -s "$PWD/.gpucarry/shared" ../shared
export XDG_RUNTIME_DIR=/tmp
probe='const a = await navigator.gpu?.requestAdapter({powerPreference:"high-performance"}); console.log(a ? a.info.description + " | vendor " + a.info.vendor + " | maxStorageBufferBindingSize " + a.limits.maxStorageBufferBindingSize + " | maxBufferSize " + a.limits.maxBufferSize : "no adapter")'
adapter=$(/tmp/deno eval "$probe" 2>&1)
if ! echo "$adapter" | grep -qi nvidia; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  adapter=$(/tmp/deno eval "$probe" 2>&1)
fi
echo "adapter: $adapter" | tee -a "$OUT/adapter.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv | tee -a "$OUT/adapter.txt"
date -u | tee -a "$OUT/adapter.txt"
if [ "$what" != bench ] && [ "$what" != profile ] && [ "$what" != prefill ] && [ "$what" != batch ] && [ "$what" != tiles ] && [ "$what" != split ] && [ "$what" != matvec ] && [ "$what" != gemm ] && [ "$what" != decide ] && [ "$what" != branchvs ] && [ ! -e /tmp/tests-done ] && [ -z "${SKIP_TESTS:-}" ]; then
  CI=true /tmp/deno test -A --no-check tests/webgpu.test.ts 2>&1 | tee "$OUT/test.log"
  [ "$what" = peer ] && touch /tmp/tests-done
fi
if [ "$what" = gen ]; then
  # decode of 256 tokens: four calls of 64, one call, generate() (calls of 4, 8, ... 256), sampled; three models
  kv="--decode 256 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 128,512 --dir /tmp"
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types F32,Q4_0 $kv --json "$OUT/bench-110m.json" 2>&1 | tee -a "$OUT/bench.log"
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 $kv --json "$OUT/bench-1b.json" 2>&1 | tee -a "$OUT/bench.log"
  exit 0
fi
if [ "$what" = fold ]; then
  # before/after in the same run, same files: 6 variants a model (about 10-15 s each on an H200), then two profiles;
  # a second argument, 110m or 1b, runs that half alone (if the 10-minute limit of a device command is near)
  part=${2:-all}
  kv="--decode 256 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 16 --keep --dir /tmp --fold off,layers,on --spread-from 1000000000,0"
  if [ "$part" != 1b ]; then
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types F32,Q4_0 $kv --json "$OUT/fold-110m.json" 2>&1 | tee -a "$OUT/bench.log"
  fi
  if [ "$part" != 110m ]; then
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 $kv --json "$OUT/fold-1b.json" 2>&1 | tee -a "$OUT/bench.log"
    for f in off layers; do
      /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 --decode 16 --chunk 16 --wasm-prefill 0 --prefill 16 --keep --dir /tmp --fold $f --profile 2>&1 | tee -a "$OUT/bench.log"
    done
  fi
  exit 0
fi
if [ "$what" = foldvs ]; then
  # fold's plan and a before/after in one call, from a copy of a branch inside the sent tree (.gpuwt): each model
  # first with main's tree (../, the backend's defaults), then with this tree's six fold x spread variants (gain: over
  # the first, fold off with the one-workgroup sampler, which is main's default below 65536 logits); then this
  # tree's per-kernel GPU time of the 1B token, fold off and layers
  main=${MAIN_TREE:-..}
  kv="--decode 256 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 512 --keep --dir /tmp"
  for shape in stories110M:F32 stories110M:Q4_0 llama-1b:Q4_0; do
    s=${shape%%:*} t=${shape#*:}
    echo "foldvs main $s $t" | tee -a "$OUT/bench.log"
    (cd "$main" && /tmp/deno run -A --no-check bench/webgpu.ts --shapes "$s" --types "$t" $kv 2>&1) | tee -a "$OUT/bench.log"
    echo "foldvs branch $s $t" | tee -a "$OUT/bench.log"
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes "$s" --types "$t" $kv --fold off,layers,on --spread-from 1000000000,0 \
      --json "$OUT/branch-$s-$t.json" 2>&1 | tee -a "$OUT/bench.log"
  done
  for f in off layers; do
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 --decode 16 --chunk 16 --wasm-prefill 0 --prefill 16 --keep --dir /tmp --fold $f --profile 2>&1 | tee -a "$OUT/bench.log"
  done
  # with SKIP_TESTS=1 the tests run last, while the call has time left (a device command has 10 minutes)
  if [ -n "${SKIP_TESTS:-}" ] && [ $((SECONDS - start)) -lt "${TESTS_BEFORE_S:-450}" ]; then
    CI=true timeout $((570 - (SECONDS - start))) /tmp/deno test -A --no-check tests/webgpu.test.ts 2>&1 | tee "$OUT/test.log"
  fi
  exit 0
fi
if [ "$what" = matvec ]; then
  # one-row quantized matmuls, today's kernel and candidate forms, each dispatch timed back to back (GB/s)
  /tmp/deno run -A --no-check bench/webgpu-matvec.ts ${MATVEC_ARGS:-} --json "$OUT/matvec.jsonl" 2>&1 | tee -a "$OUT/bench.log"
  # MATVEC_ARGS2: a second set (other cases or types) in the same call
  [ -n "${MATVEC_ARGS2:-}" ] && /tmp/deno run -A --no-check bench/webgpu-matvec.ts $MATVEC_ARGS2 --json "$OUT/matvec2.jsonl" 2>&1 | tee -a "$OUT/bench.log"
  exit 0
fi
if [ "$what" = decide ]; then
  self=$0
  SKIP_TESTS=1 RUNS=".:llama-1b:Q4_0:-:off .:llama-1b:Q4_0:-:auto .:llama-1b:Q4_0:layers:auto .:stories110M:Q4_0:-:off .:stories110M:Q4_0:-:auto" \
    PROFILES=".:llama-1b:Q4_0:off:off .:llama-1b:Q4_0:off:auto" timeout 230 bash "$self" trees > "$OUT/trees.log" 2>&1
  echo "decide: trees done at $((SECONDS - start)) s"
  timeout 120 /tmp/deno run -A --no-check bench/webgpu-gemm.ts ${GEMM_ARGS:-} --json "$OUT/gemm.jsonl" > "$OUT/gemm.log" 2>&1
  echo "decide: gemm done at $((SECONDS - start)) s"
  timeout 60 /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 --decode 8 --chunk 8 --wasm-prefill 0 --prefill 128,512 \
    --keep --dir /tmp --tiles "${DECIDE_TILES:-today,b64x64-t8x8-k2,b128x128-t8x8-k2,auto,today}" > "$OUT/tiles.log" 2>&1
  echo "decide: tiles done at $((SECONDS - start)) s"
  # what is left of the 10 minutes (timeout 0 would mean none: a part with under 10 s left is skipped)
  left=$((520 - (SECONDS - start)))
  [ $left -gt 140 ] && left=140
  if [ $left -ge 10 ]; then
    CI=true timeout $left /tmp/deno test -A --no-check tests/webgpu.test.ts > "$OUT/test.log" 2>&1
    echo "decide: tests done at $((SECONDS - start)) s"
    tail -4 "$OUT/test.log"
  fi
  left=$((590 - (SECONDS - start)))
  if [ $left -ge 10 ]; then
    timeout $left /tmp/deno run -A --no-check bench/webgpu-matvec.ts --n 50 --json "$OUT/matvec.jsonl" > "$OUT/matvec.log" 2>&1
    echo "decide: matvec done at $((SECONDS - start)) s"
  fi
  grep -h fastest "$OUT/gemm.log"
  grep -h '^{' "$OUT/trees.log" "$OUT/tiles.log" | cut -c1-400
  exit 0
fi
if [ "$what" = branchvs ]; then
  # a branch against main in one call, from a copy of the branch inside the sent tree (.gpuwt): trees (main's tree ..
  # then this one, the backends' defaults, the 1B twice, alternating; prefill 128 and 512), this tree's per-kernel
  # profiles (the 1B Q4_0, 110M F32 and Q4_0), bench/webgpu-gemm.ts (GEMM_ARGS) and bench/webgpu-matvec.ts (MATVEC_ARGS)
  # where set, then the tests with the time left; each part under its own timeout (a device command has 10 minutes)
  self=$0
  SKIP_TESTS=1 TREES_PREFILL=128,512 \
    RUNS="${BRANCHVS_RUNS:-..:llama-1b:Q4_0:- .:llama-1b:Q4_0:- ..:stories110M:F32:- .:stories110M:F32:- ..:stories110M:Q4_0:- .:stories110M:Q4_0:- ..:llama-1b:Q4_0:- .:llama-1b:Q4_0:-}" \
    PROFILES="${BRANCHVS_PROFILES:-.:llama-1b:Q4_0:auto .:stories110M:F32:auto .:stories110M:Q4_0:auto}" \
    timeout "${BRANCHVS_TREES_S:-280}" bash "$self" trees > "$OUT/trees.log" 2>&1
  echo "branchvs: trees done at $((SECONDS - start)) s"
  if [ -n "${GEMM_ARGS:-}" ]; then
    timeout "${BRANCHVS_GEMM_S:-100}" /tmp/deno run -A --no-check bench/webgpu-gemm.ts $GEMM_ARGS --json "$OUT/gemm.jsonl" > "$OUT/gemm.log" 2>&1
    echo "branchvs: gemm done at $((SECONDS - start)) s"
  fi
  if [ -n "${MATVEC_ARGS:-}" ]; then
    timeout "${BRANCHVS_MATVEC_S:-50}" /tmp/deno run -A --no-check bench/webgpu-matvec.ts $MATVEC_ARGS --json "$OUT/matvec.jsonl" > "$OUT/matvec.log" 2>&1
    echo "branchvs: matvec done at $((SECONDS - start)) s"
  fi
  left=$((${BRANCHVS_END_S:-550} - (SECONDS - start)))
  if [ $left -ge 10 ]; then
    CI=true timeout $left /tmp/deno test -A --no-check tests/webgpu.test.ts > "$OUT/test.log" 2>&1
    echo "branchvs: tests done at $((SECONDS - start)) s"
    tail -4 "$OUT/test.log"
  fi
  grep -h fastest "$OUT/gemm.log" 2>/dev/null
  grep -h '^{' "$OUT/trees.log" | cut -c1-300
  exit 0
fi
if [ "$what" = gemm ]; then
  # many-row quantized matmuls: today's tiles and register-tiled shapes, each output checked against today's (TOPS)
  /tmp/deno run -A --no-check bench/webgpu-gemm.ts ${GEMM_ARGS:-} --json "$OUT/gemm.jsonl" 2>&1 | tee -a "$OUT/bench.log"
  exit 0
fi
if [ "$what" = trees ]; then
  # RUNS: space-separated tree:shape:type:fold[:rows[:tiles[:lanes[:plans[:f32form[:attention]]]]]] (rows: bench/webgpu.ts --rows,
  # tiles: --tiles, lanes: --f32-lanes, plans: --plans on|off, f32form: --f32-form, attention: --attention, a branch's options; "-" or empty: the tree's default), each a bench/webgpu.ts run (decode 256 in runs of 64, prefill 512) from
  # that folder on the same files (e.g. ..:llama-1b:Q4_0:off .:llama-1b:Q4_0:off; fold "-": the tree's default), SPREAD:
  # --spread-from (unset: each tree's default), TREES_PREFILL: --prefill (default 512);
  # PROFILES: runs of the per-kernel GPU time, in RUNS' fields. One call, one machine: same-run ratios.
  kv="--decode 256 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill ${TREES_PREFILL:-512} --keep --dir /tmp ${SPREAD:+--spread-from $SPREAD}"
  # bench/webgpu.ts options of a run's fields (fold rows tiles lanes plans f32form attention) into variant; RUNS and PROFILES read them alike
  variant_of() {
    variant=()
    [ -n "$1" ] && [ "$1" != - ] && variant+=(--fold "$1")
    [ -n "$2" ] && [ "$2" != - ] && variant+=(--rows "$2")
    [ -n "$3" ] && [ "$3" != - ] && variant+=(--tiles "$3")
    [ -n "$4" ] && [ "$4" != - ] && variant+=(--f32-lanes "$4")
    [ -n "$5" ] && [ "$5" != - ] && variant+=(--plans "$5")
    [ -n "$6" ] && [ "$6" != - ] && variant+=(--f32-form "$6")
    [ -n "$7" ] && [ "$7" != - ] && variant+=(--attention "$7")
    return 0
  }
  for r in $RUNS; do
    IFS=: read -r tree s t f rows tiles lanes plans f32form attention <<<"$r"
    echo "trees $r" | tee -a "$OUT/bench.log"
    variant_of "$f" "$rows" "$tiles" "$lanes" "$plans" "$f32form" "$attention"
    (cd "$tree" && /tmp/deno run -A --no-check bench/webgpu.ts --shapes "$s" --types "$t" $kv "${variant[@]}" 2>&1) | tee -a "$OUT/bench.log"
  done
  for r in ${PROFILES:-}; do
    IFS=: read -r tree s t f rows tiles lanes plans f32form attention <<<"$r"
    echo "trees profile $r" | tee -a "$OUT/bench.log"
    variant_of "$f" "$rows" "$tiles" "$lanes" "$plans" "$f32form" "$attention"
    (cd "$tree" && /tmp/deno run -A --no-check bench/webgpu.ts --shapes "$s" --types "$t" --decode 16 --chunk 16 --wasm-prefill 0 --prefill ${PROFILE_PREFILL:-16} \
      --keep --dir /tmp "${variant[@]}" --profile 2>&1) | tee -a "$OUT/bench.log"
  done
  exit 0
fi
if [ "$what" = compare ]; then
  # before/after in one run: main's tree (the repository root the device call sent, ../ of this tree when it runs
  # from a copy of the branch in a folder of it, .gpuwt) and this tree, one after the other on the same files, twice
  # (A B A B), each model with the backend's defaults; then this tree's per-kernel GPU time of the 1B token.
  # COMPARE_ARGS: extra bench/webgpu.ts options for this tree's runs (a variant under test).
  main=${MAIN_TREE:-..}
  kv="--decode 256 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 512 --keep --dir /tmp"
  for shape in stories110M:F32,Q4_0 llama-1b:Q4_0; do
    s=${shape%%:*}
    for round in 1 2; do
      echo "compare main round $round $s" | tee -a "$OUT/bench.log"
      (cd "$main" && /tmp/deno run -A --no-check bench/webgpu.ts --shapes "$s" --types "${shape#*:}" $kv --json "/tmp/main-$s-$round.json" 2>&1) | tee -a "$OUT/bench.log"
      echo "compare branch round $round $s" | tee -a "$OUT/bench.log"
      /tmp/deno run -A --no-check bench/webgpu.ts --shapes "$s" --types "${shape#*:}" $kv ${COMPARE_ARGS:-} --json "/tmp/branch-$s-$round.json" 2>&1 | tee -a "$OUT/bench.log"
    done
  done
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 --decode 16 --chunk 16 --wasm-prefill 0 --prefill 512 --keep --dir /tmp ${COMPARE_ARGS:-} --profile 2>&1 | tee -a "$OUT/bench.log"
  exit 0
fi
if [ "$what" = split ]; then
  # where the host's time per greedy token goes (each WebGPU call timed), at three submit sizes
  for shape in stories110M:F32 llama-1b:Q4_0; do
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes "${shape%%:*}" --types "${shape#*:}" --decode 8 --chunk 8 --wasm-prefill 0 --prefill 16 --keep --dir /tmp >/dev/null 2>&1
    for v in "256 0" "256 512" "256 512 nosplit" "256 0 nosplit"; do
      set -- $v
      echo "split ${shape} submitEvery $1 maxBatchRows $2 $3" | tee -a "$OUT/bench.log"
      NOSPLIT=${3:+1} /tmp/deno run -A --no-check bench/webgpu-host.ts "/tmp/kvasm-bench-${shape%%:*}-${shape#*:}.gguf" 240 $1 $2 2>&1 | tee -a "$OUT/bench.log"
    done
  done
  exit 0
fi
if [ "$what" = tiles ]; then
  # prefill with matmul tiles of 32 token rows and of 64
  for tr in 32 64 32; do
    for shape in stories110M:F32 llama-1b:Q4_0; do
      /tmp/deno run -A --no-check bench/webgpu.ts --shapes "${shape%%:*}" --types "${shape#*:}" --decode 8 --chunk 8 --wasm-prefill 0 --prefill 128,512 --tile-rows $tr --keep --dir /tmp 2>&1 | tee -a "$OUT/bench.log"
    done
  done
  exit 0
fi
if [ "$what" = batch ]; then
  # batched decode (16 sequences, a row each) with matmul tiles from 16 rows and from 32
  for tf in 16 32; do
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M,llama-1b --types Q4_0 --decode 32 --chunk 32 --wasm-prefill 0 --prefill 128 --batch 16 --tiled-from $tf --dir /tmp 2>&1 | tee -a "$OUT/bench.log"
  done
  exit 0
fi
if [ "$what" = prefill ]; then
  # per-kernel GPU time of a 512-row prefill (and a short decode), no tests
  for shape in stories110M:F32 llama-1b:Q4_0; do
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes "${shape%%:*}" --types "${shape#*:}" --decode 16 --chunk 16 --wasm-prefill 0 --prefill 128,512 --profile --dir /tmp 2>&1 | tee -a "$OUT/bench.log"
  done
  exit 0
fi
if [ "$what" = quick ]; then
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types F32,Q4_0 --decode 128 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 128,512 --dir /tmp 2>&1 | tee "$OUT/bench.log"
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0 --decode 128 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 128,512 --profile --dir /tmp 2>&1 | tee -a "$OUT/bench.log"
  exit 0
fi
if [ "$what" = profile ]; then
  # GPU microseconds per greedy token of each kernel, beside the plain throughput
  for shape in stories110M:F32,Q4_0 llama-1b:Q4_0; do
    /tmp/deno run -A --no-check bench/webgpu.ts --shapes "${shape%%:*}" --types "${shape#*:}" --decode 128 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --profile --dir /tmp 2>&1 | tee -a "$OUT/bench.log"
  done
  exit 0
fi
if [ "$what" = peer ]; then
  # decode 256 in runs of 64 per call, and in one call (greedyOverlapTps: each run read back while the next runs)
  kv="--decode 256 --chunk 64 --wasm-prefill 0 --bandwidth-gbs 4800 --prefill 128,512 --keep --dir /tmp"
  # PEER_110M / PEER_1B: the types of each shape both engines run (default all five files; fewer to fit one call)
  t110=${PEER_110M-F32,Q8_0,Q4_0} t1b=${PEER_1B-Q4_0,Q8_0}
  files=""
  for t in ${t110//,/ }; do files+=" /tmp/kvasm-bench-stories110M-$t.gguf"; done
  for t in ${t1b//,/ }; do files+=" /tmp/kvasm-bench-llama-1b-$t.gguf"; done
  # first pass, while llama.cpp compiles: writes the GGUF files both engines read (its numbers are not the quiet ones);
  # skipped only where every file this run names is there already (a warm machine's earlier run may have written others)
  missing=""
  for f in $files; do [ -e "$f" ] || missing=1; done
  if [ -n "$missing" ]; then
    [ -n "$t110" ] && /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types "$t110" ${kv/--decode 256/--decode 32} --json /tmp/bench-110m.json 2>&1 | tee "$OUT/bench.log"
    [ -n "$t1b" ] && /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types "$t1b" ${kv/--decode 256/--decode 32} --json /tmp/bench-1b.json 2>&1 | tee -a "$OUT/bench.log"
  fi
  deadline=${PEER_DEADLINE:-470}
  while [ ! -e /tmp/llamacpp/built ] && pgrep -f "peer.sh build" >/dev/null && [ $((SECONDS - start)) -lt "$deadline" ]; do sleep 5; done
  if [ -e /tmp/llamacpp/built ]; then
    cat .gpucarry/llamacpp.version 2>/dev/null | tee "$OUT/peer.jsonl"
    bash scripts/gpu/peer.sh bench $files | tee -a "$OUT/peer.jsonl"
    # kvasm again right after, on the same files and the same quiet machine
    [ -n "$t110" ] && /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types "$t110" $kv --batch 16 --json "$OUT/bench-110m.json" 2>&1 | tee -a "$OUT/bench.log"
    [ -n "$t1b" ] && /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types "$t1b" $kv --batch 16 --json "$OUT/bench-1b.json" 2>&1 | tee -a "$OUT/bench.log"
  else
    echo "llama.cpp not built after $((SECONDS - start)) s (still building: $(pgrep -f 'peer.sh build' >/dev/null && echo yes || echo no))" | tee -a "$OUT/bench.log"
  fi
  tail -c 20000 /tmp/peer-build.log > "$OUT/peer-build.log"
  exit 0
fi
if [ "$what" != tests ]; then
  # WASM_PREFILL=0 skips the (slow) single-thread WASM prefill the speedup column needs
  w=${WASM_PREFILL:-32}
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types F32,Q8_0,Q4_0 --decode 128 --chunk 64 --wasm-prefill "$w" --json "$OUT/bench-110m.json" 2>&1 | tee "$OUT/bench.log"
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0,Q8_0 --decode 128 --chunk 64 --wasm-prefill $((w / 2)) --json "$OUT/bench-1b.json" 2>&1 | tee -a "$OUT/bench.log"
  # what overlapping recording with the GPU is worth: one submit per 4096 dispatches instead of 256
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types Q8_0 --decode 128 --chunk 64 --submit-every 4096 --wasm-prefill 0 2>&1 | tee -a "$OUT/bench.log"
fi
