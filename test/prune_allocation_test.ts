/**
 * Unit tests of the allocation rules in `src/prune/allocation.ts`, on hand-computed cases. Where a
 * test needs the exact double, the literal is what numpy 2.4 prints for the reference's expression
 * (noted beside it); the hand arithmetic is in the comments.
 * @module
 */

import assert from "node:assert/strict";
import {
  depthAllocation,
  dlpAllocation,
  numpyMean,
  numpySum,
  outlierRatio,
  owlAllocation,
  owlAllocationPerLinear,
  owlMixedNM,
  pruneCount,
  roundHalfEven,
  uniformAllocation,
} from "../src/prune/allocation.ts";
import { ArgumentError } from "../src/errors.ts";

function assertClose(actual: number[], expected: number[], tol = 1e-12): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => {
    assert.ok(Math.abs(a - expected[i]) <= tol, `[${i}]: ${a} vs ${expected[i]}`);
  });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => sum(xs) / xs.length;

/** numpy's 8-accumulator block for 8 <= n <= 128, written out plainly as the test's explanation. */
function eightWay(xs: number[]): number {
  const r = xs.slice(0, 8);
  let i = 8;
  for (; i + 8 <= xs.length; i += 8) for (let j = 0; j < 8; j++) r[j] += xs[i + j];
  let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < xs.length; i++) res += xs[i];
  return res;
}

Deno.test("numpySum: n < 8 is one left-to-right loop", () => {
  // 1e16 + 1 rounds back to 1e16 (spacing 2, tie to even); then -1e16 gives 0, then + 1 + 1 = 2.
  // A pairwise order ((1e16 + 1) + (-1e16 + 1)) + 1 would give 1.
  assert.equal(numpySum([1e16, 1, -1e16, 1, 1]), 2);
  assert.equal(numpySum([]), 0);
  assert.ok(Object.is(numpySum([-0, -0]), 0), "the reduction starts from +0 like np.sum");
});

Deno.test("numpySum: 8 <= n <= 128 uses eight accumulators, then the tail in order", () => {
  // n = 8: ((1e16+1) + (1+1)) + ((-1e16+1) + (1+1)) = (1e16 + 2) + (-1e16 + 2) = 4; left to right: 3.
  const x8 = [1e16, 1, 1, 1, -1e16, 1, 1, 1];
  assert.equal(numpySum(x8), 4);
  assert.equal(sum(x8), 3);
  // n = 13: the first 8 give 4 as above, then five 1s added one by one: 9 (np.sum: 9.0; left to right 8).
  const x13 = [...x8, 1, 1, 1, 1, 1];
  assert.equal(numpySum(x13), 9);
  assert.equal(numpySum(x13), eightWay(x13));
  // n = 16: accumulator 0 gets 1e16 + -1e16 = 0, the other seven get 1 + 1 = 2: 14 (np.sum: 14.0).
  const x16 = [1e16, 1, 1, 1, 1, 1, 1, 1, -1e16, 1, 1, 1, 1, 1, 1, 1];
  assert.equal(numpySum(x16), 14);
});

Deno.test("numpySum: n > 128 splits at floor(n/2) rounded down to a multiple of 8", () => {
  // n = 200: split at 100 - 100 % 8 = 96. First half: accumulator 0 holds 1e16 and absorbs its eleven
  // 1s, the other seven hold 12 each: 1e16 + 84. Second half (104): accumulator 0 starts at -1e16 and
  // absorbs twelve 1s, the others hold 13: ((-1e16 + 13) + 26) + 52 = -9999999999999910 (the first
  // addition ties to even). Total 174 (np.sum: 174.0); left to right gives 103 (1e16 absorbs 95 1s).
  const x = new Array<number>(200).fill(1);
  x[0] = 1e16;
  x[96] = -1e16;
  assert.equal(numpySum(x), 174);
  assert.equal(numpySum(x), eightWay(x.slice(0, 96)) + eightWay(x.slice(96)));
  assert.equal(sum(x), 103);
  assert.equal(numpyMean(x), 174 / 200);
});

Deno.test("roundHalfEven matches np.round", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -1.5, 0.49999999999999994, 2.6, -2.6].map(roundHalfEven), [
    0,
    2,
    2,
    -2,
    0,
    3,
    -3,
  ]);
  assert.ok(Object.is(roundHalfEven(-0.5), -0));
});

Deno.test("uniformAllocation", () => {
  assert.deepEqual(uniformAllocation(3, 0.5), [0.5, 0.5, 0.5]);
  assert.throws(() => uniformAllocation(0, 0.5), ArgumentError);
  assert.throws(() => uniformAllocation(2, 1), ArgumentError);
});

