#!/usr/bin/env bash
# The native peer on the device machine: llama.cpp built with CUDA from the
# source tarball in .gpucarry/llamacpp.tar.xz (prepare-carry.sh makes it with
# `git archive`; nothing of llama.cpp is in this repository), in /tmp.
#   bash scripts/gpu/peer.sh build          # configure and build llama-bench (run it under setsid: it outlives the call)
#   bash scripts/gpu/peer.sh bench FILE...  # llama-bench: prefill 128 and 512 (pp128, pp512) and decode 128 (tg128), all layers on the GPU
set -uo pipefail
OUT=${OUT:-/tmp/out}
src=/tmp/llamacpp
case "${1:-}" in
  build)
    rm -rf "$src" && mkdir -p "$src" && tar xJf .gpucarry/llamacpp.tar.xz -C "$src" || exit 1
    # cuBLAS may live outside the toolkit folder (a pip wheel): tell CMake where
    hdr=$(find /usr/local /opt /usr/lib /usr/include -name cublas_v2.h 2>/dev/null | head -1)
    lib=$(find /usr/local /opt /usr/lib -name 'libcublas.so*' 2>/dev/null | head -1)
    liblt=$(find /usr/local /opt /usr/lib -name 'libcublasLt.so*' 2>/dev/null | head -1)
    echo "nvcc: $(nvcc --version | tail -1); cublas_v2.h: $hdr; libcublas: $lib; libcublasLt: $liblt"
    extra=()
    if [ -n "$hdr" ] && [ "$(dirname "$hdr")" != /usr/local/cuda/include ]; then
      extra+=("-DCMAKE_CXX_FLAGS=-I$(dirname "$hdr")" "-DCMAKE_CUDA_FLAGS=-I$(dirname "$hdr")")
      [ -n "$lib" ] && extra+=("-DCUDA_cublas_LIBRARY=$lib")
      [ -n "$liblt" ] && extra+=("-DCUDA_cublasLt_LIBRARY=$liblt")
    fi
    cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF "${extra[@]}" &&
      cmake --build "$src/build" --target llama-bench llama-cli -j16 && touch "$src/built"
    ;;
  bench)
    shift
    for f in "$@"; do
      "$src/build/bin/llama-bench" -m "$f" -p 128,512 -n 128 -ngl 99 -r 3 -o jsonl 2>>/tmp/peer-build.log
    done
    ;;
  *) echo "usage: peer.sh build | bench FILE..." >&2; exit 2 ;;
esac
