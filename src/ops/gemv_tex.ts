/**
 * Dense GEMV for lavapipe (`gpu.cpu.weightTextures`; kernels/linear_gemv_tex.ts): W uploaded
 * once into persistent textures (rgba32float for f32 weights; f16 packed 8 to an rgba32uint texel,
 * or rgba16float), X copied per call into a 64 KiB uniform slot, or bound as the slot itself when
 * it is a `Gpu.gemvInput` buffer (so K <= 16384; {@linkcode gemvTexSupported}), a register tile of
 * `rt` rows per lane. The storage GEMV (src/ops/linear.ts) stays the general path; this one is for
 * weights a caller keeps resident in this form (the benchmarks' dense baseline on lavapipe, say).
 *
 * A texture holds at most GEMV_TEX_WIDTH x maxTextureDimension2D texels (8192 rows on lavapipe:
 * 128 MiB of f32), so a weight is split into row pieces of whole weight blocks, one dispatch each.
 * @module
 */
import { packUniforms } from "../../kernels/common.ts";
import {
  GEMV_TEX_SLOT_BYTES,
  GEMV_TEX_SLOT_FLOATS,
  GEMV_TEX_WIDTH,
  gemvTexBlockRows,
  gemvTexFormat,
  gemvTexKey,
  type GemvTexOptions,
  gemvTexWgsl,
  gemvTexWorkgroups,
} from "../../kernels/linear_gemv_tex.ts";
import type { GpuDType } from "../../kernels/common.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import { type Binding, type Gpu, readableAsUniformX } from "../gpu/device.ts";
import { DeviceScratch } from "../gpu/scratch.ts";
import { checkBuffer, checkCounts, checkDistinct, checkOneOf } from "./check.ts";

/**
 * Default register tile and unroll. Measured on lavapipe (2 shared cores, 11008x4096 f32, medians of 9
 * interleaved runs): rt 4 / uk 1 61 ms, 4/2 40, 4/4 35, 8/2 27, 8/4 26, 16/1 30, 16/2 28, 32/1 62;
 * the storage 1x8 tile 65-84 ms.
 */
export const GEMV_TEX_DEFAULT_RT = 8;
export const GEMV_TEX_DEFAULT_UK = 4;

/**
 * One texture of a {@linkcode GpuTexMatrix}: a run of whole weight blocks.
 *
 * @example 40 rows in pieces of at most 16 (blocks of 8 lanes x rt 1 rows), one dispatch each
 * ```ts
 * import {
 *   gemvTex, type GemvTexPiece, Gpu, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadGemvTex(gpu, new Float32Array(40 * 4).fill(1), 40, 4, { rt: 1, maxPieceRows: 16 });
 * const pieces: GemvTexPiece[] = w.pieces;
 * assert.deepEqual(pieces.map((p) => [p.rowStart, p.rows]), [[0, 16], [16, 16], [32, 8]]);
 * const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x"), y = gpu.buffer(40 * 4, "y");
 * gemvTex(gpu, x, w, y);
 * assert.ok((await gpu.readF32(y)).every((v) => v === 10)); // every piece's rows were written
 * releaseGemvTex(gpu, w);
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface GemvTexPiece {
  /** First weight row of the piece. */
  rowStart: number;
  /** Weight rows in the piece. */
  rows: number;
  /** The texture holding the piece's texels. */
  tex: GPUTexture;
  /** The view bound to the kernel. */
  view: GPUTextureView;
}

/**
 * A dense [rows, cols] weight in the texture layout of kernels/linear_gemv_tex.ts.
 *
 * @example A 3 x 9 f32 weight in the default layout (rt 8, uk 4), then a product with it
 * ```ts
 * import {
 *   GEMV_TEX_WIDTH, gemvTex, Gpu, type GpuTexMatrix, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const W = Float32Array.from({ length: 3 * 9 }, (_, i) => i % 4);
 * const m: GpuTexMatrix = uploadGemvTex(gpu, W, 3, 9);
 * assert.deepEqual([m.rows, m.cols, m.dtype, m.rt, m.uk, m.packed], [3, 9, "f32", 8, 4, false]);
 * assert.equal(m.kvp, 4); // ceil(9 / 4) = 3 rgba32float texels a row, padded to uk = 4
 * assert.equal(m.bytes, GEMV_TEX_WIDTH * 16); // one 64-row block fits one texture row
 * const x = gpu.upload(new Float32Array(9).fill(1), "x"), y = gpu.buffer(3 * 4, "y");
 * gemvTex(gpu, x, m, y);
 * assert.deepEqual([...await gpu.readF32(y)], [12, 13, 14]); // row sums of W
 * releaseGemvTex(gpu, m);
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface GpuTexMatrix {
  /** Weight rows (N). */
  rows: number;
  /** Weight columns (K). */
  cols: number;
  /** Weight dtype on the GPU. */
  dtype: GpuDType;
  /** Rows per lane and texel columns per loop iteration the layout was built for. */
  rt: number;
  /** Texel columns per loop iteration (unroll) the layout was padded for. */
  uk: number;
  /** f16 weights 8 to an rgba32uint texel (see GemvTexOptions.packed). */
  packed: boolean;
  /** Texel columns per row: ceil(cols / per texel) rounded up to `uk`. */
  kvp: number;
  /** The texture pieces, in row order. */
  pieces: GemvTexPiece[];
  /** Bytes of all textures (padding included). */
  bytes: number;
}

