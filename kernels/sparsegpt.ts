/**
 * SparseGPT's OBS pass over one linear W f32 [rows, cols] (ALGORITHMS.md, "SparseGPT"), one
 * block of `bw` <= blocksize columns [i1, i1 + bw) at a time, given the inverse factor of
 * kernels/cholesky.ts: X = L^-1 where `J H J = L L^T` (reversed storage), so that the upper
 * Cholesky factor of H^-1 is `U = J X J`, `U[i][k] = X[n-1-i][n-1-k]`.
 *
 * Per column block, in order (src/ops/sparsegpt.ts records them without host round trips):
 * - `ublk`: Ublk = U's rows [i1, i1 + bw) from X (one dispatch per chunk of X), in a compact
 *   layout: row c, in-block column i1 + t at `c * ld + t`, later column i1 + bw + t at
 *   `c * ld + bwPad + t` (bwPad = bw rounded up to 4, so vec4 loads of later columns align).
 *   Only entries on or above U's diagonal are written or read.
 * - `gather`: W1 f32 [rows, bw] = W[:, block] (one dispatch per chunk of W), with the columns of
 *   dead inputs (dead[j] != 0: H_jj == 0) set to 0.
 * - `select` (unstructured only): ONE workgroup finds, over the rows x bw block, the threshold of
 *   the score `w^2 / U_jj^2` (f32, compared as its u32 bits: scores are >= 0) that prunes exactly
 *   `k = floor(rows * bw * s)` entries, ties -> lower row-major index within the block: a 4-pass
 *   radix select (8 bits a pass, shared-memory histograms) gives the key T of rank k - 1 and how
 *   many entries equal to T to prune (`need`); then each row's count of earlier ties (an exclusive
 *   scan) goes to `rowTie`. `quirk` (the reference's `<=`): T = the key of rank k, every tie pruned.
 *   Output `sel` = {T, need} (need = 0xffffffff: all ties).
 * - `obs`: one invocation per row (per chunk of W): the row's block in private memory; the mask
 *   from `sel`/`rowTie` (unstructured, from the block's starting weights) or, at every column
 *   `c % M == 0`, the N lowest scores of columns c..c+M-1 of the CURRENT weights, ties -> lower
 *   column (N:M); then column by column `q = masked ? 0 : w`, `err = (w - q) / U_cc`,
 *   `w[k] -= err * U[c][k]` for the later columns of the block. Writes q into W, err into ErrT
 *   f32 [bw, ldE] (column-major per block, so the lazy update reads it contiguously), and the
 *   mask bits into the bit-packed mask (src/ops/prune_ops.ts's PruneMask layout).
 * - `lazy`: `W[:, i1+bw:] -= Err @ U[block, i1+bw:]` as TM x TN tiles (one dispatch per chunk).
 *
 * Loop limit (llvmpipe, 65535 per invocation): obs takes about bw^2 / 2 + bw * M + 3 bw (bw <=
 * 256), select about 4 * rows * bw / 256 + (rows / 256 + 1) * (bw + 1) + 1200 (the launcher
 * checks), lazy bw, the others none.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/** Workgroup size of the element-wise kernels (ublk, gather) and of obs. */
export const SGPT_WG = 64;
/** The select kernel's single workgroup. */
export const SGPT_SELECT_WG = 256;
/**
 * Largest supported block size (the obs kernel keeps a block row in private memory).
 *
 * @example `blocksize` may be at most SGPT_MAX_BLOCK; one more is an ArgumentError
 * ```ts
 * import { ArgumentError, checkSparseGPTOptions, SGPT_MAX_BLOCK } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * checkSparseGPTOptions(null, 64, 512, { sparsity: 0.5, blocksize: SGPT_MAX_BLOCK });
 * assert.throws(
 *   () => checkSparseGPTOptions(null, 64, 512, { sparsity: 0.5, blocksize: SGPT_MAX_BLOCK + 1 }),
 *   (e) => e instanceof ArgumentError,
 * );
 * ```
 */
