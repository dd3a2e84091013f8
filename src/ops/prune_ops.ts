/**
 * Launchers for the pruning kernels: Wanda's activation statistics, OWL's outlier count, and the
 * masks (Wanda per row, magnitude per matrix, N:M), plus applying and reading masks. Scores are
 * never materialised: every kernel recomputes `|W * sqrtR|` (or `|W|`) from the weight chunks.
 *
 * Masks are {@linkcode PruneMask}s: bit-packed u32 on the GPU, row-major, every row padded to
 * whole 32-column words, bit j % 32 of word j / 32 of row i = column j, 1 = pruned
 * (kernels/rowmask.ts). {@linkcode readMask} unpacks one to a byte per weight.
 *
 * Kernel versions follow the adapter (`gpu.isCpu`: long private runs, no barriers; otherwise
 * coalesced workgroups with shared atomics); `style` forces one, so tests cover both anywhere.
 * @module
 */
import { packUniforms } from "../../kernels/common.ts";
import {
  MAGNITUDE_HIST_SEG,
  MAGNITUDE_LANE_WG,
  magnitudeHistWorkgroups,
  magnitudeKey,
  type MagnitudeOptions,
  magnitudeSegments,
  magnitudeWgsl,
} from "../../kernels/magnitude.ts";
import { MASK_APPLY_WG, maskApplyKey, maskApplyWgsl } from "../../kernels/mask_apply.ts";
import { NM_WG, nmKey, type NMOptions, nmWgsl } from "../../kernels/nm.ts";
import {
  OUTLIER_LANE_SEG,
  outlierKey,
  type OutlierOptions,
  outlierPartials,
  outlierWgsl,
  outlierWorkgroups,
} from "../../kernels/outliers.ts";
import {
  maskWordsPerRow,
  rowMaskKey,
  rowMaskLaneIterations,
  type RowMaskOptions,
  rowMaskWgsl,
  rowMaskWorkgroups,
  type ScoreSource,
} from "../../kernels/rowmask.ts";
import { STATS_WG, statsKey, statsWgsl } from "../../kernels/stats.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import type { Binding, Gpu } from "../gpu/device.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { checkBuffer, checkCounts, checkDistinct, checkMatrix } from "./check.ts";

/**
 * A prune mask on the GPU: bit-packed u32 [rows, wordsPerRow], 1 = pruned.
 *
 * @example The bit layout of a 2 x 40 mask: 2 words a row, bit j % 32 of word j / 32 is column j
 * ```ts
 * import { Gpu, type PruneMask, releaseMask, releaseMatrix, rowMask, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rows = 2, cols = 40;
 * const W = Float32Array.from({ length: rows * cols }, (_, i) => i % cols); // |W| grows along a row
 * const w = uploadMatrix(gpu, W, rows, cols, "w");
 * const mask: PruneMask = rowMask(gpu, w, null, 33); // per row, the 33 smallest |W|: columns 0..32
 * assert.equal(mask.wordsPerRow, 2);
 * assert.equal(mask.buffer.size, rows * mask.wordsPerRow * 4);
 * assert.deepEqual([...await gpu.readU32(mask.buffer)], [0xffffffff, 1, 0xffffffff, 1]);
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export interface PruneMask {
  /** The mask words, u32 [rows * wordsPerRow]. */
  buffer: GPUBuffer;
  /** Rows of the masked weight. */
  rows: number;
  /** Columns of the masked weight. */
  cols: number;
  /** u32 words per row: ceil(cols / 32). */
  wordsPerRow: number;
}

/**
 * Kernel version: "cpu" (lavapipe-style) or "gpu"; default from `gpu.isCpu`.
 *
 * @example Both versions of the row mask give the same mask on any adapter
 * ```ts
 * import {
 *   Gpu, type KernelStyle, readMask, releaseMask, releaseMatrix, rowMask, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, Float32Array.from({ length: 3 * 8 }, (_, i) => Math.cos(1.7 * i)), 3, 8, "w");
 * const styles: KernelStyle[] = ["cpu", "gpu"];
 * const masks: Uint8Array[] = [];
 * for (const style of styles) {
 *   const mask = rowMask(gpu, w, null, 3, { style });
 *   masks.push(await readMask(gpu, mask));
 *   releaseMask(gpu, mask);
 * }
 * assert.deepEqual(masks[0], masks[1]);
 * assert.equal(masks[0].reduce((a, b) => a + b, 0), 3 * 3); // 3 pruned in each of the 3 rows
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export type KernelStyle = "cpu" | "gpu";

/**
 * Options shared by the prune-kernel launchers.
 *
 * @example Force the workgroup ("gpu") version of the score sum, on any adapter
 * ```ts
 * import { Gpu, type PruneKernelOptions, releaseMatrix, scoreSum, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([1, -2, 3, -4, 5, -6]), 2, 3, "w");
 * const sqrtR = gpu.upload(new Float32Array([1, 0.5, 2]), "sqrtR"); // one per column
 * const opts: PruneKernelOptions = { style: "gpu" };
 * const { sum, numel } = await scoreSum(gpu, [{ w, sqrtR }], opts);
 * assert.equal(numel, 6);
 * assert.ok(Math.abs(sum - (1 + 1 + 6 + 4 + 2.5 + 12)) < 1e-5); // sum of |W * sqrtR|
 * releaseMatrix(gpu, w);
 * gpu.release(sqrtR);
 * gpu.destroy();
 * ```
 */