/**
 * Options of {@linkcode uploadGemvTex}.
 *
 * @example A smaller register tile and forced texture pieces give the same product
 * ```ts
 * import {
 *   gemvTex, Gpu, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex, type UploadGemvTexOptions,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const N = 20, K = 7;
 * const W = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i)), X = [1, 2, 3, 4, 5, 6, 7];
 * const opts: UploadGemvTexOptions = { rt: 2, uk: 4, maxPieceRows: 16, label: "w" };
 * const w = uploadGemvTex(gpu, W, N, K, opts);
 * assert.equal(w.pieces.length, 2); // blocks of 8 lanes x 2 rows: 16 + 4 rows
 * const x = gpu.upload(new Float32Array(X), "x"), y = gpu.buffer(N * 4, "y");
 * gemvTex(gpu, x, w, y);
 * const got = await gpu.readF32(y);
 * for (let n = 0; n < N; n++) {
 *   assert.ok(Math.abs(got[n] - X.reduce((s, v, k) => s + v * W[n * K + k], 0)) < 1e-5);
 * }
 * releaseGemvTex(gpu, w);
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface UploadGemvTexOptions {
  /** Weight dtype on the GPU (f16 needs `gpu.f16`; rgba16float). Default f32. */
  dtype?: GpuDType;
  /** Label of the textures (debugging). */
  label?: string;
  /** Rows per lane, a power of two up to 32 (default 8). */
  rt?: number;
  /** Texel columns per loop iteration: 1, 2 or 4 (default 4). */
  uk?: number;
  /** At most this many rows per texture piece (rounded down to whole blocks; tests force pieces). */
  maxPieceRows?: number;
  /**
   * f16 only: 8 halves to an rgba32uint texel (default), or false: 4 to an rgba16float texel.
   * Measured on lavapipe, 11008x4096: packed 11.4 ms, rgba16float 20.4, f32 19.9 (medians of 9).
   */
  packed?: boolean;
}

/**
 * Whether a [*, K] weight can run here: X must fit the 64 KiB uniform slot.
 *
 * @example Up to 16384 input columns (wider weights take `linear`)
 * ```ts
 * import { GEMV_TEX_SLOT_FLOATS, gemvTexSupported } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(GEMV_TEX_SLOT_FLOATS * 4, 64 * 1024);
 * assert.ok(gemvTexSupported(11008)); // LLaMA-7B's down projection
 * assert.ok(gemvTexSupported(GEMV_TEX_SLOT_FLOATS));
 * assert.ok(!gemvTexSupported(GEMV_TEX_SLOT_FLOATS + 1));
 * assert.ok(!gemvTexSupported(0));
 * ```
 */
export function gemvTexSupported(K: number): boolean {
  return Number.isInteger(K) && K >= 1 && K <= GEMV_TEX_SLOT_FLOATS;
}