export const SGPT_MAX_BLOCK = 256;
/**
 * Largest M of an N:M pattern.
 *
 * @example SparseGPT takes N:M patterns up to M = SGPT_MAX_M
 * ```ts
 * import { ArgumentError, checkSparseGPTOptions, SGPT_MAX_M } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const opts = (m: number) => ({ sparsity: 0, blocksize: 128, nm: { n: m / 2, m } });
 * checkSparseGPTOptions(null, 64, 512, opts(SGPT_MAX_M)); // 8:16 is fine
 * assert.throws(
 *   () => checkSparseGPTOptions(null, 64, 512, opts(2 * SGPT_MAX_M)), // 16:32
 *   (e) => e instanceof ArgumentError,
 * );
 * ```
 */
export const SGPT_MAX_M = 16;

/** Loop iterations of one select-kernel lane (llvmpipe's limit is 65535). */
export function selectLaneIterations(rows: number, bw: number): number {
  const numel = rows * bw;
  return 4 * (Math.ceil(numel / SGPT_SELECT_WG) + 1 + 256) +
    (Math.ceil(rows / SGPT_SELECT_WG) + 1) * (bw + 2) +
    2 * 256;
}

/**
 * The single-version SparseGPT passes: `ublk` (copy U's block rows), `gather` (copy W's block columns) and
 * `select` (block threshold); see the module doc.
 *
 * @example One pipeline per pass; `select` runs as a single 256-invocation workgroup
 * ```ts
 * import { sparsegptKey, type SparseGPTPass, sparsegptWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const passes: SparseGPTPass[] = ["ublk", "gather", "select"];
 * assert.equal(new Set(passes.map(sparsegptKey)).size, 3);
 * for (const p of passes) assert.ok(sparsegptWgsl(p).includes("@compute @workgroup_size("));
 * assert.ok(sparsegptWgsl("select").includes("@workgroup_size(256)"));
 * assert.ok(sparsegptWgsl("gather").includes("@workgroup_size(64)"));
 * ```
 */
export type SparseGPTPass = "ublk" | "gather" | "select";

/**
 * Pipeline cache key of {@linkcode sparsegptWgsl} for `pass`.
 *
 * @example Keys name the pass
 * ```ts
 * import { sparsegptKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sparsegptKey("gather"), "sparsegpt/gather");
 * assert.notEqual(sparsegptKey("gather"), sparsegptKey("ublk"));
 * ```
 */
export function sparsegptKey(pass: SparseGPTPass): string {
  return `sparsegpt/${pass}`;
}

/**
 * Key of the obs kernel: the private row is `maxBlock` long.
 *
 * @example Block sizes that round to the same private row share a pipeline
 * ```ts
 * import { sparsegptObsKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const roundUp32 = (bs: number) => 32 * Math.ceil(bs / 32);
 * assert.equal(sparsegptObsKey(roundUp32(100)), sparsegptObsKey(roundUp32(128)));
 * assert.notEqual(sparsegptObsKey(128), sparsegptObsKey(256));
 * ```
 */
export function sparsegptObsKey(maxBlock: number): string {
  return `sparsegpt/obs/b${maxBlock}`;
}

/** Bit pattern key of the score `w^2 / d^2` (non-negative, so u32 order = float order). */
const SCORE = `fn scoreKey(w: f32, d: f32) -> u32 { return bitcast<u32>((w * w) / (d * d)); }`;

