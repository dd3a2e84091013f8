/**
 * Float64 TypeScript references (test oracles) for the pruning kernels: Wanda's activation
 * statistics and scores, the row / whole-matrix / N:M masks, the OWL outlier count, SparseGPT's
 * Hessian and its OBS solver. Plain loops, no cleverness: each function states its numeric contract
 * and which reference code (locuslab/wanda, IST-DASLab/sparsegpt, luuyin/OWL) it follows.
 *
 * Conventions: matrices are row-major; `W` is [rows = C_out, cols = C_in]; masks are `Uint8Array`
 * with 1 = pruned. "Ties → lower index" means a stable ascending sort of the scores, which is what
 * the reference gets from `torch.sort(stable=True)` and what our contract fixes where the reference
 * uses `torch.topk` (whose tie order is unspecified).
 *
 * @module
 */

import { ArgumentError } from "../../src/errors.ts";

function checkShape(len: number, rows: number, cols: number, what: string): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || len !== rows * cols) {
    throw new ArgumentError(`${what} has ${len} elements, expected rows*cols = ${rows}*${cols}`);
  }
}

function checkSparsity(s: number): void {
  if (!Number.isFinite(s) || s < 0 || s >= 1) throw new ArgumentError(`sparsity must be in [0, 1), got ${s}`);
}

function checkNM(N: number, M: number): void {
  if (!Number.isInteger(M) || M <= 0 || !Number.isInteger(N) || N < 0 || N > M) {
    throw new ArgumentError(`N:M needs integers 0 <= N <= M, M > 0; got ${N}:${M}`);
  }
}

/** Indices `[0, n)` sorted by `key` ascending, ties by the lower index (a stable sort). */
function stableOrder(n: number, key: (i: number) => number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  return idx.sort((a, b) => key(a) - key(b) || a - b);
}

/** Wanda's per-input-channel statistic after one more batch: the new `r` and sample count. */
export interface ScalerRow<T extends Float64Array | Float32Array> {
  r: T;
  nSamples: number;
}

function checkScalerArgs(r: ArrayLike<number>, nSamples: number, sumSq: ArrayLike<number>, b: number): void {
  if (sumSq.length !== r.length) {
    throw new ArgumentError(`batchSumSq has ${sumSq.length} channels, r has ${r.length}`);
  }
  if (!Number.isInteger(nSamples) || nSamples < 0 || !Number.isInteger(b) || b <= 0) {
    throw new ArgumentError(`need integer nSamples >= 0 and batchSize > 0, got ${nSamples}, ${b}`);
  }
}

/**
 * Wanda's `scaler_row` running mean (locuslab/wanda `lib/layerwrapper.py`, `WrappedGPT.add_batch`),
 * in float64. With n sequences seen and a batch of b sequences:
 * `r_j <- r_j * (n / (n + b))`; `n <- n + b`; `r_j <- r_j + sumsq_j / n`, where `sumsq_j` is the sum
 * over ALL the batch's tokens of `x_j^2` and `n` is the NEW count. So after all N sequences
 * `r_j = (1/N) * sum over every token of x_j^2` (per sequence, tokens are summed, not averaged).
 * The reference squares a norm, `torch.norm(inp, p=2, dim=1) ** 2`; in exact arithmetic that is
 * `sumsq_j`, in f32 it adds a square root's and a square's rounding, which we do not model.
 *
 * @returns a new array; the inputs are not modified
 */
export function refScalerRowUpdate(
  r: Float64Array,
  nSamples: number,
  batchSumSq: Float64Array,
  batchSize: number,
): ScalerRow<Float64Array> {
  checkScalerArgs(r, nSamples, batchSumSq, batchSize);
  const ratio = nSamples / (nSamples + batchSize);
  const n = nSamples + batchSize;
  const out = new Float64Array(r.length);
  for (let j = 0; j < r.length; j++) out[j] = r[j] * ratio + batchSumSq[j] / n;
  return { r: out, nSamples: n };
}

/**
 * {@linkcode refScalerRowUpdate} as the GPU (and the reference's float32 tensor) computes it: every
 * operation rounded to f32, in the same order. `ratio = f32(n / (n + b))` (the reference computes
 * the ratio as a Python double and multiplies the f32 tensor by it in f32; rounding the double
 * quotient to f32 equals an f32 division, as n and n + b are exact), then
 * `r_j = f32(f32(r_j * ratio) + f32(sumsq_j / f32(n + b)))`.
 */
