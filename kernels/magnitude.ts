/**
 * Whole-matrix threshold masks (magnitude pruning): exactly `k` entries of a matrix (all its row
 * chunks) with the smallest score are pruned, ties → lower flat (row-major) index; or the
 * reference's quirk, every entry `<=` the value at sorted index k. The score is `abs(W)` (see
 * rowmask.ts, {@linkcode scoreWgsl}); non-negative f32 values order like their u32 bits.
 *
 * The host drives a most-significant-digit radix select, 8 bits per pass:
 * 1. `hist` (4 passes, shift 24, 16, 8, 0): over every chunk, the 256-bin histogram of digit
 *    `(bits >> shift) & 255` among entries whose higher bits equal `prefix` (`bits & hiMask`),
 *    accumulated with u32 atomics in Hist [256]; the host reads it back and picks the bin that
 *    holds the wanted rank. After 4 passes the threshold T is exact; the host stops early when
 *    every candidate left in the chosen bin is pruned (then T is the resolved high digits and
 *    entries compare on those digits only, `bits & hiMask`).
 * 2. `eq`: per segment of `seg` mask words (segments follow flat order, chunk after chunk), the
 *    count of entries equal to T, into SegCount[outOffset + g]. The host turns the counts into
 *    exclusive prefix sums (the flat rank of each segment's first tie).
 * 3. `write`: per segment, the mask words: `bits < T`, or `bits == T` and the tie's flat rank
 *    `< need` (need = ties to prune; 0xffffffff prunes every tie, which is the quirk).
 *
 * Mask format: rowmask.ts (bit-packed u32, rows padded to whole words, 1 = pruned).
 *
 * `hist` versions: `lane` (CPU adapters): each invocation histograms a contiguous run of `seg`
 * elements into a private array, then adds its non-zero bins to Hist with atomics; `wg` (GPUs):
 * a 256-invocation workgroup reads a tile of 256 * 16 elements with a stride of 256 (coalesced)
 * into a workgroup-shared atomic histogram, then adds its non-zero bins to Hist. `eq` and
 * `write` have one version: an invocation per segment (the host picks `seg`, long on CPUs).
 * Every invocation stays far below llvmpipe's 65535 loop iterations (8192 elements, or `seg`
 * words of 32).
 *
 * Bindings (binding 0 is the uniform block):
 * - hist: {n, seg, hiMask, prefix, shift}; 1 W chunk (f32 or f16) read; 2 Hist atomic u32 [256].
 * - eq: {rows, cols, wordsPerRow, seg, outOffset, thresh, hiMask, need, rowStart}; 1 W;
 *   2 SegCount u32.
 * - write: same uniforms; 1 W; 2 Base u32 (exclusive prefix per segment) read; 3 Mask u32.
 * @module
 */
