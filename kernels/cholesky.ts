/**
 * Blocked Cholesky factorisation and triangular inverse of a symmetric positive definite n x n
 * matrix A on the GPU, in place, for SparseGPT (src/ops/sparsegpt.ts):
 * `A = L L^T` (L lower, positive diagonal), then `X = L^-1` (lower). Only A's lower triangle is
 * read; its strict upper triangle is left as it was (never read by any kernel here).
 *
 * Layout: A row-major f32 [n, n] in row chunks of `rc` rows starting at global row `r0` (each one
 * binding; chunk row counts are multiples of {@linkcode CHOL_NB}, so a diagonal block never
 * straddles two chunks). Cross-row data travels through small contiguous side buffers: `D`
 * (f32 [NB, NB], a diagonal block's factor or inverse) and `P` (f32 [n, NB], a column panel).
 *
 * Factorisation, right-looking, per column block k0 (kb = min(NB, n - k0) columns):
 * - `potrf`: ONE invocation factors the diagonal block (already updated) into A and D. A pivot
 *   that is not a positive normal f32 (checked on its bits, so NaN counts) records
 *   `status = pivot + 1` (first failure only) and continues with pivot 1.
 * - `trsm`: one invocation per row i >= k0 + kb: `L[i, blk] = A[i, blk] L_kk^-T` into A and P.
 * - `syrk`: TM x TN tiles of the trailing lower triangle: `A[a][b] -= P[a] . P[b]`.
 * Inverse, per column block j0 from the last to the first (from `X L = I`):
 * - `trtri`: ONE invocation inverts the diagonal block into D and A.
 * - `panel`: P[i] = L[i, blk] for rows i >= j0 + kb (copied before trmm overwrites them).
 * - `trmm`: TM rows per invocation: `Yb[i] = sum_{m = j0+kb}^{i} X[i, m] P[m]` (side buffer Yb,
 *   f32 [n, NB]); `scale`: one invocation per row, `X[i, blk] = -(Yb[i] D)` (D lower triangular).
 * And `diag` reads the diagonal into a vector; `damp` applies SparseGPT's dead-input rule and
 * damping (`A_ii = (A_ii == 0 ? 1 : A_ii) + damp`).
 *
 * Loop limit (llvmpipe, 65535 iterations per invocation): potrf/trtri take about NB^3 / 6 = 5.5k,
 * trsm and scale NB^2 / 2, syrk NB / 4, trmm about n (so n stays far below the limit for any
 * LLaMA width).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Columns per block of the blocked algorithms (side buffers are NB wide).
 *
 * @example Factor a 3 x 3 matrix with the `potrf` pass (one block), D sized CHOL_NB x CHOL_NB
 * ```ts
 * import { CHOL_NB, choleskyKey, choleskyWgsl, Gpu, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const n = 3, A = Float32Array.of(4, 2, 2, 2, 5, 3, 2, 3, 6); // = L L^T, L = [[2,0,0],[1,2,0],[1,1,2]]
 * const a = gpu.upload(A, "A"), d = gpu.buffer(CHOL_NB * CHOL_NB * 4, "D");
 * const status = gpu.buffer(4, "status");
 * const pipe = gpu.pipeline(choleskyKey("potrf"), () => choleskyWgsl("potrf"));
 * // uniforms n, r0, rowBegin, rowCount, k0, kb, damp: block k0 = 0 of width kb = n
 * gpu.dispatch(pipe, [a, d, status], packUniforms([n, 0, 0, 0, 0, n, { f32: 0 }]), 1);
 * const want = [2, 2, 2, 1, 2, 3, 1, 1, 2]; // L in the lower triangle, A's upper triangle left as it was
 * (await gpu.readF32(a)).forEach((v, i) => assert(Math.abs(v - want[i]) < 1e-6));
 * assert.equal((await gpu.readU32(status))[0], 0); // positive definite: no failed pivot
 * assert(Math.abs((await gpu.readF32(d))[1 * CHOL_NB + 0] - 1) < 1e-6); // D holds L[1][0], rows CHOL_NB wide
 * gpu.release(a, d, status);
 * gpu.destroy();
 * ```
 */
