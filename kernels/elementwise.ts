/**
 * Element-wise kernels over flat f32 arrays; one invocation per element, 256 per workgroup.
 * - `add`: A[i] += B[i] (the residual add).
 * - `swiglu`: G[i] = silu(G[i]) * Up[i], silu(x) = x / (1 + exp(-x)).
 * Uniforms: n (element count).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * The element-wise operations: `add` (residual add) and `swiglu` (SiLU-gated product).
 *
 * @example Each operation is its own kernel, and writes its result over A
 * ```ts
 * import { type ElementwiseOp, elementwiseWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const ops: ElementwiseOp[] = ["add", "swiglu"];
 * const [add, swiglu] = ops.map((op) => elementwiseWgsl(op));
 * assert(add.includes("A[i] = A[i] + B[i];"));
 * assert(swiglu.includes("A[i] = A[i] / (1.0 + exp(-A[i])) * B[i];"));
 * ```
 */
export type ElementwiseOp = "add" | "swiglu";
/**
 * Invocations per workgroup of the element-wise kernels (one per element).
 *
 * @example Size the dispatch of a SwiGLU over 300 elements and check it against the formula
 * ```ts
 * import { ELEMENTWISE_WG, elementwiseWgsl, Gpu, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const n = 300;
 * const g = Float32Array.from({ length: n }, (_, i) => (i - 150) / 25);
 * const up = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7));
 * const a = gpu.upload(g, "gate"), b = gpu.upload(up, "up");
 * const pipe = gpu.pipeline("elementwise/swiglu", () => elementwiseWgsl("swiglu"));
 * gpu.dispatch(pipe, [a, b], packUniforms([n]), Math.ceil(n / ELEMENTWISE_WG)); // 2 workgroups
 * const got = await gpu.readF32(a);
 * const want = g.map((x, i) => x / (1 + Math.exp(-x)) * up[i]);
 * got.forEach((v, i) => assert(Math.abs(v - want[i]) <= 1e-5 * (1 + Math.abs(want[i]))));
 * gpu.release(a, b);
 * gpu.destroy();
 * ```
 */
export const ELEMENTWISE_WG = 256;

/**
 * WGSL of the element-wise kernel for `op`. Contract: see the module doc.
 *
 * @example The residual add: one invocation per element, A read_write, B read
 * ```ts
 * import { ELEMENTWISE_WG, elementwiseWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = elementwiseWgsl("add");
 * assert(wgsl.includes(`@compute @workgroup_size(${ELEMENTWISE_WG})`));
 * assert(wgsl.includes("var<storage, read_write> A: array<f32>;"));
 * assert(wgsl.includes("var<storage, read> B: array<f32>;"));
 * assert(wgsl.includes("if (i >= u.n) { return; }"));
 * ```
 */
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