export interface PruneKernelOptions {
  /** Kernel version; default from `gpu.isCpu`. */
  style?: KernelStyle;
}

function styleOf(gpu: Gpu, o?: PruneKernelOptions): KernelStyle {
  return o?.style ?? (gpu.isCpu ? "cpu" : "gpu");
}

function checkSqrtR(gpu: Gpu, fn: string, w: GpuMatrix, sqrtR: GPUBuffer | null): void {
  checkMatrix(gpu, fn, "w", w);
  if (sqrtR && sqrtR.size < w.cols * 4) {
    throw new ArgumentError(`sqrtR holds ${sqrtR.size / 4} values but the weight has ${w.cols} columns`);
  }
}

function source(w: GpuMatrix, sqrtR: GPUBuffer | null): ScoreSource {
  return { wDtype: w.dtype, wanda: sqrtR !== null };
}

function scoreBindings(buffer: GPUBuffer, sqrtR: GPUBuffer | null): Binding[] {
  return sqrtR ? [buffer, sqrtR] : [buffer];
}

/** A zeroed mask for a rows x cols matrix. */
function newMask(gpu: Gpu, rows: number, cols: number): PruneMask {
  const wordsPerRow = maskWordsPerRow(cols);
  const bytes = rows * wordsPerRow * 4;
  if (bytes > gpu.maxBinding) {
    throw new UnsupportedError(
      `a ${rows}x${cols} mask needs ${bytes} bytes, over this adapter's ${gpu.maxBinding}-byte binding limit`,
    );
  }
  return { buffer: gpu.buffer(bytes, `mask ${rows}x${cols}`), rows, cols, wordsPerRow };
}

// ---- activation statistics --------------------------------------------------------------------

/**
 * Record Wanda's running-mean update of the per-channel statistic `r` (f32 [C], kept on the GPU)
 * with one batch `x` (f32 [T, C]) of `b` sequences, `nBefore` sequences having been seen:
 * `r = r * f32(nBefore / (nBefore + b)) + (sum_t x[t, j]^2) / (nBefore + b)`, all in f32.
 *
 * @example Two calibration sequences: `r` ends as the mean over sequences of sum_t x^2
 * ```ts
 * import { Gpu, updateScalerRow } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const T = 2, C = 3;
 * const windows = [[1, 2, 3, 3, 0, 1], [0, 2, 1, 1, 2, 1]].map((x) => gpu.upload(new Float32Array(x), "x"));
 * const r = gpu.buffer(C * 4, "scaler_row"); // zeros
 * windows.forEach((x, n) => updateScalerRow(gpu, x, r, T, C, n, 1)); // n sequences seen before this one
 * // Per column, sum_t x^2 is [10, 4, 10] in the first sequence and [1, 8, 2] in the second.
 * assert.deepEqual([...await gpu.readF32(r)], [5.5, 6, 6]);
 * gpu.release(r, ...windows);
 * gpu.destroy();
 * ```
 */
export function updateScalerRow(
  gpu: Gpu,
  x: GPUBuffer,
  r: GPUBuffer,
  T: number,
  C: number,
  nBefore: number,
  b: number,
): void {
  if (!Number.isInteger(nBefore) || nBefore < 0 || !Number.isInteger(b) || b <= 0) {
    throw new ArgumentError(`need integer nBefore >= 0 and b > 0, got ${nBefore}, ${b}`);
  }
  checkCounts("updateScalerRow", { T, C });
  checkBuffer("updateScalerRow", "x", x, T * C * 4, `x [T ${T}, C ${C}] f32`);
  checkBuffer("updateScalerRow", "r", r, C * 4, `r [C ${C}] f32`);
  checkDistinct("updateScalerRow", { r }, { x });
  if (gpu.isCpu && T >= 65535) {
    // llvmpipe silently ends any invocation's loops after 65535 iterations in all.
    throw new UnsupportedError(
      `updateScalerRow: ${T} tokens in one call; on a CPU adapter pass fewer than 65535`,
    );
  }
  const vec = C % 4 === 0 ? 4 : 1;
  const pipe = gpu.pipeline(statsKey({ vec }), () => statsWgsl({ vec }));
  // ratio as the reference: a double quotient rounded to f32 (packUniforms rounds).
  const u = packUniforms([T, C / vec, { f32: nBefore / (nBefore + b) }, { f32: nBefore + b }]);
  gpu.dispatch(pipe, [x, r], u, Math.ceil(C / vec / STATS_WG));
}

