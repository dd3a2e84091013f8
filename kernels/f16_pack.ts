/**
 * f32 <-> f16 storage conversion of flat arrays, two values per u32 word (core WGSL: no
 * `shader-f16` needed). The pruning walk keeps its calibration activations this way with
 * `activationDtype: "f16"`, at half the memory.
 * - `pack`: Dst[i] = the f16 bits of Src[i].x | those of Src[i].y << 16, Src: array<vec2<f32>>,
 *   Dst: array<u32>, rounded to nearest even in integer arithmetic, as the host's f32ToF16
 *   (src/model/dtype.ts): WGSL lets `pack2x16float` round either way, and SwiftShader rounds f16
 *   subnormals differently from lavapipe, which would make the statistics, and so the masks,
 *   depend on the driver. Past f16's range: ±Inf; NaN stays NaN.
 * - `unpack`: Dst[i] = unpack2x16float(Src[i]) (exact: every f16 is an f32), Src: array<u32>,
 *   Dst: array<vec2<f32>>.
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
 * assert(pack.includes("Dst[i] = f16Bits(v.x) | (f16Bits(v.y) << 16u);"));
 * assert(unpack.includes("Dst[i] = unpack2x16float(Src[i]);"));
 * assert(!pack.includes("enable f16")); // core WGSL
 * ```
 */
export function f16PackWgsl(direction: "pack" | "unpack"): string {
  const [src, dst] = direction === "pack" ? ["vec2<f32>", "u32"] : ["u32", "vec2<f32>"];
  const body = direction === "pack"
    ? `let v = Src[i];
    Dst[i] = f16Bits(v.x) | (f16Bits(v.y) << 16u);`
    : `Dst[i] = unpack2x16float(Src[i]);`;
  return `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> Src: array<${src}>;
@group(0) @binding(2) var<storage, read_write> Dst: array<${dst}>;
${direction === "pack" ? F16_BITS_WGSL : ""}
@compute @workgroup_size(${F16_PACK_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${F16_PACK_WG}u + lid;
  if (i < u.n) {
    ${body}
  }
}`;
}

/** m >> shift rounded to nearest, ties to even (shift in 1..31). */
const F16_BITS_WGSL = `
fn roundShift(m: u32, shift: u32) -> u32 {
  let q = m >> shift;
  let rem = m & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  return select(q, q + 1u, rem > half || (rem == half && (q & 1u) == 1u));
}

// The f16 bit pattern of x, rounded to nearest even (src/model/dtype.ts's f32BitsToF16).
fn f16Bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let exp = (b >> 23u) & 0xffu;
  let mant = b & 0x7fffffu;
  if (exp == 0xffu) { // Inf, or NaN with its top payload bits kept
    return sign | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u);
  }
  let e = i32(exp) - 112; // f16's biased exponent
  if (e >= 31) { return sign | 0x7c00u; } // overflow: Inf
  if (e <= 0) {
    if (e < -10) { return sign; } // under half the smallest subnormal: ±0
    return sign | roundShift(mant | 0x800000u, u32(14 - e)); // subnormal, in units of 2^-24
  }
  // A carry out of the mantissa into the exponent is the right rounding (up to Inf).
  return sign | ((u32(e) << 10u) + roundShift(mant, 13u));
}`;
