/**
 * OWL's outlier statistics over Wanda scores that are never stored: a block's 7 linears are one
 * population, each weight chunk is one dispatch, and `score(e, j) = abs(W[e] * sqrtR[j])` is
 * recomputed from the weights (see rowmask.ts, {@linkcode scoreWgsl}).
 *
 * Passes:
 * - `sum`: partial sums of the scores, one f32 per invocation (`lane`) or per workgroup (`wg`),
 *   written at `outOffset + index`; the host adds the partials in float64. Each partial adds at
 *   most a few thousand scores in short runs (64 per inner accumulator, or a pairwise tree
 *   across the workgroup), so the f32 error stays near 1e-7 relative however large the block.
 * - `count`: the number of scores strictly greater than the f32 threshold `thresh` (host:
 *   `fround(M * mean)`), exact: each invocation counts privately, one u32 atomicAdd per
 *   invocation (`lane`) or per workgroup (`wg`).
 *
 * Versions: `lane` (CPU adapters) gives each invocation a contiguous run of `seg` vector elements
 * (1024: well under llvmpipe's 65535 loop iterations per invocation) and no barriers; `wg` (GPUs)
 * gives a 256-invocation workgroup a tile of 256 * 16 vector elements read with a stride of 256
 * (coalesced), then a shared-memory tree reduction. On lavapipe both take ~190 ms for the two
 * passes over a 12.6M-weight block (hidden 1024, intermediate 2752), `lane` slightly ahead.
 *
 * Bindings: 0 uniform {n (chunk elements / vec), colsV (cols / vec), seg, outOffset, thresh f32};
 * 1 W chunk (f32 or f16, vec4 when cols % 4 == 0); 2 sqrtR f32 [cols] (Wanda); then
 * `sum`: Partial f32 read_write, `count`: Count atomic u32 [1].
 * @module
 */
