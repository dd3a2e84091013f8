/**
 * Tests of the float64 oracles in `test/ref/prune_ref.ts` themselves, on tiny hand-computed cases,
 * so that the GPU kernels are checked against something that is right.
 * @module
 */

import assert from "node:assert/strict";
import {
  refCholeskyUpper,
  refHessianUpdate,
  refInverseSPD,
  refMagnitudeMask,
  refNMMask,
  refOutlierCount,
  refOutlierCountGivenMean,
  refRowMask,
  refScalerRowUpdate,
  refScalerRowUpdateF32,
  refSparseGPT,
  refSqrtScaler,
  refWandaScores,
} from "./ref/prune_ref.ts";
import { ArgumentError } from "../src/errors.ts";

const f = Math.fround;

/** Indices where the mask is 1. */
const pruned = (m: Uint8Array) => [...m.keys()].filter((i) => m[i] === 1);

function assertAllClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}]: ${a[i]} vs ${b[i]}`);
}

/** Deterministic pseudo-random numbers in [-1, 1) (LCG), so the tests are reproducible. */
function rand(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** X^T X + n I for a random X: symmetric positive definite. */
function randomSPD(n: number, seed: number): Float64Array {
  const X = rand(2 * n * n, seed);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let v = i === j ? n : 0;
      for (let t = 0; t < 2 * n; t++) v += X[t * n + i] * X[t * n + j];
      A[i * n + j] = v;
    }
  }
  return A;
}

Deno.test("refScalerRowUpdate: running mean over sequences of per-sequence sums of x^2", () => {
  // Batch 1: 2 sequences with summed squares [4, 9]: r = 0 * 0 + [4, 9] / 2 = [2, 4.5].
  const a = refScalerRowUpdate(new Float64Array(2), 0, Float64Array.of(4, 9), 2);
  assert.deepEqual([...a.r], [2, 4.5]);
  assert.equal(a.nSamples, 2);
  // Batch 2: 1 sequence, [2, 1]: r = [2, 4.5] * 2/3 + [2, 1] / 3 = [2, 3.333..] = all sums [6, 10] / 3.
  const b = refScalerRowUpdate(a.r, a.nSamples, Float64Array.of(2, 1), 1);
  assertAllClose(b.r, [2, 10 / 3], 1e-15);
  assert.equal(b.nSamples, 3);
  assert.throws(() => refScalerRowUpdate(a.r, 2, Float64Array.of(1), 1), ArgumentError);
});

Deno.test("refScalerRowUpdateF32 rounds every operation to f32", () => {
  const a = refScalerRowUpdateF32(new Float32Array(1), 0, Float32Array.of(f(0.1)), 1);
  assert.equal(a.r[0], f(0.1));
  const b = refScalerRowUpdateF32(a.r, 1, Float32Array.of(f(0.2)), 2);
  // ratio = f32(1/3); r = f32(f32(f32(0.1) * f32(1/3)) + f32(f32(0.2) / 3)).
  assert.equal(b.r[0], f(f(f(0.1) * f(1 / 3)) + f(f(0.2) / 3)));
  assert.equal(b.nSamples, 3);
  assertAllClose(b.r, [(0.1 + 0.2) / 3], 1e-8);
});

Deno.test("refWandaScores: f32 product of |W| and sqrt(r)", () => {
  const sqrtR = refSqrtScaler([0.25, 0.01]);
  assert.deepEqual([...sqrtR], [0.5, f(0.1)]);
  const A = refWandaScores(Float32Array.of(1, -2, 3, -4), 2, 2, sqrtR);
  assert.deepEqual([...A], [0.5, f(2 * f(0.1)), 1.5, f(4 * f(0.1))]);
  assert.throws(() => refWandaScores(Float32Array.of(1, 2, 3), 2, 2, sqrtR), ArgumentError);
});

Deno.test("refRowMask: k lowest per row, ties to the lower column", () => {
  // Row 0: the 1s at columns 1, 2 and 4 tie; k = 2 takes columns 1 and 2.
  // Row 1: all equal, so the first two columns (flat 5, 6).
  const m = refRowMask([3, 1, 1, 2, 1, 7, 7, 7, 7, 7], 2, 5, 2);
  assert.deepEqual(pruned(m), [1, 2, 5, 6]);
  assert.deepEqual(pruned(refRowMask([3, 1, 2], 1, 3, 0)), []);
  assert.deepEqual(pruned(refRowMask([3, 1, 2], 1, 3, 3)), [0, 1, 2]);
  assert.throws(() => refRowMask([1, 2], 1, 2, 3), ArgumentError);
});

Deno.test("refMagnitudeMask: exact floor count vs the reference's <= quirk", () => {
  // |W| = [0.5, 0.1, 0.1, 0.3, 0.3, 0.2, 0.1, 0.4]; sorted: 0.1 0.1 0.1 0.2 0.3 0.3 0.4 0.5.
  const W = [0.5, -0.1, 0.1, 0.3, -0.3, 0.2, 0.1, 0.4];
  // s = 0.3: floor(2.4) = 2 -> the first two 0.1s (flat 1, 2); the quirk: sorted[2] = 0.1, all <= 0.1.
  assert.deepEqual(pruned(refMagnitudeMask(W, 0.3)), [1, 2]);
  assert.deepEqual(pruned(refMagnitudeMask(W, 0.3, { quirk: true })), [1, 2, 6]);
  // s = 0.5: floor 4 -> the three 0.1s and 0.2; the quirk: sorted[4] = 0.3 -> six entries.
  assert.deepEqual(pruned(refMagnitudeMask(W, 0.5)), [1, 2, 5, 6]);
  assert.deepEqual(pruned(refMagnitudeMask(W, 0.5, { quirk: true })), [1, 2, 3, 4, 5, 6]);
  // s = 0: nothing, but the quirk still prunes everything equal to the minimum.
  assert.deepEqual(pruned(refMagnitudeMask(W, 0)), []);
  assert.deepEqual(pruned(refMagnitudeMask(W, 0, { quirk: true })), [1, 2, 6]);
  assert.throws(() => refMagnitudeMask(W, 1), ArgumentError);
});

Deno.test("refNMMask: N lowest in every group of M columns", () => {
  const scores = [
    [4, 3, 2, 1, 1, 1, 1, 1],
    [0, 5, 0, 5, 9, 8, 7, 6],
  ].flat();
  // Row 0: group 0 -> columns 3, 2; group 1 all tie -> 4, 5. Row 1: group 0 -> 0, 2 (tie, lower first);
  // group 1 -> 7, 6.
  assert.deepEqual(pruned(refNMMask(scores, 2, 8, 2, 4)), [2, 3, 4, 5, 8, 10, 14, 15]);
  assert.throws(() => refNMMask(scores, 2, 8, 2, 3), /multiple of M/);
  assert.throws(() => refNMMask(scores, 2, 8, 5, 4), ArgumentError);
});

Deno.test("refOutlierCount: strictly above M * mean over all the block's scores", () => {
  // sum 20, numel 8, mean 2.5: M = 5 -> threshold 12.5, only the 13 is above.
  const block = [Float32Array.of(1, 1, 1, 1), Float32Array.of(1, 1, 1, 13)];
  assert.deepEqual(refOutlierCount(block, 5), { count: 1, numel: 8, mean: 2.5 });
  assert.equal(refOutlierCount(block, 0.3).count, 8, "M = 0.3 -> threshold 0.75, every value is above");
  // mean 2, M = 2.5 -> threshold 5; a value equal to it is not an outlier.
  assert.equal(refOutlierCount([[1, 1, 1, 5]], 2.5).count, 0);
  assert.throws(() => refOutlierCount([], 5), ArgumentError);
});

Deno.test("refOutlierCountGivenMean uses the f32 threshold f32(M * mean)", () => {
  // mean = f32(0.1) = 0.1000000015..; M * mean = 0.3000000045.. in doubles, which rounds to the f32
  // 0.3000000119.. = f32(0.3). So 0.30000001 (above the double product) is not an outlier, f32(0.3) is
  // equal to the threshold and not one either; only the 1 counts.
  const r = refOutlierCountGivenMean([[0.30000001, f(0.3), 1]], 3, f(0.1));
  assert.deepEqual(r, { count: 1, numel: 3, mean: f(0.1) });
});

Deno.test("refHessianUpdate: H = (2/N) * sum over tokens of x x^T, as a running average", () => {
  // Batch 1 (one sequence, tokens (1,2) and (3,4)): H = 2 * [[10, 14], [14, 20]].
  const a = refHessianUpdate(new Float64Array(4), 0, Float64Array.of(1, 2, 3, 4), 1);
  assertAllClose(a.H, [20, 28, 28, 40], 1e-13);
  assert.equal(a.nSamples, 1);
  // Batch 2 (token (1,0)): H = H/2 + 1 * [[1,0],[0,0]] = [[11, 14], [14, 20]] = (2/2) * all tokens.
  const b = refHessianUpdate(a.H, 1, Float64Array.of(1, 0), 1);
  assertAllClose(b.H, [11, 14, 14, 20], 1e-13);
  assert.equal(b.nSamples, 2);
  assert.throws(() => refHessianUpdate(new Float64Array(4), 0, Float64Array.of(1, 2, 3), 1), ArgumentError);
});

Deno.test("refCholeskyUpper and refInverseSPD: small residuals", () => {
  const n = 7;
  const A = randomSPD(n, 42);
  const U = refCholeskyUpper(A, n);
  const inv = refInverseSPD(A, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i > j) assert.equal(U[i * n + j], 0);
      let utu = 0;
      let ainv = 0;
      for (let k = 0; k < n; k++) {
        utu += U[k * n + i] * U[k * n + j];
        ainv += A[i * n + k] * inv[k * n + j];
      }
      assert.ok(Math.abs(utu - A[i * n + j]) < 1e-12, `U^T U - A at ${i},${j}`);
      assert.ok(Math.abs(ainv - (i === j ? 1 : 0)) < 1e-12, `A A^-1 - I at ${i},${j}`);
    }
  }
  // [[2, 1], [1, 2]]: U = [[sqrt 2, 1/sqrt 2], [0, sqrt(3/2)]], inverse = [[2, -1], [-1, 2]] / 3.
  assertAllClose(refCholeskyUpper(Float64Array.of(2, 1, 1, 2), 2), [
    Math.SQRT2,
    Math.SQRT1_2,
    0,
    Math.sqrt(1.5),
  ], 1e-15);
  assertAllClose(refInverseSPD(Float64Array.of(2, 1, 1, 2), 2), [2 / 3, -1 / 3, -1 / 3, 2 / 3], 1e-15);
  assert.throws(() => refCholeskyUpper(Float64Array.of(1, 2, 2, 1), 2), /pivot 1/);
});

Deno.test("refSparseGPT: s = 0 leaves W unchanged", () => {
  const rows = 3;
  const cols = 6;
  const W = rand(rows * cols, 7);
  const { W: out, mask } = refSparseGPT(W, rows, cols, randomSPD(cols, 3), { sparsity: 0, blocksize: 4 });
  assert.deepEqual([...out], [...W]);
  assert.deepEqual(pruned(mask), []);
});

Deno.test("refSparseGPT: one row, two columns, by hand", () => {
  // H = [[2, 1], [1, 2]], no damping: H^-1 = [[2, -1], [-1, 2]] / 3, whose upper Cholesky factor is
  // U = [[sqrt(2/3), -1/sqrt 6], [0, sqrt(1/2)]]. W = [1, 1], s = 0.5 -> prune floor(2 * 0.5) = 1.
  // Scores w^2 / U_jj^2 = [1.5, 2]: column 0 goes. err = 1 / sqrt(2/3) = sqrt(3/2);
  // w_1 -= err * U_01 -> 1 + sqrt(3/2) / sqrt 6 = 1.5 (the OBS update -H_11^-1 H_10 * (-w_0) = 0.5).
  const H = Float64Array.of(2, 1, 1, 2);
  const r = refSparseGPT(Float64Array.of(1, 1), 1, 2, H, { sparsity: 0.5, percdamp: 0 });
  assert.deepEqual([...r.mask], [1, 0]);
  assert.equal(r.W[0], 0);
  assert.ok(Math.abs(r.W[1] - 1.5) < 1e-15);
});

Deno.test("refSparseGPT: one threshold over the rows x block, not per row", () => {
  // H = I: no updates, scores are w^2. Lowest two of [1, 4, 9, 16] are both in row 0.
  const H = Float64Array.of(1, 0, 0, 1);
  const r = refSparseGPT(Float64Array.of(1, 2, 3, 4), 2, 2, H, { sparsity: 0.5, percdamp: 0 });
  assert.deepEqual(pruned(r.mask), [0, 1]);
  assert.deepEqual([...r.W], [0, 0, 3, 4]);
  // The quirk prunes everything <= sorted[2] = 9: one more.
  const q = refSparseGPT(Float64Array.of(1, 2, 3, 4), 2, 2, H, { sparsity: 0.5, percdamp: 0, quirk: true });
  assert.deepEqual(pruned(q.mask), [0, 1, 2]);
});

Deno.test("refSparseGPT: floor count per block, masked weights exactly 0, dead inputs zeroed", () => {
  const rows = 5;
  const cols = 10;
  // Input 3 is always 0, so H's row and column 3 are 0: a dead input.
  const X = rand(3 * cols * cols, 11).map((x, i) => (i % cols === 3 ? 0 : x));
  const { H } = refHessianUpdate(new Float64Array(cols * cols), 0, X, 1);
  assert.equal(H[3 * cols + 3], 0);
  const W = rand(rows * cols, 5);
  const { W: out, mask } = refSparseGPT(W, rows, cols, H, { sparsity: 0.7, blocksize: 4 });
  // Blocks of 4, 4, 2 columns: floor(20 * 0.7) = 14, 14, floor(10 * 0.7) = 7.
  const perBlock = [0, 0, 0];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      if (mask[i * cols + j]) {
        perBlock[Math.floor(j / 4)]++;
        assert.equal(out[i * cols + j], 0);
      }
      if (j === 3) assert.equal(out[i * cols + j], 0, "dead column is zero");
    }
  }
  assert.deepEqual(perBlock, [14, 14, 7]);
});

Deno.test("refSparseGPT N:M: N per group, and the lazy batch update equals in-block updates", () => {
  const rows = 3;
  const cols = 8;
  const H = randomSPD(cols, 19);
  const W = rand(rows * cols, 23);
  const wide = refSparseGPT(W, rows, cols, H, { sparsity: 0, prunen: 2, prunem: 4, blocksize: 8 });
  const narrow = refSparseGPT(W, rows, cols, H, { sparsity: 0, prunen: 2, prunem: 4, blocksize: 4 });
  for (let i = 0; i < rows; i++) {
    for (let g = 0; g < cols; g += 4) {
      let n = 0;
      for (let t = 0; t < 4; t++) n += wide.mask[i * cols + g + t];
      assert.equal(n, 2, `row ${i} group ${g / 4}`);
    }
  }
  assert.deepEqual([...narrow.mask], [...wide.mask]);
  assertAllClose(narrow.W, wide.W, 1e-12);
  assert.throws(
    () => refSparseGPT(W, rows, cols, H, { sparsity: 0, prunen: 2, prunem: 4, blocksize: 6 }),
    /multiples of M/,
  );
});
