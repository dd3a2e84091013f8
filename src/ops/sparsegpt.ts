/**
 * SparseGPT on the GPU (ALGORITHMS.md, "SparseGPT"): the running Hessian of a linear input, its
 * damped inverse factor, and the OBS pass that prunes and updates one linear.
 *
 * 1. {@linkcode newHessian} / {@linkcode updateHessian}: `H = (2/N) sum X^T X` as a running average
 *    per sequence, f32, fed from the calibration forward pass (the pipeline's observe callback).
 *    Stored reversed (`A = J H J`) in row chunks under the binding limit (kernels/hessian.ts).
 * 2. {@linkcode factorHessian}: dead inputs (`H_jj == 0`: `H_jj = 1`, and W's column j is zeroed
 *    by the OBS pass), damping `H += percdamp * mean(diag H) * I`, then the blocked Cholesky
 *    `J H J = L L^T` and `X = L^-1` (kernels/cholesky.ts). Because `H = (J L J)(J L J)^T` with
 *    `J L J` upper triangular, `U = J X J = (J L J)^-1` is the upper Cholesky factor of H^-1
 *    (`U^T U = H^-1`, unique with a positive diagonal): the reference's three steps (Cholesky,
 *    inverse, Cholesky of the inverse) in two, with fewer f32 roundings. When a pivot is not a
 *    positive normal number (H not positive definite in f32, or NaN), the factorisation is
 *    repeated with percdamp x 10, up to `maxRetries` times; the result says how many it took.
 * 3. {@linkcode sparsegptPrune}: per block of `blocksize` columns, the mask from the current weights
 *    (one threshold over rows x block, exactly `floor(rows * bw * s)` pruned, ties -> lower index;
 *    or N:M per row), column-sequential error propagation in the block, and a GEMM for the lazy
 *    update of the later columns (kernels/sparsegpt.ts). W is updated in place; the mask is
 *    returned in the bit-packed PruneMask format of prune_ops.ts.
 *
 * All dispatches are recorded without host round trips, except two small read-backs per
 * factorisation (the diagonal, and the pivot status).
 * @module
 */
import { packUniforms } from "../../kernels/common.ts";
import {
  CHOL_NB,
  CHOL_ROW_WG,
  choleskyKey,
  type CholeskyPass,
  type CholeskyTileOptions,
  choleskyTileWgsl,
  choleskyTileWorkgroups,
  choleskyWgsl,
} from "../../kernels/cholesky.ts";
import { hessianKey, type HessianOptions, hessianWgsl, hessianWorkgroups } from "../../kernels/hessian.ts";
import { maskWordsPerRow } from "../../kernels/rowmask.ts";
import {
  lazyKey,
  type LazyOptions,
  lazyWgsl,
  lazyWorkgroups,
  selectLaneIterations,
  SGPT_MAX_BLOCK,
  SGPT_MAX_M,
  SGPT_WG,
  sparsegptKey,
  sparsegptObsKey,
  sparsegptObsWgsl,
  type SparseGPTPass,
  sparsegptWgsl,
} from "../../kernels/sparsegpt.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import type { GpuMatrix, MatrixChunk } from "../gpu/matrix.ts";
import type { KernelStyle, PruneMask } from "./prune_ops.ts";

/** llvmpipe ends an invocation's loops after this many iterations (kernels/common.ts). */
const LOOP_LIMIT = 65535;

/** SparseGPT's damping when none is given: a fraction of the mean Hessian diagonal (the reference's). */
export const DEFAULT_PERCDAMP = 0.01;
/** SparseGPT's columns per block of the lazy batch update when none is given (the reference's). */
export const DEFAULT_BLOCKSIZE = 128;

/**
 * Options shared by the SparseGPT launchers.
 *
 * @example Accumulate a Hessian with the "gpu" tiling, on any adapter
 * ```ts
 * import {
 *   Gpu, newHessian, readHessian, releaseHessian, type SparseGPTKernelOptions, updateHessian,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const x = gpu.upload(new Float32Array([1, 2, 0, 0, 1, -1]), "x"); // one sequence, T = 2 tokens x n = 3
 * const opts: SparseGPTKernelOptions = { style: "gpu" };
 * const h = newHessian(gpu, 3);
 * updateHessian(gpu, h, x, 2, 1, opts);
 * assert.deepEqual([...await readHessian(gpu, h)], [2, 4, 0, 4, 10, -2, 0, -2, 2]); // 2 X^T X
 * releaseHessian(gpu, h);
 * gpu.release(x);
 * gpu.destroy();
 * ```
 */
export interface SparseGPTKernelOptions {
  /** Kernel tiling: "cpu" (lavapipe: big tiles) or "gpu"; default from `gpu.isCpu`. */
  style?: KernelStyle;
}

function styleOf(gpu: Gpu, o?: SparseGPTKernelOptions): KernelStyle {
  return o?.style ?? (gpu.isCpu ? "cpu" : "gpu");
}

/** Chunks of `m` overlapping global rows [begin, end), with the overlap. */
function overlaps(m: GpuMatrix, begin: number, end: number): { c: MatrixChunk; from: number; to: number }[] {
  const out = [];
  for (const c of m.chunks) {
    const from = Math.max(begin, c.rowStart), to = Math.min(end, c.rowStart + c.rows);
    if (from < to) out.push({ c, from, to });
  }
  return out;
}

function chunkOf(m: GpuMatrix, row: number): MatrixChunk {
  return m.chunks.find((c) => row >= c.rowStart && row < c.rowStart + c.rows)!;
}

/**
 * A zeroed n x n f32 matrix in row chunks of a multiple of CHOL_NB rows, each under the binding
 * limit (`maxRowsPerChunk` forces smaller chunks, for tests).
 */