/**
 * WGSL of the ublk, gather and select passes.
 * - ublk: uniforms {n, i1, bw, bwPad, ld, r0, xBegin, xCount}; bindings X chunk read, Ublk
 *   read_write. One invocation per (X row in [xBegin, xBegin + xCount), U column k in [i1, n)).
 * - gather: uniforms {cols, i1, bw, r0, rc}; bindings W chunk read, dead u32 [cols] read, W1
 *   read_write. One invocation per (row of the chunk, block column).
 * - select: uniforms {rows, bw, ld, k, quirk}; bindings W1 read, Ublk read, sel u32 [2]
 *   read_write, rowTie u32 [rows] read_write. One workgroup of SGPT_SELECT_WG.
 *
 * @example Bindings of the gather and select passes
 * ```ts
 * import { sparsegptWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gather = sparsegptWgsl("gather");
 * assert.ok(gather.includes("struct U { cols: u32, i1: u32, bw: u32, r0: u32, rc: u32 }"));
 * assert.equal(gather.match(/@binding\(/g)?.length, 4); // uniform, W, dead, W1
 * const select = sparsegptWgsl("select");
 * assert.equal(select.match(/@binding\(/g)?.length, 5); // uniform, W1, Ublk, sel, rowTie
 * assert.ok(select.includes("var<storage, read_write> rowTie: array<u32>;"));
 * ```
 */
export function sparsegptWgsl(pass: SparseGPTPass): string {
  switch (pass) {
    case "ublk":
      return `
struct U { n: u32, i1: u32, bw: u32, bwPad: u32, ld: u32, r0: u32, xBegin: u32, xCount: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Ub: array<f32>;
@compute @workgroup_size(${SGPT_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let g = wid * ${SGPT_WG}u + lid;
  let width = u.n - u.i1;
  let xr = u.xBegin + g / width;
  let k = u.i1 + g % width;
  if (g / width >= u.xCount) { return; }
  let i = u.n - 1u - xr;          // U's row, in [i1, i1 + bw)
  if (k < i) { return; }          // below U's diagonal: never read
  let c = i - u.i1;
  let t = k - u.i1;
  let dst = c * u.ld + select(u.bwPad + t - u.bw, t, t < u.bw);
  Ub[dst] = X[(xr - u.r0) * u.n + (u.n - 1u - k)];
}`;
    case "gather":
      return `
struct U { cols: u32, i1: u32, bw: u32, r0: u32, rc: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> dead: array<u32>;
@group(0) @binding(3) var<storage, read_write> W1: array<f32>;
@compute @workgroup_size(${SGPT_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let g = wid * ${SGPT_WG}u + lid;
  let r = g / u.bw;
  let c = g % u.bw;
  if (r >= u.rc) { return; }
  let w = W[r * u.cols + u.i1 + c];
  W1[(u.r0 + r) * u.bw + c] = select(w, 0.0, dead[u.i1 + c] != 0u);
}`;
    case "select":
      return selectWgsl();
  }
}

