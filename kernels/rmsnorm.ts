/**
 * RMSNorm: Y[t, :] = X[t, :] / sqrt(mean(X[t, :]^2) + eps) * w. f32 in and out; w f32.
 * One invocation per row (rows are short next to the matmuls around them; no barriers).
 * Uniforms: T, dim, eps (f32).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Invocations per workgroup of the RMSNorm kernel (one per row).
 *
 * @example Size the dispatch of RMSNorm over 300 tokens
 * ```ts
 * import { RMSNORM_WG, rmsnormWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.ok(rmsnormWgsl().includes(`@workgroup_size(${RMSNORM_WG})`));
 * const T = 300; // one invocation per token row
 * assert.equal(Math.ceil(T / RMSNORM_WG), 5);
 * ```
 */
export const RMSNORM_WG = 64;

/**
 * WGSL of the RMSNorm kernel. Contract: see the module doc.
 *
 * @example The kernel's uniforms and bindings
 * ```ts
 * import { rmsnormWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = rmsnormWgsl();
 * assert.ok(wgsl.includes("@compute @workgroup_size(64)"));
 * assert.ok(wgsl.includes("struct U { T: u32, dim: u32, eps: f32 }"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 4); // uniform, X, w, Y
 * assert.ok(wgsl.includes("1.0 / sqrt(ss / f32(u.dim) + u.eps)"));
 * ```
 */
export function rmsnormWgsl(): string {
  return `
struct U { T: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${RMSNORM_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let t = wid * ${RMSNORM_WG}u + lid;
  if (t >= u.T) { return; }
  let base = t * u.dim;
  var ss = 0.0;
  for (var j = 0u; j < u.dim; j++) { let x = X[base + j]; ss += x * x; }
  let inv = 1.0 / sqrt(ss / f32(u.dim) + u.eps);
  for (var j = 0u; j < u.dim; j++) { Y[base + j] = X[base + j] * inv * w[j]; }
}`;
}