function newSquare(gpu: Gpu, n: number, label: string, maxRowsPerChunk?: number): GpuMatrix {
  let per = Math.min(Math.floor(gpu.maxBinding / (n * 4)), maxRowsPerChunk ?? Infinity);
  per = Math.floor(per / CHOL_NB) * CHOL_NB;
  if (per < CHOL_NB) {
    throw new UnsupportedError(
      `a ${n}x${n} Hessian needs ${CHOL_NB} rows (${
        CHOL_NB * n * 4
      } bytes) per binding; this adapter allows ${gpu.maxBinding}`,
    );
  }
  const chunks: MatrixChunk[] = [];
  for (let r0 = 0; r0 < n; r0 += per) {
    const rows = Math.min(per, n - r0);
    chunks.push({ buffer: gpu.buffer(rows * n * 4, `${label}[${r0}:${r0 + rows}]`), rowStart: r0, rows });
  }
  return { rows: n, cols: n, dtype: "f32", chunks };
}

/** A zeroed matrix with the same chunk layout as `m`. */
function newSquareLike(gpu: Gpu, m: GpuMatrix, label: string): GpuMatrix {
  const chunks = m.chunks.map((c) => ({
    buffer: gpu.buffer(c.rows * m.cols * 4, `${label}[${c.rowStart}:${c.rowStart + c.rows}]`),
    rowStart: c.rowStart,
    rows: c.rows,
  }));
  return { rows: m.rows, cols: m.cols, dtype: "f32", chunks };
}

function releaseSquare(gpu: Gpu, m: GpuMatrix): void {
  gpu.release(...m.chunks.map((c) => c.buffer));
  m.chunks = [];
}

// ---- Hessian ----------------------------------------------------------------------------------

/**
 * The running Hessian of one linear input (C_in = n), reversed storage; see the module doc.
 *
 * @example A Hessian counts its sequences; {@linkcode readHessian} gives it in natural order
 * ```ts
 * import { Gpu, type Hessian, newHessian, readHessian, releaseHessian, updateHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h: Hessian = newHessian(gpu, 4);
 * assert.deepEqual([h.n, h.mat.rows, h.mat.cols, h.nSamples], [4, 4, 4, 0]);
 * const x = gpu.upload(new Float32Array([1, 0, 0, 2]), "x"); // one sequence of one token
 * updateHessian(gpu, h, x, 1);
 * assert.equal(h.nSamples, 1);
 * assert.deepEqual([...await readHessian(gpu, h)], [2, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 8]);
 * releaseHessian(gpu, h);
 * gpu.release(x);
 * gpu.destroy();
 * ```
 */
export interface Hessian {
  /** Input channels (the Hessian is n x n). */
  n: number;
  /** The reversed Hessian `J H J`, f32 [n, n] in row chunks. */
  mat: GpuMatrix;
  /** Sequences seen. */
  nSamples: number;
}

/**
 * Options of {@linkcode newHessian}.
 *
 * @example A 70 x 70 Hessian in chunks of 32 rows; the chunking does not show in its values
 * ```ts
 * import { Gpu, type HessianAllocOptions, readHessian, releaseHessian, uploadHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const n = 70, H = Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 2 : 0)); // 2 I
 * const opts: HessianAllocOptions = { maxRowsPerChunk: 40 }; // rounded down to 32
 * const h = uploadHessian(gpu, H, n, 1, opts);
 * assert.deepEqual(h.mat.chunks.map((c) => c.rows), [32, 32, 6]);
 * assert.deepEqual([...await readHessian(gpu, h)], H);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export interface HessianAllocOptions {
  /** Rows per chunk (rounded down to a multiple of 32); default: as many as a binding holds. */
  maxRowsPerChunk?: number;
}

/**
 * A zero Hessian for inputs of `n` channels.
 *
 * @example A zero 5 x 5 Hessian, and the error for a size of 0
 * ```ts
 * import { ArgumentError, Gpu, newHessian, readHessian, releaseHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h = newHessian(gpu, 5);
 * assert.equal(h.nSamples, 0);
 * assert.deepEqual([...await readHessian(gpu, h)], new Array(25).fill(0));
 * assert.throws(() => newHessian(gpu, 0), ArgumentError);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export function newHessian(gpu: Gpu, n: number, opts: HessianAllocOptions = {}): Hessian {
  if (!Number.isInteger(n) || n < 1) {
    throw new ArgumentError(`Hessian size must be a positive integer, got ${n}`);
  }
  return { n, mat: newSquare(gpu, n, `hessian${n}`, opts.maxRowsPerChunk), nSamples: 0 };
}

/**
 * Free the Hessian's buffers; `undefined` is a no-op.
 *
 * @example Every buffer of a chunked Hessian goes back
 * ```ts
 * import { Gpu, newHessian, releaseHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const live = gpu.liveBuffers;
 * const h = newHessian(gpu, 64, { maxRowsPerChunk: 32 });
 * assert.equal(gpu.liveBuffers, live + 2); // two chunks of 32 rows
 * releaseHessian(gpu, h);
 * assert.equal(gpu.liveBuffers, live);
 * assert.equal(h.mat.chunks.length, 0);
 * releaseHessian(gpu, undefined); // a no-op
 * gpu.destroy();
 * ```
 */
export function releaseHessian(gpu: Gpu, h: Hessian | undefined): void {
  if (h) releaseSquare(gpu, h.mat);
}

function hessianOptions(style: KernelStyle, n: number): HessianOptions {
  const vec = n % 4 === 0 ? 4 : 1;
  return style === "cpu"
    ? { tm: 16, tn: 16, vec, workgroupSize: 8 }
    : { tm: 4, tn: 4, vec, workgroupSize: 64 };
}