export function refScalerRowUpdateF32(
  r: Float32Array,
  nSamples: number,
  batchSumSq: Float32Array,
  batchSize: number,
): ScalerRow<Float32Array> {
  checkScalerArgs(r, nSamples, batchSumSq, batchSize);
  const f = Math.fround;
  const ratio = f(nSamples / (nSamples + batchSize));
  const n = nSamples + batchSize;
  const nf = f(n);
  const out = new Float32Array(r.length);
  for (let j = 0; j < r.length; j++) out[j] = f(f(r[j] * ratio) + f(batchSumSq[j] / nf));
  return { r: out, nSamples: n };
}

/**
 * `sqrt(r_j)` rounded to f32, as computed on the host for {@linkcode refWandaScores}. For an f32 input
 * this equals the f32 square root the reference takes: the double root rounded to f32 is the
 * correctly rounded f32 root.
 */
export function refSqrtScaler(r: ArrayLike<number>): Float32Array {
  return Float32Array.from(r, (x) => Math.fround(Math.sqrt(Math.fround(x))));
}

/**
 * Wanda scores `A_ij = f32(|W_ij| * sqrtR_j)`: one f32 product, as the reference (f16 weights times an
 * f32 `sqrt(scaler_row)`, promoted to f32) and the GPU compute it.
 */
export function refWandaScores(
  W: Float32Array,
  rows: number,
  cols: number,
  sqrtR: Float32Array,
): Float32Array {
  checkShape(W.length, rows, cols, "W");
  if (sqrtR.length !== cols) {
    throw new ArgumentError(`sqrtR has ${sqrtR.length} entries, W has ${cols} columns`);
  }
  const out = new Float32Array(W.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[i * cols + j] = Math.fround(Math.abs(W[i * cols + j]) * sqrtR[j]);
  }
  return out;
}

/**
 * Wanda's per-row mask: in every row, the `k` lowest scores are pruned, ties → lower column first
 * (the reference's `torch.sort(W_metric, dim=-1, stable=True)` and its first `k` indices).
 * Scores must not be NaN.
 */
export function refRowMask(scores: ArrayLike<number>, rows: number, cols: number, k: number): Uint8Array {
  checkShape(scores.length, rows, cols, "scores");
  if (!Number.isInteger(k) || k < 0 || k > cols) {
    throw new ArgumentError(`k must be an integer in [0, ${cols}]`);
  }
  const mask = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    const order = stableOrder(cols, (j) => scores[base + j]);
    for (let t = 0; t < k; t++) mask[base + order[t]] = 1;
  }
  return mask;
}

/**
 * Magnitude pruning, one threshold per whole matrix on |W|.
 * - Contract (default): exactly `floor(numel * s)` entries with the smallest |W| are pruned, ties →
 *   lower flat (row-major) index.
 * - `quirk: true`: the reference (`prune_magnitude`): `thresh = sort(|W|)[floor(numel * s)]` and every
 *   entry with `|W| <= thresh` is pruned: at least one more than the floor count, plus all ties.
 */
export function refMagnitudeMask(
  W: ArrayLike<number>,
  s: number,
  options: { quirk?: boolean } = {},
): Uint8Array {
  checkSparsity(s);
  return thresholdMask(W.length, (i) => Math.abs(W[i]), s, options.quirk ?? false);
}

/** Mask over `n` flat entries by one threshold on `score`; see {@linkcode refMagnitudeMask}. */
function thresholdMask(n: number, score: (i: number) => number, s: number, quirk: boolean): Uint8Array {
  const mask = new Uint8Array(n);
  if (n === 0) return mask;
  const order = stableOrder(n, score);
  const k = Math.floor(n * s);
  if (quirk) {
    const thresh = score(order[k]);
    for (let i = 0; i < n; i++) if (score(i) <= thresh) mask[i] = 1;
  } else {
    for (let t = 0; t < k; t++) mask[order[t]] = 1;
  }
  return mask;
}