import { enableF16, type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";
import { scoreWgsl } from "./rowmask.ts";

/**
 * Version of the `hist` pass: `lane` (private histograms, CPU adapters) or `wg` (workgroup-shared histogram,
 * GPUs).
 *
 * @example Where each version keeps its histogram, and how many workgroups a million entries take
 * ```ts
 * import { type MagnitudeHistVariant, magnitudeHistWorkgroups, magnitudeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const variants: MagnitudeHistVariant[] = ["lane", "wg"];
 * const [lane, wg] = variants.map((variant) => ({ pass: "hist" as const, variant, wDtype: "f32" as const }));
 * assert(magnitudeWgsl(lane).includes("var hist: array<u32, 257>;")); // private, per invocation
 * assert(magnitudeWgsl(wg).includes("var<workgroup> hist: array<atomic<u32>, 257>;"));
 * assert.equal(magnitudeHistWorkgroups(lane, 1_000_000), Math.ceil(1_000_000 / (8192 * 8)));
 * assert.equal(magnitudeHistWorkgroups(wg, 1_000_000), Math.ceil(1_000_000 / (256 * 16)));
 * ```
 */
export type MagnitudeHistVariant = "lane" | "wg";
/**
 * The passes of the radix select: `hist` (digit histogram), `eq` (ties per segment) and `write` (mask words).
 *
 * @example What each pass writes (binding 0 is the uniform block, binding 1 the weights)
 * ```ts
 * import { type MagnitudePass, magnitudeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const outputs: Record<MagnitudePass, string> = {
 *   hist: "@group(0) @binding(2) var<storage, read_write> Hist: array<atomic<u32>, 256>;",
 *   eq: "@group(0) @binding(2) var<storage, read_write> SegCount: array<u32>;",
 *   write: "@group(0) @binding(3) var<storage, read_write> Mask: array<u32>;",
 * };
 * for (const [pass, decl] of Object.entries(outputs) as [MagnitudePass, string][]) {
 *   assert(magnitudeWgsl({ pass, variant: "lane", wDtype: "f32" }).includes(decl));
 * }
 * ```
 */
export type MagnitudePass = "hist" | "eq" | "write";

/**
 * Compile-time options of a magnitude-mask pass.
 *
 * @example The `write` pass over f16 weights (`variant` only matters to `hist`)
 * ```ts
 * import { magnitudeKey, type MagnitudeOptions, magnitudeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: MagnitudeOptions = { pass: "write", variant: "lane", wDtype: "f16" };
 * const wgsl = magnitudeWgsl(o);
 * assert(wgsl.startsWith("enable f16;"));
 * assert(wgsl.includes("var<storage, read> W: array<f16>;"));
 * assert.equal(magnitudeKey(o), "magnitude/write/-/f16");
 * ```
 */
export interface MagnitudeOptions {
  /** Which pass of the radix select. */
  pass: MagnitudePass;
  /** `hist` only. */
  variant: MagnitudeHistVariant;
  /** Storage dtype of W. */
  wDtype: GpuDType;
}

/**
 * Invocations per workgroup of the `lane` hist version and of the `eq` and `write` passes.
 *
 * @example Size an `eq` dispatch: one invocation per segment, MAGNITUDE_LANE_WG per workgroup
 * ```ts
 * import { MAGNITUDE_LANE_WG, magnitudeSegments, magnitudeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = magnitudeWgsl({ pass: "eq", variant: "lane", wDtype: "f32" });
 * assert(wgsl.includes(`@compute @workgroup_size(${MAGNITUDE_LANE_WG})`));
 * const segments = magnitudeSegments(100, 4, 16); // 100 rows of 4 mask words, 16 words a segment
 * assert.equal(segments, 25);
 * assert.equal(Math.ceil(segments / MAGNITUDE_LANE_WG), 4); // workgroups to dispatch
 * ```
 */
export const MAGNITUDE_LANE_WG = 8;
/**
 * Elements per `lane` hist invocation.
 *
 * @example A `lane` hist workgroup covers MAGNITUDE_LANE_WG runs of MAGNITUDE_HIST_SEG elements
 * ```ts
 * import { MAGNITUDE_HIST_SEG, MAGNITUDE_LANE_WG, magnitudeHistWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const lane = { pass: "hist", variant: "lane", wDtype: "f32" } as const;
 * const perWorkgroup = MAGNITUDE_HIST_SEG * MAGNITUDE_LANE_WG;
 * assert.equal(magnitudeHistWorkgroups(lane, perWorkgroup), 1);
 * assert.equal(magnitudeHistWorkgroups(lane, perWorkgroup + 1), 2);
 * assert(MAGNITUDE_HIST_SEG < 65535); // one loop iteration per element stays under llvmpipe's loop limit
 * ```
 */
export const MAGNITUDE_HIST_SEG = 8192;
const WG = 256;
const ITEMS = 16;

/**
 * Pipeline cache key of {@linkcode magnitudeWgsl} for these options.
 *
 * @example The `hist` versions differ; `eq` and `write` have one version, so `variant` is not in their key
 * ```ts
 * import { magnitudeKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.notEqual(
 *   magnitudeKey({ pass: "hist", variant: "lane", wDtype: "f32" }),
 *   magnitudeKey({ pass: "hist", variant: "wg", wDtype: "f32" }),
 * );
 * assert.equal(
 *   magnitudeKey({ pass: "eq", variant: "lane", wDtype: "f32" }),
 *   magnitudeKey({ pass: "eq", variant: "wg", wDtype: "f32" }),
 * );
 * assert.notEqual(
 *   magnitudeKey({ pass: "eq", variant: "lane", wDtype: "f32" }),
 *   magnitudeKey({ pass: "eq", variant: "lane", wDtype: "f16" }),
 * );
 * ```
 */
export function magnitudeKey(o: MagnitudeOptions): string {
  return `magnitude/${o.pass}/${o.pass === "hist" ? o.variant : "-"}/${o.wDtype}`;
}

/**
 * Workgroups of a `hist` dispatch over n elements.
 *
 * @example A 288 x 768 matrix (221184 entries) under both versions
 * ```ts
 * import { magnitudeHistWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const n = 288 * 768;
 * const lane = { pass: "hist", variant: "lane", wDtype: "f32" } as const;
 * assert.equal(magnitudeHistWorkgroups(lane, n), 4); // 65536 entries each
 * assert.equal(magnitudeHistWorkgroups({ ...lane, variant: "wg" }, n), 54); // 4096 entries each
 * ```
 */
export function magnitudeHistWorkgroups(o: MagnitudeOptions, n: number): number {
  return o.variant === "wg"
    ? Math.ceil(n / (WG * ITEMS))
    : Math.ceil(n / MAGNITUDE_HIST_SEG / MAGNITUDE_LANE_WG);
}

function histKernel(o: MagnitudeOptions): string {
  const head = `${enableF16(o.wDtype)}
struct U { n: u32, seg: u32, hiMask: u32, prefix: u32, shift: u32 }
@group(0) @binding(0) var<uniform> u: U;
${scoreWgsl({ wDtype: o.wDtype, wanda: false })}
@group(0) @binding(2) var<storage, read_write> Hist: array<atomic<u32>, 256>;
fn digit(e: u32) -> u32 {
  let v = bitcast<u32>(score(e, 0u));
  return select(256u, (v >> u.shift) & 255u, (v & u.hiMask) == u.prefix); // 256: not a candidate
}`;
  if (o.variant === "lane") {
    return `${head}
@compute @workgroup_size(${MAGNITUDE_LANE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let e0 = (wid * ${MAGNITUDE_LANE_WG}u + lid) * u.seg;
  if (e0 >= u.n) { return; }
  let e1 = min(u.n, e0 + u.seg);
  var hist: array<u32, 257>;
  for (var e = e0; e < e1; e++) { hist[digit(e)]++; }
  for (var b = 0u; b < 256u; b++) {
    if (hist[b] > 0u) { atomicAdd(&Hist[b], hist[b]); }
  }
}`;
  }
  return `${head}
var<workgroup> hist: array<atomic<u32>, 257>;
@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let t0 = wid * ${WG * ITEMS}u;
  for (var it = 0u; it < ${ITEMS}u; it++) {
    let e = t0 + it * ${WG}u + lid;
    if (e < u.n) { atomicAdd(&hist[digit(e)], 1u); }
  }
  workgroupBarrier();
  let h = atomicLoad(&hist[lid]);
  if (h > 0u) { atomicAdd(&Hist[lid], h); }
}`;
}

function segmentKernel(o: MagnitudeOptions): string {
  const write = o.pass === "write";
  const bindings = write
    ? `@group(0) @binding(2) var<storage, read> Base: array<u32>;
@group(0) @binding(3) var<storage, read_write> Mask: array<u32>;`
    : "@group(0) @binding(2) var<storage, read_write> SegCount: array<u32>;";
  const inner = write
    ? `var p = v < u.thresh;
        if (v == u.thresh) {
          p = rank < u.need;
          rank++;
        }
        word |= select(0u, 1u << (j - c0), p);`
    : "rank += select(0u, 1u, v == u.thresh);";
  return `${enableF16(o.wDtype)}
struct U {
  rows: u32, cols: u32, wordsPerRow: u32, seg: u32, outOffset: u32, thresh: u32, hiMask: u32, need: u32, rowStart: u32,
}
@group(0) @binding(0) var<uniform> u: U;
${scoreWgsl({ wDtype: o.wDtype, wanda: false })}
${bindings}
@compute @workgroup_size(${MAGNITUDE_LANE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let g = wid * ${MAGNITUDE_LANE_WG}u + lid;
  let units = u.rows * u.wordsPerRow;
  let q0 = g * u.seg;
  if (q0 >= units) { return; }
  let q1 = min(units, q0 + u.seg);
  var rank = ${write ? "Base[u.outOffset + g]" : "0u"};
  for (var q = q0; q < q1; q++) {
    let row = q / u.wordsPerRow;
    let c0 = (q - row * u.wordsPerRow) * 32u;
    let c1 = min(u.cols, c0 + 32u);
    let e0 = row * u.cols;
    ${write ? "var word = 0u;" : ""}
    for (var j = c0; j < c1; j++) {
      let v = bitcast<u32>(score(e0 + j, 0u)) & u.hiMask;
      ${inner}
    }
    ${write ? "Mask[u.rowStart * u.wordsPerRow + q] = word;" : ""}
  }
  ${write ? "" : "SegCount[u.outOffset + g] = rank;"}
}`;
}

/**
 * Segments (invocations) of an `eq`/`write` dispatch over a chunk of `rows` rows.
 *
 * @example 3 rows of 2 mask words (64 columns) in segments of 4 words
 * ```ts
 * import { magnitudeSegments } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(magnitudeSegments(3, 2, 4), 2); // 6 words: one full segment and one of 2 words
 * assert.equal(magnitudeSegments(3, 2, 1), 6);
 * assert.equal(magnitudeSegments(3, 2, 100), 1);
 * ```
 */
export function magnitudeSegments(rows: number, wordsPerRow: number, seg: number): number {
  return Math.ceil((rows * wordsPerRow) / seg);
}

/**
 * WGSL for one pass.
 *
 * @example The `hist` pass: a histogram of one 8-bit digit of the bits of |W|
 * ```ts
 * import { magnitudeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = magnitudeWgsl({ pass: "hist", variant: "wg", wDtype: "f32" });
 * assert(wgsl.includes("@compute @workgroup_size(256)"));
 * assert(wgsl.includes("fn score(e: u32, j: u32) -> f32 { return abs(W[e]); }"));
 * assert(wgsl.includes("(v >> u.shift) & 255u"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 3); // uniforms, W, Hist
 * ```
 */
export function magnitudeWgsl(o: MagnitudeOptions): string {
  return o.pass === "hist" ? histKernel(o) : segmentKernel(o);
}