/**
 * Record the running-average update of `h` with one batch `x` (f32 [T, n]) of `b` sequences:
 * `H = H * f32(N / (N + b)) + f32(2 / (N + b)) * X^T X` (N = sequences seen so far).
 *
 * @example Two sequences: H = (2 / 2) (X1^T X1 + X2^T X2)
 * ```ts
 * import { Gpu, newHessian, readHessian, releaseHessian, updateHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const x1 = gpu.upload(new Float32Array([1, 2]), "x1"); // T = 1 token x n = 2 channels
 * const x2 = gpu.upload(new Float32Array([1, 0, 0, 3]), "x2"); // T = 2 tokens
 * const h = newHessian(gpu, 2);
 * updateHessian(gpu, h, x1, 1); // H = 2 X1^T X1
 * assert.deepEqual([...await readHessian(gpu, h)], [2, 4, 4, 8]);
 * updateHessian(gpu, h, x2, 2); // H = H * (1 / 2) + (2 / 2) X2^T X2
 * assert.deepEqual([...await readHessian(gpu, h)], [2, 2, 2, 13]);
 * assert.equal(h.nSamples, 2);
 * releaseHessian(gpu, h);
 * gpu.release(x1, x2);
 * gpu.destroy();
 * ```
 */
export function updateHessian(
  gpu: Gpu,
  h: Hessian,
  x: GPUBuffer,
  T: number,
  b = 1,
  opts?: SparseGPTKernelOptions,
): void {
  if (!Number.isInteger(b) || b <= 0 || !Number.isInteger(T) || T <= 0) {
    throw new ArgumentError(`updateHessian: need integer T > 0 and b > 0, got ${T}, ${b}`);
  }
  if (gpu.isCpu && T >= LOOP_LIMIT) {
    throw new UnsupportedError(
      `updateHessian: ${T} tokens in one call; on a CPU adapter pass fewer than 65535`,
    );
  }
  const o = hessianOptions(styleOf(gpu, opts), h.n);
  const pipe = gpu.pipeline(hessianKey(o), () => hessianWgsl(o));
  const N = h.nSamples + b;
  for (const c of h.mat.chunks) {
    const u = packUniforms([T, h.n, c.rowStart, c.rows, { f32: h.nSamples / N }, { f32: 2 / N }]);
    gpu.dispatch(pipe, [x, c.buffer], u, hessianWorkgroups(o, c.rows, h.n));
  }
  h.nSamples = N;
}

/** Read a square reversed-storage matrix back in natural order: out[i][j] = A[n-1-i][n-1-j]. */
async function readReversed(gpu: Gpu, m: GpuMatrix): Promise<Float32Array> {
  const n = m.rows;
  const out = new Float32Array(n * n);
  for (const c of m.chunks) {
    const a = await gpu.readF32(c.buffer, 0, c.rows * n);
    for (let r = 0; r < c.rows; r++) {
      const i = n - 1 - (c.rowStart + r);
      for (let j = 0; j < n; j++) out[i * n + (n - 1 - j)] = a[r * n + j];
    }
  }
  return out;
}

/**
 * H in natural order, symmetric (from the stored lower triangle of J H J), for tests.
 *
 * @example One token x = [1, 2, 3]: H = 2 x^T x, row-major and symmetric
 * ```ts
 * import { Gpu, newHessian, readHessian, releaseHessian, updateHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const x = gpu.upload(new Float32Array([1, 2, 3]), "x");
 * const h = newHessian(gpu, 3);
 * updateHessian(gpu, h, x, 1);
 * const H = await readHessian(gpu, h);
 * for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) assert.equal(H[i * 3 + j], 2 * (i + 1) * (j + 1));
 * releaseHessian(gpu, h);
 * gpu.release(x);
 * gpu.destroy();
 * ```
 */
export async function readHessian(gpu: Gpu, h: Hessian): Promise<Float32Array> {
  const n = h.n, a = await readReversed(gpu, h.mat);
  // Stored lower triangle (b <= a in reversed indices) = natural upper triangle (j >= i).
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i];
  return a;
}

