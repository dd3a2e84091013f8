/**
 * Y = X W^T (+ b) on the GPU, choosing the kernel version from the adapter and the shape:
 * M = 1 is a GEMV (a 1 x 8 tile on CPU adapters, wgreduce on GPUs), larger M a register-tiled
 * GEMM: on lavapipe the `texture` version (X and W copied into scratch rgba32float textures, whose
 * texel fetches are cheaper than storage gathers there) when K % 4 == 0 and W is f32, else big
 * storage tiles (every load is a gather there), as on SwiftShader, which reads storage faster
 * (`gpu.cpu.weightTextures`: 11008x4096, M = 8: tiles 104 ms, texture 138); 4x4 tiles on GPUs.
 * @module
 */
import {
  LINEAR_TEX_WIDTH,
  linearKey,
  type LinearOptions,
  linearWgsl,
  linearWorkgroups,
} from "../../kernels/linear.ts";
import { packUniforms } from "../../kernels/common.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import type { Binding, Gpu } from "../gpu/device.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { checkBuffer, checkCounts, checkDistinct, checkMatrix, checkOneOf } from "./check.ts";

/**
 * Force a version (tests use this to cover every path on one adapter).
 *
 * @example Force the storage `tile` version with a 2 x 4 tile, whatever the adapter would pick
 * ```ts
 * import {
 *   chooseLinear, Gpu, linear, type LinearOverride, releaseMatrix, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const M = 3, N = 2, K = 4;
 * const w = uploadMatrix(gpu, new Float32Array([1, 2, 3, 4, -1, 0, 1, 0]), N, K, "w");
 * const force: LinearOverride = { variant: "tile", tm: 2, tn: 4 };
 * const opts = chooseLinear(gpu, M, K, w, false, force);
 * assert.deepEqual([opts.variant, opts.tm, opts.tn], ["tile", 2, 4]);
 * const x = gpu.upload(new Float32Array([1, 1, 1, 1, 0, 1, 0, 1, 2, 0, 0, 0]), "x");
 * const y = gpu.buffer(M * N * 4, "y");
 * linear(gpu, x, w, y, M, undefined, force);
 * assert.deepEqual([...await gpu.readF32(y)], [10, 0, 6, 0, 2, -2]);
 * releaseMatrix(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface LinearOverride {
  /** Kernel version. */
  variant?: LinearOptions["variant"];
  /** Tile rows (`tile` and `texture`). */
  tm?: number;
  /** Tile columns (`tile` and `texture`). */
  tn?: number;
  /** `texture` version only: copy W into the scratch texture in pieces of at most this many rows. */
  texPieceRows?: number;
}

