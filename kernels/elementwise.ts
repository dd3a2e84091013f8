/**
 * Element-wise kernels over flat f32 arrays; one invocation per element, 256 per workgroup.
 * - `add`: A[i] += B[i] (the residual add).
 * - `swiglu`: G[i] = silu(G[i]) * Up[i], silu(x) = x / (1 + exp(-x)).
 * Uniforms: n (element count).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/** The element-wise operations: `add` (residual add) and `swiglu` (SiLU-gated product). */
export type ElementwiseOp = "add" | "swiglu";
/** Invocations per workgroup of the element-wise kernels (one per element). */
export const ELEMENTWISE_WG = 256;

/** WGSL of the element-wise kernel for `op`. Contract: see the module doc. */
export function elementwiseWgsl(op: ElementwiseOp): string {
  const expr = op === "add" ? "A[i] + B[i]" : "A[i] / (1.0 + exp(-A[i])) * B[i]";
  return `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${ELEMENTWISE_WG}u + lid;
  if (i >= u.n) { return; }
  A[i] = ${expr};
}`;
}