/**
 * A Hessian holding the symmetric n x n matrix `H` (natural order; only its upper triangle is
 * read), as if accumulated from `nSamples` sequences: for tests and for Hessians computed elsewhere.
 *
 * @example Only the upper triangle is read
 * ```ts
 * import { Gpu, readHessian, releaseHessian, uploadHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const H = [
 *   4, 1, 2,
 *   99, 5, 3,
 *   99, 99, 6,
 * ];
 * const h = uploadHessian(gpu, H, 3, 128); // as if from 128 sequences
 * assert.equal(h.nSamples, 128);
 * assert.deepEqual([...await readHessian(gpu, h)], [4, 1, 2, 1, 5, 3, 2, 3, 6]);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export function uploadHessian(
  gpu: Gpu,
  H: ArrayLike<number>,
  n: number,
  nSamples = 1,
  opts: HessianAllocOptions = {},
): Hessian {
  if (H.length !== n * n) throw new ArgumentError(`H has ${H.length} elements, expected ${n}x${n}`);
  const h = newHessian(gpu, n, opts);
  for (const c of h.mat.chunks) {
    const a = new Float32Array(c.rows * n);
    for (let r = 0; r < c.rows; r++) {
      const i = n - 1 - (c.rowStart + r);
      for (let j = 0; j < n; j++) {
        const jj = n - 1 - j;
        a[r * n + j] = i <= jj ? H[i * n + jj] : H[jj * n + i];
      }
    }
    gpu.write(c.buffer, a);
  }
  h.nSamples = nSamples;
  return h;
}

// ---- factorisation ----------------------------------------------------------------------------

/**
 * The damped inverse factor of a Hessian: what the OBS pass needs.
 *
 * @example A diagonal Hessian with a dead input (channel 2 never fires)
 * ```ts
 * import {
 *   factorHessian, Gpu, type InverseFactor, readInverseFactorU, releaseHessian, releaseInverseFactor,
 *   uploadHessian,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h = uploadHessian(gpu, [4, 0, 0, 0, 1, 0, 0, 0, 0], 3);
 * const f: InverseFactor = await factorHessian(gpu, h, { percdamp: 0.01 });
 * assert.deepEqual([f.n, f.deadCount, f.retries, f.percdamp], [3, 1, 0, 0.01]);
 * assert.deepEqual([...await gpu.readU32(f.dead)], [0, 0, 1]);
 * assert.ok(Math.abs(f.damp - 0.01 * (4 + 1 + 1) / 3) < 1e-12); // the dead H_jj counts as 1
 * const U = await readInverseFactorU(gpu, f); // diagonal here: 1 / sqrt(H_jj + damp)
 * [4, 1, 1].forEach((d, j) => assert.ok(Math.abs(U[j * 3 + j] - 1 / Math.sqrt(d + f.damp)) < 1e-6));
 * releaseInverseFactor(gpu, f);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export interface InverseFactor {
  /** Input channels. */
  n: number;
  /** X = L^-1 (lower) with J (H + damp I) J = L L^T; U = J X J. */
  mat: GpuMatrix;
  /** u32 [n], natural order: 1 where H_jj == 0 (dead input). */
  dead: GPUBuffer;
  /** Number of dead inputs. */
  deadCount: number;
  /** The percdamp that succeeded (the requested one x 10^retries). */
  percdamp: number;
  /** The absolute damping added to the diagonal, `percdamp * mean(diag H)` after the dead-input fix. */
  damp: number;
  /** How many times the damping was raised x10 before the factorisation succeeded. */
  retries: number;
}

/**
 * Options of {@linkcode factorHessian}.
 *
 * @example An indefinite H: enough damping factors it; no retries and too little damping fail
 * ```ts
 * import {
 *   factorHessian, type FactorOptions, Gpu, releaseHessian, releaseInverseFactor, UnsupportedError,
 *   uploadHessian,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h = uploadHessian(gpu, [1, 2, 2, 1], 2); // eigenvalues 3 and -1
 * const f = await factorHessian(gpu, h, { percdamp: 5 }); // H + 5 I is positive definite
 * assert.equal(f.retries, 0);
 * releaseInverseFactor(gpu, f);
 * const strict: FactorOptions = { percdamp: 0.01, maxRetries: 0, label: "block 0 q/k/v input" };
 * await assert.rejects(
 *   factorHessian(gpu, h, strict),
 *   (e) => e instanceof UnsupportedError && e.message.includes("block 0 q/k/v input"),
 * );
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export interface FactorOptions extends SparseGPTKernelOptions {
  /** Damping as a fraction of the mean diagonal (default 0.01). */
  percdamp?: number;
  /** How many times to retry with percdamp x 10 when H is not positive definite (default 3). */
  maxRetries?: number;
  /** What the Hessian belongs to, for error messages (e.g. "block 3 q/k/v input"). */
  label?: string;
}

/** Raised when H stays not positive definite after every retry, or holds non-finite values. */
function notPositiveDefinite(
  label: string,
  percdamp: number,
  tries: number,
  pivot: number,
): UnsupportedError {
  return new UnsupportedError(
    `SparseGPT: the Hessian of ${label} is not positive definite (pivot ${pivot}) even with damping ` +
      `percdamp ${percdamp} after ${tries} tries; raise --percdamp or use more calibration samples (--nsamples)`,
  );
}

/**
 * Tile sizes. Cold shader compiles on lavapipe grow fast with the unrolled tile (measured: a
 * 32 x 32 Hessian tile 51 s, 16 x 16 2.7 s, 8 x 8 0.6 s), and the factorisation is a small part of
 * the work, so its tiles stay small.
 */
function tileOptions(style: KernelStyle, pass: "syrk" | "trmm"): CholeskyTileOptions {
  if (style === "cpu") {
    return pass === "syrk"
      ? { pass, tm: 8, tn: 8, workgroupSize: 8 }
      : { pass, tm: 4, tn: 0, workgroupSize: 8 };
  }
  return pass === "syrk"
    ? { pass, tm: 4, tn: 4, workgroupSize: 64 }
    : { pass, tm: 2, tn: 0, workgroupSize: 64 };
}

interface Side {
  D: GPUBuffer;
  P: GPUBuffer;
  Y: GPUBuffer;
  status: GPUBuffer;
}

function rowPass(gpu: Gpu, pass: CholeskyPass): GPUComputePipeline {
  return gpu.pipeline(choleskyKey(pass), () => choleskyWgsl(pass));
}

/** Uniforms of the row / single-invocation passes. */
function rowUniforms(
  n: number,
  r0: number,
  rowBegin: number,
  rowCount: number,
  k0: number,
  kb: number,
  damp = 0,
) {
  return packUniforms([n, r0, rowBegin, rowCount, k0, kb, { f32: damp }]);
}

