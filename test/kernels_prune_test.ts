/**
 * The pruning kernels against the float64 oracles of test/ref/prune_ref.ts on seeded random,
 * uneven shapes: activation statistics (a few f32 ulps), the outlier sum (relative error against
 * float64) and count (exact), row / magnitude / N:M masks (bit-identical), applying masks. Both
 * kernel versions (CPU-style and GPU-style) run on whatever adapter this is.
 */
import assert from "node:assert/strict";
import { Gpu } from "../src/gpu/device.ts";
import { type GpuMatrix, readMatrix, releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import {
  applyMask,
  countAbove,
  type KernelStyle,
  magnitudeMask,
  nmMask,
  outlierCount,
  type PruneMask,
  readMask,
  releaseMask,
  rowMask,
  rowMaskFromScores,
  scoreSum,
  updateScalerRow,
  wandaRowMask,
} from "../src/ops/prune_ops.ts";
import {
  refMagnitudeMask,
  refNMMask,
  refOutlierCountGivenMean,
  refRowMask,
  refScalerRowUpdate,
  refScalerRowUpdateF32,
  refSqrtScaler,
  refWandaScores,
} from "./ref/prune_ref.ts";
import { assertClose, randomArray } from "./ref/kernels_ref.ts";

const gpu = await Gpu.create();
const STYLES: KernelStyle[] = ["cpu", "gpu"];

/** Values in [-scale, scale) rounded to multiples of `step`: many exact ties. */
function quantized(n: number, seed: number, step: number, scale = 1): Float32Array {
  return randomArray(n, seed, scale).map((x) => Math.round(x / step) * step);
}

/** A positive per-channel statistic r and its f32 square root. */
function scaler(cols: number, seed: number): { r: Float32Array; sqrtR: Float32Array } {
  const r = randomArray(cols, seed).map((x) => x * x * 4 + 0.01);
  return { r, sqrtR: refSqrtScaler(r) };
}

function assertMaskEqual(got: Uint8Array, want: Uint8Array, cols: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: mask length`);
  let bad = 0, first = -1;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad > 0) {
    const r = Math.floor(first / cols), c = first % cols;
    throw new Error(
      `${what}: ${bad}/${want.length} mask bits differ; first at row ${r} col ${c} (got ${got[first]})`,
    );
  }
}

async function checkMask(mask: PruneMask, want: Uint8Array, cols: number, what: string): Promise<void> {
  const got = await readMask(gpu, mask);
  releaseMask(gpu, mask);
  assertMaskEqual(got, want, cols, what);
}

/** f16 cases run where the device has shader-f16 (lavapipe, GPUs; not SwiftShader). */
const onDevice = <T extends { f16?: boolean }>(o: T): boolean => !o.f16 || gpu.f16;

/** Weights as the GPU holds them (f16-rounded when f16). */
async function upload(
  W: Float32Array,
  rows: number,
  cols: number,
  o: { f16?: boolean; chunkRows?: number } = {},
): Promise<{ w: GpuMatrix; Wq: Float32Array }> {
  const w = uploadMatrix(gpu, W, rows, cols, "w", o.f16 ? "f16" : "f32", o.chunkRows);
  return { w, Wq: o.f16 ? await readMatrix(gpu, w) : W };
}

// ---- activation statistics ------------------------------------------------------------------

Deno.test("stats: scaler_row running mean over batches stays on the GPU (vec4 and scalar C)", async () => {
  for (const [T, C] of [[13, 37], [29, 64], [1, 5]]) {
    const rBuf = gpu.buffer(C * 4, "r");
    let r32: Float32Array = new Float32Array(C), r64: Float64Array = new Float64Array(C), n = 0;
    for (const [step, b] of [[0, 1], [1, 1], [2, 3], [3, 2]]) {
      const X = randomArray(T * C, 100 * T + C + step, 3);
      const x = gpu.upload(X, "x");
      updateScalerRow(gpu, x, rBuf, T, C, n, b);
      await gpu.sync();
      gpu.release(x);
      // The oracle is fed the sum the kernel accumulates: f32, token order.
      const sum32 = new Float32Array(C), sum64 = new Float64Array(C);
      for (let j = 0; j < C; j++) {
        let s = 0;
        for (let t = 0; t < T; t++) {
          s = Math.fround(s + Math.fround(X[t * C + j] * X[t * C + j]));
          sum64[j] += X[t * C + j] ** 2;
        }
        sum32[j] = s;
      }
      r32 = refScalerRowUpdateF32(r32, n, sum32, b).r;
      r64 = refScalerRowUpdate(r64, n, sum64, b).r;
      n += b;
    }
    const got = await gpu.readF32(rBuf, 0, C);
    gpu.release(rBuf);
    // Up to 4 ulps (fma contraction of the sum and of the update): 2^-22 relative.
    assertClose(got, r32, 0, 2 ** -22, `scaler_row ${T}x${C} vs f32 oracle`);
    // Against float64: the f32 sum of T squares.
    assertClose(got, r64, 0, (T + 4) * 2 ** -24, `scaler_row ${T}x${C} vs float64`);
  }
});

// ---- OWL outlier count ----------------------------------------------------------------------

interface Linear {
  w: GpuMatrix;
  sqrtR: GPUBuffer;
  scores: Float32Array;
}

async function makeLinears(
  shapes: [number, number][],
  seed: number,
  o: { f16?: boolean; chunkRows?: number; step?: number } = {},
): Promise<Linear[]> {
  const out: Linear[] = [];
  for (const [i, [rows, cols]] of shapes.entries()) {
    const W = o.step ? quantized(rows * cols, seed + i, o.step) : randomArray(rows * cols, seed + i);
    const { w, Wq } = await upload(W, rows, cols, o);
    // Quantized weights get a power-of-two scaler, so equal |W| give exactly equal scores.
    const sq = o.step ? new Float32Array(cols).fill(0.5) : scaler(cols, seed + 50 + i).sqrtR;
    out.push({ w, sqrtR: gpu.upload(sq, "sqrtR"), scores: refWandaScores(Wq, rows, cols, sq) });
  }
  return out;
}

function releaseLinears(ls: Linear[]): void {
  for (const l of ls) {
    releaseMatrix(gpu, l.w);
    gpu.release(l.sqrtR);
  }
}

Deno.test("outliers: f32 partial sums stay accurate over millions of scores", async () => {
  const ls = await makeLinears([[1024, 1024], [1000, 1100], [333, 517]], 7);
  let want = 0;
  for (const l of ls) for (const s of l.scores) want += s;
  for (const style of STYLES) {
    const { sum, numel } = await scoreSum(gpu, ls, { style });
    assert.equal(numel, 1024 * 1024 + 1000 * 1100 + 333 * 517);
    const rel = Math.abs(sum - want) / want;
    assert.ok(rel < 1e-6, `${style}: relative error of the sum ${rel} over ${numel} scores`);
  }
  releaseLinears(ls);
});

Deno.test("outliers: exact counts on uneven shapes, chunks, f16 and values exactly at the threshold", async () => {
  const cases: { shapes: [number, number][]; o: { f16?: boolean; chunkRows?: number; step?: number } }[] = [
    { shapes: [[37, 50], [64, 333], [50, 37], [9, 100], [100, 9], [13, 64], [64, 13]], o: {} },
    { shapes: [[45, 36], [70, 20]], o: { chunkRows: 8 } },
    { shapes: [[33, 48], [17, 31]], o: { f16: true, chunkRows: 10 } },
    { shapes: [[40, 48], [31, 29]], o: { step: 1 / 16 } },
  ];
  for (const [ci, { shapes, o }] of cases.entries()) {
    if (!onDevice(o)) continue;
    const ls = await makeLinears(shapes, 300 + ci, o);
    const arrays = ls.map((l) => l.scores);
    for (const style of STYLES) {
      for (const M of [1, 3, 5]) {
        const r = await outlierCount(gpu, ls, M, { style });
        const want = refOutlierCountGivenMean(arrays, M, r.mean);
        assert.equal(r.count, want.count, `case ${ci} ${style} M=${M}: count`);
        assert.equal(r.numel, want.numel);
      }
      // Thresholds equal to scores that occur (many times, for the quantized case).
      for (const t of [arrays[0][0], arrays[0][7], arrays[1][3], 0]) {
        const got = await countAbove(gpu, ls, t, { style });
        const want = refOutlierCountGivenMean(arrays, 1, t).count;
        assert.equal(got, want, `case ${ci} ${style}: count above ${t}`);
      }
    }
    releaseLinears(ls);
  }
});

// ---- row masks ------------------------------------------------------------------------------

const ROW_VERSIONS: { style: KernelStyle; radixBits?: 4 | 8 }[] = [
  { style: "cpu", radixBits: 8 },
  { style: "cpu", radixBits: 4 },
  { style: "gpu" },
];

Deno.test("rowmask: Wanda masks match the oracle on uneven shapes and every k edge", async () => {
  for (const [rows, cols, seed] of [[37, 50, 1], [64, 333, 2], [3, 1, 3], [2, 700, 4]]) {
    const W = randomArray(rows * cols, seed);
    const { sqrtR } = scaler(cols, seed + 9);
    const { w } = await upload(W, rows, cols);
    const sq = gpu.upload(sqrtR, "sqrtR");
    const scores = refWandaScores(W, rows, cols, sqrtR);
    for (const k of new Set([0, 1, Math.floor(cols * 0.5), Math.floor(cols * 0.7), cols - 1, cols])) {
      const want = refRowMask(scores, rows, cols, k);
      for (const v of ROW_VERSIONS) {
        await checkMask(
          wandaRowMask(gpu, w, sq, k, v),
          want,
          cols,
          `wanda ${rows}x${cols} k=${k} ${JSON.stringify(v)}`,
        );
      }
    }
    releaseMatrix(gpu, w);
    gpu.release(sq);
  }
});

Deno.test("rowmask: ties (all-equal rows, quantized scores, zeros), chunks and f16 weights", async () => {
  const rows = 24;
  for (
    const [cols, o] of [[77, { chunkRows: 5 }], [77, { f16: true, chunkRows: 7 }], [80, {
      f16: true,
    }]] as const
  ) {
    if (!onDevice(o)) continue;
    const W = quantized(rows * cols, 11 + cols, 0.25);
    W.fill(0.5, 0, cols); // row 0: all equal
    W.fill(0, cols, 2 * cols); // row 1: all zero
    for (let j = 0; j < cols; j++) W[2 * cols + j] = j % 2 ? -0 : 0; // row 2: +0 and -0 are ties
    const { w, Wq } = await upload(W, rows, cols, o);
    const sqrtR = new Float32Array(cols).fill(2);
    const sq = gpu.upload(sqrtR, "sqrtR");
    const scores = refWandaScores(Wq, rows, cols, sqrtR);
    for (const k of [0, 1, 20, 38, cols - 1, cols]) {
      const want = refRowMask(scores, rows, cols, k);
      for (const v of ROW_VERSIONS) {
        await checkMask(
          wandaRowMask(gpu, w, sq, k, v),
          want,
          cols,
          `ties ${JSON.stringify(o)} k=${k} ${v.style}`,
        );
      }
      // Magnitude per row (no sqrtR) on the same weights.
      const wantMag = refRowMask(Wq.map(Math.abs), rows, cols, k);
      await checkMask(rowMask(gpu, w, null, k), wantMag, cols, `magnitude rows ${JSON.stringify(o)} k=${k}`);
    }
    releaseMatrix(gpu, w);
    gpu.release(sq);
  }
});

Deno.test("rowmask: 14336- and 70000-column rows from a plain scores buffer", async () => {
  const rows = 5, cols = 14336;
  const S = quantized(rows * cols, 21, 1 / 64).map(Math.abs); // non-negative, many ties
  const s = gpu.upload(S, "scores");
  for (const k of [Math.floor(cols * 0.5), cols - 1]) {
    const want = refRowMask(S, rows, cols, k);
    for (const v of ROW_VERSIONS) {
      await checkMask(
        rowMaskFromScores(gpu, s, rows, cols, k, v),
        want,
        cols,
        `${rows}x${cols} k=${k} ${v.style}`,
      );
    }
  }
  gpu.release(s);
  // A row too long for one invocation under llvmpipe's loop limit falls back to the workgroup version.
  const long = randomArray(70000, 22).map(Math.abs);
  const l = gpu.upload(long, "long");
  const want = refRowMask(long, 1, 70000, 35000);
  await checkMask(
    rowMaskFromScores(gpu, l, 1, 70000, 35000, { style: "cpu", radixBits: 4 }),
    want,
    70000,
    "1x70000",
  );
  gpu.release(l);
});

// ---- magnitude masks ------------------------------------------------------------------------

Deno.test("magnitude: exact floor count over all chunks, ties by flat index, and the quirk", async () => {
  const cases: { rows: number; cols: number; W: Float32Array; o: { f16?: boolean; chunkRows?: number } }[] = [
    { rows: 37, cols: 50, W: randomArray(37 * 50, 31), o: {} },
    { rows: 64, cols: 333, W: randomArray(64 * 333, 32), o: { chunkRows: 9 } },
    { rows: 45, cols: 70, W: quantized(45 * 70, 33, 1 / 8), o: { chunkRows: 7 } },
    { rows: 20, cols: 33, W: quantized(20 * 33, 34, 1 / 1024), o: { f16: true, chunkRows: 6 } },
    { rows: 11, cols: 13, W: new Float32Array(11 * 13).fill(-0.25), o: { chunkRows: 4 } },
  ];
  for (const [ci, { rows, cols, W, o }] of cases.entries()) {
    if (!onDevice(o)) continue;
    const { w, Wq } = await upload(W, rows, cols, o);
    for (const s of [0, 0.001, 0.3, 0.5, 0.7, 0.999]) {
      for (const quirk of [false, true]) {
        const want = refMagnitudeMask(Wq, s, { quirk });
        for (const style of STYLES) {
          const mask = await magnitudeMask(gpu, w, s, { quirk, style });
          await checkMask(mask, want, cols, `magnitude case ${ci} s=${s} quirk=${quirk} ${style}`);
        }
      }
    }
    releaseMatrix(gpu, w);
  }
});

// ---- N:M masks ------------------------------------------------------------------------------

Deno.test("nm: N:M masks (Wanda and magnitude), mixed N, ties, chunks and f16", async () => {
  const cases: [number, number, number[]][] = [
    [4, 36, [2, 0, 1, 3, 4]],
    [8, 40, [4, 5, 3]],
    [7, 35, [3]],
    [
      16,
      48,
      [8, 15],
    ],
    [1, 5, [0, 1]],
    [3, 36, [1, 2]],
  ];
  for (const [ci, [M, cols, Ns]] of cases.entries()) {
    const rows = 13;
    const W = ci % 2 ? quantized(rows * cols, 40 + ci, 1 / 4) : randomArray(rows * cols, 40 + ci);
    for (const o of [{ chunkRows: 4 }, { f16: true }].filter(onDevice)) {
      const { w, Wq } = await upload(W, rows, cols, o);
      const { sqrtR } = scaler(cols, 60 + ci);
      const sq = gpu.upload(sqrtR, "sqrtR");
      const wanda = refWandaScores(Wq, rows, cols, sqrtR);
      const mag = Wq.map(Math.abs);
      for (const N of Ns) {
        const what = `${N}:${M} ${rows}x${cols} ${JSON.stringify(o)}`;
        await checkMask(nmMask(gpu, w, sq, N, M), refNMMask(wanda, rows, cols, N, M), cols, `wanda ${what}`);
        await checkMask(
          nmMask(gpu, w, null, N, M),
          refNMMask(mag, rows, cols, N, M),
          cols,
          `magnitude ${what}`,
        );
      }
      releaseMatrix(gpu, w);
      gpu.release(sq);
    }
  }
});

// ---- applying masks -------------------------------------------------------------------------

Deno.test("applyMask: zeroes exactly the pruned weights of every chunk (f32 and f16)", async () => {
  const rows = 19, cols = 45;
  const W = randomArray(rows * cols, 71);
  for (const o of [{ chunkRows: 6 }, { f16: true, chunkRows: 5 }].filter(onDevice)) {
    const { w, Wq } = await upload(W, rows, cols, o);
    const mask = rowMask(gpu, w, null, 17);
    const m = await readMask(gpu, mask);
    applyMask(gpu, w, mask);
    releaseMask(gpu, mask);
    const got = await readMatrix(gpu, w);
    const want = Wq.map((x, i) => (m[i] ? 0 : x));
    assertClose(got, want, 0, 0, `applyMask ${JSON.stringify(o)}`);
    let pruned = 0;
    for (const b of m) pruned += b;
    assert.equal(pruned, rows * 17);
    releaseMatrix(gpu, w);
  }
});

Deno.test("prune ops: bad arguments are refused, no buffer leaks", async () => {
  const { w } = await upload(randomArray(4 * 8, 1), 4, 8);
  assert.throws(() => rowMask(gpu, w, null, 9), /k must be/);
  assert.throws(() => nmMask(gpu, w, null, 2, 3), /multiple of M/);
  assert.throws(() => nmMask(gpu, w, null, 5, 4), /0 <= N <= M/);
  await assert.rejects(() => magnitudeMask(gpu, w, 1), /sparsity/);
  // Buffers that disagree with the shapes (read clamped before), NaN thresholds.
  const x = gpu.buffer(4 * 4, "x"), r = gpu.buffer(8 * 4, "r");
  assert.throws(
    () => updateScalerRow(gpu, x, r, 2, 8, 0, 1),
    /updateScalerRow: x holds 16 bytes but x \[T 2, C 8\]/,
  );
  await assert.rejects(() => countAbove(gpu, [{ w, sqrtR: r }], NaN), /thresh is NaN/);
  await assert.rejects(() => outlierCount(gpu, [{ w, sqrtR: r }], NaN), /M must be finite and > 0/);
  gpu.release(x, r);
  // A released weight: masks used to come back empty (nothing pruned) and applyMask did nothing.
  const mask = nmMask(gpu, w, null, 2, 4);
  await gpu.sync(); // the mask's dispatch reads w
  releaseMatrix(gpu, w);
  assert.throws(() => rowMask(gpu, w, null, 2), /rowMask: the 4x8 w has no data on the GPU/);
  assert.throws(() => nmMask(gpu, w, null, 2, 4), /no data on the GPU/);
  assert.throws(() => applyMask(gpu, w, mask), /applyMask: the 4x8 w has no data on the GPU/);
  await assert.rejects(() => magnitudeMask(gpu, w, 0.5), /no data on the GPU/);
  releaseMask(gpu, mask);
  await gpu.sync();
  assert.equal(gpu.liveBuffers, 0);
  gpu.destroy(); // last test: no device outlives the file (ARCHITECTURE.md, "Buffer lifetimes")
});