/**
 * N:M mask: in every row, in every group of M consecutive columns starting at column 0, the N
 * lowest scores are pruned, ties → lower column. `cols` must be a multiple of M (the reference's
 * `torch.topk` would prune N of a shorter last group, or fail if it is shorter than N).
 */
export function refNMMask(
  scores: ArrayLike<number>,
  rows: number,
  cols: number,
  N: number,
  M: number,
): Uint8Array {
  checkShape(scores.length, rows, cols, "scores");
  checkNM(N, M);
  if (cols % M !== 0) throw new ArgumentError(`N:M needs cols (${cols}) to be a multiple of M (${M})`);
  const mask = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let g = 0; g < cols; g += M) {
      const base = i * cols + g;
      const order = stableOrder(M, (j) => scores[base + j]);
      for (let t = 0; t < N; t++) mask[base + order[t]] = 1;
    }
  }
  return mask;
}

/** Result of {@linkcode refOutlierCount}: D_l = `100 * count / numel` (see `outlierRatio`). */
export interface OutlierCount {
  count: number;
  numel: number;
  mean: number;
}

/**
 * OWL's outlier count over one block (reference `check_outlier_mean` on the concatenated Wanda
 * scores of its linears): `mean` = float64 sum of all values, left to right, divided by their
 * number; `count` = values strictly greater than `M * mean` (float64 product).
 */
export function refOutlierCount(scoreArrays: ArrayLike<number>[], M: number): OutlierCount {
  let sum = 0;
  let numel = 0;
  for (const a of scoreArrays) {
    for (let i = 0; i < a.length; i++) sum += a[i];
    numel += a.length;
  }
  if (numel === 0) throw new ArgumentError("no scores to count outliers in");
  const mean = sum / numel;
  return { count: countAbove(scoreArrays, M * mean), numel, mean };
}

/**
 * {@linkcode refOutlierCount} with the mean given (e.g. the GPU's f32 mean), so the count can be
 * checked exactly. The threshold is an f32 product `f32(M * mean)` of the f32-rounded operands, as
 * the reference (`torch.mean(W) * threshold` on an f32 tensor) and an f32 kernel compute it.
 */
export function refOutlierCountGivenMean(
  scoreArrays: ArrayLike<number>[],
  M: number,
  mean: number,
): OutlierCount {
  const numel = scoreArrays.reduce((a, x) => a + x.length, 0);
  const thresh = Math.fround(Math.fround(M) * Math.fround(mean));
  return { count: countAbove(scoreArrays, thresh), numel, mean };
}

function countAbove(scoreArrays: ArrayLike<number>[], thresh: number): number {
  let count = 0;
  for (const a of scoreArrays) for (let i = 0; i < a.length; i++) if (a[i] > thresh) count++;
  return count;
}

/**
 * SparseGPT's running Hessian (IST-DASLab/sparsegpt `sparsegpt.py`, `add_batch`), in float64. With
 * n sequences seen and X the batch's b sequences flattened to [tokens, cin]:
 * `H *= n / (n + b)`; `n += b`; `X' = sqrt(2 / n) * X`; `H += X'^T X'` (the product summed over
 * tokens first, then added). So H = (2/N) * sum over all tokens of x x^T.
 *
 * @returns a new H; the inputs are not modified
 */
export function refHessianUpdate(
  H: Float64Array,
  nSamples: number,
  X: Float64Array,
  batchSize: number,
): { H: Float64Array; nSamples: number } {
  const cin = Math.round(Math.sqrt(H.length));
  if (cin * cin !== H.length) throw new ArgumentError(`H has ${H.length} elements, not a square`);
  if (cin === 0 || X.length % cin !== 0) {
    throw new ArgumentError(`X has ${X.length} elements, not a multiple of cin = ${cin}`);
  }
  if (!Number.isInteger(nSamples) || nSamples < 0 || !Number.isInteger(batchSize) || batchSize <= 0) {
    throw new ArgumentError(`need integer nSamples >= 0 and batchSize > 0, got ${nSamples}, ${batchSize}`);
  }
  const tokens = X.length / cin;
  const ratio = nSamples / (nSamples + batchSize);
  const n = nSamples + batchSize;
  const scale = Math.sqrt(2 / n);
  const Xs = X.map((x) => scale * x);
  const out = new Float64Array(H.length);
  for (let a = 0; a < cin; a++) {
    for (let b = 0; b < cin; b++) {
      let dot = 0;
      for (let t = 0; t < tokens; t++) dot += Xs[t * cin + a] * Xs[t * cin + b];
      out[a * cin + b] = H[a * cin + b] * ratio + dot;
    }
  }
  return { H: out, nSamples: n };
}

