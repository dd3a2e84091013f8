/**
 * Y = X W^T (+ b) on the GPU, choosing the kernel version from the adapter and the shape:
 * M = 1 is a GEMV (rowlane on CPU adapters, wgreduce on GPUs), larger M a register-tiled GEMM
 * with big tiles on CPU adapters (every load is a gather there) and 4x4 tiles on GPUs.
 * @module
 */
import { linearKey, type LinearOptions, linearWgsl, linearWorkgroups } from "../../kernels/linear.ts";
import { packUniforms } from "../../kernels/common.ts";
import type { Gpu } from "../gpu/device.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";

/** Force a version (tests use this to cover every path on one adapter). */
export interface LinearOverride {
  variant?: LinearOptions["variant"];
  tm?: number;
  tn?: number;
}

/** Kernel options for an M x N x K product on this adapter. */
export function chooseLinear(gpu: Gpu, M: number, K: number, w: GpuMatrix, bias: boolean, o: LinearOverride = {}): LinearOptions {
  const vec: 1 | 4 = K % 4 === 0 ? 4 : 1;
  // CPU adapters: a 1 x 8 tile streams W fastest for M = 1 (measured: rowlane 300 ms, wgreduce
  // 231 ms, tile 1x4 196 ms on 11008x4096 f32, against ~180 ms for a shader that only reads W).
  const variant = o.variant ?? (M === 1 && !gpu.isCpu ? "wgreduce" : "tile");
  let tm = 1, tn = 1, wg = 8;
  if (variant === "tile") {
    if (gpu.isCpu && M === 1) {
      tn = 8;
    } else if (gpu.isCpu) {
      tm = M <= 8 ? 8 : M <= 16 ? 16 : 32;
      tn = 64;
      wg = 8;
    } else {
      tm = 4;
      tn = 4;
      wg = 64;
    }
  } else if (variant === "wgreduce") wg = 64;
  return { variant, wDtype: w.dtype, vec, bias, tm: o.tm ?? tm, tn: o.tn ?? tn, workgroupSize: wg };
}

/**
 * Record Y[M, N] = X[M, K] W^T + b into the current batch.
 * @param x f32 [M, K]; @param w [N, K] possibly chunked; @param y f32 [M, N]; @param bias f32 [N].
 */
export function linear(
  gpu: Gpu,
  x: GPUBuffer,
  w: GpuMatrix,
  y: GPUBuffer,
  M: number,
  bias?: GPUBuffer,
  override?: LinearOverride,
): void {
  const N = w.rows, K = w.cols;
  const opts = chooseLinear(gpu, M, K, w, !!bias, override);
  const pipe = gpu.pipeline(linearKey(opts), () => linearWgsl(opts));
  for (const c of w.chunks) {
    const u = packUniforms([M, c.rows, K, N, c.rowStart]);
    const bindings = bias ? [x, c.buffer, y, bias] : [x, c.buffer, y];
    gpu.dispatch(pipe, bindings, u, linearWorkgroups(opts, M, c.rows));
  }
}
