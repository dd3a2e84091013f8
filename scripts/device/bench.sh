#!/usr/bin/env bash
# On a lent GPU machine (run from the repository root, with .gl and .device carried; see pack.sh):
# install the carried Vulkan loader and Deno, check that WebGPU finds the GPU, then run the dense
# suite (copy bandwidth, dense GEMV/GEMM) and the sparse suite with the LLaMA-7B-shaped decode
# (DECODE_BLOCKS of its 32 blocks, default 8: building all 32 from random weights takes minutes of
# host time). Results go to $OUT (the device tool's output folder) or ./bench/results.
# PROBE_ONLY=1 stops after the WebGPU check.
set -euo pipefail
out=${OUT:-bench/results}
mkdir -p "$out"
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if ! command -v deno >/dev/null; then
  mkdir -p /tmp/owlgpu-deno
  xz -dc .device/deno.xz >/tmp/owlgpu-deno/deno
  chmod +x /tmp/owlgpu-deno/deno
  export PATH=/tmp/owlgpu-deno:$PATH
fi
probe='const a = await navigator.gpu.requestAdapter(); console.log(a ? a.info.description || a.info.vendor : "none"); if (!a) Deno.exit(1);'
if ! deno eval "$probe"; then
  # NVIDIA's driver ICD where the loader does not find it by itself.
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  deno eval "$probe"
fi
[ "${PROBE_ONLY:-0}" = 1 ] && exit 0
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null | tee "$out/gpu.txt" || true
deno run -A bench/main.ts --suite dense --quick --json "$out/dense.json" 2>&1 | tee "$out/dense.log"
deno run -A bench/main.ts --sparse --decode-blocks "${DECODE_BLOCKS:-8}" --json "$out/sparse.json" 2>&1 |
  tee "$out/sparse.log"