/**
 * Kernel options for an M x N x K product on this adapter.
 *
 * @example The version depends on the adapter and the shape; the options name and generate the kernel
 * ```ts
 * import { chooseLinear, Gpu, linearKey, linearWgsl, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array(6 * 8), 6, 8, "w"); // N = 6, K = 8, f32
 * const gemv = chooseLinear(gpu, 1, 8, w, false); // M = 1
 * assert.equal(gemv.variant, gpu.isCpu ? "tile" : "wgreduce");
 * const gemm = chooseLinear(gpu, 16, 8, w, true); // M = 16, with a bias
 * assert.equal(gemm.variant, gpu.cpu?.weightTextures ? "texture" : "tile");
 * assert.equal(gemm.vec, 4); // K % 4 == 0: vec4 loads
 * assert.notEqual(linearKey(gemv), linearKey(gemm)); // two pipelines
 * assert.ok(linearWgsl(gemm).includes(`@workgroup_size(${gemm.workgroupSize})`));
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export function chooseLinear(
  gpu: Gpu,
  M: number,
  K: number,
  w: GpuMatrix,
  bias: boolean,
  o: LinearOverride = {},
): LinearOptions {
  const vec: 1 | 4 = K % 4 === 0 ? 4 : 1;
  // CPU adapters: a 1 x 8 tile streams W fastest for M = 1 (measured: rowlane 300 ms, wgreduce
  // 231 ms, tile 1x4 196 ms on 11008x4096 f32, against ~180 ms for a shader that only reads W).
  const texOk = vec === 4 && w.dtype === "f32" && !!gpu.cpu?.weightTextures &&
    (M * K) / 4 <= texCapacity(gpu);
  const variant = o.variant ??
    (M === 1 ? (gpu.isCpu ? "tile" : "wgreduce") : texOk ? "texture" : "tile");
  let tm = 1, tn = 1, wg = 8;
  if (variant === "texture") {
    // Measured on lavapipe (2 shared cores, 256 tokens): 32x32 beat 32x64, 64x32, 32x16 and a
    // 64-lane workgroup; ~30% over the storage 32x64 tile on stories15M's four GEMM shapes.
    tm = M <= 8 ? 8 : M <= 16 ? 16 : 32;
    tn = 32;
  } else if (variant === "tile") {
    if (gpu.isCpu && M === 1) {
      tn = 8;
    } else if (gpu.isCpu) {
      // The storage fallback (f16 W or scalar K): 16x64, not 32x64, because the 32x64 tile takes
      // 15 s to compile on lavapipe with a warm machine and over a minute cold, for ~2x the speed.
      tm = M <= 8 ? 8 : 16;
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
 *
 * @example Y = X W^T + b for 2 rows, against a CPU loop
 * ```ts
 * import { Gpu, linear, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const M = 2, N = 3, K = 8;
 * const W = Float32Array.from({ length: N * K }, (_, i) => (i % 7) - 3);
 * const X = Float32Array.from({ length: M * K }, (_, i) => i / 4);
 * const B = new Float32Array([0.5, -1, 2]);
 * const w = uploadMatrix(gpu, W, N, K, "w");
 * const x = gpu.upload(X, "x"), y = gpu.buffer(M * N * 4, "y"), bias = gpu.upload(B, "b");
 * linear(gpu, x, w, y, M, bias);
 * const got = await gpu.readF32(y);
 * for (let m = 0; m < M; m++) {
 *   for (let n = 0; n < N; n++) {
 *     let want = B[n];
 *     for (let k = 0; k < K; k++) want += X[m * K + k] * W[n * K + k];
 *     assert.ok(Math.abs(got[m * N + n] - want) < 1e-5);
 *   }
 * }
 * releaseMatrix(gpu, w);
 * gpu.release(x, y, bias);
 * gpu.destroy();
 * ```
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
  checkCounts("linear", { M });
  checkMatrix(gpu, "linear", "w", w);
  checkBuffer("linear", "x", x, M * K * 4, `X [M ${M}, K ${K}] f32`);
  checkBuffer("linear", "y", y, M * N * 4, `Y [M ${M}, N ${N}] f32`);
  if (bias) checkBuffer("linear", "bias", bias, N * 4, `the bias [N ${N}] f32`);
  checkDistinct("linear", { y }, { x, bias });
  if (override) checkLinearOverride(override);
  if (override?.variant === "texture" && (w.dtype !== "f32" || K % 4 !== 0)) {
    throw new ArgumentError(
      `linear: the texture version needs f32 weights and K % 4 == 0, got ${w.dtype} and K ${K}; force another variant`,
    );
  }
  const opts = chooseLinear(gpu, M, K, w, !!bias, override);
  const pipe = gpu.pipeline(linearKey(opts), () => linearWgsl(opts));
  if (opts.variant === "texture") {
    return linearTexture(gpu, pipe, opts, x, w, y, M, bias, override?.texPieceRows);
  }
  for (const c of w.chunks) {
    const u = packUniforms([M, c.rows, K, N, c.rowStart]);
    const bindings = bias ? [x, c.buffer, y, bias] : [x, c.buffer, y];
    gpu.dispatch(pipe, bindings, u, linearWorkgroups(opts, M, c.rows));
  }
}

/** Throw unless a forced version and tile are ones the kernels have. */
function checkLinearOverride(o: LinearOverride): void {
  if (o.variant !== undefined) checkOneOf("linear", "override.variant", o.variant, LINEAR_VARIANTS);
  const sizes: Record<string, number> = {};
  if (o.tm !== undefined) sizes["override.tm"] = o.tm;
  if (o.tn !== undefined) sizes["override.tn"] = o.tn;
  if (o.texPieceRows !== undefined) sizes["override.texPieceRows"] = o.texPieceRows;
  checkCounts("linear", sizes);
}