/**
 * Upload a row-major f32 [rows, cols] matrix once into the texture layout (host reorder; f16
 * rounds to nearest even). Throws UnsupportedError when cols > 16384.
 *
 * @example Upload once, multiply, and the error for a too-wide weight
 * ```ts
 * import {
 *   gemvTex, Gpu, releaseGemvTex, releaseGemvTexScratch, UnsupportedError, uploadGemvTex,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const N = 5, K = 6, X = [1, 2, 3, 4, 5, 6];
 * const W = Float32Array.from({ length: N * K }, (_, i) => (i % 5) - 2);
 * const w = uploadGemvTex(gpu, W, N, K);
 * const x = gpu.upload(new Float32Array(X), "x"), y = gpu.buffer(N * 4, "y");
 * gemvTex(gpu, x, w, y);
 * const want = Array.from({ length: N }, (_, n) => X.reduce((s, v, k) => s + v * W[n * K + k], 0));
 * assert.deepEqual([...await gpu.readF32(y)], want);
 * assert.throws(() => uploadGemvTex(gpu, new Float32Array(20000), 1, 20000), UnsupportedError);
 * releaseGemvTex(gpu, w);
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export function uploadGemvTex(
  gpu: Gpu,
  data: Float32Array,
  rows: number,
  cols: number,
  opts: UploadGemvTexOptions = {},
): GpuTexMatrix {
  if (!gemvTexSupported(cols)) {
    throw new UnsupportedError(
      `gemvTex: ${cols} columns exceed the ${GEMV_TEX_SLOT_FLOATS}-column uniform slot`,
    );
  }
  checkCounts("uploadGemvTex", { rows, cols });
  if (data.length !== rows * cols) {
    throw new ArgumentError(`gemvTex: ${data.length} values for ${rows}x${cols}`);
  }
  const dtype = opts.dtype ?? "f32";
  checkOneOf("uploadGemvTex", "dtype", dtype, ["f32", "f16"]);
  if (opts.rt !== undefined && ![1, 2, 4, 8, 16, 32].includes(opts.rt)) {
    throw new ArgumentError(`uploadGemvTex: rt must be a power of 2 up to 32, got ${opts.rt}`);
  }
  if (opts.uk !== undefined && ![1, 2, 4].includes(opts.uk)) {
    throw new ArgumentError(`uploadGemvTex: uk must be 1, 2 or 4, got ${opts.uk}`);
  }
  if (opts.maxPieceRows !== undefined) checkCounts("uploadGemvTex", { maxPieceRows: opts.maxPieceRows });
  if (dtype === "f16" && !gpu.f16) throw new UnsupportedError("gemvTex: f16 weights need shader-f16");
  const rt = opts.rt ?? GEMV_TEX_DEFAULT_RT, uk = opts.uk ?? GEMV_TEX_DEFAULT_UK;
  const packed = dtype === "f16" && (opts.packed ?? true);
  const per = packed ? 8 : 4; // weights per texel
  const kv = Math.ceil(cols / per), kvp = Math.ceil(kv / uk) * uk;
  const blockRows = gemvTexBlockRows(rt);
  const blockTexels = blockRows * kvp;
  const maxTexels = GEMV_TEX_WIDTH * gpu.device.limits.maxTextureDimension2D;
  let blocksPerPiece = Math.floor(maxTexels / blockTexels);
  if (opts.maxPieceRows !== undefined) {
    blocksPerPiece = Math.min(blocksPerPiece, Math.max(1, Math.floor(opts.maxPieceRows / blockRows)));
  }
  if (blocksPerPiece < 1) {
    throw new UnsupportedError(`gemvTex: a ${blockRows}-row block does not fit a texture`);
  }
  const label = opts.label ?? "gemvtex";
  const texelBytes = dtype === "f16" && !packed ? 8 : 16;
  const pieces: GemvTexPiece[] = [];
  let bytes = 0;
  for (let r0 = 0; r0 < rows; r0 += blocksPerPiece * blockRows) {
    const n = Math.min(blocksPerPiece * blockRows, rows - r0);
    const blocks = Math.ceil(n / blockRows);
    const height = Math.max(1, Math.ceil((blocks * blockTexels) / GEMV_TEX_WIDTH));
    const host = new Float32Array(height * GEMV_TEX_WIDTH * per);
    for (let b = 0; b < blocks; b++) {
      for (let j = 0; j < blockRows; j++) {
        const row = r0 + b * blockRows + j;
        if (row >= r0 + n) break;
        const l = Math.floor(j / rt), i = j % rt;
        const src = row * cols;
        for (let k = 0; k < kv; k++) {
          const t = ((b * kvp + k) * 8 + l) * rt + i;
          const c = per * k, w = Math.min(per, cols - c);
          for (let e = 0; e < w; e++) host[per * t + e] = data[src + c + e];
        }
      }
    }
    const tex = gpu.device.createTexture({
      label: `${label}[${r0}:${r0 + n}]`,
      size: [GEMV_TEX_WIDTH, height],
      format: gemvTexFormat({ packed, half: dtype === "f16" }),
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    });
    gpu.flush(); // like Gpu.write: never overtake recorded work
    const upload = dtype === "f16" ? new Float16Array(host) : host;
    gpu.device.queue.writeTexture({ texture: tex }, upload, { bytesPerRow: GEMV_TEX_WIDTH * texelBytes }, [
      GEMV_TEX_WIDTH,
      height,
    ]);
    pieces.push({ rowStart: r0, rows: n, tex, view: tex.createView() });
    bytes += height * GEMV_TEX_WIDTH * texelBytes;
  }
  return { rows, cols, dtype, rt, uk, packed, kvp, pieces, bytes };
}

/**
 * Destroy the matrix's textures (after submitting recorded work that may read them) and empty `pieces`;
 * `undefined` is a no-op.
 *
 * @example Release right after recording a product: the product still runs
 * ```ts
 * import { gemvTex, Gpu, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadGemvTex(gpu, new Float32Array([1, 2, 3, 4]), 2, 2);
 * const x = gpu.upload(new Float32Array([1, 1]), "x"), y = gpu.buffer(2 * 4, "y");
 * gemvTex(gpu, x, w, y); // recorded
 * releaseGemvTex(gpu, w); // submits it, then destroys the textures
 * assert.deepEqual([...await gpu.readF32(y)], [3, 7]);
 * assert.equal(w.pieces.length, 0);
 * assert.throws(() => gemvTex(gpu, x, w, y), /released/);
 * releaseGemvTex(gpu, undefined); // a no-op
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export function releaseGemvTex(gpu: Gpu, m: GpuTexMatrix | undefined): void {
  if (!m) return;
  if (m.pieces.length) gpu.flush(); // recorded work may still read them
  for (const p of m.pieces) p.tex.destroy();
  m.pieces = [];
}

/** The uniform X slot per device (64 KiB, UNIFORM | COPY_DST), kept for the device's life. */
const slots = new DeviceScratch("gemvtex-x-slot", () => GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);

