/**
 * Layerwise sparsity allocation rules: pure functions from per-block statistics to per-block
 * sparsities (no GPU, no I/O). Every number is an IEEE double and every formula is evaluated in the
 * order stated in its JSDoc, because the reference (luuyin/OWL `lib/prune_all.py`, numpy float64)
 * feeds these values into `int(C_in * s)`: a different rounding can move a product across an
 * integer and change a mask.
 *
 * - {@linkcode owlAllocation}: OWL (outlier-weighted layerwise sparsity), bit-for-bit the reference.
 * - {@linkcode owlMixedNM}: OWL's mixed N:M variant (Wanda only in the reference).
 * - {@linkcode uniformAllocation}, {@linkcode depthAllocation}, {@linkcode dlpAllocation}: baselines and
 *   successors.
 * - {@linkcode numpySum}: numpy's float64 pairwise summation, so that every mean the reference takes with
 *   `np.mean` is reproduced exactly.
 *
 * @module
 */

import { ArgumentError } from "../errors.ts";

/** Below this many elements numpy sums with one plain loop (numpy `loops_utils.h.src`). */
const PW_UNROLL = 8;
/** numpy's `PW_BLOCKSIZE`: up to this many elements, eight accumulators; above, recursive halving. */
const PW_BLOCKSIZE = 128;