/**
 * Upper Cholesky factor U of a symmetric positive definite n×n matrix A: `A = U^T U`, U upper
 * triangular with a positive diagonal (`torch.linalg.cholesky(A, upper=True)`). Only the upper
 * triangle of A is read. Throws a `RangeError` naming the pivot if A is not positive definite.
 */
export function refCholeskyUpper(A: Float64Array, n: number): Float64Array {
  checkShape(A.length, n, n, "A");
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    let d = A[i * n + i];
    for (let k = 0; k < i; k++) d -= U[k * n + i] * U[k * n + i];
    if (!(d > 0)) throw new RangeError(`matrix is not positive definite at pivot ${i} (${d}); damp it more`);
    const uii = Math.sqrt(d);
    U[i * n + i] = uii;
    for (let j = i + 1; j < n; j++) {
      let v = A[i * n + j];
      for (let k = 0; k < i; k++) v -= U[k * n + i] * U[k * n + j];
      U[i * n + j] = v / uii;
    }
  }
  return U;
}

/**
 * Inverse of a symmetric positive definite n×n matrix through its Cholesky factor, as
 * `torch.cholesky_inverse(torch.linalg.cholesky(A))`: with `A = U^T U`, `A^-1 = U^-1 U^-T`.
 */
export function refInverseSPD(A: Float64Array, n: number): Float64Array {
  const U = refCholeskyUpper(A, n);
  // V = U^-1 (upper triangular), by back substitution column by column.
  const V = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    V[j * n + j] = 1 / U[j * n + j];
    for (let i = j - 1; i >= 0; i--) {
      let v = 0;
      for (let k = i + 1; k <= j; k++) v += U[i * n + k] * V[k * n + j];
      V[i * n + j] = -v / U[i * n + i];
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let v = 0;
      for (let k = j; k < n; k++) v += V[i * n + k] * V[j * n + k];
      inv[i * n + j] = v;
      inv[j * n + i] = v;
    }
  }
  return inv;
}

/** Options of {@linkcode refSparseGPT}; the defaults are the reference's. */
export interface SparseGPTOptions {
  /** Unstructured target sparsity in [0, 1); ignored when `prunen > 0`. */
  sparsity: number;
  /** Columns per block (lazy batch update granularity). Default 128. */
  blocksize?: number;
  /** Damping as a fraction of the mean diagonal of H. Default 0.01. */
  percdamp?: number;
  /** N of N:M (0 = unstructured). Default 0. */
  prunen?: number;
  /** M of N:M. Default 0. */
  prunem?: number;
  /** The reference's `<=` threshold instead of the exact floor count (unstructured only). Default false. */
  quirk?: boolean;
}

/**
 * SparseGPT (OBS with the GPTQ Cholesky trick) on one linear, in float64, following
 * IST-DASLab/sparsegpt `sparsegpt.py` `fasterprune` step by step:
 *
 * 1. Dead inputs (`H_jj == 0`): `H_jj = 1`, `W[:, j] = 0`.
 * 2. Damping: `H_jj += percdamp * mean(diag H)` for every j.
 * 3. `U` = upper Cholesky factor of `H^-1` (Cholesky of H, inverse, upper Cholesky).
 * 4. Columns in blocks of `blocksize`. Unstructured: at the start of a block, from the CURRENT weights
 *    (already updated by earlier blocks), score `w^2 / U_jj^2` over the rows × block; exactly
 *    `floor(numel_block * s)` lowest pruned, ties → lower row-major index within the block (`quirk`:
 *    value at sorted index `floor(numel_block * s)`, prune every score `<=` it). N:M: at every
 *    block-relative column `i % M == 0`, from the current weights of columns `i..i+M-1` (already
 *    updated by the earlier columns of the SAME block), the same score, per row the N lowest, ties →
 *    lower column.
 * 5. Column j of the block, in order: `q = w` with masked entries zeroed; `err = (w - q) / U_jj`;
 *    `w_k -= err * U_jk` for the later columns k of the block; column j becomes q.
 * 6. After the block, `W[:, later] -= Err @ U[block, later]` (the product summed first).
 *
 * Differences from the reference, by contract: exact floor count (see `quirk`), ties broken by index
 * (`torch.topk` leaves them unspecified), and float64 throughout (the reference runs in f32).
 *
 * @param W [rows, cols] weights, not modified
 * @param H [cols, cols] Hessian from {@linkcode refHessianUpdate}, not modified
 * @returns the pruned and updated weights (masked entries exactly 0) and the mask (1 = pruned)
 */