// ---- OWL outlier count ------------------------------------------------------------------------

/**
 * One linear of a block for the outlier count: its weight and its f32 sqrt(scaler_row).
 *
 * @example A 2 x 2 linear with its input statistic, counted by {@linkcode countAbove}
 * ```ts
 * import { countAbove, Gpu, releaseMatrix, type ScoredLinear, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const lin: ScoredLinear = {
 *   w: uploadMatrix(gpu, new Float32Array([1, -2, 3, -4]), 2, 2, "w"),
 *   sqrtR: gpu.upload(new Float32Array([2, 0.5]), "sqrtR"),
 * };
 * assert.equal(await countAbove(gpu, [lin], 1.5), 3); // the scores |W * sqrtR| are 2, 1, 6, 2
 * releaseMatrix(gpu, lin.w);
 * gpu.release(lin.sqrtR);
 * gpu.destroy();
 * ```
 */
export interface ScoredLinear {
  /** The weight. */
  w: GpuMatrix;
  /** sqrt of the input's `scaler_row`, f32 [cols]. */
  sqrtR: GPUBuffer;
}

function outlierDispatches(
  gpu: Gpu,
  linears: ScoredLinear[],
  pass: OutlierOptions["pass"],
  style: KernelStyle,
  out: GPUBuffer,
  thresh: number,
): number {
  let offset = 0;
  for (const { w, sqrtR } of linears) {
    checkSqrtR(gpu, pass === "sum" ? "scoreSum" : "countAbove", w, sqrtR);
    const vec = w.cols % 4 === 0 ? 4 : 1;
    const o: OutlierOptions = {
      variant: style === "cpu" ? "lane" : "wg",
      pass,
      source: source(w, sqrtR),
      vec,
    };
    const pipe = gpu.pipeline(outlierKey(o), () => outlierWgsl(o));
    for (const c of w.chunks) {
      const n = (c.rows * w.cols) / vec;
      const u = packUniforms([n, w.cols / vec, OUTLIER_LANE_SEG, offset, { f32: thresh }]);
      gpu.dispatch(pipe, [c.buffer, sqrtR, out], u, outlierWorkgroups(o, n));
      offset += outlierPartials(o.variant, n);
    }
  }
  return offset;
}

function partialCount(linears: ScoredLinear[], style: KernelStyle): number {
  let total = 0;
  for (const { w } of linears) {
    const vec = w.cols % 4 === 0 ? 4 : 1;
    for (const c of w.chunks) {
      total += outlierPartials(style === "cpu" ? "lane" : "wg", (c.rows * w.cols) / vec);
    }
  }
  return total;
}

/**
 * Sum of the Wanda scores `|W * sqrtR|` of all `linears`: f32 partial sums on the GPU (runs of at
 * most a few thousand scores), added on the host in float64.
 *
 * @example Two linears of different shapes form one population
 * ```ts
 * import { Gpu, releaseMatrix, scoreSum, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const a = uploadMatrix(gpu, new Float32Array([1, -2, 3, -4]), 2, 2, "a");
 * const b = uploadMatrix(gpu, new Float32Array([0.5, 0.5, -1]), 1, 3, "b");
 * const ra = gpu.upload(new Float32Array([1, 2]), "ra"), rb = gpu.upload(new Float32Array([2, 2, 2]), "rb");
 * const { sum, numel } = await scoreSum(gpu, [{ w: a, sqrtR: ra }, { w: b, sqrtR: rb }]);
 * assert.equal(numel, 7);
 * assert.equal(sum, 1 + 4 + 3 + 8 + (1 + 1 + 2)); // |W * sqrtR| of a, then of b
 * releaseMatrix(gpu, a);
 * releaseMatrix(gpu, b);
 * gpu.release(ra, rb);
 * gpu.destroy();
 * ```
 */
