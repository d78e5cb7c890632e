#!/usr/bin/env bash
# One device-tool run of the WebGPU work on a real GPU (NVIDIA, Vulkan): the
# machine has no Deno and no ../shared, so both travel in .gpucarry (see the
# README section "WebGPU"); the Vulkan loader travels in .gl.
#   usage (on the device): bash scripts/gpu/device-run.sh [tests|bench|all]
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
ldconfig -p | grep libvulkan | tee "$OUT/vulkan.txt"
xz -dc .gpucarry/deno.xz > /tmp/deno && chmod +x /tmp/deno
[ -e ../shared ] || ln -s "$PWD/.gpucarry/shared" ../shared
export XDG_RUNTIME_DIR=/tmp
probe='const a = await navigator.gpu?.requestAdapter({powerPreference:"high-performance"}); console.log(a ? a.info.description + " | vendor " + a.info.vendor + " | maxStorageBufferBindingSize " + a.limits.maxStorageBufferBindingSize + " | maxBufferSize " + a.limits.maxBufferSize : "no adapter")'
adapter=$(/tmp/deno eval "$probe" 2>&1)
if ! echo "$adapter" | grep -qi nvidia; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  adapter=$(/tmp/deno eval "$probe" 2>&1)
fi
echo "adapter: $adapter" | tee "$OUT/adapter.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv | tee -a "$OUT/adapter.txt"
if [ "$what" != bench ]; then
  CI=true /tmp/deno test -A --no-check tests/webgpu.test.ts 2>&1 | tee "$OUT/test.log"
fi
if [ "$what" != tests ]; then
  # WASM_PREFILL=0 skips the (slow) single-thread WASM prefill the speedup column needs
  w=${WASM_PREFILL:-32}
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types F32,Q8_0,Q4_0 --decode 128 --chunk 64 --wasm-prefill "$w" --json "$OUT/bench-110m.json" 2>&1 | tee "$OUT/bench.log"
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes llama-1b --types Q4_0,Q8_0 --decode 128 --chunk 64 --wasm-prefill $((w / 2)) --json "$OUT/bench-1b.json" 2>&1 | tee -a "$OUT/bench.log"
  # what overlapping recording with the GPU is worth: one submit per 4096 dispatches instead of 256
  /tmp/deno run -A --no-check bench/webgpu.ts --shapes stories110M --types Q8_0 --decode 128 --chunk 64 --submit-every 4096 --wasm-prefill 0 2>&1 | tee -a "$OUT/bench.log"
fi