export const CHOL_NB = 32;
/**
 * Workgroup size of the per-row kernels (diag, damp, trsm, panel).
 *
 * @example Size a per-row dispatch: one invocation per row, CHOL_ROW_WG per workgroup
 * ```ts
 * import { CHOL_ROW_WG, choleskyWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * for (const pass of ["diag", "damp", "trsm", "panel"] as const) {
 *   assert(choleskyWgsl(pass).includes(`@compute @workgroup_size(${CHOL_ROW_WG})`));
 * }
 * const rowCount = 288;
 * assert.equal(Math.ceil(rowCount / CHOL_ROW_WG), 5); // workgroups of a 288-row dispatch
 * ```
 */
export const CHOL_ROW_WG = 64;

/**
 * The single-version passes of the blocked Cholesky and triangular inverse (see the module doc); the tiled
 * passes `syrk` and `trmm` take {@linkcode CholeskyTileOptions}.
 *
 * @example `potrf` and `trtri` run as one invocation, the other passes one invocation per row
 * ```ts
 * import { CHOL_ROW_WG, choleskyKey, type CholeskyPass, choleskyWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const passes: CholeskyPass[] = ["diag", "damp", "potrf", "trsm", "trtri", "panel", "scale"];
 * for (const pass of passes) {
 *   const size = pass === "potrf" || pass === "trtri" ? 1 : CHOL_ROW_WG;
 *   assert(choleskyWgsl(pass).includes(`@compute @workgroup_size(${size})`));
 * }
 * assert.equal(new Set(passes.map((p) => choleskyKey(p))).size, passes.length); // one pipeline each
 * ```
 */
export type CholeskyPass = "diag" | "damp" | "potrf" | "trsm" | "trtri" | "panel" | "scale";

/**
 * Tiled passes (syrk, trmm): tile sizes by adapter.
 *
 * @example A `syrk` tiling and the dispatch it needs for a 64 x 64 trailing block
 * ```ts
 * import {
 *   choleskyKey, type CholeskyTileOptions, choleskyTileWgsl, choleskyTileWorkgroups,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: CholeskyTileOptions = { pass: "syrk", tm: 4, tn: 4, workgroupSize: 64 };
 * const wgsl = choleskyTileWgsl(o);
 * assert(wgsl.includes("@compute @workgroup_size(64)"));
 * assert(wgsl.includes("var c3_3 = 0.0;") && !wgsl.includes("c4_")); // a 4 x 4 register tile
 * assert.equal(choleskyKey(o), "cholesky/syrk/4x4/wg64");
 * assert.equal(choleskyTileWorkgroups(o, 64, 64), 4); // 16 x 16 = 256 tiles
 * ```
 */