/**
 * Free the uniform X slot kept for this device.
 *
 * @example Free the slot when done; a later `gemvTex` makes a new one
 * ```ts
 * import { gemvTex, Gpu, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadGemvTex(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3);
 * const x = gpu.upload(new Float32Array([1, 0, 2]), "x"), y = gpu.buffer(2 * 4, "y");
 * gemvTex(gpu, x, w, y);
 * releaseGemvTexScratch(gpu); // submits the recorded product first
 * assert.deepEqual([...await gpu.readF32(y)], [7, 16]);
 * gpu.write(x, new Float32Array([0, 1, 0]));
 * gemvTex(gpu, x, w, y); // a new slot
 * assert.deepEqual([...await gpu.readF32(y)], [2, 5]);
 * releaseGemvTexScratch(gpu);
 * releaseGemvTex(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export function releaseGemvTexScratch(gpu: Gpu): void {
  slots.release(gpu);
}

/**
 * Force kernel options (tests, benchmarks).
 *
 * @example 16 invocations per workgroup instead of 8
 * ```ts
 * import {
 *   gemvTex, gemvTexOptions, type GemvTexOverride, Gpu, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadGemvTex(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), 3, 2);
 * const o: GemvTexOverride = { workgroupSize: 16 };
 * assert.equal(gemvTexOptions(w, false, o).workgroupSize, 16);
 * const x = gpu.upload(new Float32Array([1, -1]), "x"), y = gpu.buffer(3 * 4, "y");
 * gemvTex(gpu, x, w, y, 1, undefined, o);
 * assert.deepEqual([...await gpu.readF32(y)], [-1, -1, -1]);
 * releaseGemvTex(gpu, w);
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface GemvTexOverride {
  /** Invocations per workgroup, a multiple of 8 (default 8). */
  workgroupSize?: number;
}

/**
 * Kernel options for `w` (its layout's `rt`, `uk` and packing), with or without a bias.
 *
 * @example The options follow the upload's layout; a bias makes another kernel
 * ```ts
 * import {
 *   gemvTexKey, gemvTexOptions, gemvTexWgsl, Gpu, releaseGemvTex, uploadGemvTex,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadGemvTex(gpu, new Float32Array(2 * 3), 2, 3, { rt: 4, uk: 2 });
 * const o = gemvTexOptions(w, true);
 * assert.deepEqual(o, { rt: 4, uk: 2, bias: true, workgroupSize: 8, packed: false });
 * assert.notEqual(gemvTexKey(o), gemvTexKey(gemvTexOptions(w, false)));
 * assert.ok(gemvTexWgsl(o).includes("@workgroup_size(8)"));
 * releaseGemvTex(gpu, w);
 * gpu.destroy();
 * ```
 */
