/**
 * f32 <-> f16 storage conversion of flat arrays, two values per u32 word (WGSL's `pack2x16float` and
 * `unpack2x16float`, core WGSL: no `shader-f16` needed). The pruning walk keeps its calibration
 * activations this way with `activationDtype: "f16"`, at half the memory.
 * - `pack`: Dst[i] = pack2x16float(Src[i]), Src: array<vec2<f32>>, Dst: array<u32>.
 * - `unpack`: Dst[i] = unpack2x16float(Src[i]), Src: array<u32>, Dst: array<vec2<f32>>.
 * Uniforms: n (pairs). One invocation per pair.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Invocations per workgroup of the f16 pack / unpack kernels (one per pair of values).
 *
 * @example 1000 values are 500 pairs: 2 workgroups
 * ```ts
 * import { F16_PACK_WG } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Math.ceil(1000 / 2 / F16_PACK_WG), 2);
 * ```
 */
export const F16_PACK_WG = 256;

/**
 * WGSL of the f32 -> f16 pack (`"pack"`) or the f16 -> f32 unpack (`"unpack"`). Contract: see the
 * module doc.
 *
 * @example The two directions read and write opposite element types
 * ```ts
 * import { f16PackWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const pack = f16PackWgsl("pack"), unpack = f16PackWgsl("unpack");
 * assert(pack.includes("var h = pack2x16float(v);"));
 * assert(unpack.includes("Dst[i] = unpack2x16float(Src[i]);"));
 * assert(!pack.includes("enable f16")); // core WGSL
 * ```
 */
export function f16PackWgsl(direction: "pack" | "unpack"): string {
  const [src, dst, op] = direction === "pack"
    ? ["vec2<f32>", "u32", "pack2x16float"]
    : ["u32", "vec2<f32>", "unpack2x16float"];
  // pack2x16float is undefined past f16's range; write ±Inf there explicitly, so that an overflow
  // shows on every driver (the walk refuses non-finite statistics).
  const body = direction === "pack"
    ? `let v = Src[i];
    var h = ${op}(v);
    if (abs(v.x) >= 65520.0) { h = (h & 0xffff0000u) | select(0x7c00u, 0xfc00u, v.x < 0.0); }
    if (abs(v.y) >= 65520.0) { h = (h & 0x0000ffffu) | select(0x7c000000u, 0xfc000000u, v.y < 0.0); }
    Dst[i] = h;`
    : `Dst[i] = ${op}(Src[i]);`;
  return `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> Src: array<${src}>;
@group(0) @binding(2) var<storage, read_write> Dst: array<${dst}>;
@compute @workgroup_size(${F16_PACK_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${F16_PACK_WG}u + lid;
  if (i < u.n) {
    ${body}
  }
}`;
}
