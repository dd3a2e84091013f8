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

/** Options shared by the SparseGPT launchers. */
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

/** The running Hessian of one linear input (C_in = n), reversed storage; see the module doc. */
export interface Hessian {
  /** Input channels (the Hessian is n x n). */
  n: number;
  /** The reversed Hessian `J H J`, f32 [n, n] in row chunks. */
  mat: GpuMatrix;
  /** Sequences seen. */
  nSamples: number;
}

/** Options of {@linkcode newHessian}. */
export interface HessianAllocOptions {
  /** Rows per chunk (rounded down to a multiple of 32); default: as many as a binding holds. */
  maxRowsPerChunk?: number;
}

/** A zero Hessian for inputs of `n` channels. */
export function newHessian(gpu: Gpu, n: number, opts: HessianAllocOptions = {}): Hessian {
  if (!Number.isInteger(n) || n < 1) {
    throw new ArgumentError(`Hessian size must be a positive integer, got ${n}`);
  }
  return { n, mat: newSquare(gpu, n, `hessian${n}`, opts.maxRowsPerChunk), nSamples: 0 };
}

/** Free the Hessian's buffers; `undefined` is a no-op. */
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
 * @example
 * ```ts ignore
 * const h = newHessian(gpu, 288);
 * runner.block(l, T, 0, (g, x, t) => g === "qkv" && updateHessian(gpu, h, x, t));
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

/** H in natural order, symmetric (from the stored lower triangle of J H J), for tests. */
export async function readHessian(gpu: Gpu, h: Hessian): Promise<Float32Array> {
  const n = h.n, a = await readReversed(gpu, h.mat);
  // Stored lower triangle (b <= a in reversed indices) = natural upper triangle (j >= i).
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i];
  return a;
}

/**
 * A Hessian holding the symmetric n x n matrix `H` (natural order; only its upper triangle is
 * read), as if accumulated from `nSamples` sequences: for tests and for Hessians computed elsewhere.
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

/** The damped inverse factor of a Hessian: what the OBS pass needs. */
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

/** Options of {@linkcode factorHessian}. */
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
 * @example
 * ```ts ignore
 * const f = await factorHessian(gpu, h, { percdamp: 0.01 });
 * const { mask } = sparsegptPrune(gpu, w, f, { sparsity: 0.5 });
 * ```
 */
export async function factorHessian(gpu: Gpu, h: Hessian, opts: FactorOptions = {}): Promise<InverseFactor> {
  const percdamp = opts.percdamp ?? 0.01;
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

/** Free the factor's buffers (after submitting recorded work that may read them); `undefined` is a no-op. */
export function releaseInverseFactor(gpu: Gpu, f: InverseFactor | undefined): void {
  if (!f) return;
  gpu.flush();
  releaseSquare(gpu, f.mat);
  gpu.release(f.dead);
}

/** U (upper Cholesky factor of the damped H^-1) in natural order, zeros below the diagonal (tests). */
export async function readInverseFactorU(gpu: Gpu, f: InverseFactor): Promise<Float32Array> {
  const n = f.n, u = await readReversed(gpu, f.mat);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) u[i * n + j] = 0;
  return u;
}

// ---- OBS pass -----------------------------------------------------------------------------------

/** Options of {@linkcode sparsegptPrune}. */
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

/** Pruned count the contract asks of {@linkcode sparsegptPrune} for a rows x cols weight. */
export function sparsegptExpected(rows: number, cols: number, o: SparseGPTPruneOptions): number {
  const bs = o.blocksize ?? 128;
  if (o.nm) return rows * (cols / o.nm.m) * o.nm.n;
  let k = 0;
  for (let i1 = 0; i1 < cols; i1 += bs) k += Math.floor(rows * Math.min(bs, cols - i1) * o.sparsity);
  return k;
}

/** Check SparseGPT options against a weight's shape (throws ArgumentError / UnsupportedError). */
export function checkSparseGPTOptions(
  gpu: Gpu | null,
  rows: number,
  cols: number,
  o: SparseGPTPruneOptions,
): void {
  const bs = o.blocksize ?? 128;
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
 * @example
 * ```ts ignore
 * const { mask, expected } = sparsegptPrune(gpu, w, factor, { sparsity: 0.7, blocksize: 128 });
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
  const bs = opts.blocksize ?? 128;
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
