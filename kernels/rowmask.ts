/**
 * Row-wise prune masks by radix selection (Wanda; magnitude per row): in every row of a weight
 * chunk, exactly `k` entries with the lowest score are marked pruned, ties → lower column.
 *
 * Scores are computed on the fly, never stored: `abs(W[i, j] * sqrtR[j])` (Wanda) or
 * `abs(W[i, j])` (magnitude, or a plain f32 scores buffer bound as W), one f32 product, exactly
 * the oracle's `fround(|w| * sqrtR[j])` (`abs` also maps -0 to +0). Non-negative f32 values order
 * like their u32 bit patterns, so the k-th smallest score is found by a most-significant-digit
 * radix select on the bits: each pass histograms one digit of the entries that still match the
 * digits chosen so far and picks the bin holding the wanted rank. After the last pass the
 * threshold T is exact and `r` says how many entries equal to T rank before the k-th; the mask is
 * then "score < T, plus the first r + 1 entries equal to T in column order". A row stops early
 * when the chosen bin holds exactly the r + 1 candidates still wanted (all of them are pruned,
 * so comparing the resolved high digits, `bits & hiMask`, suffices): on random rows that saves
 * one or two of the four passes. NaN scores are not supported.
 *
 * Mask format (shared by every mask kernel, see {@linkcode maskWordsPerRow}): bit-packed u32,
 * row-major, each row padded to whole words: bit b of word w of row i is column 32 * w + b,
 * 1 = pruned; padding bits are 0. Rows never share a word, so rows are written without atomics.
 *
 * Versions, simplest to fastest on their target:
 * - `lane` (CPU adapters): one invocation per row, a private histogram per pass (`radixBits`
 *   per digit), vec4 loads when cols % 4 == 0, loops unrolled by 8 columns, no barriers, no
 *   atomics. On lavapipe (2752x1024 f32, Wanda, k = 512): 8-bit digits 90 ms, 4-bit 125 ms, vec4
 *   ~10% faster than scalar; `wg` takes 365 ms there.
 * - `wg` (GPUs): a 256-invocation workgroup per row; coalesced strided loads, a workgroup-shared
 *   atomic histogram of 8-bit digits, a parallel scan to find the bin; the final pass gives each
 *   invocation one mask word per round and an exclusive scan of equal counts keeps column order.
 *   The launcher also uses it for rows too long for `lane` under llvmpipe's loop limit
 *   ({@linkcode rowMaskLaneIterations}).
 *
 * Bindings: 0 uniform {rows (in the chunk), cols, k, rowStart, wordsPerRow}; 1 W (chunk, f32 or
 * f16, row-major [rows, cols]) read; 2 sqrtR f32 [cols] read (Wanda only); then Mask u32
 * [allRows * wordsPerRow] read_write (this chunk writes rows rowStart..rowStart + rows - 1).
 * Geometry: `lane` ceil(rows / 8) workgroups of 8; `wg` one workgroup per row.
 * @module
 */
