/**
 * Rotary position embedding, in place on Q or K [T, nHeads * headDim] (f32).
 * Token t has position pos0 + t. cos/sin come from a host table [maxPos, headDim/2] computed in
 * float64 (WGSL's cos/sin are only accurate on [-pi, pi]; angles here reach thousands of radians).
 * Layouts: `interleaved` rotates (x[2i], x[2i+1]) (llama2.c); `half` rotates (x[i], x[i+hd/2])
 * (Hugging Face rotate_half). Both use frequency index i. One invocation per rotated pair.
 * Uniforms: T, nHeads, headDim, pos0.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * How RoPE pairs the dimensions of a head.
 * - `interleaved`: llama2.c / Meta original, rotates (x[2i], x[2i+1]).
 * - `half`: Hugging Face "rotate_half", rotates (x[i], x[i + headDim/2]).
 *
 * @example The layout picks which two elements of a head one invocation rotates
 * ```ts
 * import { type RopeLayout, ropeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const llama2c: RopeLayout = "interleaved", huggingFace: RopeLayout = "half";
 * assert.ok(ropeWgsl(llama2c).includes("let a = base + 2u * i; let b = a + 1u;"));
 * assert.ok(ropeWgsl(huggingFace).includes("let a = base + i; let b = a + half;"));
 * ```
 */
export type RopeLayout = "interleaved" | "half";
/**
 * Invocations per workgroup of the RoPE kernel (one per rotated pair).
 *
 * @example Size the dispatch of RoPE on Q [100 tokens, 6 heads x 48]
 * ```ts
 * import { ROPE_WG, ropeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.ok(ropeWgsl("half").includes(`@workgroup_size(${ROPE_WG})`));
 * const T = 100, nHeads = 6, headDim = 48;
 * const pairs = T * nHeads * (headDim / 2); // 14400
 * assert.equal(Math.ceil(pairs / ROPE_WG), 57);
 * ```
 */
export const ROPE_WG = 256;

/**
 * WGSL of the in-place RoPE kernel for `layout`, with cos/sin read from host tables ({@linkcode ropeTables}).
 * Contract: see the module doc.
 *
 * @example The kernel rotates X in place and reads the host tables
 * ```ts
 * import { ropeWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = ropeWgsl("interleaved");
 * assert.ok(wgsl.includes("@compute @workgroup_size(256)"));
 * assert.ok(wgsl.includes("var<storage, read_write> X: array<f32>"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 4); // uniform, X, cosT, sinT
 * assert.ok(!wgsl.includes("cos(")); // angles come from the float64 tables, not WGSL's cos/sin
 * ```
 */
export function ropeWgsl(layout: RopeLayout): string {
  const pair = layout === "interleaved"
    ? "let a = base + 2u * i; let b = a + 1u;"
    : "let a = base + i; let b = a + half;";
  return `
struct U { T: u32, nHeads: u32, headDim: u32, pos0: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read> cosT: array<f32>;
@group(0) @binding(3) var<storage, read> sinT: array<f32>;
@compute @workgroup_size(${ROPE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let p = wid * ${ROPE_WG}u + lid;
  let half = u.headDim / 2u;
  if (p >= u.T * u.nHeads * half) { return; }
  let i = p % half;
  let h = (p / half) % u.nHeads;
  let t = p / (half * u.nHeads);
  let base = (t * u.nHeads + h) * u.headDim;
  ${pair}
  let c = cosT[(u.pos0 + t) * half + i];
  let s = sinT[(u.pos0 + t) * half + i];
  let x0 = X[a];
  let x1 = X[b];
  X[a] = x0 * c - x1 * s;
  X[b] = x0 * s + x1 * c;
}`;
}

/**
 * Frequency scaling of a long-context checkpoint (Hugging Face `rope_scaling`), applied to the
 * inverse frequencies `theta^(-2i / headDim)` before the tables are built:
 * - `linear`: every frequency divided by `factor` (positions interpolated);
 * - `llama3` (Llama 3.1 / 3.2): frequencies whose wavelength is under `originalMaxPositions /
 *   highFreqFactor` kept, those over `originalMaxPositions / lowFreqFactor` divided by `factor`,
 *   the ones between blended linearly in `originalMaxPositions / wavelength`.
 *
 * @example Llama 3.2's scaling keeps the fastest frequency and divides the slowest by its factor
 * ```ts
 * import { ropeInverseFrequencies, type RopeScaling } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const llama3: RopeScaling = {
 *   type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192,
 * };
 * const plain = ropeInverseFrequencies(64, 500000);
 * const scaled = ropeInverseFrequencies(64, 500000, llama3);
 * assert.equal(scaled[0], plain[0]); // wavelength 2 pi: kept
 * assert.equal(scaled[31], plain[31] / 32); // wavelength ~2.1e6 > 8192: divided by 32
 * ```
 */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositions: number;
  };

/**
 * Inverse frequencies `theta^(-2i / headDim)` for i < headDim / 2 in float64, scaled by `scaling`
 * ({@linkcode RopeScaling}) if given.
 *
 * @example Without scaling, frequency i turns theta^(-2i / headDim) radians a position
 * ```ts
 * import { ropeInverseFrequencies } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(Array.from(ropeInverseFrequencies(4, 10000)), [1, 0.01]);
 * assert.deepEqual(Array.from(ropeInverseFrequencies(4, 10000, { type: "linear", factor: 4 })), [0.25, 0.0025]);
 * ```
 */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.pow(theta, -(2 * i) / headDim);
  if (scaling?.type === "linear") return inv.map((f) => f / scaling.factor);
  if (scaling?.type === "llama3") {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const longest = originalMaxPositions / lowFreqFactor, shortest = originalMaxPositions / highFreqFactor;
    return inv.map((f) => {
      const wavelength = (2 * Math.PI) / f;
      if (wavelength < shortest) return f;
      if (wavelength > longest) return f / factor;
      const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  return inv;
}

/**
 * cos/sin tables [maxPos, headDim/2] in float64 then rounded to f32; `scaling` as in
 * {@linkcode ropeInverseFrequencies}.
 *
 * @example Position p, frequency i: angle p * theta^(-2i / headDim)
 * ```ts
 * import { ropeTables } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const { cos, sin } = ropeTables(3, 4, 10000); // 3 positions, 2 frequencies each
 * assert.equal(cos.length, 6);
 * assert.deepEqual([cos[0], sin[0], cos[1], sin[1]], [1, 0, 1, 0]); // position 0: no rotation
 * assert.equal(sin[2 * 2 + 0], Math.fround(Math.sin(2))); // position 2, frequency 0: 2 rad
 * assert.equal(cos[2 * 2 + 1], Math.fround(Math.cos(0.02))); // frequency 1: 2 * 10000^(-1/2)
 * ```
 */
export function ropeTables(
  maxPos: number,
  headDim: number,
  theta: number,
  scaling?: RopeScaling,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const inv = ropeInverseFrequencies(headDim, theta, scaling);
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const ang = p * inv[i];
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
  }
  return { cos, sin };
}