export function gemvTexOptions(w: GpuTexMatrix, bias: boolean, o: GemvTexOverride = {}): GemvTexOptions {
  const opts: GemvTexOptions = {
    rt: w.rt,
    uk: w.uk,
    bias,
    workgroupSize: o.workgroupSize ?? 8,
    packed: w.packed,
  };
  if (w.dtype === "f16" && !w.packed) opts.half = true;
  return opts;
}

/**
 * Record Y[m, :] = X[m, :] W^T (+ bias) for m < M (one X copy and one dispatch per piece per
 * activation row: meant for M = 1) into the current batch. Y row stride is w.rows.
 * @param x f32 [M, K]; @param y f32 [M, N]; @param bias f32 [N].
 *
 * @example Y = X W^T + b for 2 activation rows, against a CPU loop
 * ```ts
 * import { gemvTex, Gpu, releaseGemvTex, releaseGemvTexScratch, uploadGemvTex } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const M = 2, N = 3, K = 5;
 * const W = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i));
 * const X = Float32Array.from({ length: M * K }, (_, i) => i - 4), B = [0.5, -1, 2];
 * const w = uploadGemvTex(gpu, W, N, K);
 * const x = gpu.upload(X, "x"), y = gpu.buffer(M * N * 4, "y"), b = gpu.upload(new Float32Array(B), "b");
 * gemvTex(gpu, x, w, y, M, b);
 * const got = await gpu.readF32(y);
 * for (let m = 0; m < M; m++) {
 *   for (let n = 0; n < N; n++) {
 *     let want = B[n];
 *     for (let k = 0; k < K; k++) want += X[m * K + k] * W[n * K + k];
 *     assert.ok(Math.abs(got[m * N + n] - want) < 1e-5);
 *   }
 * }
 * releaseGemvTex(gpu, w);
 * releaseGemvTexScratch(gpu);
 * gpu.release(x, y, b);
 * gpu.destroy();
 * ```
 */
export function gemvTex(
  gpu: Gpu,
  x: GPUBuffer,
  w: GpuTexMatrix,
  y: GPUBuffer,
  M = 1,
  bias?: GPUBuffer,
  override?: GemvTexOverride,
): void {
  if (!Number.isInteger(M) || M < 1) {
    throw new ArgumentError(`gemvTex: M must be a positive integer, got ${M}`);
  }
  if (w.rows > 0 && w.pieces.length === 0) throw new ArgumentError("gemvTex: the weight was released");
  const K = w.cols, N = w.rows;
  checkBuffer("gemvTex", "x", x, M * K * 4, `X [M ${M}, K ${K}] f32`);
  checkBuffer("gemvTex", "y", y, M * N * 4, `Y [M ${M}, N ${N}] f32`);
  if (bias) checkBuffer("gemvTex", "bias", bias, N * 4, `the bias [N ${N}] f32`);
  checkDistinct("gemvTex", { y }, { x, bias });
  const wg = override?.workgroupSize;
  if (wg !== undefined && !(Number.isInteger(wg) && wg > 0 && wg % 8 === 0)) {
    throw new ArgumentError(`gemvTex: override.workgroupSize must be a positive multiple of 8, got ${wg}`);
  }
  const opts = gemvTexOptions(w, !!bias, override);
  const pipe = gpu.pipeline(gemvTexKey(opts), () => gemvTexWgsl(opts));
  const used = w.kvp * (w.packed ? 32 : 16); // X bytes the kernel reads
  // X read in place (Gpu.gemvInput) when the kernel reads no column past K: there, zero weights
  // would meet whatever the buffer holds, which could be Inf or NaN.
  const inPlace = M === 1 && used === K * 4 && readableAsUniformX(x);
  const slot = inPlace ? x : slots.get(gpu, GEMV_TEX_SLOT_BYTES);
  const slotBinding: Binding = { buffer: slot, offset: 0, size: GEMV_TEX_SLOT_BYTES };
  for (let m = 0; m < M; m++) {
    if (!inPlace) {
      gpu.copy(x, m * K * 4, slot, 0, K * 4);
      if (used > K * 4) gpu.commandEncoder().clearBuffer(slot, K * 4, used - K * 4);
    }
    for (const p of w.pieces) {
      const bindings: Binding[] = [slotBinding, p.view as unknown as Binding, y];
      if (bias) bindings.push(bias);
      gpu.dispatch(
        pipe,
        bindings,
        packUniforms([p.rows, w.kvp, m * N + p.rowStart, p.rowStart]),
        gemvTexWorkgroups(opts, p.rows),
      );
    }
  }
}