export interface CholeskyTileOptions {
  /** Which tiled pass. */
  pass: "syrk" | "trmm";
  /** Tile rows. */
  tm: number;
  /** Tile columns (syrk only; trmm always writes NB columns). */
  tn: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/**
 * Pipeline cache key of a Cholesky pass (a plain pass or a tiled pass with its tile sizes).
 *
 * @example `trmm` always writes CHOL_NB columns, so `tn` does not change its kernel or its key
 * ```ts
 * import { choleskyKey, type CholeskyTileOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(choleskyKey("potrf"), "cholesky/potrf");
 * const trmm: CholeskyTileOptions = { pass: "trmm", tm: 4, tn: 4, workgroupSize: 64 };
 * assert.equal(choleskyKey(trmm), choleskyKey({ ...trmm, tn: 16 }));
 * assert.notEqual(choleskyKey(trmm), choleskyKey({ ...trmm, tm: 8 }));
 * assert.notEqual(choleskyKey({ ...trmm, pass: "syrk" }), choleskyKey({ ...trmm, pass: "syrk", tn: 16 }));
 * ```
 */
export function choleskyKey(o: CholeskyPass | CholeskyTileOptions): string {
  return typeof o === "string"
    ? `cholesky/${o}`
    : `cholesky/${o.pass}/${o.tm}x${o.pass === "syrk" ? o.tn : CHOL_NB}/wg${o.workgroupSize}`;
}

/** Positive, normal and finite, decided on the bits (the compiler may assume no NaN in floats). */
const POSITIVE_NORMAL = `fn positiveNormal(x: f32) -> bool {
  let b = bitcast<u32>(x);
  return b >= 0x00800000u && b < 0x7f800000u;
}`;

// Row uniforms: n, r0 (chunk's first global row), rowBegin (first global row of this dispatch),
// rowCount, k0 (block's first column), kb (block width), damp (f32, damp pass only).
const ROW_U = "struct U { n: u32, r0: u32, rowBegin: u32, rowCount: u32, k0: u32, kb: u32, damp: f32 }";

function rowKernel(bindings: string, body: string): string {
  return `
${ROW_U}
@group(0) @binding(0) var<uniform> u: U;
${bindings}
@compute @workgroup_size(${CHOL_ROW_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let g = wid * ${CHOL_ROW_WG}u + lid;
  if (g >= u.rowCount) { return; }
  let i = u.rowBegin + g;
  let ai = (i - u.r0) * u.n;
${body}
}`;
}

function singleKernel(bindings: string, body: string): string {
  return `
${ROW_U}
@group(0) @binding(0) var<uniform> u: U;
${bindings}
${POSITIVE_NORMAL}
@compute @workgroup_size(1)
fn main() {
  let kb = u.kb;
  let base = (u.k0 - u.r0) * u.n + u.k0;
${body}
}`;
}

/**
 * WGSL of a per-row or single-invocation pass. Bindings after the uniform:
 * - diag: A chunk read, out f32 [n] (out[i] = A[i][i]);
 * - damp: A chunk read_write;
 * - potrf: A chunk read_write, D read_write, status u32 [1] read_write;
 * - trsm: A chunk read_write, D read, P read_write;
 * - trtri: A chunk read_write, D read_write;
 * - panel: A chunk read, P read_write;
 * - scale: A chunk read_write, Yb read, D read (rows i >= k0 + kb: `X[i, k0 + c] = -(Yb[i] D)[c]`).
 *
 * @example The `damp` pass: SparseGPT's dead-input rule and damping on the diagonal
 * ```ts
 * import { choleskyWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = choleskyWgsl("damp");
 * assert(wgsl.includes("A[ai + i] = select(d, 1.0, d == 0.0) + u.damp;"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 2); // uniforms, A chunk
 * assert.equal(choleskyWgsl("potrf").match(/@binding\(\d\)/g)?.length, 4); // uniforms, A, D, status
 * ```
 */
export function choleskyWgsl(pass: CholeskyPass): string {
  const NB = CHOL_NB;
  switch (pass) {
    case "diag":
      return rowKernel(
        `@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
        "  out[i] = A[ai + i];",
      );
    case "damp":
      return rowKernel(
        "@group(0) @binding(1) var<storage, read_write> A: array<f32>;",
        `  let d = A[ai + i];
  A[ai + i] = select(d, 1.0, d == 0.0) + u.damp;`,
      );
    case "potrf":
      return singleKernel(
        `@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<u32>;`,
        `  for (var j = 0u; j < kb; j++) {
    var d = A[base + j * u.n + j];
    for (var m = 0u; m < j; m++) { let l = D[j * ${NB}u + m]; d -= l * l; }
    if (!positiveNormal(d)) {
      if (status[0] == 0u) { status[0] = u.k0 + j + 1u; }
      d = 1.0;
    }
    let ljj = sqrt(d);
    D[j * ${NB}u + j] = ljj;
    A[base + j * u.n + j] = ljj;
    for (var i = j + 1u; i < kb; i++) {
      var v = A[base + i * u.n + j];
      for (var m = 0u; m < j; m++) { v -= D[i * ${NB}u + m] * D[j * ${NB}u + m]; }
      v = v / ljj;
      D[i * ${NB}u + j] = v;
      D[j * ${NB}u + i] = 0.0;
      A[base + i * u.n + j] = v;
    }
  }`,
      );
    case "trsm":
      return rowKernel(
        `@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read> D: array<f32>;
@group(0) @binding(3) var<storage, read_write> P: array<f32>;`,
        `  var x: array<f32, ${NB}>;
  for (var j = 0u; j < u.kb; j++) {
    var v = A[ai + u.k0 + j];
    for (var m = 0u; m < j; m++) { v -= x[m] * D[j * ${NB}u + m]; }
    v = v / D[j * ${NB}u + j];
    x[j] = v;
    A[ai + u.k0 + j] = v;
  }
  for (var j = 0u; j < ${NB}u; j++) { P[i * ${NB}u + j] = select(0.0, x[j], j < u.kb); }`,
      );
    case "trtri":
      // D = L_kk^-1 by forward substitution, column by column; then copied into A's block.
      return singleKernel(
        `@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;`,
        `  for (var c = 0u; c < ${NB}u; c++) {
    for (var r = 0u; r < ${NB}u; r++) { D[r * ${NB}u + c] = 0.0; }
  }
  for (var c = 0u; c < kb; c++) {
    D[c * ${NB}u + c] = 1.0 / A[base + c * u.n + c];
    for (var r = c + 1u; r < kb; r++) {
      var s = 0.0;
      for (var m = c; m < r; m++) { s += A[base + r * u.n + m] * D[m * ${NB}u + c]; }
      D[r * ${NB}u + c] = -s / A[base + r * u.n + r];
    }
  }
  for (var r = 0u; r < kb; r++) {
    for (var c = 0u; c <= r; c++) { A[base + r * u.n + c] = D[r * ${NB}u + c]; }
  }`,
      );
    case "panel":
      return rowKernel(
        `@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> P: array<f32>;`,
        `  for (var j = 0u; j < ${NB}u; j++) { P[i * ${NB}u + j] = select(0.0, A[ai + u.k0 + min(j, u.kb - 1u)], j < u.kb); }`,
      );
    case "scale":
      // D is the inverse diagonal block (lower): column c takes rows c' >= c.
      return rowKernel(
        `@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read> Yb: array<f32>;
@group(0) @binding(3) var<storage, read> D: array<f32>;`,
        `  var y: array<f32, ${NB}>;
  for (var c = 0u; c < u.kb; c++) { y[c] = Yb[i * ${NB}u + c]; }
  for (var c = 0u; c < u.kb; c++) {
    var s = 0.0;
    for (var r = c; r < u.kb; r++) { s += y[r] * D[r * ${NB}u + c]; }
    A[ai + u.k0 + c] = -s;
  }`,
      );
  }
}

/**
 * Workgroups of a tiled pass over `rows` rows (and, for syrk, `cols` columns).
 *
 * @example 20 rows and 12 columns in 4 x 4 tiles, 8 tiles a workgroup
 * ```ts
 * import { choleskyTileWorkgroups, type CholeskyTileOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const syrk: CholeskyTileOptions = { pass: "syrk", tm: 4, tn: 4, workgroupSize: 8 };
 * assert.equal(choleskyTileWorkgroups(syrk, 20, 12), 2); // 5 x 3 = 15 tiles
 * assert.equal(choleskyTileWorkgroups({ ...syrk, pass: "trmm" }, 20, 12), 1); // 5 row tiles, cols unused
 * ```
 */
export function choleskyTileWorkgroups(o: CholeskyTileOptions, rows: number, cols: number): number {
  const tiles = o.pass === "syrk" ? Math.ceil(rows / o.tm) * Math.ceil(cols / o.tn) : Math.ceil(rows / o.tm);
  return Math.ceil(tiles / o.workgroupSize);
}

/**
 * WGSL of a tiled pass. Uniforms {n, r0, rowBegin, rowEnd, colBegin}: the dispatch covers global
 * rows [rowBegin, rowEnd) of the chunk starting at r0.
 * - syrk: bindings A chunk read_write, P read (f32 [n, NB], rows >= colBegin valid). Tile
 *   (a0, b0) with b0 in [colBegin, rowEnd); tiles strictly above the diagonal return at once;
 *   `A[a][b] -= dot(P[a], P[b])` for b <= a.
 * - trmm: bindings A chunk read (declared read_write), P read, Yb read_write (f32 [n, NB]):
 *   `Yb[a] = sum_{m = colBegin}^{a} X[a, m] P[m]` (colBegin = j0 + kb). X[a, m] for m > a (A's
 *   upper triangle) is never used: masked with a select before any arithmetic. The `scale` pass
 *   then writes `X[a, blk] = -(Yb[a] D)`.
 *
 * @example `trmm` binds the Yb side buffer and masks A's upper triangle before any arithmetic
 * ```ts
 * import { CHOL_NB, choleskyTileWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const trmm = choleskyTileWgsl({ pass: "trmm", tm: 2, tn: 4, workgroupSize: 64 });
 * assert.equal(trmm.match(/@binding\(\d\)/g)?.length, 4); // uniforms, A, P, Yb
 * assert(trmm.includes("m <= a0 + 1u);")); // the select that zeroes X[a, m] for m > a
 * assert(trmm.includes(`var y1_${CHOL_NB / 4 - 1} = vec4<f32>(0.0);`)); // 2 rows x CHOL_NB columns
 * const syrk = choleskyTileWgsl({ pass: "syrk", tm: 2, tn: 4, workgroupSize: 64 });
 * assert.equal(syrk.match(/@binding\(\d\)/g)?.length, 3); // uniforms, A, P
 * assert(syrk.includes("if (b0 + 3u <= a0 + 1u) { A[ra + b0 + 3u] -= c1_3; }")); // lower triangle only
 * ```
 */
export function choleskyTileWgsl(o: CholeskyTileOptions): string {
  const NB = CHOL_NB, kv = NB / 4;
  const head = `
struct U { n: u32, r0: u32, rowBegin: u32, rowEnd: u32, colBegin: u32, k0: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<vec4<f32>>;
${o.pass === "trmm" ? "@group(0) @binding(3) var<storage, read_write> Yb: array<vec4<f32>>;" : ""}`;
  const { tm, tn } = o;
  if (o.pass === "syrk") {
    const decl: string[] = [], body: string[] = [], store: string[] = [];
    for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) decl.push(`var c${i}_${j} = 0.0;`);
    for (let i = 0; i < tm; i++) body.push(`let x${i} = P[min(a0 + ${i}u, u.rowEnd - 1u) * ${kv}u + k];`);
    for (let j = 0; j < tn; j++) {
      body.push(`{ let y = P[min(b0 + ${j}u, u.rowEnd - 1u) * ${kv}u + k];`);
      for (let i = 0; i < tm; i++) body.push(`  c${i}_${j} += dot(x${i}, y);`);
      body.push("}");
    }
    for (let i = 0; i < tm; i++) {
      store.push(`if (a0 + ${i}u < u.rowEnd) {`, `  let ra = (a0 + ${i}u - u.r0) * u.n;`);
      for (let j = 0; j < tn; j++) {
        store.push(`  if (b0 + ${j}u <= a0 + ${i}u) { A[ra + b0 + ${j}u] -= c${i}_${j}; }`);
      }
      store.push("}");
    }
    return `${head}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let tile = wid * ${o.workgroupSize}u + lid;
  let tilesB = (u.rowEnd - u.colBegin + ${tn - 1}u) / ${tn}u;
  let a0 = u.rowBegin + (tile / tilesB) * ${tm}u;
  let b0 = u.colBegin + (tile % tilesB) * ${tn}u;
  if (a0 >= u.rowEnd || b0 > a0 + ${tm - 1}u) { return; }
  ${decl.join("\n  ")}
  for (var k = 0u; k < ${kv}u; k++) {
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
  }
  // trmm: Y[a] = sum_m X[a, m] P[m] (NB values as kv vec4s) into Yb; `scale` then applies D.
  const decl: string[] = [], body: string[] = [], store: string[] = [];
  for (let i = 0; i < tm; i++) for (let q = 0; q < kv; q++) decl.push(`var y${i}_${q} = vec4<f32>(0.0);`);
  for (let i = 0; i < tm; i++) {
    body.push(
      `let x${i} = select(0.0, A[(min(a0 + ${i}u, u.rowEnd - 1u) - u.r0) * u.n + m], m <= a0 + ${i}u);`,
    );
  }
  for (let q = 0; q < kv; q++) {
    body.push(`{ let p = P[m * ${kv}u + ${q}u];`);
    for (let i = 0; i < tm; i++) body.push(`  y${i}_${q} += x${i} * p;`);
    body.push("}");
  }
  for (let i = 0; i < tm; i++) {
    store.push(`if (a0 + ${i}u < u.rowEnd) {`);
    for (let q = 0; q < kv; q++) store.push(`  Yb[(a0 + ${i}u) * ${kv}u + ${q}u] = y${i}_${q};`);
    store.push("}");
  }
  return `${head}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let tile = wid * ${o.workgroupSize}u + lid;
  let a0 = u.rowBegin + tile * ${tm}u;
  if (a0 >= u.rowEnd) { return; }
  let mEnd = min(a0 + ${tm}u, u.rowEnd);
  ${decl.join("\n  ")}
  for (var m = u.colBegin; m < mEnd; m++) {
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}