function selectWgsl(): string {
  const WG = SGPT_SELECT_WG;
  return `
struct U { rows: u32, bw: u32, ld: u32, k: u32, quirk: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> W1: array<f32>;
@group(0) @binding(2) var<storage, read> Ub: array<f32>;
@group(0) @binding(3) var<storage, read_write> sel: array<u32>;
@group(0) @binding(4) var<storage, read_write> rowTie: array<u32>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> part: array<u32, ${WG}>;
var<workgroup> shDigit: u32;
var<workgroup> shRank: u32;
${SCORE}
fn key(f: u32) -> u32 {
  let c = f % u.bw;
  return scoreKey(W1[f], Ub[c * u.ld + c]);
}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  let numel = u.rows * u.bw;
  if (u.k == 0u && u.quirk == 0u) {
    // Nothing to prune: T = 0 with need = 0 selects nothing (no key is below 0).
    if (lid == 0u) { sel[0] = 0u; sel[1] = 0u; }
    for (var r = lid; r < u.rows; r += ${WG}u) { rowTie[r] = 0u; }
    return;
  }
  // Rank (0-based) of the threshold key: k - 1 (exact count), k (quirk).
  if (lid == 0u) { shRank = select(u.k - 1u, u.k, u.quirk != 0u); }
  var prefix = 0u;
  var hiMask = 0u;
  for (var p = 0u; p < 4u; p++) {
    let shift = 24u - 8u * p;
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    for (var f = lid; f < numel; f += ${WG}u) {
      let kk = key(f);
      if ((kk & hiMask) == prefix) { atomicAdd(&hist[(kk >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var r = shRank;
      var b = 0u;
      loop {
        let h = atomicLoad(&hist[b]);
        if (r < h || b == 255u) { break; }
        r -= h;
        b++;
      }
      shDigit = b;
      shRank = r;
    }
    workgroupBarrier();
    prefix |= shDigit << shift;
    hiMask |= 255u << shift;
    workgroupBarrier();
  }
  let T = prefix;
  // Ties of T in row-major order: per-row counts, then an exclusive scan over rows.
  let per = (u.rows + ${WG - 1}u) / ${WG}u;
  let r0 = min(lid * per, u.rows);
  let r1 = min(r0 + per, u.rows);
  var mine = 0u;
  for (var r = r0; r < r1; r++) {
    var n = 0u;
    for (var c = 0u; c < u.bw; c++) { n += select(0u, 1u, key(r * u.bw + c) == T); }
    rowTie[r] = n;
    mine += n;
  }
  part[lid] = mine;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0u;
    for (var t = 0u; t < ${WG}u; t++) { let v = part[t]; part[t] = run; run += v; }
    sel[0] = T;
    sel[1] = select(shRank + 1u, 0xffffffffu, u.quirk != 0u);
  }
  workgroupBarrier();
  var run = part[lid];
  for (var r = r0; r < r1; r++) { let n = rowTie[r]; rowTie[r] = run; run += n; }
}`;
}

/**
 * WGSL of the obs pass. Uniforms {cols, bw, i1, r0, rc, ld, ldE, words, nmN, nmM}: W chunk of rc
 * rows from global row r0; Ublk row stride ld; ErrT row stride ldE; `words` u32 per mask row;
 * nmM = 0 for unstructured. Bindings: W chunk read_write, W1 read, Ublk read, sel read, rowTie
 * read, ErrT read_write, mask read_write. `maxBlock` (>= bw) sizes the private row.
 *
 * @example A 128-column private row and its 4 mask words
 * ```ts
 * import { sparsegptObsWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = sparsegptObsWgsl(128);
 * assert.ok(wgsl.includes("var w: array<f32, 128>;"));
 * assert.ok(wgsl.includes("var m: array<u32, 4>;"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 8);
 * assert.ok(wgsl.includes("@compute @workgroup_size(64)"));
 * ```
 */