export async function scoreSum(
  gpu: Gpu,
  linears: ScoredLinear[],
  opts?: PruneKernelOptions,
): Promise<{ sum: number; numel: number }> {
  const style = styleOf(gpu, opts);
  const partials = gpu.buffer(Math.max(1, partialCount(linears, style)) * 4, "outlier-partials");
  try {
    const n = outlierDispatches(gpu, linears, "sum", style, partials, 0);
    const p = await gpu.readF32(partials, 0, n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += p[i];
    return { sum, numel: linears.reduce((a, { w }) => a + w.rows * w.cols, 0) };
  } finally {
    gpu.release(partials);
  }
}

/**
 * Exact number of Wanda scores of `linears` strictly greater than the f32 value `thresh`.
 *
 * @example With sqrtR = 1 the scores are |W|; a score equal to the threshold does not count
 * ```ts
 * import { countAbove, Gpu, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([1, -2, 3, -4, 5, -6]), 3, 2, "w");
 * const sqrtR = gpu.upload(new Float32Array([1, 1]), "sqrtR");
 * assert.equal(await countAbove(gpu, [{ w, sqrtR }], 3), 3); // 4, 5 and 6
 * assert.equal(await countAbove(gpu, [{ w, sqrtR }], 0), 6);
 * assert.equal(await countAbove(gpu, [{ w, sqrtR }], 6), 0);
 * releaseMatrix(gpu, w);
 * gpu.release(sqrtR);
 * gpu.destroy();
 * ```
 */
export async function countAbove(
  gpu: Gpu,
  linears: ScoredLinear[],
  thresh: number,
  opts?: PruneKernelOptions,
): Promise<number> {
  if (Number.isNaN(thresh)) throw new ArgumentError("countAbove: thresh is NaN");
  const count = gpu.buffer(4, "outlier-count");
  try {
    outlierDispatches(gpu, linears, "count", styleOf(gpu, opts), count, thresh);
    return (await gpu.readU32(count, 0, 1))[0];
  } finally {
    gpu.release(count);
  }
}

/**
 * OWL's outlier count for one block: the scores of all `linears` are one population;
 * `mean` = float64 sum / numel, `count` = scores > `f32(f32(M) * f32(mean))` (exact).
 * D_l = 100 * count / numel.
 *
 * @example A block of two linears with one outlier: scores 1 (x 7) and 9, mean 2
 * ```ts
 * import { Gpu, outlierCount, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w1 = uploadMatrix(gpu, new Float32Array([1, -1, 1, -1]), 2, 2, "w1");
 * const w2 = uploadMatrix(gpu, new Float32Array([1, 1, -1, 9]), 1, 4, "w2");
 * const r1 = gpu.upload(new Float32Array([1, 1]), "r1");
 * const r2 = gpu.upload(new Float32Array([1, 1, 1, 1]), "r2");
 * const linears = [{ w: w1, sqrtR: r1 }, { w: w2, sqrtR: r2 }];
 * const { count, numel, mean } = await outlierCount(gpu, linears, 3); // M = 3: scores > 3 * mean
 * assert.deepEqual([count, numel, mean], [1, 8, 2]);
 * assert.equal((100 * count) / numel, 12.5); // the block's outlier ratio D_l, in %
 * releaseMatrix(gpu, w1);
 * releaseMatrix(gpu, w2);
 * gpu.release(r1, r2);
 * gpu.destroy();
 * ```
 */
export async function outlierCount(
  gpu: Gpu,
  linears: ScoredLinear[],
  M: number,
  opts?: PruneKernelOptions,
): Promise<{ count: number; numel: number; mean: number }> {
  if (!(Number.isFinite(M) && M > 0)) {
    throw new ArgumentError(`outlierCount: M must be finite and > 0, got ${M}`);
  }
  const { sum, numel } = await scoreSum(gpu, linears, opts);
  if (numel === 0) throw new ArgumentError("no weights to count outliers in");
  const mean = sum / numel;
  const thresh = Math.fround(Math.fround(M) * Math.fround(mean));
  return { count: await countAbove(gpu, linears, thresh, opts), numel, mean };
}

// ---- row masks --------------------------------------------------------------------------------

/**
 * Options of the row-mask launchers.
 *
 * @example 4-bit radix digits in the per-lane version, against a sort on the CPU
 * ```ts
 * import {
 *   Gpu, readMask, releaseMask, releaseMatrix, rowMask, type RowMaskKernelOptions, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rows = 3, cols = 7, k = 4;
 * const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(3 * i + 1));
 * const w = uploadMatrix(gpu, W, rows, cols, "w");
 * const opts: RowMaskKernelOptions = { style: "cpu", radixBits: 4 };
 * const mask = rowMask(gpu, w, null, k, opts);
 * const got = await readMask(gpu, mask);
 * for (let r = 0; r < rows; r++) {
 *   const row = [...W.subarray(r * cols, (r + 1) * cols)].map(Math.abs);
 *   const kth = row.toSorted((a, b) => a - b)[k - 1]; // the k smallest |W| are pruned
 *   row.forEach((v, j) => assert.equal(got[r * cols + j], v <= kth ? 1 : 0));
 * }
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export interface RowMaskKernelOptions extends PruneKernelOptions {
  /** Bits per radix digit of the "cpu" version (default 8). */
  radixBits?: 4 | 8;
}

