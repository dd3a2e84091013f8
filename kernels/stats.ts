/**
 * Activation statistics: Wanda's `scaler_row` running mean, updated in place on the GPU.
 *
 * For a linear input X f32 row-major [T, C] (T tokens of one batch of b sequences) and the
 * running statistic R f32 [C] after n sequences:
 * `R[j] = f32(f32(R[j] * ratio) + f32(sumsq_j / nNew))`, with `sumsq_j = sum_t X[t, j]^2`
 * accumulated in f32 in token order, and `ratio = f32(n / (n + b))`, `nNew = f32(n + b)`
 * computed on the host (ALGORITHMS.md, "Activation statistics"). The division stays a
 * division (not a product with a reciprocal) so the update is the oracle's, operation for
 * operation; compilers may still contract `a * b + c` into an fma (Vulkan allows it), which
 * moves the sum by far less than one of its ulps and the update by at most one ulp.
 *
 * Geometry: one invocation per `vec` channels (vec4 when C % 4 == 0: adjacent channels are
 * adjacent in memory, so a lane reads 16 bytes per token on CPU adapters and a warp reads
 * whole lines on GPUs); 1-D workgroup count, folded to 2-D by the runtime.
 *
 * Bindings: 0 uniform {T, Cv (= C / vec), ratio f32, nNew f32}; 1 X f32 [T, C] read;
 * 2 R f32 [C] read_write. An invocation loops over all T tokens, so on llvmpipe (which ends an
 * invocation's loops after 65535 iterations) T must stay below that; the launcher checks.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Invocations per workgroup of the activation statistics kernel.
 *
 * @example Size the dispatch for 288 channels (read as 72 vec4)
 * ```ts
 * import { STATS_WG, statsWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.ok(statsWgsl({ vec: 4 }).includes(`@workgroup_size(${STATS_WG})`));
 * const C = 288, vec = C % 4 === 0 ? 4 : 1;
 * assert.equal(Math.ceil(C / vec / STATS_WG), 2);
 * ```
 */
export const STATS_WG = 64;

/**
 * Compile-time options of the activation statistics kernel.
 *
 * @example Choose `vec` from the channel count
 * ```ts
 * import { statsKey, type StatsOptions, statsWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const optionsFor = (C: number): StatsOptions => ({ vec: C % 4 === 0 ? 4 : 1 });
 * assert.ok(statsWgsl(optionsFor(288)).includes("array<vec4<f32>>"));
 * assert.ok(!statsWgsl(optionsFor(287)).includes("vec4"));
 * assert.equal(statsKey(optionsFor(287)), "stats/scaler-row/v1");
 * ```
 */
export interface StatsOptions {
  /** 4 when C % 4 == 0, else 1. */
  vec: 1 | 4;
}

/**
 * Pipeline cache key of {@linkcode statsWgsl} for these options.
 *
 * @example One pipeline per vector width
 * ```ts
 * import { statsKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(statsKey({ vec: 4 }), statsKey({ vec: 4 }));
 * assert.notEqual(statsKey({ vec: 4 }), statsKey({ vec: 1 }));
 * ```
 */
export function statsKey(o: StatsOptions): string {
  return `stats/scaler-row/v${o.vec}`;
}

/**
 * WGSL of the in-place `scaler_row` running-mean update. Bindings: see the module doc.
 *
 * @example The update R = R * ratio + sumsq / nNew, with a division kept as a division
 * ```ts
 * import { statsWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = statsWgsl({ vec: 1 });
 * assert.ok(wgsl.includes("@compute @workgroup_size(64)"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 3); // uniform, X, R
 * assert.ok(wgsl.includes("R[j] = R[j] * u.ratio + acc / u.nNew;"));
 * ```
 */
export function statsWgsl(o: StatsOptions): string {
  const t = o.vec === 4 ? "vec4<f32>" : "f32";
  return `
struct U { T: u32, Cv: u32, ratio: f32, nNew: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<${t}>;
@group(0) @binding(2) var<storage, read_write> R: array<${t}>;
@compute @workgroup_size(${STATS_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let j = wid * ${STATS_WG}u + lid;
  if (j >= u.Cv) { return; }
  var acc = ${t}(0.0);
  for (var t = 0u; t < u.T; t++) {
    let x = X[t * u.Cv + j];
    acc += x * x;
  }
  R[j] = R[j] * u.ratio + acc / u.nNew;
}`;
}