export function sparsegptObsWgsl(maxBlock: number): string {
  const MB = maxBlock, words = Math.ceil(MB / 32);
  return `
struct U { cols: u32, bw: u32, i1: u32, r0: u32, rc: u32, ld: u32, ldE: u32, words: u32, nmN: u32, nmM: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> W1: array<f32>;
@group(0) @binding(3) var<storage, read> Ub: array<f32>;
@group(0) @binding(4) var<storage, read> sel: array<u32>;
@group(0) @binding(5) var<storage, read> rowTie: array<u32>;
@group(0) @binding(6) var<storage, read_write> ErrT: array<f32>;
@group(0) @binding(7) var<storage, read_write> mask: array<u32>;
${SCORE}
@compute @workgroup_size(${SGPT_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let r = wid * ${SGPT_WG}u + lid;
  if (r >= u.rc) { return; }
  let gi = u.r0 + r;
  let bw = u.bw;
  var w: array<f32, ${MB}>;
  var m: array<u32, ${words}>;
  for (var c = 0u; c < bw; c++) { w[c] = W1[gi * bw + c]; }
  for (var t = 0u; t < ${words}u; t++) { m[t] = 0u; }
  if (u.nmM == 0u) {
    let T = sel[0];
    let need = sel[1];
    var tie = rowTie[gi];
    for (var c = 0u; c < bw; c++) {
      let kk = scoreKey(w[c], Ub[c * u.ld + c]);
      var p = kk < T;
      if (kk == T) { p = tie < need; tie++; }
      if (p) { m[c >> 5u] |= 1u << (c & 31u); }
    }
  }
  for (var c = 0u; c < bw; c++) {
    let d = Ub[c * u.ld + c];
    if (u.nmM != 0u && c % u.nmM == 0u) {
      // N lowest scores of columns c..c+M-1 (current weights), ties -> lower column.
      for (var t = 0u; t < u.nmM; t++) {
        let kt = scoreKey(w[c + t], Ub[(c + t) * u.ld + c + t]);
        var rank = 0u;
        for (var s = 0u; s < u.nmM; s++) {
          let ks = scoreKey(w[c + s], Ub[(c + s) * u.ld + c + s]);
          rank += select(0u, 1u, ks < kt || (ks == kt && s < t));
        }
        if (rank < u.nmN) { m[(c + t) >> 5u] |= 1u << ((c + t) & 31u); }
      }
    }
    let wc = w[c];
    let q = select(wc, 0.0, (m[c >> 5u] & (1u << (c & 31u))) != 0u);
    let e = (wc - q) / d;
    ErrT[c * u.ldE + gi] = e;
    for (var k = c + 1u; k < bw; k++) { w[k] -= e * Ub[c * u.ld + k]; }
    w[c] = q;
  }
  for (var c = 0u; c < bw; c++) { W[r * u.cols + u.i1 + c] = w[c]; }
  // Mask bits of the block's columns (a word may be shared with the previous block: OR).
  for (var c = 0u; c < bw; c++) {
    if ((m[c >> 5u] & (1u << (c & 31u))) != 0u) {
      let j = u.i1 + c;
      mask[gi * u.words + (j >> 5u)] |= 1u << (j & 31u);
    }
  }
}`;
}

/**
 * Tile sizes of the lazy update.
 *
 * @example Tiles of 4 x 8 weights, 32 invocations per workgroup
 * ```ts
 * import { lazyKey, type LazyOptions, lazyWgsl, lazyWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: LazyOptions = { tm: 4, tn: 8, workgroupSize: 32 };
 * const wgsl = lazyWgsl(o);
 * assert.ok(wgsl.includes("@compute @workgroup_size(32)"));
 * assert.equal(wgsl.match(/var c\d+_\d+ = vec4<f32>/g)?.length, 4 * (8 / 4)); // accumulators
 * assert.equal(lazyKey(o), "sparsegpt/lazy/4x8/wg32");
 * assert.equal(lazyWorkgroups(o, 64, 64), 4); // (64 / 4) * (64 / 8) tiles / 32
 * ```
 */
