/**
 * The smallest complete use of owlgpu's pruning kernels on your own data: OWL's outlier count
 * and Wanda's row masks for one weight matrix W [rows, cols] and its input statistics.
 *
 *   deno run -A examples/outliers_rowmask.ts
 */
import {
  applyMask,
  Gpu,
  outlierCount,
  readMask,
  releaseMask,
  releaseMatrix,
  uploadMatrix,
  wandaRowMask,
} from "../mod.ts";

const rows = 6, cols = 10;
// Your weights (row-major [rows, cols]) and sqrt of each input channel's mean sum of squares.
const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (i % 7 === 0 ? 8 : 1));
const sqrtR = Float32Array.from({ length: cols }, (_, j) => 1 + j / 10);

const gpu = await Gpu.create();
const w = uploadMatrix(gpu, W, rows, cols, "W", "f32");
const r = gpu.upload(sqrtR, "sqrtR");

// OWL: how many scores |W_ij| * sqrt(r_j) exceed M = 5 times their mean.
const { count, numel, mean } = await outlierCount(gpu, [{ w, sqrtR: r }], 5);
console.log(`outliers: ${count} of ${numel} scores above 5 x mean (${mean.toFixed(4)})`);

// Wanda: prune the k = floor(cols * 0.5) lowest scores of every row, then zero them in place.
const k = Math.floor(cols * 0.5);
const mask = wandaRowMask(gpu, w, r, k);
const bits = await readMask(gpu, mask);
for (let i = 0; i < rows; i++) console.log(Array.from(bits.subarray(i * cols, (i + 1) * cols)).join(" "));
applyMask(gpu, w, mask);
releaseMask(gpu, mask);

releaseMatrix(gpu, w);
gpu.release(r);
gpu.destroy();