/** Record the blocked Cholesky of A in place (lower); pivot failures go to `side.status`. */
function recordCholesky(gpu: Gpu, A: GpuMatrix, side: Side, style: KernelStyle): void {
  const n = A.rows;
  const potrf = rowPass(gpu, "potrf"), trsm = rowPass(gpu, "trsm");
  const so = tileOptions(style, "syrk");
  const syrk = gpu.pipeline(choleskyKey(so), () => choleskyTileWgsl(so));
  for (let k0 = 0; k0 < n; k0 += CHOL_NB) {
    const kb = Math.min(CHOL_NB, n - k0);
    const dc = chunkOf(A, k0);
    gpu.dispatch(potrf, [dc.buffer, side.D, side.status], rowUniforms(n, dc.rowStart, 0, 0, k0, kb), 1);
    const next = k0 + kb;
    if (next >= n) break;
    const parts = overlaps(A, next, n);
    for (const { c, from, to } of parts) {
      const u = rowUniforms(n, c.rowStart, from, to - from, k0, kb);
      gpu.dispatch(trsm, [c.buffer, side.D, side.P], u, Math.ceil((to - from) / CHOL_ROW_WG));
    }
    for (const { c, from, to } of parts) {
      const u = packUniforms([n, c.rowStart, from, to, next, 0]);
      gpu.dispatch(syrk, [c.buffer, side.P], u, choleskyTileWorkgroups(so, to - from, to - next));
    }
  }
}

/** Record X = L^-1 in place over A's lower triangle. */
function recordInverse(gpu: Gpu, A: GpuMatrix, side: Side, style: KernelStyle): void {
  const n = A.rows;
  const trtri = rowPass(gpu, "trtri"), panel = rowPass(gpu, "panel"), scale = rowPass(gpu, "scale");
  const to_ = tileOptions(style, "trmm");
  const trmm = gpu.pipeline(choleskyKey(to_), () => choleskyTileWgsl(to_));
  for (let j0 = Math.floor((n - 1) / CHOL_NB) * CHOL_NB; j0 >= 0; j0 -= CHOL_NB) {
    const kb = Math.min(CHOL_NB, n - j0);
    const dc = chunkOf(A, j0);
    gpu.dispatch(trtri, [dc.buffer, side.D], rowUniforms(n, dc.rowStart, 0, 0, j0, kb), 1);
    const next = j0 + kb;
    if (next >= n) continue;
    const parts = overlaps(A, next, n);
    for (const { c, from, to } of parts) {
      const u = rowUniforms(n, c.rowStart, from, to - from, j0, kb);
      gpu.dispatch(panel, [c.buffer, side.P], u, Math.ceil((to - from) / CHOL_ROW_WG));
    }
    for (const { c, from, to } of parts) {
      const u = packUniforms([n, c.rowStart, from, to, next, j0]);
      gpu.dispatch(trmm, [c.buffer, side.P, side.Y], u, choleskyTileWorkgroups(to_, to - from, 0));
    }
    for (const { c, from, to } of parts) {
      const u = rowUniforms(n, c.rowStart, from, to - from, j0, kb);
      gpu.dispatch(scale, [c.buffer, side.Y, side.D], u, Math.ceil((to - from) / CHOL_ROW_WG));
    }
  }
}