const LINEAR_VARIANTS: readonly LinearOptions["variant"][] = ["tile", "texture", "rowlane", "wgreduce"];

// ---- texture version ------------------------------------------------------------------------

const TEXEL_BYTES = 16; // rgba32float

/** Texels one scratch texture can hold (flat layout, LINEAR_TEX_WIDTH texels a row). */
function texCapacity(gpu: Gpu): number {
  return LINEAR_TEX_WIDTH * gpu.device.limits.maxTextureDimension2D;
}

/** Per-device scratch textures for X and W, grown on demand and kept for the device's life. */
const scratch = new WeakMap<Gpu, { x?: GPUTexture; w?: GPUTexture }>();

function scratchTexture(gpu: Gpu, which: "x" | "w", texels: number): GPUTexture {
  let s = scratch.get(gpu);
  if (!s) scratch.set(gpu, s = {});
  const rows = Math.ceil(texels / LINEAR_TEX_WIDTH);
  const old = s[which];
  if (old && old.height >= rows) return old;
  if (old) {
    gpu.flush(); // recorded commands may still use it: submit them before destroying
    old.destroy();
  }
  const height = Math.min(gpu.device.limits.maxTextureDimension2D, Math.max(rows, old ? old.height * 2 : 1));
  const t = gpu.device.createTexture({
    label: `linear-scratch-${which}`,
    size: [LINEAR_TEX_WIDTH, height],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
  });
  s[which] = t;
  return t;
}

/** Copy `texels` rgba32float texels from `src` (at byte `offset`) into `tex` in its flat layout. */
function copyFlat(gpu: Gpu, src: GPUBuffer, offset: number, texels: number, tex: GPUTexture): void {
  const enc = gpu.commandEncoder();
  const bytesPerRow = LINEAR_TEX_WIDTH * TEXEL_BYTES;
  const full = Math.floor(texels / LINEAR_TEX_WIDTH), rest = texels % LINEAR_TEX_WIDTH;
  if (full > 0) {
    enc.copyBufferToTexture({ buffer: src, offset, bytesPerRow }, { texture: tex }, [LINEAR_TEX_WIDTH, full]);
  }
  if (rest > 0) {
    enc.copyBufferToTexture(
      { buffer: src, offset: offset + full * bytesPerRow, bytesPerRow },
      { texture: tex, origin: [0, full] },
      [rest, 1],
    );
  }
}

/**
 * The texture version: X, then each W chunk (in pieces that fit a texture), is copied into the
 * scratch textures (a copy on CPU adapters: 37 MB a call for stories15M's LM head, ~15 ms of its ~120)
 * ahead of its dispatch, in order with the batch's other commands.
 */
function linearTexture(
  gpu: Gpu,
  pipe: GPUComputePipeline,
  opts: LinearOptions,
  x: GPUBuffer,
  w: GpuMatrix,
  y: GPUBuffer,
  M: number,
  bias: GPUBuffer | undefined,
  pieceRows = Infinity,
): void {
  const N = w.rows, K = w.cols, kv = K / 4;
  const cap = texCapacity(gpu);
  if (M * kv > cap || K % 4 !== 0) {
    throw new UnsupportedError(
      `linear texture version: ${M}x${K} X does not fit a texture; force the tile variant`,
    );
  }
  const xt = scratchTexture(gpu, "x", M * kv);
  copyFlat(gpu, x, 0, M * kv, xt);
  const xv = xt.createView() as unknown as Binding, maxRows = Math.min(pieceRows, Math.floor(cap / kv));
  for (const c of w.chunks) {
    for (let r0 = 0; r0 < c.rows; r0 += maxRows) {
      const rows = Math.min(maxRows, c.rows - r0);
      const wt = scratchTexture(gpu, "w", rows * kv);
      copyFlat(gpu, c.buffer, r0 * K * 4, rows * kv, wt);
      // Gpu.dispatch passes a non-buffer binding through as the entry's resource.
      const bindings = [xv, wt.createView() as unknown as Binding, y];
      if (bias) bindings.push(bias);
      gpu.dispatch(
        pipe,
        bindings,
        packUniforms([M, rows, K, N, c.rowStart + r0]),
        linearWorkgroups(opts, M, rows),
      );
    }
  }
}