/**
 * Record a per-row mask of `w`: in every row exactly `k` entries with the lowest score are pruned,
 * ties → lower column. Score `|W * sqrtR|` (Wanda) or `|W|` when `sqrtR` is null.
 *
 * @example Magnitude (`sqrtR` null), 2 pruned per row; ties go to the lower column
 * ```ts
 * import {
 *   ArgumentError, Gpu, readMask, releaseMask, releaseMatrix, rowMask, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([5, -2, 1, 2, 7, 3, 0, -3, 4, 3]), 2, 5, "w");
 * const mask = rowMask(gpu, w, null, 2);
 * // Row 0: |W| 1 then the first of the two 2s; row 1: 0 then the first of the three 3s.
 * assert.deepEqual([...await readMask(gpu, mask)], [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]);
 * assert.throws(() => rowMask(gpu, w, null, 6), ArgumentError); // k > cols
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export function rowMask(
  gpu: Gpu,
  w: GpuMatrix,
  sqrtR: GPUBuffer | null,
  k: number,
  opts?: RowMaskKernelOptions,
): PruneMask {
  if (!Number.isInteger(k) || k < 0 || k > w.cols) {
    throw new ArgumentError(`row mask: k must be an integer in [0, ${w.cols}], got ${k}`);
  }
  checkSqrtR(gpu, "rowMask", w, sqrtR);
  const radixBits = opts?.radixBits ?? 8;
  // Rows too long for one invocation under llvmpipe's loop limit take the workgroup version.
  const lane = styleOf(gpu, opts) === "cpu" && rowMaskLaneIterations(w.cols, radixBits) < 65535;
  const o: RowMaskOptions = {
    variant: lane ? "lane" : "wg",
    source: source(w, sqrtR),
    radixBits,
    vec: w.cols % 4 === 0 ? 4 : 1,
  };
  const pipe = gpu.pipeline(rowMaskKey(o), () => rowMaskWgsl(o));
  const mask = newMask(gpu, w.rows, w.cols);
  for (const c of w.chunks) {
    const u = packUniforms([c.rows, w.cols, k, c.rowStart, mask.wordsPerRow]);
    gpu.dispatch(pipe, [...scoreBindings(c.buffer, sqrtR), mask.buffer], u, rowMaskWorkgroups(o, c.rows));
  }
  return mask;
}

/**
 * Wanda's mask: per output row, the `k` (= floor(C_in * s)) lowest `|W * sqrtR|`, ties → lower
 * column.
 *
 * @example Wanda at 50%: a small weight on a loud input channel survives
 * ```ts
 * import {
 *   applyMask, Gpu, readMask, readMatrix, releaseMask, releaseMatrix, uploadMatrix, wandaRowMask,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([0.125, 1, 2, -0.25, 3, 1]), 2, 3, "w");
 * const sqrtR = gpu.upload(new Float32Array([100, 1, 1]), "sqrtR"); // column 0's input is loud
 * const mask = wandaRowMask(gpu, w, sqrtR, Math.floor(w.cols * 0.5)); // scores: 12.5 1 2 | 25 3 1
 * assert.deepEqual([...await readMask(gpu, mask)], [0, 1, 0, 0, 0, 1]);
 * applyMask(gpu, w, mask);
 * releaseMask(gpu, mask);
 * assert.deepEqual([...await readMatrix(gpu, w)], [0.125, 0, 2, -0.25, 3, 0]);
 * releaseMatrix(gpu, w);
 * gpu.release(sqrtR);
 * gpu.destroy();
 * ```
 */
export function wandaRowMask(
  gpu: Gpu,
  w: GpuMatrix,
  sqrtR: GPUBuffer,
  k: number,
  opts?: RowMaskKernelOptions,
): PruneMask {
  return rowMask(gpu, w, sqrtR, k, opts);
}