import { enableF16, type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Columns per mask word.
 *
 * @example Decode a mask read back from the GPU: bit b of word w of row i is column MASK_BITS * w + b
 * ```ts
 * import { Gpu, MASK_BITS, releaseMask, releaseMatrix, rowMask, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rows = 2, cols = 40; // |W[i, j]| = j + 1 in row 0 and 40 - j in row 1
 * const data = Float32Array.from({ length: rows * cols }, (_, e) => e < cols ? e + 1 : -(2 * cols - e));
 * const w = uploadMatrix(gpu, data, rows, cols, "w");
 * const mask = rowMask(gpu, w, null, 3); // magnitude: prune the 3 smallest |W| of each row
 * const words = await gpu.readU32(mask.buffer);
 * const bit = (i: number, j: number) =>
 *   (words[i * mask.wordsPerRow + Math.floor(j / MASK_BITS)] >>> (j % MASK_BITS)) & 1;
 * const pruned = (i: number) => [...Array(cols).keys()].filter((j) => bit(i, j));
 * assert.deepEqual(pruned(0), [0, 1, 2]);
 * assert.deepEqual(pruned(1), [37, 38, 39]); // in the second word of the row
 * releaseMask(gpu, mask);
 * releaseMatrix(gpu, w);
 * gpu.destroy();
 * ```
 */
export const MASK_BITS = 32;

/**
 * u32 words per row of a bit-packed mask over `cols` columns.
 *
 * @example Rows are padded to whole words, so a mask over 100 x 40 weights takes 100 x 2 words
 * ```ts
 * import { maskWordsPerRow } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([1, 32, 33, 40, 64, 4096].map(maskWordsPerRow), [1, 1, 2, 2, 2, 128]);
 * const maskBytes = 100 * maskWordsPerRow(40) * 4;
 * assert.equal(maskBytes, 800);
 * ```
 */
export function maskWordsPerRow(cols: number): number {
  return Math.ceil(cols / MASK_BITS);
}

/**
 * Where scores come from. Shared by the mask, outlier and N:M kernels.
 *
 * @example A Wanda source takes one more binding (sqrtR) than a magnitude source
 * ```ts
 * import { scoreBindingCount, scoreKey, type ScoreSource, scoreWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wanda: ScoreSource = { wDtype: "f32", wanda: true };
 * const magnitude: ScoreSource = { wDtype: "f32", wanda: false };
 * assert.ok(scoreWgsl(wanda).includes("return abs(W[e] * R[j]);"));
 * assert.ok(scoreWgsl(magnitude).includes("return abs(W[e]);"));
 * assert.equal(scoreBindingCount(wanda), scoreBindingCount(magnitude) + 1);
 * assert.notEqual(scoreKey(wanda), scoreKey(magnitude));
 * ```
 */
export interface ScoreSource {
  /** Element type of W. */
  wDtype: GpuDType;
  /** Wanda `|W * sqrtR|` (an f32 sqrtR binding follows W) or magnitude `|W|`. */
  wanda: boolean;
}

/**
 * Pipeline cache key fragment for a score source (weight dtype and Wanda or magnitude).
 *
 * @example The fragment names the weight dtype and the score
 * ```ts
 * import { scoreKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(scoreKey({ wDtype: "f16", wanda: true }), "f16/wanda");
 * assert.equal(scoreKey({ wDtype: "f32", wanda: false }), "f32/mag");
 * ```
 */
export function scoreKey(s: ScoreSource): string {
  return `${s.wDtype}/${s.wanda ? "wanda" : "mag"}`;
}

/**
 * Storage bindings a score source takes (W, then sqrtR for Wanda).
 *
 * @example A kernel's output binding comes right after the score's (binding 0 is the uniform)
 * ```ts
 * import { rowMaskWgsl, scoreBindingCount, type ScoreSource } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * for (const source of [{ wDtype: "f32", wanda: true }, { wDtype: "f32", wanda: false }] as ScoreSource[]) {
 *   const wgsl = rowMaskWgsl({ variant: "lane", source, radixBits: 8, vec: 1 });
 *   assert.ok(wgsl.includes(`@binding(${1 + scoreBindingCount(source)}) var<storage, read_write> Mask`));
 * }
 * assert.equal(scoreBindingCount({ wDtype: "f16", wanda: true }), 2);
 * ```
 */
export function scoreBindingCount(s: ScoreSource): number {
  return s.wanda ? 2 : 1;
}

/**
 * WGSL: the W (binding 1) and sqrtR (binding 2) declarations and `score(e, j)`, the score of flat
 * element e of the chunk in column j (both in units of `vec` elements). The shader must start
 * with `enableF16(s.wDtype)`.
 *
 * @example Build a custom kernel around the shared score function
 * ```ts
 * import { enableF16, scoreWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f16", wanda: true } as const;
 * const wgsl = `${enableF16(source.wDtype)}${scoreWgsl(source, 4)}`;
 * assert.ok(wgsl.startsWith("enable f16;"));
 * assert.ok(wgsl.includes("var<storage, read> W: array<vec4<f16>>;"));
 * assert.ok(wgsl.includes("fn score(e: u32, j: u32) -> vec4<f32> { return abs(vec4<f32>(W[e]) * R[j]); }"));
 * ```
 */
export function scoreWgsl(s: ScoreSource, vec: 1 | 4 = 1): string {
  const t = vec === 4 ? "vec4<f32>" : "f32";
  const wt = vec === 4 ? `vec4<${s.wDtype}>` : s.wDtype;
  const w = s.wDtype === "f16" ? `${t}(W[e])` : "W[e]";
  return `@group(0) @binding(1) var<storage, read> W: array<${wt}>;
${s.wanda ? `@group(0) @binding(2) var<storage, read> R: array<${t}>;` : ""}
fn score(e: u32, j: u32) -> ${t} { return abs(${s.wanda ? `${w} * R[j]` : w}); }
`;
}

/**
 * Version of the row-mask kernel: `lane` (one invocation per row, CPU adapters) or `wg` (one workgroup per
 * row, GPUs).
 *
 * @example The two versions dispatch differently over a 100-row chunk
 * ```ts
 * import { rowMaskWorkgroups, type RowMaskVariant } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const workgroups = (variant: RowMaskVariant) =>
 *   rowMaskWorkgroups({ variant, source: { wDtype: "f32", wanda: true }, radixBits: 8, vec: 4 }, 100);
 * assert.equal(workgroups("lane"), 13); // 8 rows per workgroup
 * assert.equal(workgroups("wg"), 100); // one workgroup per row
 * ```
 */
export type RowMaskVariant = "lane" | "wg";

/**
 * Compile-time options of the row-mask kernel.
 *
 * @example The CPU version for a Wanda mask over f32 weights with cols % 4 == 0, 4-bit digits
 * ```ts
 * import { rowMaskKey, type RowMaskOptions, rowMaskWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f32", wanda: true } as const;
 * const o: RowMaskOptions = { variant: "lane", source, radixBits: 4, vec: 4 };
 * const wgsl = rowMaskWgsl(o);
 * assert.ok(wgsl.includes("var<private> hist: array<u32, 16>;")); // 2^4 bins per digit
 * assert.ok(wgsl.includes("for (var p = 0u; p < 8u; p++)")); // 32 / 4 passes
 * assert.equal(rowMaskKey(o), "rowmask/lane/f32/wanda/r4/v4");
 * ```
 */
export interface RowMaskOptions {
  /** Kernel version. */
  variant: RowMaskVariant;
  /** The score (Wanda or magnitude) and the weight dtype. */
  source: ScoreSource;
  /** Bits per radix digit (`lane` only; `wg` always uses 8). */
  radixBits: 4 | 8;
  /** `lane` only: 4 (vec4 loads of W and sqrtR) when cols % 4 == 0, else 1. */
  vec: 1 | 4;
}

/**
 * Invocations per workgroup of the `lane` version.
 *
 * @example A `lane` dispatch runs one row per invocation
 * ```ts
 * import { ROWMASK_LANE_WG, type RowMaskOptions, rowMaskWgsl, rowMaskWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f32", wanda: false } as const;
 * const o: RowMaskOptions = { variant: "lane", source, radixBits: 8, vec: 1 };
 * assert.ok(rowMaskWgsl(o).includes(`@workgroup_size(${ROWMASK_LANE_WG})`));
 * assert.equal(rowMaskWorkgroups(o, 100), Math.ceil(100 / ROWMASK_LANE_WG));
 * ```
 */
export const ROWMASK_LANE_WG = 8;
const WG = 256;
/**
 * Columns per loop iteration of `lane`. Besides saving loop overhead this keeps a row's passes
 * under llvmpipe's limit of 65535 loop iterations per invocation (Mesa's gallivm loop limiter
 * silently ends longer loops): 14336 columns take ~9k iterations.
 */
const UNROLL = 8;

/**
 * Pipeline cache key of {@linkcode rowMaskWgsl} for these options.
 *
 * @example Options a version ignores do not split the cache
 * ```ts
 * import { rowMaskKey, type RowMaskOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f32", wanda: true } as const;
 * const lane: RowMaskOptions = { variant: "lane", source, radixBits: 8, vec: 4 };
 * assert.notEqual(rowMaskKey(lane), rowMaskKey({ ...lane, radixBits: 4 }));
 * assert.notEqual(rowMaskKey(lane), rowMaskKey({ ...lane, variant: "wg" }));
 * // `wg` always uses 8-bit digits and scalar loads: radixBits and vec do not change its kernel.
 * const wg: RowMaskOptions = { ...lane, variant: "wg" };
 * assert.equal(rowMaskKey(wg), rowMaskKey({ ...wg, radixBits: 4, vec: 1 }));
 * ```
 */
export function rowMaskKey(o: RowMaskOptions): string {
  const lane = o.variant === "lane" ? `/r${o.radixBits}/v${o.vec}` : "";
  return `rowmask/${o.variant}/${scoreKey(o.source)}${lane}`;
}

/**
 * An upper bound on llvmpipe's loop count (iterations plus one exit per loop, see CPU_LOOP_LIMIT
 * in common.ts) of one `lane` invocation on a row of `cols`, vec4 or scalar: per pass the
 * unrolled walk and its tail (at most ceil(cols / UNROLL) + UNROLL - 2 iterations, 2 exits), the
 * bin search (at most `bins`), the pass loop's own step; then the mask words, one partial word's
 * tail (at most 32 with its exit) and the remaining exits. Must stay under 65535.
 *
 * @example Rows short enough for `lane` under llvmpipe's limit, and one that is not
 * ```ts
 * import { rowMaskLaneIterations } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // 14336 columns, 8-bit digits: 4 passes of (1792 + 8 + 256 + 1), then 448 words + 36.
 * assert.equal(rowMaskLaneIterations(14336, 8), 8712);
 * assert.ok(rowMaskLaneIterations(14336, 4) < 65535);
 * assert.ok(rowMaskLaneIterations(500_000, 8) >= 65535); // the launcher uses `wg` for such rows
 * ```
 */
export function rowMaskLaneIterations(cols: number, radixBits: 4 | 8): number {
  const passes = 32 / radixBits, bins = 1 << radixBits;
  return passes * (Math.ceil(cols / UNROLL) + UNROLL + bins + 1) + maskWordsPerRow(cols) + 36;
}

/**
 * Workgroups of a dispatch over `rows` rows of a weight chunk.
 *
 * @example 37 rows: 5 `lane` workgroups of 8 rows, or 37 `wg` workgroups
 * ```ts
 * import { rowMaskWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f16", wanda: false } as const;
 * assert.equal(rowMaskWorkgroups({ variant: "lane", source, radixBits: 8, vec: 1 }, 37), 5);
 * assert.equal(rowMaskWorkgroups({ variant: "wg", source, radixBits: 8, vec: 1 }, 37), 37);
 * ```
 */
export function rowMaskWorkgroups(o: RowMaskOptions, rows: number): number {
  return o.variant === "wg" ? rows : Math.ceil(rows / ROWMASK_LANE_WG);
}

function prelude(o: RowMaskOptions, vec: 1 | 4): string {
  const maskBinding = 1 + scoreBindingCount(o.source);
  const ut = vec === 4 ? "vec4<u32>" : "u32";
  return `${enableF16(o.source.wDtype)}
struct U { rows: u32, cols: u32, k: u32, rowStart: u32, wordsPerRow: u32 }
@group(0) @binding(0) var<uniform> u: U;
${scoreWgsl(o.source, vec)}
@group(0) @binding(${maskBinding}) var<storage, read_write> Mask: array<u32>;
fn bits(e: u32, j: u32) -> ${ut} { return bitcast<${ut}>(score(e, j)); }
`;
}

/** `f(j)` for j = j0 .. j0 + n - 1, as straight-line statements. */
function unrolled(f: (j: string, t: number) => string, j0: string, n: number): string {
  return Array.from({ length: n }, (_, t) => f(`${j0} + ${t}u`, t)).join("\n      ");
}

function laneKernel(o: RowMaskOptions): string {
  const B = o.radixBits, bins = 1 << B, V = o.vec;
  const step = UNROLL / V; // vector elements per loop iteration
  const perWord = 32 / V; // vector elements per mask word
  const tally = (j: string) => `tallyV(bits(base + ${j}, ${j}));`;
  // Vector helpers: lanes in column order (pruned() has a side effect, so one statement each).
  const tallyV = V === 4 ? "tally(v.x); tally(v.y); tally(v.z); tally(v.w);" : "tally(v);";
  const prunedV = V === 4
    ? "var m = pruned(v.x); m |= pruned(v.y) << 1u; m |= pruned(v.z) << 2u; m |= pruned(v.w) << 3u; return m;"
    : "return pruned(v);";
  const ut = V === 4 ? "vec4<u32>" : "u32";
  return `${prelude(o, V)}
var<private> hist: array<u32, ${bins}>;
var<private> prefix: u32;  // digits chosen so far (the threshold, after the last pass)
var<private> hiMask: u32;  // bits those digits cover
var<private> shift: u32;
var<private> eqLeft: u32;  // entries equal to the threshold still to prune
fn tally(v: u32) {
  if ((v & hiMask) == prefix) { hist[(v >> shift) & ${bins - 1}u]++; }
}
fn tallyV(v: ${ut}) { ${tallyV} }
fn pruned(v: u32) -> u32 {
  let t = v & hiMask;
  if (t < prefix) { return 1u; }
  if (t == prefix && eqLeft > 0u) {
    eqLeft--;
    return 1u;
  }
  return 0u;
}
fn prunedV(v: ${ut}) -> u32 { ${prunedV} }
@compute @workgroup_size(${ROWMASK_LANE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${ROWMASK_LANE_WG}u + lid;
  if (i >= u.rows) { return; }
  let cv = u.cols / ${V}u;
  let base = i * cv;
  let out = (u.rowStart + i) * u.wordsPerRow;
  let full = cv & ~${step - 1}u;
  var r = u.k - 1u; // rank wanted among the entries matching prefix
  if (u.k > 0u) {
    for (var p = 0u; p < ${32 / B}u; p++) {
      shift = ${32 - B}u - p * ${B}u;
      hist = array<u32, ${bins}>();
      for (var j = 0u; j < full; j += ${step}u) {
      ${unrolled(tally, "j", step)}
      }
      for (var j = full; j < cv; j++) { ${tally("j")} }
      var b = 0u;
      loop {
        if (r < hist[b]) { break; }
        r -= hist[b];
        b++;
      }
      prefix |= b << shift;
      hiMask |= ${bins - 1}u << shift;
      if (hist[b] == r + 1u) { break; } // every candidate left is pruned: no need to go on
    }
    eqLeft = r + 1u;
  }
  // Prune everything whose resolved digits are below prefix and the first r + 1 entries equal
  // to it (k = 0: prefix, hiMask and eqLeft are 0 and nothing is pruned).
  for (var w = 0u; w < u.wordsPerRow; w++) {
    let c0 = w * ${perWord}u;
    var word = 0u;
    if (c0 + ${perWord}u <= cv) {
      ${unrolled((j, t) => `word |= prunedV(bits(base + ${j}, ${j})) << ${t * V}u;`, "c0", perWord)}
    } else {
      for (var j = c0; j < cv; j++) { word |= prunedV(bits(base + j, j)) << ((j - c0) * ${V}u); }
    }
    Mask[out + w] = word;
  }
}`;
}

function wgKernel(o: RowMaskOptions): string {
  return `${prelude(o, 1)}
var<workgroup> hist: array<atomic<u32>, ${WG}>;
var<workgroup> scan: array<u32, ${WG}>;
var<workgroup> chosen: vec3<u32>; // (bin, rank left inside it, entries in it)

// Inclusive prefix sum of scan[] (Hillis-Steele); every invocation returns its own entry.
fn inclusiveScan(lid: u32, x: u32) -> u32 {
  var acc = x;
  for (var d = 1u; d < ${WG}u; d <<= 1u) {
    scan[lid] = acc;
    workgroupBarrier();
    if (lid >= d) { acc += scan[lid - d]; }
    workgroupBarrier();
  }
  return acc;
}

@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid;
  let base = i * u.cols;
  let out = (u.rowStart + i) * u.wordsPerRow;
  let k = u.k;
  var prefix = 0u;
  var hiMask = 0u;
  var r = max(k, 1u) - 1u;
  for (var shift = 24i; shift >= 0i; shift -= 8i) {
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    for (var j = lid; j < u.cols; j += ${WG}u) {
      let v = bits(base + j, j);
      if ((v & hiMask) == prefix) { atomicAdd(&hist[(v >> u32(shift)) & 255u], 1u); }
    }
    workgroupBarrier();
    let h = atomicLoad(&hist[lid]);
    let incl = inclusiveScan(lid, h);
    if (incl - h <= r && r < incl) { chosen = vec3<u32>(lid, r - (incl - h), h); }
    let c = workgroupUniformLoad(&chosen);
    prefix |= c.x << u32(shift);
    hiMask |= 255u << u32(shift);
    r = c.y;
    if (c.z == r + 1u) { break; } // every candidate left is pruned
  }
  // One mask word per invocation per round; equal entries take their rank from a scan.
  let need = select(0u, r + 1u, k > 0u);
  var carry = 0u;
  for (var w0 = 0u; w0 < u.wordsPerRow; w0 += ${WG}u) {
    let w = w0 + lid;
    let c0 = w * 32u;
    let c1 = min(u.cols, c0 + 32u);
    var below = 0u;
    var equal = 0u;
    for (var j = c0; j < c1; j++) {
      let v = bits(base + j, j) & hiMask;
      below |= select(0u, 1u << (j - c0), v < prefix);
      equal |= select(0u, 1u << (j - c0), v == prefix);
    }
    let n = countOneBits(equal);
    let incl = inclusiveScan(lid, n);
    var rank = carry + incl - n;
    var word = select(0u, below, k > 0u);
    var m = equal;
    while (m != 0u && rank < need) {
      word |= m & (~m + 1u); // lowest set bit
      m &= m - 1u;
      rank++;
    }
    if (w < u.wordsPerRow) { Mask[out + w] = word; }
    scan[lid] = incl;
    workgroupBarrier();
    carry += scan[${WG - 1}u];
    workgroupBarrier();
  }
}`;
}

/**
 * WGSL for the chosen row-mask version.
 *
 * @example The GPU version: a 256-invocation workgroup per row with a shared histogram
 * ```ts
 * import { rowMaskWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = rowMaskWgsl({ variant: "wg", source: { wDtype: "f32", wanda: true }, radixBits: 8, vec: 1 });
 * assert.ok(wgsl.includes("@compute @workgroup_size(256)"));
 * assert.ok(wgsl.includes("var<workgroup> hist: array<atomic<u32>, 256>;"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 4); // uniform, W, sqrtR, Mask
 * ```
 */
export function rowMaskWgsl(o: RowMaskOptions): string {
  return o.variant === "wg" ? wgKernel(o) : laneKernel(o);
}