Deno.test("outlierRatio divides first, then scales by 100", () => {
  assert.equal(outlierRatio(3, 1000), 0.3);
  // 1/3 * 100 = 33.33333333333333 (Python float(1)/3*100); 100/3 would be 33.333333333333336.
  assert.equal(outlierRatio(1, 3), 33.33333333333333);
  assert.throws(() => outlierRatio(4, 3), ArgumentError);
  assert.throws(() => outlierRatio(1, 0), ArgumentError);
});

Deno.test("owlAllocation: D = [1,2,3,4], S = 0.7, lambda = 0.08", () => {
  // factor = 1/3 * 0.08 * 2 = 0.0533..; r = [0, 0.0533.., 0.1066.., 0.16]; mean(r) = 0.08;
  // r - 0.08 + 0.3 = [0.22, 0.27333, 0.32667, 0.38]; s = 1 - r = [0.78, 0.72667, 0.67333, 0.62].
  const s = owlAllocation([1, 2, 3, 4], 0.7, 0.08);
  assertClose(s, [0.78, 0.7266666666666667, 0.6733333333333333, 0.62]);
  // Bit-exact: numpy prints 0.7799999999999999, 0.7266666666666666, 0.6733333333333333, 0.62.
  assert.deepEqual(s, [0.7799999999999999, 0.7266666666666666, 0.6733333333333333, 0.62]);
  // The spread is exactly 2*lambda and the unweighted mean is S (up to rounding).
  assert.ok(Math.abs(Math.max(...s) - Math.min(...s) - 0.16) < 1e-15);
  assert.ok(Math.abs(mean(s) - 0.7) < 1e-15);
});

Deno.test("owlAllocation: five unsorted blocks, bit-exact against numpy", () => {
  // min 0.5, max 7.5: factor = 1/7 * 0.05 * 2; r = (D - 0.5) * factor = [0, 0.0392.., 0.0071.., 0.0214.., 0.1];
  // mean(r) = 0.0335714..; s = 0.6 + 0.0335714.. - r.
  const s = owlAllocation([0.5, 3.25, 1.0, 2.0, 7.5], 0.6, 0.05);
  assert.deepEqual(s, [
    0.6335714285714286,
    0.5942857142857143,
    0.6264285714285713,
    0.6121428571428571,
    0.5335714285714286,
  ]);
  assert.ok(Math.abs(mean(s) - 0.6) < 1e-15);
  assert.ok(Math.abs(Math.max(...s) - Math.min(...s) - 0.1) < 1e-15);
});

Deno.test("owlAllocation: s <= 0 becomes 0.01, as in the reference", () => {
  // S = 0: r = [0, 0.16] - 0.08 + 1 = [0.92, 1.08]; s = [0.08, -0.08 -> 0.01]. numpy: 0.07999999999999996.
  assert.deepEqual(owlAllocation([1, 2], 0, 0.08), [0.07999999999999996, 0.01]);
});

Deno.test("owlAllocation: all-equal D gives uniform S (the reference would produce NaN)", () => {
  assert.deepEqual(owlAllocation([2, 2, 2], 0.7, 0.08), [0.7, 0.7, 0.7]);
  assert.deepEqual(owlAllocation([5], 0.5, 0.08), [0.5]);
});

Deno.test("owlAllocation: lambda = 0 is uniform up to the reference's rounding", () => {
  // s = 1 - ((0 - 0) + (1 - 0.7)) = 1 - 0.30000000000000004 = 0.7.
  assert.deepEqual(owlAllocation([1, 5, 3], 0.7, 0), [0.7, 0.7, 0.7]);
});

Deno.test("owlAllocation: validation", () => {
  assert.throws(() => owlAllocation([1, 2], 1, 0.08), ArgumentError);
  assert.throws(() => owlAllocation([1, 2], -0.1, 0.08), ArgumentError);
  assert.throws(() => owlAllocation([1, 2], 0.5, -0.01), ArgumentError);
  assert.throws(() => owlAllocation([], 0.5, 0.08), ArgumentError);
  assert.throws(() => owlAllocation([1, NaN], 0.5, 0.08), ArgumentError);
  assert.throws(() => owlAllocation([1, 2], 0.5, 0.08, { paramWeights: [1] }), /one per unit/);
  assert.throws(() => owlAllocation([1, 2], 0.5, 0.08, { paramWeights: [1, 0] }), ArgumentError);
  // D = [0,1,1,1], S = 0.9: r = [0, .16, .16, .16], mean 0.12, so block 0 gets 0.9 + 0.12 = 1.02.
  // The largest safe lambda is (1 - 0.9) / (0.12 / 0.08) = 0.0666..
  assert.throws(
    () => owlAllocation([0, 1, 1, 1], 0.9, 0.08),
    (e: Error) => e instanceof ArgumentError && /block 0/.test(e.message) && /below 0\.0666/.test(e.message),
  );
  assert.doesNotThrow(() => owlAllocation([0, 1, 1, 1], 0.9, 0.066));
});