/**
 * Per-row mask of a plain f32 scores buffer [rows, cols] (one binding; scores must be
 * non-negative and not NaN; -0 counts as +0).
 *
 * @example Scores computed elsewhere: prune the 2 lowest of each row of 4
 * ```ts
 * import { Gpu, readMask, releaseMask, rowMaskFromScores } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const scores = gpu.upload(new Float32Array([0.5, 0.1, 0.9, 0.3, 2, 1, 0, 3]), "scores"); // [2, 4]
 * const mask = rowMaskFromScores(gpu, scores, 2, 4, 2);
 * assert.deepEqual([...await readMask(gpu, mask)], [0, 1, 0, 1, 0, 1, 1, 0]);
 * releaseMask(gpu, mask);
 * gpu.release(scores);
 * gpu.destroy();
 * ```
 */
export function rowMaskFromScores(
  gpu: Gpu,
  scores: GPUBuffer,
  rows: number,
  cols: number,
  k: number,
  opts?: RowMaskKernelOptions,
): PruneMask {
  const w: GpuMatrix = { rows, cols, dtype: "f32", chunks: [{ buffer: scores, rowStart: 0, rows }] };
  return rowMask(gpu, w, null, k, opts);
}

// ---- magnitude (whole-matrix) masks ----------------------------------------------------------

/**
 * Options of {@linkcode magnitudeMask}.
 *
 * @example The reference's `quirk` prunes every tie of the threshold, the exact count only `k`
 * ```ts
 * import {
 *   Gpu, magnitudeMask, type MagnitudeMaskOptions, readMask, releaseMask, releaseMatrix, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([1, -2, 2, 3, 5, -2, 8, 9]), 2, 4, "w"); // |W|: 1 2 2 2 3 ..
 * const exact = await magnitudeMask(gpu, w, 0.25); // k = floor(8 * 0.25) = 2: the 1 and the first 2
 * const opts: MagnitudeMaskOptions = { quirk: true }; // every |W| <= sorted |W|[k] = 2
 * const quirk = await magnitudeMask(gpu, w, 0.25, opts);
 * assert.deepEqual([...await readMask(gpu, exact)], [1, 1, 0, 0, 0, 0, 0, 0]);
 * assert.deepEqual([...await readMask(gpu, quirk)], [1, 1, 1, 0, 0, 1, 0, 0]);
 * releaseMask(gpu, exact);
 * releaseMask(gpu, quirk);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export interface MagnitudeMaskOptions extends PruneKernelOptions {
  /** The reference's threshold: prune every |W| <= the value at sorted index floor(numel * s). */
  quirk?: boolean;
}

