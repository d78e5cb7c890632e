#!/usr/bin/env bash
# Builds what scripts/gpu/device-run.sh needs on the device machine, in git-excluded
# folders (.gl: the Vulkan/GL loaders as .debs; .gpucarry: Deno xz-compressed and a
# copy of the few ../shared files the WebGPU tests read; with LLAMACPP_GIT, llama.cpp's source). Delete .gpucarry afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in /.gl/ /.gpucarry/; do grep -qx "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -qq
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
S=../shared
mkdir -p .gpucarry/shared/models/stories260K .gpucarry/shared/models/synthetic-quants .gpucarry/shared/golden
cp $S/models/stories260K/*.gguf .gpucarry/shared/models/stories260K/
cp $S/models/synthetic-quants/synthq-{q4_k_m,q8_0,q4_0}.gguf .gpucarry/shared/models/synthetic-quants/
cp $S/golden/stories260K.json $S/golden/synthetic-quants.json .gpucarry/shared/golden/
xz -T4 -6 -c node_modules/deno/deno > .gpucarry/deno.xz
# llama.cpp's source for the native peer (scripts/gpu/peer.sh), from a clone the search tool's fetch
# brought (LLAMACPP_GIT=/work/.mirror/ggerganov+llama.cpp/repo): only what its CUDA build of llama-bench needs
if [ -n "${LLAMACPP_GIT:-}" ]; then
  git --git-dir="$LLAMACPP_GIT" archive --format=tar HEAD CMakeLists.txt cmake common ggml include src examples pocs scripts/build-info.sh | xz -T4 -6 > .gpucarry/llamacpp.tar.xz
  git --git-dir="$LLAMACPP_GIT" log -1 --format='llama.cpp %H %cs' > .gpucarry/llamacpp.version
fi
echo 'carry: [".gl", ".gpucarry", "build/kvasm-simd.wasm", "build/kvasm-relaxed.wasm", "build/kvasm-simd-shared.wasm", "build/kvasm-relaxed-shared.wasm"]'