Deno.test("owlAllocation: paramWeights centres the weighted mean on S", () => {
  // r = [0, 0.0533, 0.1067, 0.16]; weighted mean (1,1,1,5) = (0.16 + 0.8) / 8 = 0.12;
  // s = 0.7 + 0.12 - r = [0.82, 0.76667, 0.71333, 0.66]; weighted mean = 5.6 / 8 = 0.7.
  const w = [1, 1, 1, 5];
  const s = owlAllocation([1, 2, 3, 4], 0.7, 0.08, { paramWeights: w });
  assertClose(s, [0.82, 0.7666666666666667, 0.7133333333333333, 0.66]);
  assert.ok(Math.abs(sum(s.map((x, i) => x * w[i])) / 8 - 0.7) < 1e-15);
  assert.ok(Math.abs(Math.max(...s) - Math.min(...s) - 0.16) < 1e-15);
});

Deno.test("owlAllocationPerLinear: every linear is a unit", () => {
  // Flat D = [1, 3, 2, 4]: factor = 1/3 * 0.2; r = [0, 0.1333, 0.0667, 0.2], mean 0.1; s = 0.6 - r.
  const equal = owlAllocationPerLinear([[1, 3], [2, 4]], [[1, 1], [1, 1]], 0.5, 0.1);
  assertClose(equal.flat(), [0.6, 0.4666666666666667, 0.5333333333333333, 0.4]);
  assert.deepEqual(equal.map((r) => r.length), [2, 2]);
  // Params (1, 3) per block: weighted mean of r = (0.4 + 0.0667 + 0.6) / 8 = 0.13333; s = 0.63333 - r;
  // parameter-weighted mean = (0.63333 + 3*0.5 + 0.56667 + 3*0.43333) / 8 = 0.5.
  const p = [[1, 3], [1, 3]];
  const weighted = owlAllocationPerLinear([[1, 3], [2, 4]], p, 0.5, 0.1);
  assertClose(weighted.flat(), [0.6333333333333333, 0.5, 0.5666666666666667, 0.4333333333333333]);
  const pw = p.flat();
  assert.ok(Math.abs(sum(weighted.flat().map((x, i) => x * pw[i])) / 8 - 0.5) < 1e-15);
  // "none" is the plain formula over linears, whatever the sizes.
  assert.deepEqual(owlAllocationPerLinear([[1, 3], [2, 4]], p, 0.5, 0.1, { weighting: "none" }), equal);
  assert.throws(() => owlAllocationPerLinear([[1, 2]], [[1]], 0.5, 0.1), /block 0/);
  assert.throws(
    () => owlAllocationPerLinear([[0, 1], [1, 1]], [[1, 1], [1, 1]], 0.9, 0.08),
    /block 0 linear 0/,
  );
});

Deno.test("owlMixedNM: reference rounding (half to even) and mass-preserving", () => {
  // D = [0,1,2,3], lambda 3: factor = 1/3 * 3 = 1; r = [0,1,2,3] - 1.5 = [-1.5, -0.5, 0.5, 1.5];
  // np.round: [-2, -0, 0, 2]; n = 4 - round = [6, 4, 4, 2].
  const ref = owlMixedNM([0, 1, 2, 3], 4, 8, 3);
  assert.deepEqual(ref, { n: [6, 4, 4, 2], meanN: 4, meanSparsity: 0.5 });
  // Targets 4 - r = [5.5, 4.5, 3.5, 2.5]: floors [5, 4, 3, 2] miss 2 units; remainders all 0.5, so the
  // two lowest block indices get them.
  assert.deepEqual(owlMixedNM([0, 1, 2, 3], 4, 8, 3, { rounding: "mass-preserving" }).n, [6, 5, 3, 2]);

  // D = [0,0,3], lambda 2: r = [0, 0, 2] - 2/3 = [-2/3, -2/3, 4/3]; round -> [-1, -1, 1]; n = [3, 3, 1]:
  // the mean drifts to 7/3.
  const drift = owlMixedNM([0, 0, 3], 2, 4, 2);
  assert.deepEqual(drift.n, [3, 3, 1]);
  assert.equal(drift.meanN, 7 / 3);
  assert.equal(drift.meanSparsity, 7 / 12);
  // Mass-preserving: targets [2.667, 2.667, 0.667], floors [2, 2, 0], two units to blocks 0 and 1.
  const kept = owlMixedNM([0, 0, 3], 2, 4, 2, { rounding: "mass-preserving" });
  assert.deepEqual(kept, { n: [3, 3, 0], meanN: 2, meanSparsity: 0.5 });
});