export function refSparseGPT(
  W: Float64Array,
  rows: number,
  cols: number,
  H: Float64Array,
  options: SparseGPTOptions,
): { W: Float64Array; mask: Uint8Array } {
  checkShape(W.length, rows, cols, "W");
  checkShape(H.length, cols, cols, "H");
  const { sparsity, blocksize = 128, percdamp = 0.01, prunen = 0, prunem = 0, quirk = false } = options;
  if (!Number.isInteger(blocksize) || blocksize <= 0) throw new ArgumentError(`blocksize must be > 0`);
  if (!Number.isFinite(percdamp) || percdamp < 0) throw new ArgumentError(`percdamp must be >= 0`);
  if (prunen > 0) {
    checkNM(prunen, prunem);
    if (blocksize % prunem !== 0 || cols % prunem !== 0) {
      throw new ArgumentError(`N:M needs blocksize (${blocksize}) and cols (${cols}) to be multiples of M`);
    }
  } else {
    checkSparsity(sparsity);
  }

  const Wq = Float64Array.from(W);
  const Hd = Float64Array.from(H);
  for (let j = 0; j < cols; j++) {
    if (Hd[j * cols + j] === 0) {
      Hd[j * cols + j] = 1;
      for (let i = 0; i < rows; i++) Wq[i * cols + j] = 0;
    }
  }
  let diagSum = 0;
  for (let j = 0; j < cols; j++) diagSum += Hd[j * cols + j];
  const damp = percdamp * (diagSum / cols);
  for (let j = 0; j < cols; j++) Hd[j * cols + j] += damp;
  const U = refCholeskyUpper(refInverseSPD(Hd, cols), cols);
  const u = (a: number, b: number) => U[a * cols + b];

  const mask = new Uint8Array(rows * cols);
  for (let i1 = 0; i1 < cols; i1 += blocksize) {
    const i2 = Math.min(i1 + blocksize, cols);
    const count = i2 - i1;
    const score = (i: number, j: number) => {
      const w = Wq[i * cols + j];
      const d = u(j, j);
      return (w * w) / (d * d);
    };
    if (prunen === 0) {
      const blockMask = thresholdMask(
        rows * count,
        (f) => score(Math.floor(f / count), i1 + (f % count)),
        sparsity,
        quirk,
      );
      for (let f = 0; f < rows * count; f++) {
        if (blockMask[f]) mask[Math.floor(f / count) * cols + i1 + (f % count)] = 1;
      }
    }
    const err = new Float64Array(rows * count);
    for (let c = 0; c < count; c++) {
      const j = i1 + c;
      if (prunen > 0 && c % prunem === 0) {
        for (let i = 0; i < rows; i++) {
          const order = stableOrder(prunem, (t) => score(i, j + t));
          for (let t = 0; t < prunen; t++) mask[i * cols + j + order[t]] = 1;
        }
      }
      const d = u(j, j);
      for (let i = 0; i < rows; i++) {
        const w = Wq[i * cols + j];
        const q = mask[i * cols + j] ? 0 : w;
        const e = (w - q) / d;
        err[i * count + c] = e;
        for (let k = j + 1; k < i2; k++) Wq[i * cols + k] -= e * u(j, k);
        Wq[i * cols + j] = q;
      }
    }
    for (let i = 0; i < rows; i++) {
      for (let k = i2; k < cols; k++) {
        let acc = 0;
        for (let c = 0; c < count; c++) acc += err[i * count + c] * u(i1 + c, k);
        Wq[i * cols + k] -= acc;
      }
    }
  }
  return { W: Wq, mask };
}