/**
 * Factor a Hessian for the OBS pass (see the module doc): dead inputs, damping, Cholesky (retried
 * with percdamp x 10 up to `maxRetries` times when a pivot fails), inverse. `h` is left as it was
 * (release it when no longer needed); release the result with {@linkcode releaseInverseFactor}.
 *
 * @example An indefinite H: the damping is raised x10 until the factorisation succeeds
 * ```ts
 * import { factorHessian, Gpu, releaseHessian, releaseInverseFactor, uploadHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h = uploadHessian(gpu, [1, 1.5, 1.5, 1], 2); // eigenvalues 2.5 and -0.5; mean(diag H) = 1
 * const f = await factorHessian(gpu, h); // percdamp 0.01, up to 3 retries
 * assert.equal(f.retries, 2); // damp 0.01 and 0.1 fail, 1 succeeds
 * assert.equal(f.percdamp, 0.01 * 10 ** 2);
 * assert.equal(f.damp, f.percdamp * 1);
 * releaseInverseFactor(gpu, f);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export async function factorHessian(gpu: Gpu, h: Hessian, opts: FactorOptions = {}): Promise<InverseFactor> {
  const percdamp = opts.percdamp ?? DEFAULT_PERCDAMP;
  const maxRetries = opts.maxRetries ?? 3;
  const label = opts.label ?? `a ${h.n}-input linear`;
  if (!(Number.isFinite(percdamp) && percdamp >= 0)) {
    throw new ArgumentError(`percdamp must be >= 0, got ${percdamp}`);
  }
  if (!(Number.isInteger(maxRetries) && maxRetries >= 0)) {
    throw new ArgumentError(`maxRetries must be an integer >= 0, got ${maxRetries}`);
  }
  const style = styleOf(gpu, opts);
  const n = h.n;
  // The diagonal (reversed storage), read back for the dead inputs and the mean.
  const diagBuf = gpu.buffer(n * 4, "hessian-diag");
  const diagPipe = rowPass(gpu, "diag");
  for (const c of h.mat.chunks) {
    gpu.dispatch(
      diagPipe,
      [c.buffer, diagBuf],
      rowUniforms(n, c.rowStart, c.rowStart, c.rows, 0, 0),
      Math.ceil(c.rows / CHOL_ROW_WG),
    );
  }
  const diagRev = await gpu.readF32(diagBuf, 0, n);
  gpu.release(diagBuf);
  const deadFlags = new Uint32Array(n);
  let sum = 0, deadCount = 0;
  for (let j = 0; j < n; j++) {
    const d = diagRev[n - 1 - j];
    if (!Number.isFinite(d)) {
      throw new UnsupportedError(
        `SparseGPT: the Hessian of ${label} holds non-finite values (input channel ${j}): ` +
          "the calibration activations overflowed or are NaN",
      );
    }
    if (d === 0) {
      deadFlags[j] = 1;
      deadCount++;
    }
    sum += d === 0 ? 1 : d;
  }
  const mean = sum / n;
  const F = newSquareLike(gpu, h.mat, `factor${n}`);
  const side: Side = {
    D: gpu.buffer(CHOL_NB * CHOL_NB * 4, "chol-D"),
    P: gpu.buffer(n * CHOL_NB * 4, "chol-P"),
    Y: gpu.buffer(n * CHOL_NB * 4, "chol-Y"),
    status: gpu.buffer(4, "chol-status"),
  };
  const damp = rowPass(gpu, "damp");
  let ok = false, pd = percdamp, retries = 0, pivot = 0;
  try {
    for (retries = 0; retries <= maxRetries; retries++) {
      pd = percdamp * 10 ** retries;
      h.mat.chunks.forEach((c, i) => gpu.copy(c.buffer, 0, F.chunks[i].buffer, 0, c.rows * n * 4));
      for (const c of F.chunks) {
        gpu.dispatch(
          damp,
          [c.buffer],
          rowUniforms(n, c.rowStart, c.rowStart, c.rows, 0, 0, pd * mean),
          Math.ceil(c.rows / CHOL_ROW_WG),
        );
      }
      gpu.write(side.status, new Uint32Array(1));
      recordCholesky(gpu, F, side, style);
      pivot = (await gpu.readU32(side.status, 0, 1))[0];
      if (pivot === 0) {
        ok = true;
        break;
      }
    }
    if (!ok) throw notPositiveDefinite(label, pd, maxRetries + 1, n - pivot);
    recordInverse(gpu, F, side, style);
    await gpu.sync(); // the side buffers are released below
  } catch (e) {
    releaseSquare(gpu, F);
    throw e;
  } finally {
    gpu.release(side.D, side.P, side.Y, side.status);
  }
  return {
    n,
    mat: F,
    dead: gpu.upload(deadFlags, "dead-inputs"),
    deadCount,
    percdamp: pd,
    damp: pd * mean,
    retries,
  };
}

/**
 * Free the factor's buffers (after submitting recorded work that may read them); `undefined` is a no-op.
 *
 * @example The factor's buffers all go back
 * ```ts
 * import { factorHessian, Gpu, releaseHessian, releaseInverseFactor, uploadHessian } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h = uploadHessian(gpu, [2, 0, 0, 2], 2);
 * const live = gpu.liveBuffers;
 * const f = await factorHessian(gpu, h);
 * assert.ok(gpu.liveBuffers > live);
 * releaseInverseFactor(gpu, f);
 * assert.equal(gpu.liveBuffers, live);
 * releaseInverseFactor(gpu, undefined); // a no-op
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export function releaseInverseFactor(gpu: Gpu, f: InverseFactor | undefined): void {
  if (!f) return;
  gpu.flush();
  releaseSquare(gpu, f.mat);
  gpu.release(f.dead);
}

/**
 * U (upper Cholesky factor of the damped H^-1) in natural order, zeros below the diagonal (tests).
 *
 * @example Without damping, U^T U = H^-1 = [[2, -1], [-1, 2]] / 3 for H = [[2, 1], [1, 2]]
 * ```ts
 * import {
 *   factorHessian, Gpu, readInverseFactorU, releaseHessian, releaseInverseFactor, uploadHessian,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const h = uploadHessian(gpu, [2, 1, 1, 2], 2);
 * const f = await factorHessian(gpu, h, { percdamp: 0 });
 * const [u00, u01, u10, u11] = await readInverseFactorU(gpu, f);
 * assert.equal(u10, 0); // upper triangular
 * const UtU = [u00 * u00, u00 * u01, u01 * u00, u01 * u01 + u11 * u11];
 * [2 / 3, -1 / 3, -1 / 3, 2 / 3].forEach((v, i) => assert.ok(Math.abs(UtU[i] - v) < 1e-6));
 * releaseInverseFactor(gpu, f);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export async function readInverseFactorU(gpu: Gpu, f: InverseFactor): Promise<Float32Array> {
  const n = f.n, u = await readReversed(gpu, f.mat);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) u[i * n + j] = 0;
  return u;
}

// ---- OBS pass -----------------------------------------------------------------------------------

/**
 * Options of {@linkcode sparsegptPrune}.
 *
 * @example 2:4 with H = I: OBS then reduces to magnitude pruning and leaves the kept weights alone
 * ```ts
 * import {
 *   factorHessian, Gpu, readMask, readMatrix, releaseHessian, releaseInverseFactor, releaseMask,
 *   releaseMatrix, sparsegptPrune, type SparseGPTPruneOptions, uploadHessian, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const n = 8, W = [4, -1, 3, 2, 0.5, -6, 7, 1, 1, 2, -3, 4, 8, -7, 6, 5];
 * const h = uploadHessian(gpu, Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)), n);
 * const f = await factorHessian(gpu, h);
 * const w = uploadMatrix(gpu, new Float32Array(W), 2, n, "w");
 * const opts: SparseGPTPruneOptions = { sparsity: 0, nm: { n: 2, m: 4 }, blocksize: 4 };
 * const { mask, expected } = sparsegptPrune(gpu, w, f, opts);
 * assert.equal(expected, 2 * 2 * 2); // 2 rows x 2 groups x N
 * assert.deepEqual([...await readMask(gpu, mask)], [0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1]);
 * assert.deepEqual([...await readMatrix(gpu, w)], [4, 0, 3, 0, 0, -6, 7, 0, 0, 0, -3, 4, 8, -7, 0, 0]);
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * releaseInverseFactor(gpu, f);
 * releaseHessian(gpu, h);
 * gpu.destroy();
 * ```
 */
export interface SparseGPTPruneOptions extends SparseGPTKernelOptions {
  /** Unstructured target sparsity in [0, 1); ignored with `nm`. */
  sparsity: number;
  /** Columns per block (lazy batch update granularity), 1..256. Default 128. */
  blocksize?: number;
  /** N:M: per row, per group of M columns, the N lowest scores (M <= 16, dividing blocksize and cols). */
  nm?: { n: number; m: number };
  /** The reference's `<=` threshold instead of the exact floor count (unstructured only). */
  quirk?: boolean;
}