import { enableF16, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";
import { scoreBindingCount, scoreKey, type ScoreSource, scoreWgsl } from "./rowmask.ts";

/**
 * Version of the outlier kernels: `lane` (contiguous runs per invocation, CPU adapters) or `wg` (coalesced
 * workgroup tiles, GPUs).
 *
 * @example Pick the version for the adapter; the two split a chunk into different partials
 * ```ts
 * import { outlierPartials, type OutlierVariant, outlierWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const variantFor = (isCpu: boolean): OutlierVariant => isCpu ? "lane" : "wg";
 * const source = { wDtype: "f32", wanda: true } as const;
 * const lane = outlierWgsl({ variant: variantFor(true), pass: "sum", source, vec: 4 });
 * const wg = outlierWgsl({ variant: variantFor(false), pass: "sum", source, vec: 4 });
 * assert.ok(lane.includes("@workgroup_size(8)") && wg.includes("@workgroup_size(256)"));
 * // 10000 vector elements: runs of 1024 per lane, tiles of 256 * 16 per workgroup.
 * assert.equal(outlierPartials("lane", 10000), 10);
 * assert.equal(outlierPartials("wg", 10000), 3);
 * ```
 */
export type OutlierVariant = "lane" | "wg";
/**
 * The outlier passes: `sum` (partial sums of the scores) and `count` (scores above a threshold).
 *
 * @example The two passes write different outputs: f32 partial sums, or one atomic counter
 * ```ts
 * import { outlierKey, type OutlierPass, outlierWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f32", wanda: false } as const;
 * const options = (pass: OutlierPass) => ({ variant: "lane", pass, source, vec: 1 }) as const;
 * assert.ok(outlierWgsl(options("sum")).includes("Partial: array<f32>"));
 * assert.ok(outlierWgsl(options("count")).includes("Count: array<atomic<u32>>"));
 * assert.notEqual(outlierKey(options("sum")), outlierKey(options("count")));
 * ```
 */
export type OutlierPass = "sum" | "count";

/**
 * Compile-time options of an outlier-statistics kernel.
 *
 * @example Options for the Wanda count pass over an f16 weight with cols % 4 == 0
 * ```ts
 * import { outlierKey, type OutlierOptions, outlierWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: OutlierOptions = { variant: "wg", pass: "count", source: { wDtype: "f16", wanda: true }, vec: 4 };
 * const wgsl = outlierWgsl(o);
 * assert.ok(wgsl.startsWith("enable f16;"));
 * assert.ok(wgsl.includes("array<vec4<f16>>")); // W read 4 columns at a time
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 4); // uniform, W, sqrtR, Count
 * assert.equal(outlierKey(o), "outliers/wg/count/f16/wanda/v4");
 * ```
 */
export interface OutlierOptions {
  /** Kernel version. */
  variant: OutlierVariant;
  /** Which pass. */
  pass: OutlierPass;
  /** The score (Wanda or magnitude) and the weight dtype. */
  source: ScoreSource;
  /** 4 when cols % 4 == 0, else 1. */
  vec: 1 | 4;
}

/**
 * Invocations per workgroup of the `lane` version.
 *
 * @example Size a `lane` dispatch: one invocation per partial, OUTLIER_LANE_WG per workgroup
 * ```ts
 * import { OUTLIER_LANE_WG, outlierPartials, outlierWgsl, outlierWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o = { variant: "lane", pass: "sum", source: { wDtype: "f32", wanda: true }, vec: 1 } as const;
 * assert.ok(outlierWgsl(o).includes(`@workgroup_size(${OUTLIER_LANE_WG})`));
 * const n = 50_000; // vector elements of the chunk
 * assert.equal(outlierPartials("lane", n), 49);
 * assert.equal(outlierWorkgroups(o, n), Math.ceil(49 / OUTLIER_LANE_WG));
 * ```
 */
export const OUTLIER_LANE_WG = 8;
/**
 * Vector elements per `lane` invocation.
 *
 * @example A 1000 x 1000 f32 weight read as vec4 is 250000 vector elements: 245 `lane` partials
 * ```ts
 * import { OUTLIER_LANE_SEG, outlierPartials } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const n = (1000 * 1000) / 4;
 * assert.equal(outlierPartials("lane", n), Math.ceil(n / OUTLIER_LANE_SEG));
 * assert.equal(outlierPartials("lane", n), 245);
 * assert.ok(OUTLIER_LANE_SEG < 65535); // one run stays under llvmpipe's loop limit
 * ```
 */
export const OUTLIER_LANE_SEG = 1024;
const WG = 256;
const ITEMS = 16;

/**
 * Pipeline cache key of {@linkcode outlierWgsl} for these options.
 *
 * @example Equal options share a pipeline; any difference gives another
 * ```ts
 * import { outlierKey, type OutlierOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const a: OutlierOptions = { variant: "lane", pass: "sum", source: { wDtype: "f32", wanda: true }, vec: 4 };
 * assert.equal(outlierKey(a), outlierKey({ ...a, source: { wDtype: "f32", wanda: true } }));
 * assert.notEqual(outlierKey(a), outlierKey({ ...a, vec: 1 }));
 * assert.notEqual(outlierKey(a), outlierKey({ ...a, variant: "wg" }));
 * assert.notEqual(outlierKey(a), outlierKey({ ...a, source: { wDtype: "f16", wanda: true } }));
 * ```
 */
export function outlierKey(o: OutlierOptions): string {
  return `outliers/${o.variant}/${o.pass}/${scoreKey(o.source)}/v${o.vec}`;
}

/**
 * Partial sums one dispatch writes over `n` vector elements (the `sum` pass's output count).
 *
 * @example Size the partials buffer of the `sum` pass for a chunk of 8193 vector elements
 * ```ts
 * import { outlierPartials } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(outlierPartials("lane", 8193), 9); // ceil(8193 / 1024)
 * assert.equal(outlierPartials("wg", 8193), 3); // ceil(8193 / (256 * 16))
 * const partialBytes = outlierPartials("wg", 8193) * 4; // one f32 each, added on the host
 * assert.equal(partialBytes, 12);
 * ```
 */
export function outlierPartials(variant: OutlierVariant, n: number): number {
  return variant === "wg" ? Math.ceil(n / (WG * ITEMS)) : Math.ceil(n / OUTLIER_LANE_SEG);
}

/**
 * Workgroups of a dispatch over `n` vector elements of a weight chunk.
 *
 * @example `wg` runs one workgroup per partial, `lane` packs 8 partials into a workgroup
 * ```ts
 * import { outlierWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f32", wanda: false } as const;
 * assert.equal(outlierWorkgroups({ variant: "wg", pass: "count", source, vec: 1 }, 8193), 3);
 * assert.equal(outlierWorkgroups({ variant: "lane", pass: "count", source, vec: 1 }, 8193), 2); // 9 lanes
 * ```
 */
export function outlierWorkgroups(o: OutlierOptions, n: number): number {
  const p = outlierPartials(o.variant, n);
  return o.variant === "wg" ? p : Math.ceil(p / OUTLIER_LANE_WG);
}

function prelude(o: OutlierOptions): string {
  const b = 1 + scoreBindingCount(o.source);
  const out = o.pass === "sum"
    ? `@group(0) @binding(${b}) var<storage, read_write> Partial: array<f32>;`
    : `@group(0) @binding(${b}) var<storage, read_write> Count: array<atomic<u32>>;`;
  return `${enableF16(o.source.wDtype)}
struct U { n: u32, colsV: u32, seg: u32, outOffset: u32, thresh: f32 }
@group(0) @binding(0) var<uniform> u: U;
${scoreWgsl(o.source, o.vec)}
${out}
`;
}

/** WGSL expressions: the f32 total of a vector `x`, and the number of its lanes above thresh. */
function hsum(o: OutlierOptions, x: string): string {
  return o.vec === 4 ? `((${x}.x + ${x}.y) + (${x}.z + ${x}.w))` : x;
}
function above(o: OutlierOptions, s: string): string {
  return o.vec === 4
    ? `dot(select(vec4<u32>(0u), vec4<u32>(1u), ${s} > vec4<f32>(u.thresh)), vec4<u32>(1u))`
    : `select(0u, 1u, ${s} > u.thresh)`;
}

function laneKernel(o: OutlierOptions): string {
  const t = o.vec === 4 ? "vec4<f32>" : "f32";
  const body = o.pass === "sum"
    ? `inner += s;
    if (((e - e0) & 63u) == 63u) { total += inner; inner = ${t}(0.0); }`
    : `cnt += ${above(o, "s")};`;
  const store = o.pass === "sum"
    ? `total += inner;
  Partial[u.outOffset + g] = ${hsum(o, "total")};`
    : "if (cnt > 0u) { atomicAdd(&Count[0], cnt); }";
  return `${prelude(o)}
@compute @workgroup_size(${OUTLIER_LANE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let g = wid * ${OUTLIER_LANE_WG}u + lid;
  let e0 = g * u.seg;
  if (e0 >= u.n) { return; }
  let e1 = min(u.n, e0 + u.seg);
  var j = e0 % u.colsV;
  var total = ${t}(0.0);
  var inner = ${t}(0.0);
  var cnt = 0u;
  for (var e = e0; e < e1; e++) {
    let s = score(e, j);
    ${body}
    j++;
    if (j == u.colsV) { j = 0u; }
  }
  ${store}
}`;
}

function wgKernel(o: OutlierOptions): string {
  const t = o.vec === 4 ? "vec4<f32>" : "f32";
  const shared = o.pass === "sum"
    ? `var<workgroup> part: array<f32, ${WG}>;`
    : "var<workgroup> wgCount: atomic<u32>;";
  const acc = o.pass === "sum" ? `var acc = ${t}(0.0);` : "var acc = 0u;";
  const add = o.pass === "sum" ? "acc += s;" : `acc += ${above(o, "s")};`;
  const reduce = o.pass === "sum"
    ? `part[lid] = ${hsum(o, "acc")};
  workgroupBarrier();
  for (var h = ${WG / 2}u; h > 0u; h >>= 1u) {
    if (lid < h) { part[lid] += part[lid + h]; }
    workgroupBarrier();
  }
  if (lid == 0u) { Partial[u.outOffset + wid] = part[0]; }`
    : `if (acc > 0u) { atomicAdd(&wgCount, acc); }
  workgroupBarrier();
  if (lid == 0u) {
    let total = atomicLoad(&wgCount);
    if (total > 0u) { atomicAdd(&Count[0], total); }
  }`;
  return `${prelude(o)}
${shared}
@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let t0 = wid * ${WG * ITEMS}u;
  ${acc}
  for (var it = 0u; it < ${ITEMS}u; it++) {
    let e = t0 + it * ${WG}u + lid;
    if (e < u.n) {
      let s = score(e, e % u.colsV);
      ${add}
    }
  }
  ${reduce}
}`;
}

/**
 * WGSL for one pass of one version.
 *
 * @example The coalesced count kernel over magnitudes: 256 invocations, one atomic add per workgroup
 * ```ts
 * import { outlierWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = { wDtype: "f32", wanda: false } as const;
 * const wgsl = outlierWgsl({ variant: "wg", pass: "count", source, vec: 1 });
 * assert.ok(wgsl.includes("@compute @workgroup_size(256)"));
 * assert.ok(wgsl.includes("atomicAdd(&Count[0], total)"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 3); // uniform, W, Count
 * ```
 */
export function outlierWgsl(o: OutlierOptions): string {
  return o.variant === "wg" ? wgKernel(o) : laneKernel(o);
}