Deno.test("owlMixedNM: clamping to [0, M]", () => {
  // D = [0,10], lambda 4: r = [0, 4] - 2 = [-2, 2]; n = 1 - [-2, 2] = [3, -1] -> clamped [2, 0].
  assert.deepEqual(owlMixedNM([0, 10], 1, 2, 4).n, [2, 0]);
  // D = [0,0,0,10], lambda 4: r = [0,0,0,4] - 1 = [-1,-1,-1,3]; reference n = [2,2,2,-2] -> [2,2,2,0],
  // mean 1.5. Mass-preserving takes the 2 extra units back from the lowest indices: [1,1,2,0], mean 1.
  assert.equal(owlMixedNM([0, 0, 0, 10], 1, 2, 4).meanN, 1.5);
  assert.deepEqual(owlMixedNM([0, 0, 0, 10], 1, 2, 4, { rounding: "mass-preserving" }).n, [1, 1, 2, 0]);
  assert.deepEqual(owlMixedNM([3, 3], 2, 4, 1).n, [2, 2], "equal D keeps N");
});

Deno.test("owlMixedNM: validation", () => {
  assert.throws(() => owlMixedNM([1, 2], 5, 4, 1), ArgumentError);
  assert.throws(() => owlMixedNM([1, 2], 2, 0, 1), ArgumentError);
  assert.throws(() => owlMixedNM([1, 2], 2, 4, -1), ArgumentError);
  assert.throws(() => owlMixedNM([1, 2], 1.5, 4, 1), ArgumentError);
});

Deno.test("depthAllocation: arithmetic progression around S", () => {
  // s_l = 0.5 - 0.1*(3-1)/2 + 0.1*l = 0.4, 0.5, 0.6.
  const s = depthAllocation(3, 0.5, 0.1);
  assertClose(s, [0.4, 0.5, 0.6]);
  assert.deepEqual(s, [0.4, 0.5, 0.6000000000000001]);
  assert.ok(Math.abs(mean(depthAllocation(8, 0.7, 0.02)) - 0.7) < 1e-15);
  // 0.7 + 0.1 * 7 / 2 = 1.05 for the last block.
  assert.throws(() => depthAllocation(8, 0.7, 0.1), /block 7/);
  assert.throws(() => depthAllocation(3, 0.1, 0.2), /block 0/);
});

Deno.test("dlpAllocation: imp = 1 - score/sum, then OWL's mapping with alpha", () => {
  // sum = 10: imp = [0.9, 0.8, 0.7, 0.6]; the mapping gives the high-imp block the lowest sparsity:
  // r = [0.16, 0.1067, 0.0533, 0] - 0.08 + 0.3 -> s = [0.62, 0.67333, 0.72667, 0.78].
  const s = dlpAllocation([1, 2, 3, 4], 0.7, 0.08);
  assertClose(s, [0.62, 0.6733333333333333, 0.7266666666666667, 0.78]);
  assert.deepEqual(s, owlAllocation([0.9, 0.8, 0.7, 0.6], 0.7, 0.08));
  assert.throws(() => dlpAllocation([0, 0], 0.7, 0.08), ArgumentError);
  assert.throws(() => dlpAllocation([1, -1], 0.7, 0.08), ArgumentError);
  assert.throws(() => dlpAllocation([1, 0, 0, 0], 0.9, 0.08), /block 0.*alpha below/);
});

Deno.test("pruneCount is floor of the double product", () => {
  // 100 * 0.29 = 28.999999999999996 in doubles (Python int(100*0.29) == 28 too).
  assert.equal(pruneCount(100, 0.29), 28);
  assert.equal(pruneCount(4096, 0.5), 2048);
  assert.equal(pruneCount(11008, 0.7), 7705); // 7705.599999999999
  assert.equal(pruneCount(0, 0.5), 0);
  assert.throws(() => pruneCount(10, 1), ArgumentError);
  assert.throws(() => pruneCount(-1, 0.5), ArgumentError);
});