/**
 * Pruned count the contract asks of {@linkcode sparsegptPrune} for a rows x cols weight.
 *
 * @example Unstructured counts are floored per block of columns; N:M counts are exact
 * ```ts
 * import { sparsegptExpected } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // 3 x 10 in blocks of 4, 4 and 2 columns: floor(12 * 0.3) + floor(12 * 0.3) + floor(6 * 0.3)
 * assert.equal(sparsegptExpected(3, 10, { sparsity: 0.3, blocksize: 4 }), 3 + 3 + 1); // not floor(9)
 * assert.equal(sparsegptExpected(3, 10, { sparsity: 0.3, blocksize: 128 }), 9); // one block
 * assert.equal(sparsegptExpected(3, 8, { sparsity: 0, nm: { n: 2, m: 4 } }), 3 * 2 * 2);
 * ```
 */
export function sparsegptExpected(rows: number, cols: number, o: SparseGPTPruneOptions): number {
  const bs = o.blocksize ?? DEFAULT_BLOCKSIZE;
  if (o.nm) return rows * (cols / o.nm.m) * o.nm.n;
  let k = 0;
  for (let i1 = 0; i1 < cols; i1 += bs) k += Math.floor(rows * Math.min(bs, cols - i1) * o.sparsity);
  return k;
}

/**
 * Check SparseGPT options against a weight's shape (throws ArgumentError / UnsupportedError).
 *
 * @example Validate options before any GPU work (`gpu` null skips the adapter's limits)
 * ```ts
 * import { ArgumentError, checkSparseGPTOptions, type SparseGPTPruneOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * checkSparseGPTOptions(null, 64, 256, { sparsity: 0.5 }); // fine: returns
 * const bad: SparseGPTPruneOptions[] = [
 *   { sparsity: 1 }, // sparsity must be in [0, 1)
 *   { sparsity: 0.5, blocksize: 512 }, // blocksize in [1, 256]
 *   { sparsity: 0, nm: { n: 2, m: 4 }, blocksize: 6 }, // blocksize a multiple of M
 *   { sparsity: 0, nm: { n: 5, m: 4 } }, // N <= M
 * ];
 * for (const o of bad) assert.throws(() => checkSparseGPTOptions(null, 64, 256, o), ArgumentError);
 * const nm = { n: 2, m: 4 }; // and cols a multiple of M:
 * assert.throws(() => checkSparseGPTOptions(null, 64, 254, { sparsity: 0, nm }), ArgumentError);
 * ```
 */
export function checkSparseGPTOptions(
  gpu: Gpu | null,
  rows: number,
  cols: number,
  o: SparseGPTPruneOptions,
): void {
  const bs = o.blocksize ?? DEFAULT_BLOCKSIZE;
  if (!Number.isInteger(bs) || bs < 1 || bs > SGPT_MAX_BLOCK) {
    throw new ArgumentError(`--blocksize must be an integer in [1, ${SGPT_MAX_BLOCK}], got ${bs}`);
  }
  if (o.nm) {
    const { n, m } = o.nm;
    if (!(Number.isInteger(m) && Number.isInteger(n) && m >= 1 && m <= SGPT_MAX_M && n >= 0 && n <= m)) {
      throw new ArgumentError(`SparseGPT N:M needs integers 0 <= N <= M <= ${SGPT_MAX_M}, got ${n}:${m}`);
    }
    if (bs % m !== 0) {
      throw new ArgumentError(`SparseGPT N:M needs --blocksize (${bs}) to be a multiple of M (${m})`);
    }
    if (cols % m !== 0) throw new ArgumentError(`N:M needs cols (${cols}) to be a multiple of M (${m})`);
  } else if (!(Number.isFinite(o.sparsity) && o.sparsity >= 0 && o.sparsity < 1)) {
    throw new ArgumentError(`sparsity must be in [0, 1), got ${o.sparsity}`);
  }
  const bw = Math.min(bs, cols);
  if (gpu?.isCpu && !o.nm && selectLaneIterations(rows, bw) >= LOOP_LIMIT) {
    throw new UnsupportedError(
      `SparseGPT on a CPU adapter: ${rows} rows x ${bw} columns per block is too many for one workgroup ` +
        "under llvmpipe's loop limit; lower --blocksize",
    );
  }
}

function lazyOptions(style: KernelStyle): LazyOptions {
  return style === "cpu" ? { tm: 16, tn: 16, workgroupSize: 8 } : { tm: 4, tn: 4, workgroupSize: 64 };
}