export interface LazyOptions {
  /** Tile rows. */
  tm: number;
  /** Multiple of 4. */
  tn: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/**
 * Pipeline cache key of {@linkcode lazyWgsl} for these options.
 *
 * @example Every tile option enters the key
 * ```ts
 * import { lazyKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const cpu = { tm: 16, tn: 16, workgroupSize: 8 };
 * assert.equal(lazyKey(cpu), lazyKey({ tm: 16, tn: 16, workgroupSize: 8 }));
 * assert.notEqual(lazyKey(cpu), lazyKey({ ...cpu, tn: 8 }));
 * assert.notEqual(lazyKey(cpu), lazyKey({ ...cpu, workgroupSize: 64 }));
 * ```
 */
export function lazyKey(o: LazyOptions): string {
  return `sparsegpt/lazy/${o.tm}x${o.tn}/wg${o.workgroupSize}`;
}

/**
 * Workgroups of a lazy update over `rows` x `cols` weights (one invocation per TM x TN tile).
 *
 * @example 100 x 30 weights in 16 x 16 tiles: 7 x 2 = 14 tiles, 2 workgroups of 8
 * ```ts
 * import { lazyWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(lazyWorkgroups({ tm: 16, tn: 16, workgroupSize: 8 }, 100, 30), 2);
 * assert.equal(lazyWorkgroups({ tm: 4, tn: 4, workgroupSize: 64 }, 100, 30), 4); // 25 x 8 tiles
 * ```
 */
export function lazyWorkgroups(o: LazyOptions, rows: number, cols: number): number {
  return Math.ceil((Math.ceil(rows / o.tm) * Math.ceil(cols / o.tn)) / o.workgroupSize);
}

/**
 * WGSL of the lazy update: `W[r][i2 + b] -= sum_c ErrT[c][r0 + r] * Ublk[c][bwPad + b]` for the
 * chunk's rows r < rc and b < width (= cols - i2). Uniforms {cols, i2, r0, rc, width, bw, ldE,
 * ld4 (Ublk row stride / 4), bwPad4 (bwPad / 4)}. Bindings: W chunk read_write, ErrT read, Ublk
 * read (as vec4). Per c: TM scalar loads of ErrT (contiguous across rows), TN / 4 vec4 loads of U.
 *
 * @example The GPU tiling (4 x 4), and a tile width that is not a multiple of 4
 * ```ts
 * import { lazyWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = lazyWgsl({ tm: 4, tn: 4, workgroupSize: 64 });
 * assert.ok(wgsl.includes("@compute @workgroup_size(64)"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 4); // uniform, W, ErrT, Ublk
 * assert.ok(wgsl.includes("var<storage, read> Ub: array<vec4<f32>>;"));
 * assert.throws(() => lazyWgsl({ tm: 4, tn: 6, workgroupSize: 64 }), /multiple of 4/);
 * ```
 */
export function lazyWgsl(o: LazyOptions): string {
  const { tm, tn } = o, tq = tn / 4;
  if (tn % 4) throw new Error("lazy tile columns must be a multiple of 4");
  const decl: string[] = [], body: string[] = [], store: string[] = [];
  for (let i = 0; i < tm; i++) for (let q = 0; q < tq; q++) decl.push(`var c${i}_${q} = vec4<f32>(0.0);`);
  for (let i = 0; i < tm; i++) body.push(`let x${i} = E[eb + min(a0 + ${i}u, u.rc - 1u)];`);
  for (let q = 0; q < tq; q++) {
    body.push(`{ let y = Ub[ub + min(bq + ${q}u, lastQ)];`);
    for (let i = 0; i < tm; i++) body.push(`  c${i}_${q} += x${i} * y;`);
    body.push("}");
  }
  for (let i = 0; i < tm; i++) {
    store.push(`if (a0 + ${i}u < u.rc) {`, `  let rw = (a0 + ${i}u) * u.cols + u.i2;`);
    for (let q = 0; q < tq; q++) {
      for (let m = 0; m < 4; m++) {
        const j = 4 * q + m;
        store.push(`  if (b0 + ${j}u < u.width) { W[rw + b0 + ${j}u] -= c${i}_${q}.${"xyzw"[m]}; }`);
      }
    }
    store.push("}");
  }
  return `
struct U { cols: u32, i2: u32, r0: u32, rc: u32, width: u32, bw: u32, ldE: u32, ld4: u32, bwPad4: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> E: array<f32>;
@group(0) @binding(3) var<storage, read> Ub: array<vec4<f32>>;
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let tile = wid * ${o.workgroupSize}u + lid;
  let tilesB = (u.width + ${tn - 1}u) / ${tn}u;
  let a0 = (tile / tilesB) * ${tm}u;
  let b0 = (tile % tilesB) * ${tn}u;
  if (a0 >= u.rc) { return; }
  let bq = b0 / 4u;
  let lastQ = (u.width - 1u) / 4u;
  ${decl.join("\n  ")}
  for (var c = 0u; c < u.bw; c++) {
    let eb = c * u.ldE + u.r0;
    let ub = c * u.ld4 + u.bwPad4;
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}