function pairwiseSum(a: ArrayLike<number>, start: number, n: number): number {
  if (n < PW_UNROLL) {
    // numpy starts from -0 so that a sum of only -0 stays -0.
    let res = -0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= PW_BLOCKSIZE) {
    const r = new Float64Array(PW_UNROLL);
    for (let j = 0; j < PW_UNROLL; j++) r[j] = a[start + j];
    let i = PW_UNROLL;
    for (; i < n - (n % PW_UNROLL); i += PW_UNROLL) {
      for (let j = 0; j < PW_UNROLL; j++) r[j] += a[start + i + j];
    }
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  // Halve, rounded down to a multiple of the unroll factor.
  let n2 = Math.floor(n / 2);
  n2 -= n2 % PW_UNROLL;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/**
 * Sum of a contiguous 1-D float64 array exactly as numpy's `np.sum` / `np.add.reduce` computes it:
 * the reduction starts from the identity `0.0` and adds `DOUBLE_pairwise_sum` of all elements
 * (numpy `_core/src/umath/loops_utils.h.src` and `loops_arithm_fp.dispatch.c.src`):
 * - n < 8: one accumulator, left to right;
 * - 8 <= n <= 128: eight accumulators r0..r7 over strides of 8, combined as
 *   `((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`, then the remaining n % 8 elements added in order;
 * - n > 128: split at `floor(n/2)` rounded down to a multiple of 8, sum both halves recursively, add.
 *
 * @example
 * ```ts
 * import { numpySum } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(numpySum([1e16, 1, -1e16, 1]), 1); // left to right, 1e16 + 1 rounds back to 1e16
 * ```
 */
export function numpySum(values: ArrayLike<number>): number {
  return 0 + pairwiseSum(values, 0, values.length);
}

/**
 * `np.mean` of a 1-D float64 array: {@linkcode numpySum} divided by the element count.
 *
 * @example The mean of the reference, in numpy's summation order
 * ```ts
 * import { numpyMean, numpySum } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(numpyMean([1, 2, 3, 4]), 2.5);
 * const xs = Array.from({ length: 200 }, (_, i) => 0.1 * i);
 * assert.equal(numpyMean(xs), numpySum(xs) / xs.length);
 * assert(Math.abs(numpyMean(xs) - 9.95) < 1e-12); // 0.1 * (0 + ... + 199) / 200
 * ```
 */
export function numpyMean(values: ArrayLike<number>): number {
  return numpySum(values) / values.length;
}

/**
 * Round to the nearest integer, halves to the even neighbour: numpy's `np.round(x)` (decimals 0
 * calls the `rint` ufunc), not JavaScript's `Math.round` (halves up) nor C's `round` (halves away
 * from zero). `x - floor(x)` is exact for every double, so the half test is exact. Like `rint`, a
 * zero result keeps the sign of x (`-0.5` gives `-0`).
 *
 * @example Halves go to the even neighbour, unlike `Math.round`
 * ```ts
 * import { roundHalfEven } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([0.5, 1.5, 2.5, 2.6, -1.5].map(roundHalfEven), [0, 2, 2, 3, -2]);
 * assert.deepEqual([0.5, 1.5, 2.5].map(Math.round), [1, 2, 3]);
 * assert(Object.is(roundHalfEven(-0.5), -0));
 * ```
 */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  const r = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
  return r === 0 ? x * 0 : r;
}

function checkSparsity(S: number, what = "target sparsity"): void {
  if (!Number.isFinite(S) || S < 0 || S >= 1) {
    throw new ArgumentError(`${what} must be in [0, 1), got ${S}`);
  }
}

function checkBlocks(nBlocks: number): void {
  if (!Number.isInteger(nBlocks) || nBlocks < 1) {
    throw new ArgumentError(`number of blocks must be a positive integer, got ${nBlocks}`);
  }
}

function checkFiniteList(xs: readonly number[], what: string): void {
  if (xs.length === 0) throw new ArgumentError(`${what} is empty: need one value per block`);
  const bad = xs.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new ArgumentError(`${what}[${bad}] is ${xs[bad]}; every value must be finite`);
}

function checkLambda(lambda: number, name = "lambda"): void {
  if (!Number.isFinite(lambda) || lambda < 0) {
    throw new ArgumentError(`${name} must be a finite number >= 0, got ${lambda}`);
  }
}

/**
 * The same sparsity `S` for every block (Wanda, SparseGPT and magnitude without OWL).
 *
 * @example
 * ```ts
 * import { uniformAllocation } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(uniformAllocation(3, 0.5), [0.5, 0.5, 0.5]);
 * ```
 */
export function uniformAllocation(nBlocks: number, S: number): number[] {
  checkBlocks(nBlocks);
  checkSparsity(S);
  return new Array<number>(nBlocks).fill(S);
}

/**
 * A block's layerwise outlier distribution value D_l in percent, as the reference's
 * `check_outlier_mean` returns it: `float(count) / total * 100`, i.e. `(count / numel) * 100` in
 * double precision (the division first; `count * 100 / numel` can differ in the last bit).
 *
 * @example
 * ```ts
 * import { outlierRatio } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(outlierRatio(3, 1000), 0.3); // percent: 3 of 1000 weights are outliers
 * ```
 */
export function outlierRatio(count: number, numel: number): number {
  if (!Number.isInteger(numel) || numel <= 0) {
    throw new ArgumentError(`numel must be a positive integer, got ${numel}`);
  }
  if (!Number.isInteger(count) || count < 0 || count > numel) {
    throw new ArgumentError(`outlier count must be an integer in [0, ${numel}], got ${count}`);
  }
  return count / numel * 100;
}

/**
 * Options of {@linkcode owlAllocation}; each is off by default (the reference behaviour).
 *
 * @example With one big block, centre the parameter-weighted mean on S
 * ```ts
 * import { owlAllocation, type OwlOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const D = [1, 2, 3, 4], params = [1, 1, 1, 3];
 * const opts: OwlOptions = { paramWeights: params };
 * const s = owlAllocation(D, 0.5, 0.1, opts);
 * const weighted = s.reduce((a, x, i) => a + x * params[i], 0) / 6;
 * assert(Math.abs(weighted - 0.5) < 1e-12);
 * const plain = owlAllocation(D, 0.5, 0.1); // the reference: the unweighted mean is S
 * assert(Math.abs(plain.reduce((a, x) => a + x) / 4 - 0.5) < 1e-12);
 * assert(Math.abs(s[0] - s[3] - 0.2) < 1e-12); // both span 2 * lambda, shifted
 * ```
 */
export interface OwlOptions {
  /**
   * One positive weight per block (typically its parameter count). When given, the allocation is
   * centred so that the WEIGHTED mean `sum(w_l s_l) / sum(w_l)` is S instead of the unweighted mean
   * (the reference's weakness: blocks of different sizes then miss the global target).
   */
  paramWeights?: number[];
}

/** Names a unit in error messages ("block 3", "block 3 linear 6"). */
type UnitName = (i: number) => string;

/**
 * The OWL mapping shared by {@linkcode owlAllocation}, {@linkcode owlAllocationPerLinear} and
 * {@linkcode dlpAllocation}; `what` names the scale parameter in messages.
 */
function owlCore(
  D: readonly number[],
  S: number,
  lambda: number,
  weights: readonly number[] | undefined,
  unitName: UnitName,
  what: string,
): number[] {
  checkFiniteList(D, "outlier ratios");
  checkSparsity(S);
  checkLambda(lambda, what);
  let min = Infinity;
  let max = -Infinity;
  for (const d of D) {
    if (d < min) min = d;
    if (d > max) max = d;
  }
  // The reference divides by max - min: 1/0 = inf and 0 * inf = NaN for every block. Equal ratios
  // carry no signal, so every unit gets S.
  if (max === min) return D.map(() => S);

  // numpy: `(D - D.min()) * (1 / (D.max() - D.min()) * Lamda * 2)`, scalar factor first.
  const factor = 1 / (max - min) * lambda * 2;
  const r = D.map((d) => (d - min) * factor);
  let centre: number;
  if (weights === undefined) {
    centre = numpyMean(r);
  } else {
    centre = numpySum(r.map((x, i) => x * weights[i])) / numpySum(weights);
  }
  // numpy: `r - np.mean(r) + (1 - S)` is `(r - mean) + (1 - S)`, elementwise, left to right.
  const keep = 1 - S;
  const s = r.map((x) => 1 - ((x - centre) + keep));

  const worst = s.reduce((iw, x, i) => (x > s[iw] ? i : iw), 0);
  if (s[worst] >= 1) {
    // s_l = S + centre - r_l, and centre scales with lambda: the largest safe lambda is
    // (1 - S) / (centre / lambda) for the unit with r_l = 0.
    const limit = (1 - S) / (centre / lambda);
    throw new ArgumentError(
      `${unitName(worst)} would be pruned at sparsity ${s[worst].toFixed(4)} (>= 1) with S = ${S} and ` +
        `${what} = ${lambda}; use a ${what} below ${floor4(limit)} or a lower S`,
    );
  }
  // The reference: `if layer_sparsity_ratio <= 0: layer_sparsity_ratio = 0.01`.
  return s.map((x) => (x <= 0 ? 0.01 : x));
}

/**
 * OWL's per-block sparsities from the per-block outlier ratios D (percent, see
 * {@linkcode outlierRatio}), bit-for-bit as the reference computes them in numpy float64:
 *
 * 1. `r = (D - min D) * (1 / (max D - min D) * lambda * 2)` (the scalar factor is evaluated first,
 *    left to right, then multiplies each difference);
 * 2. `r = (r - mean(r)) + (1 - S)` with `mean` = {@linkcode numpyMean} (numpy pairwise order);
 * 3. `s_l = 1 - r_l`, and `s_l <= 0` becomes `0.01`.
 *
 * So the sparsities span exactly `2 * lambda` (up to rounding), their unweighted mean is S, and
 * blocks with more outliers are pruned less. Differences from the reference, all in cases where it
 * fails: all-equal D (the reference divides by zero and produces NaN) gives S for every block; a
 * sparsity >= 1 throws an {@linkcode ArgumentError} naming the block and the largest safe lambda.
 * The `0.01` floor (low S with a large lambda) moves the mean above S, as in the reference.
 *
 * @param D outlier ratio per block (any finite numbers; only their min-max shape matters)
 * @param S target mean sparsity in [0, 1)
 * @param lambda half the spread of the sparsities, >= 0 (reference default 0.08)
 * @param options {@linkcode OwlOptions}
 * @returns one sparsity per block
 *
 * @example
 * ```ts
 * import { owlAllocation } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const s = owlAllocation([1, 2, 3, 4], 0.7, 0.08); // more outliers, less pruning
 * assert.deepEqual(s.map((x) => +x.toFixed(5)), [0.78, 0.72667, 0.67333, 0.62]);
 * ```
 */
export function owlAllocation(D: number[], S: number, lambda: number, options: OwlOptions = {}): number[] {
  const weights = options.paramWeights;
  if (weights !== undefined) checkWeights(weights, D.length, "paramWeights");
  return owlCore(D, S, lambda, weights, (i) => `block ${i}`, "lambda");
}

function checkWeights(w: readonly number[], n: number, what: string): void {
  if (w.length !== n) {
    throw new ArgumentError(`${what} has ${w.length} entries but there are ${n} units; give one per unit`);
  }
  const bad = w.findIndex((x) => !Number.isFinite(x) || x <= 0);
  if (bad >= 0) throw new ArgumentError(`${what}[${bad}] is ${w[bad]}; weights must be finite and > 0`);
}

/**
 * Options of {@linkcode owlAllocationPerLinear}.
 *
 * @example `"params"` centres the parameter-weighted mean, `"none"` the plain mean over linears
 * ```ts
 * import { owlAllocationPerLinear, type OwlPerLinearOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const D = [[1, 3], [2, 4]], params = [[1, 3], [1, 1]];
 * const mean = (s: number[][], w: number[][]) => {
 *   const ws = w.flat(), total = ws.reduce((a, x) => a + x);
 *   return s.flat().reduce((a, x, i) => a + x * ws[i], 0) / total;
 * };
 * for (const weighting of ["params", "none"] as const) {
 *   const opts: OwlPerLinearOptions = { weighting };
 *   const s = owlAllocationPerLinear(D, params, 0.5, 0.1, opts);
 *   const centred = weighting === "params" ? params : [[1, 1], [1, 1]];
 *   assert(Math.abs(mean(s, centred) - 0.5) < 1e-12);
 * }
 * ```
 */
export interface OwlPerLinearOptions {
  /**
   * How the allocation is centred: `"params"` (default) makes the parameter-weighted mean over all
   * linears equal S, so the model as a whole is pruned at S even though the linears differ in size;
   * `"none"` centres the unweighted mean over linears, the plain OWL formula applied to linears.
   */
  weighting?: "params" | "none";
}

/**
 * OWL at the granularity of single linears (the paper's appendix variant, which it reports as much
 * worse than per-block): every linear of every block is one unit of {@linkcode owlAllocation}'s
 * mapping, with its own outlier ratio. The reference code has no such variant; the mapping and its
 * evaluation order are those of {@linkcode owlAllocation}.
 *
 * @param D outlier ratio per linear, `D[block][linear]` (e.g. in `LINEARS` order)
 * @param params parameter count per linear, same shape as D
 * @param S target sparsity in [0, 1)
 * @param lambda half the spread, >= 0
 * @returns sparsity per linear, same shape as D
 *
 * @example
 * ```ts
 * import { owlAllocationPerLinear } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const s = owlAllocationPerLinear([[1, 3], [2, 4]], [[1, 1], [1, 1]], 0.5, 0.1);
 * assert.deepEqual(s.map((row) => row.map((x) => +x.toFixed(5))), [[0.6, 0.46667], [0.53333, 0.4]]);
 * ```
 */
export function owlAllocationPerLinear(
  D: number[][],
  params: number[][],
  S: number,
  lambda: number,
  options: OwlPerLinearOptions = {},
): number[][] {
  if (D.length === 0) throw new ArgumentError("outlier ratios are empty: need one row per block");
  if (params.length !== D.length) {
    throw new ArgumentError(`params has ${params.length} blocks but D has ${D.length}; shapes must match`);
  }
  const where: [number, number][] = [];
  D.forEach((row, b) => {
    if (params[b].length !== row.length) {
      throw new ArgumentError(
        `block ${b}: params has ${params[b].length} linears but D has ${row.length}; shapes must match`,
      );
    }
    row.forEach((_, j) => where.push([b, j]));
  });
  const flatD = D.flat();
  const flatP = params.flat();
  checkWeights(flatP, flatP.length, "params");
  const weighting = options.weighting ?? "params";
  const flatS = owlCore(
    flatD,
    S,
    lambda,
    weighting === "params" ? flatP : undefined,
    (i) => `block ${where[i][0]} linear ${where[i][1]}`,
    "lambda",
  );
  let k = 0;
  return D.map((row) => row.map(() => flatS[k++]));
}

/**
 * How {@linkcode owlMixedNM} turns its real-valued offsets into integers.
 *
 * @example Offsets [-2/3, -2/3, 4/3] around N = 2 of M = 4: rounding breaks the mean unless it preserves mass
 * ```ts
 * import { type NMRounding, owlMixedNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const run = (rounding: NMRounding) => owlMixedNM([0, 0, 1], 2, 4, 2, { rounding });
 * assert.deepEqual(run("reference").n, [3, 3, 1]); // 2 - round(offset)
 * assert.equal(run("reference").meanN, 7 / 3);
 * assert.deepEqual(run("mass-preserving").n, [3, 3, 0]); // floor, then largest remainders
 * assert.equal(run("mass-preserving").meanN, 2);
 * ```
 */
export type NMRounding = "reference" | "mass-preserving";

/**
 * Result of {@linkcode owlMixedNM}.
 *
 * @example Per-block N for OWL's mixed 4:8, and the realised means
 * ```ts
 * import { type MixedNM, owlMixedNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const r: MixedNM = owlMixedNM([0, 1, 2, 3], 4, 8, 3);
 * assert.deepEqual(r.n, [6, 4, 4, 2]); // more outliers (larger D), fewer weights pruned
 * assert.equal(r.meanN, (6 + 4 + 4 + 2) / 4);
 * assert.equal(r.meanSparsity, r.meanN / 8);
 * ```
 */
export interface MixedNM {
  /** Weights pruned per group of M, per block, each in [0, M]. */
  n: number[];
  /** Realised mean of `n` over blocks (the target was N). */
  meanN: number;
  /** Realised mean sparsity, `meanN / M` (blocks have equal weight). */
  meanSparsity: number;
}

/**
 * OWL's mixed N:M allocation (reference `prune_wanda_outlier_structure`, Wanda only): per block, how
 * many of every M consecutive weights to prune.
 *
 * Reference (`rounding: "reference"`, the default), numpy float64:
 * 1. `r = (D - min D) * (1 / (max D - min D) * lambda)` (NO factor 2, no `1 - S` term);
 * 2. `r = r - mean(r)` ({@linkcode numpyMean});
 * 3. `k = np.round(r)`, round half to even ({@linkcode roundHalfEven});
 * 4. `n_l = N - k_l`.
 * Then `n_l` is clamped to [0, M]. The reference does not clamp: `torch.topk` fails for `n_l > M` or
 * `n_l < 0`, while `n_l = 0` leaves the block dense (`if prune_n != 0`), as here.
 *
 * Rounding breaks the mean: offsets [-2/3, -2/3, 4/3] round to [-1, -1, 1], so the mean of n is
 * N + 1/3. With
 * `rounding: "mass-preserving"` the targets `t_l = N - r_l` (clamped to [0, M]) are floored and the
 * missing units go, one each, to the blocks with the largest remainders `t_l - n_l` (ties: lower
 * block index), so the mean is exactly N whenever N is an integer (always feasible as 0 <= N <= M).
 *
 * Not reproduced: `prune_wanda_outlier_structure_special` also maps a rounded offset of exactly 1 to 2,
 * but the reference CLI never calls it (`main.py` sends both `wanda_owl_structure` and
 * `wanda_owl_structure_special` to `prune_wanda_outlier_structure`).
 *
 * All-equal D (the reference produces NaN) gives `n_l = N` for every block.
 *
 * @param D outlier ratio per block
 * @param N target number pruned per group (integer, 0 <= N <= M)
 * @param M group size (integer > 0)
 * @param lambda spread of the offsets, >= 0 (in units of weights per group)
 * @returns per-block `n` with the realised mean and mean sparsity
 *
 * @example
 * ```ts
 * import { owlMixedNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // r - mean = [-1.5, -0.5, 0.5, 1.5] → k = [-2, -0, 0, 2] → n = 4 - k = [6, 4, 4, 2]
 * assert.deepEqual(owlMixedNM([0, 1, 2, 3], 4, 8, 3).n, [6, 4, 4, 2]);
 * ```
 */
export function owlMixedNM(
  D: number[],
  N: number,
  M: number,
  lambda: number,
  options: { rounding?: NMRounding } = {},
): MixedNM {
  checkFiniteList(D, "outlier ratios");
  if (!Number.isInteger(M) || M <= 0) throw new ArgumentError(`N:M needs an integer M > 0, got M = ${M}`);
  if (!Number.isInteger(N) || N < 0 || N > M) {
    throw new ArgumentError(`N:M needs an integer N with 0 <= N <= M, got ${N}:${M}`);
  }
  checkLambda(lambda);
  const rounding = options.rounding ?? "reference";
  const L = D.length;
  let min = Infinity;
  let max = -Infinity;
  for (const d of D) {
    if (d < min) min = d;
    if (d > max) max = d;
  }
  let n: number[];
  if (max === min) {
    n = D.map(() => N);
  } else {
    const factor = 1 / (max - min) * lambda;
    const r0 = D.map((d) => (d - min) * factor);
    const mean = numpyMean(r0);
    const r = r0.map((x) => x - mean);
    const clamp = (x: number) => Math.min(M, Math.max(0, x));
    if (rounding === "reference") {
      n = r.map((x) => clamp(N - roundHalfEven(x)));
    } else {
      const t = r.map((x) => clamp(N - x));
      n = t.map((x) => Math.floor(x));
      let deficit = L * N - n.reduce((a, b) => a + b, 0);
      // One unit at a time to the block furthest below (or above) its target; with targets in
      // [0, M] the first pass is largest-remainder, later passes only matter after clamping.
      while (deficit !== 0) {
        let best = -1;
        for (let i = 0; i < L; i++) {
          if (deficit > 0 ? n[i] >= M : n[i] <= 0) continue;
          const gap = t[i] - n[i];
          if (best < 0 || (deficit > 0 ? gap > t[best] - n[best] : gap < t[best] - n[best])) best = i;
        }
        n[best] += deficit > 0 ? 1 : -1;
        deficit += deficit > 0 ? -1 : 1;
      }
    }
  }
  const meanN = n.reduce((a, b) => a + b, 0) / L;
  return { n, meanN, meanSparsity: meanN / M };
}

/**
 * Depth schedule (arithmetic progression, "ATP"): `s_l = S - beta*(L-1)/2 + beta*l`, evaluated left to
 * right as `(S - (beta*(L-1))/2) + beta*l`. Deeper blocks are pruned more for beta > 0; the unweighted
 * mean is S. Throws if any block leaves [0, 1).
 *
 * @example
 * ```ts
 * import { depthAllocation } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const s = depthAllocation(3, 0.5, 0.1); // deeper blocks are pruned more
 * assert.deepEqual(s.map((x) => +x.toFixed(12)), [0.4, 0.5, 0.6]); // s[2] is 0.6000000000000001
 * ```
 */
export function depthAllocation(nBlocks: number, S: number, beta: number): number[] {
  checkBlocks(nBlocks);
  checkSparsity(S);
  if (!Number.isFinite(beta)) throw new ArgumentError(`beta must be finite, got ${beta}`);
  const s = Array.from({ length: nBlocks }, (_, l) => S - beta * (nBlocks - 1) / 2 + beta * l);
  const bad = s.findIndex((x) => x < 0 || x >= 1);
  if (bad >= 0) {
    const limit = Math.min(S, 1 - S) / ((nBlocks - 1) / 2);
    throw new ArgumentError(
      `block ${bad} would be pruned at sparsity ${s[bad].toFixed(4)} (outside [0, 1)) with S = ${S} and ` +
        `beta = ${beta}; use |beta| below ${floor4(limit)}`,
    );
  }
  return s;
}

/**
 * DLP allocation from each block's mean Wanda score: `imp_l = 1 - score_l / sum(score)` (`sum` left
 * to right), then OWL's mapping with alpha in place of lambda, i.e.
 * `owlAllocation(imp, S, alpha)`: blocks with higher importance `imp` are pruned less. Note the
 * direction: `imp` falls as the mean score rises, so a block with a LARGER mean score is pruned MORE.
 * (DLP's own code runs the mapping in torch float32; this is the float64 contract of ALGORITHMS.md.)
 *
 * @param meanScores mean Wanda score per block, finite, >= 0, not all 0
 * @param S target mean sparsity in [0, 1)
 * @param alpha half the spread of the sparsities, >= 0
 *
 * @example
 * ```ts
 * import { dlpAllocation } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const s = dlpAllocation([1, 2, 3, 4], 0.7, 0.08); // imp = [0.9, 0.8, 0.7, 0.6]
 * assert.deepEqual(s.map((x) => +x.toFixed(5)), [0.62, 0.67333, 0.72667, 0.78]);
 * ```
 */
export function dlpAllocation(meanScores: number[], S: number, alpha: number): number[] {
  checkFiniteList(meanScores, "mean scores");
  const neg = meanScores.findIndex((x) => x < 0);
  if (neg >= 0) throw new ArgumentError(`mean score of block ${neg} is ${meanScores[neg]}; scores are >= 0`);
  const total = meanScores.reduce((a, b) => a + b, 0);
  if (total === 0) throw new ArgumentError("all mean scores are 0: DLP needs at least one positive score");
  const imp = meanScores.map((x) => 1 - x / total);
  return owlCore(imp, S, alpha, undefined, (i) => `block ${i}`, "alpha");
}

/**
 * Weights pruned per row of a linear with `cIn` inputs at sparsity `s`: `Math.floor(cIn * s)` with
 * the product rounded once in double precision, as the reference's `int(W.shape[1] * ratio)`. The
 * order matters: `100 * 0.29` is 28.999999999999996, so the count is 28, not 29; rewriting the
 * product (e.g. `cIn - cIn * (1 - s)`) would change masks.
 *
 * @example
 * ```ts
 * import { pruneCount } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pruneCount(100, 0.29), 28); // 100 * 0.29 is 28.999999999999996
 * ```
 */
export function pruneCount(cIn: number, s: number): number {
  if (!Number.isInteger(cIn) || cIn < 0) throw new ArgumentError(`cIn must be an integer >= 0, got ${cIn}`);
  checkSparsity(s, "sparsity");
  return Math.floor(cIn * s);
}

/** `x` rounded down to 4 significant digits: a limit quoted this way is itself safe. */
function floor4(x: number): string {
  if (!(x > 0 && Number.isFinite(x))) return String(x);
  const scale = 10 ** (3 - Math.floor(Math.log10(x)));
  return String(Math.floor(x * scale) / scale);
}