/**
 * Prune `w` (f32, in place) with SparseGPT given the factor of its input's Hessian; returns the
 * mask (1 = pruned) and the pruned count the contract asks for. Everything is recorded in the
 * current batch; release the mask with prune_ops' `releaseMask`.
 *
 * @example 50% of a 2 x 4 weight: the OBS updates of the kept weights beat masking alone
 * ```ts
 * import {
 *   factorHessian, Gpu, newHessian, readMask, readMatrix, releaseHessian, releaseInverseFactor, releaseMask,
 *   releaseMatrix, sparsegptPrune, updateHessian, uploadMatrix,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rows = 2, n = 4, T = 6;
 * const X = Float32Array.from({ length: T * n }, (_, i) => Math.sin(i) + Math.cos(i % n)); // correlated
 * const W0 = Float32Array.from({ length: rows * n }, (_, i) => Math.cos(3 * i));
 * const x = gpu.upload(X, "x"), h = newHessian(gpu, n);
 * updateHessian(gpu, h, x, T);
 * const f = await factorHessian(gpu, h);
 * const w = uploadMatrix(gpu, W0, rows, n, "w");
 * const { mask, expected } = sparsegptPrune(gpu, w, f, { sparsity: 0.5 });
 * const M = await readMask(gpu, mask), W = await readMatrix(gpu, w);
 * assert.equal(M.reduce((a, b) => a + b, 0), expected); // floor(2 * 4 * 0.5) = 4
 * M.forEach((m, i) => m && assert.equal(W[i], 0));
 * const err = (V: ArrayLike<number>) => { // || X W0^T - X V^T ||^2
 *   let e = 0;
 *   for (let t = 0; t < T; t++) {
 *     for (let r = 0; r < rows; r++) {
 *       let d = 0;
 *       for (let k = 0; k < n; k++) d += X[t * n + k] * (W0[r * n + k] - V[r * n + k]);
 *       e += d * d;
 *     }
 *   }
 *   return e;
 * };
 * assert.ok(err(W) < err(W0.map((v, i) => (M[i] ? 0 : v))));
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * releaseInverseFactor(gpu, f);
 * releaseHessian(gpu, h);
 * gpu.release(x);
 * gpu.destroy();
 * ```
 */
export function sparsegptPrune(
  gpu: Gpu,
  w: GpuMatrix,
  f: InverseFactor,
  opts: SparseGPTPruneOptions,
): { mask: PruneMask; expected: number } {
  const { rows, cols } = w;
  if (w.dtype !== "f32") {
    throw new UnsupportedError("SparseGPT updates weights in f32; load the block as f32");
  }
  if (cols !== f.n) throw new ArgumentError(`weight has ${cols} columns but the Hessian is ${f.n}x${f.n}`);
  checkSparseGPTOptions(gpu, rows, cols, opts);
  const style = styleOf(gpu, opts);
  const bs = opts.blocksize ?? DEFAULT_BLOCKSIZE;
  const bsMax = Math.min(bs, cols);
  const ld = 4 * Math.ceil(bsMax / 4) + 4 * Math.ceil(cols / 4);
  const wordsPerRow = maskWordsPerRow(cols);
  const maskBytes = rows * wordsPerRow * 4;
  for (
    const [what, bytes] of [["mask", maskBytes], ["block copy", rows * bsMax * 4], [
      "U block",
      bsMax * ld * 4,
    ]] as const
  ) {
    if (bytes > gpu.maxBinding) {
      throw new UnsupportedError(
        `SparseGPT on a ${rows}x${cols} weight: its ${what} needs ${bytes} bytes, over the ${gpu.maxBinding}-byte binding limit`,
      );
    }
  }
  const mask: PruneMask = { buffer: gpu.buffer(maskBytes, `mask ${rows}x${cols}`), rows, cols, wordsPerRow };
  const pass = (p: SparseGPTPass) => gpu.pipeline(sparsegptKey(p), () => sparsegptWgsl(p));
  const maxBlock = 32 * Math.ceil(bsMax / 32);
  const obs = gpu.pipeline(sparsegptObsKey(maxBlock), () => sparsegptObsWgsl(maxBlock));
  const lo = lazyOptions(style);
  const lazy = gpu.pipeline(lazyKey(lo), () => lazyWgsl(lo));
  const ub = gpu.buffer(bsMax * ld * 4, "sgpt-ublk");
  const w1 = gpu.buffer(rows * bsMax * 4, "sgpt-w1");
  const errT = gpu.buffer(bsMax * rows * 4, "sgpt-err");
  const sel = gpu.buffer(8, "sgpt-sel");
  const rowTie = gpu.buffer(rows * 4, "sgpt-rowtie");
  const n = cols;
  const nmN = opts.nm?.n ?? 0, nmM = opts.nm?.m ?? 0;
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const bw = Math.min(bs, cols - i1), i2 = i1 + bw, bwPad = 4 * Math.ceil(bw / 4);
    for (const { c, from, to } of overlaps(f.mat, n - i2, n - i1)) {
      const u = packUniforms([n, i1, bw, bwPad, ld, c.rowStart, from, to - from]);
      gpu.dispatch(pass("ublk"), [c.buffer, ub], u, Math.ceil(((to - from) * (n - i1)) / SGPT_WG));
    }
    for (const c of w.chunks) {
      const u = packUniforms([cols, i1, bw, c.rowStart, c.rows]);
      gpu.dispatch(pass("gather"), [c.buffer, f.dead, w1], u, Math.ceil((c.rows * bw) / SGPT_WG));
    }
    if (!opts.nm) {
      const k = Math.floor(rows * bw * opts.sparsity);
      gpu.dispatch(
        pass("select"),
        [w1, ub, sel, rowTie],
        packUniforms([rows, bw, ld, k, opts.quirk ? 1 : 0]),
        1,
      );
    }
    for (const c of w.chunks) {
      const u = packUniforms([cols, bw, i1, c.rowStart, c.rows, ld, rows, wordsPerRow, nmN, nmM]);
      gpu.dispatch(obs, [c.buffer, w1, ub, sel, rowTie, errT, mask.buffer], u, Math.ceil(c.rows / SGPT_WG));
    }
    if (i2 < cols) {
      for (const c of w.chunks) {
        const u = packUniforms([cols, i2, c.rowStart, c.rows, cols - i2, bw, rows, ld / 4, bwPad / 4]);
        gpu.dispatch(lazy, [c.buffer, errT, ub], u, lazyWorkgroups(lo, c.rows, cols - i2));
      }
    }
  }
  gpu.flush();
  gpu.release(ub, w1, errT, sel, rowTie);
  return { mask, expected: sparsegptExpected(rows, cols, opts) };
}