/**
 * Magnitude mask over the whole matrix (every chunk): exactly `floor(numel * s)` entries with the
 * smallest |W| are pruned, ties → lower flat index (or the reference's `quirk`). Four histogram
 * passes with a host read-back each, then a tie count per segment, scanned on the host.
 *
 * @example One threshold over a 3 x 3 matrix held in 3 row chunks: rows lose different counts
 * ```ts
 * import {
 *   ArgumentError, Gpu, magnitudeMask, readMask, releaseMask, releaseMatrix, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([9, -1, 4, 2, 8, -7, 3, 6, -5]), 3, 3, "w", "f32", 1);
 * const mask = await magnitudeMask(gpu, w, 0.5); // floor(9 * 0.5) = 4 pruned: |W| 1, 2, 3 and 4
 * assert.deepEqual([...await readMask(gpu, mask)], [0, 1, 1, 1, 0, 0, 1, 0, 0]);
 * await assert.rejects(magnitudeMask(gpu, w, 1), ArgumentError); // sparsity must be < 1
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export async function magnitudeMask(
  gpu: Gpu,
  w: GpuMatrix,
  s: number,
  opts: MagnitudeMaskOptions = {},
): Promise<PruneMask> {
  if (!Number.isFinite(s) || s < 0 || s >= 1) throw new ArgumentError(`sparsity must be in [0, 1), got ${s}`);
  checkMatrix(gpu, "magnitudeMask", "w", w);
  const numel = w.rows * w.cols;
  const k = Math.floor(numel * s);
  const quirk = opts.quirk ?? false;
  const mask = newMask(gpu, w.rows, w.cols);
  if (numel === 0 || (!quirk && k === 0)) return mask;
  const cpu = styleOf(gpu, opts) === "cpu";
  const pass = (p: MagnitudeOptions["pass"]): [MagnitudeOptions, GPUComputePipeline] => {
    const o: MagnitudeOptions = { pass: p, variant: cpu ? "lane" : "wg", wDtype: w.dtype };
    return [o, gpu.pipeline(magnitudeKey(o), () => magnitudeWgsl(o))];
  };
  // Tie segments: long serial runs on CPUs, short ones (more parallelism) on GPUs.
  const seg = cpu ? 64 : 4;
  const segs = w.chunks.map((c) => magnitudeSegments(c.rows, mask.wordsPerRow, seg));
  const nSegs = segs.reduce((a, b) => a + b, 0);
  const hist = gpu.buffer(4 * 256 * 4, "magnitude-hist");
  const counts = gpu.buffer(nSegs * 4, "magnitude-seg-counts");
  try {
    // Radix select of the element at 0-based rank `want` (quirk: k, else k - 1).
    const [ho, hp] = pass("hist");
    let r = quirk ? k : k - 1;
    let prefix = 0, hiMask = 0, allTies = false;
    for (let p = 0; p < 4; p++) {
      const shift = 24 - 8 * p;
      const histSlice = { buffer: hist, offset: p * 1024, size: 1024 };
      for (const c of w.chunks) {
        const n = c.rows * w.cols;
        const u = packUniforms([n, MAGNITUDE_HIST_SEG, hiMask >>> 0, prefix >>> 0, shift]);
        gpu.dispatch(hp, [c.buffer, histSlice], u, magnitudeHistWorkgroups(ho, n));
      }
      const h = await gpu.readU32(hist, p * 256, 256);
      let b = 0;
      while (r >= h[b]) r -= h[b++];
      prefix |= b << shift;
      hiMask |= 255 << shift;
      allTies = h[b] === r + 1;
      if (allTies) break; // every candidate left is pruned: the resolved digits suffice
    }
    const thresh = prefix >>> 0;
    // Ties to prune; when all of them go (always for the quirk) no ranks are needed.
    const need = quirk || allTies ? 0xffffffff : r + 1;
    const base = gpu.buffer(nSegs * 4, "magnitude-seg-base");
    // The eq and write passes walk the same segments, chunk after chunk; only `need` and the
    // bindings differ.
    const segmentPass = (
      pipe: GPUComputePipeline,
      bind: (chunk: GPUBuffer) => GPUBuffer[],
      needU: number,
    ) => {
      let off = 0;
      w.chunks.forEach((c, i) => {
        const u = packUniforms([
          c.rows,
          w.cols,
          mask.wordsPerRow,
          seg,
          off,
          thresh,
          hiMask >>> 0,
          needU,
          c.rowStart,
        ]);
        gpu.dispatch(pipe, bind(c.buffer), u, Math.ceil(segs[i] / MAGNITUDE_LANE_WG));
        off += segs[i];
      });
    };
    try {
      if (need !== 0xffffffff) {
        segmentPass(pass("eq")[1], (chunk) => [chunk, counts], 0);
        const cnt = await gpu.readU32(counts, 0, nSegs);
        const excl = new Uint32Array(nSegs);
        for (let i = 1; i < nSegs; i++) excl[i] = excl[i - 1] + cnt[i - 1];
        gpu.write(base, excl);
      }
      segmentPass(pass("write")[1], (chunk) => [chunk, base, mask.buffer], need);
      await gpu.sync(); // `base` is released below
    } finally {
      gpu.release(base);
    }
  } catch (e) {
    releaseMask(gpu, mask);
    throw e;
  } finally {
    gpu.release(hist, counts);
  }
  return mask;
}

// ---- N:M masks --------------------------------------------------------------------------------

/**
 * Record an N:M mask: per row, in every group of M consecutive columns, the N lowest scores
 * (`|W * sqrtR|`, or `|W|` when `sqrtR` is null), ties → lower column. 0 <= N <= M <= 16 and
 * cols % M == 0; N may change from call to call at no compile cost (OWL's mixed N:M).
 *
 * @example 2:4 on a 2 x 8 weight (ties go to the lower column), then 1:4 with the same pipeline
 * ```ts
 * import { Gpu, nmMask, readMask, releaseMask, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const W = [4, -1, 3, 2, 0.5, -6, 7, 1, 1, 1, 1, 1, -2, 3, -4, 5];
 * const w = uploadMatrix(gpu, new Float32Array(W), 2, 8, "w");
 * const m24 = nmMask(gpu, w, null, 2, 4); // per group of 4 columns, the 2 smallest |W|
 * assert.deepEqual([...await readMask(gpu, m24)], [0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0]);
 * const m14 = nmMask(gpu, w, null, 1, 4);
 * assert.equal((await readMask(gpu, m14)).reduce((a, b) => a + b, 0), 4); // one in each of 4 groups
 * releaseMask(gpu, m24);
 * releaseMask(gpu, m14);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export function nmMask(gpu: Gpu, w: GpuMatrix, sqrtR: GPUBuffer | null, N: number, M: number): PruneMask {
  if (!Number.isInteger(M) || M < 1 || M > 16 || !Number.isInteger(N) || N < 0 || N > M) {
    throw new ArgumentError(`N:M needs integers 0 <= N <= M <= 16, got ${N}:${M}`);
  }
  if (w.cols % M !== 0) throw new ArgumentError(`N:M needs cols (${w.cols}) to be a multiple of M (${M})`);
  checkSqrtR(gpu, "nmMask", w, sqrtR);
  const o: NMOptions = { source: source(w, sqrtR), M };
  const pipe = gpu.pipeline(nmKey(o), () => nmWgsl(o));
  const mask = newMask(gpu, w.rows, w.cols);
  for (const c of w.chunks) {
    const u = packUniforms([c.rows, w.cols, mask.wordsPerRow, c.rowStart, N]);
    const n = c.rows * mask.wordsPerRow;
    gpu.dispatch(pipe, [...scoreBindings(c.buffer, sqrtR), mask.buffer], u, Math.ceil(n / NM_WG));
  }
  return mask;
}

// ---- using masks ------------------------------------------------------------------------------

function checkMask(w: { rows: number; cols: number }, mask: PruneMask): void {
  if (mask.rows !== w.rows || mask.cols !== w.cols) {
    throw new ArgumentError(`mask is ${mask.rows}x${mask.cols} but the weight is ${w.rows}x${w.cols}`);
  }
}

/**
 * Record W = 0 wherever the mask says pruned (every chunk, in place).
 *
 * @example Zero a 2:4 mask's weights in place
 * ```ts
 * import {
 *   applyMask, Gpu, nmMask, readMatrix, releaseMask, releaseMatrix, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([4, -1, 3, 2, 0.5, -6, 7, 1]), 2, 4, "w");
 * const mask = nmMask(gpu, w, null, 2, 4);
 * applyMask(gpu, w, mask);
 * assert.deepEqual([...await readMatrix(gpu, w)], [4, 0, 3, 0, 0, -6, 7, 0]);
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export function applyMask(gpu: Gpu, w: GpuMatrix, mask: PruneMask): void {
  checkMatrix(gpu, "applyMask", "w", w);
  checkMask(w, mask);
  const pipe = gpu.pipeline(maskApplyKey(w.dtype), () => maskApplyWgsl(w.dtype));
  for (const c of w.chunks) {
    const u = packUniforms([c.rows, w.cols, mask.wordsPerRow, c.rowStart]);
    gpu.dispatch(pipe, [c.buffer, mask.buffer], u, Math.ceil((c.rows * mask.wordsPerRow) / MASK_APPLY_WG));
  }
}

/**
 * Read a mask back as one byte per weight, row-major, 1 = pruned (tests, reports).
 *
 * @example A 2 x 35 mask (2 u32 words a row on the GPU) read as 70 bytes
 * ```ts
 * import { Gpu, readMask, releaseMask, releaseMatrix, rowMask, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rows = 2, cols = 35;
 * const W = Float32Array.from({ length: rows * cols }, (_, i) => (i % cols) + 1); // |W| = column + 1
 * const w = uploadMatrix(gpu, W, rows, cols, "w");
 * const mask = rowMask(gpu, w, null, cols - 1); // each row keeps only its largest, column 34
 * const bytes = await readMask(gpu, mask);
 * assert.equal(bytes.length, rows * cols);
 * bytes.forEach((b, i) => assert.equal(b, i % cols === cols - 1 ? 0 : 1));
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export async function readMask(
  gpu: Gpu,
  mask: PruneMask,
  rows = mask.rows,
  cols = mask.cols,
): Promise<Uint8Array> {
  checkMask({ rows, cols }, mask);
  const words = await gpu.readU32(mask.buffer, 0, rows * mask.wordsPerRow);
  const out = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      out[i * cols + j] = (words[i * mask.wordsPerRow + (j >>> 5)] >>> (j & 31)) & 1;
    }
  }
  return out;
}

/**
 * Free a mask's buffer; recorded work is submitted first, so it may still use the mask.
 *
 * @example Release a mask right after recording its use
 * ```ts
 * import {
 *   applyMask, Gpu, nmMask, readMatrix, releaseMask, releaseMatrix, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadMatrix(gpu, new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), 2, 4, "w");
 * const live = gpu.liveBuffers;
 * const mask = nmMask(gpu, w, null, 2, 4);
 * applyMask(gpu, w, mask); // recorded, not yet submitted
 * releaseMask(gpu, mask); // submits it first: the mask is still applied
 * assert.equal(gpu.liveBuffers, live);
 * assert.deepEqual([...await readMatrix(gpu, w)], [0, 0, 3, 4, 0, 0, 7, 8]);
 * releaseMask(gpu, undefined); // a no-op
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export function releaseMask(gpu: Gpu, mask: PruneMask | undefined): void {
  if (!mask) return;
  gpu.flush();
  gpu.release(mask.buffer);
}
