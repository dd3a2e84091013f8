/**
 * Apply a prune mask in place: W[i, j] = 0 wherever bit j of row i of the mask is set (mask
 * format: rowmask.ts, bit-packed u32, rows padded to whole words, 1 = pruned).
 *
 * Geometry: one invocation per mask word of the chunk; it visits only the set bits
 * (`firstTrailingBit`), so it writes exactly the pruned weights and reads no weight at all.
 *
 * Bindings: 0 uniform {rows (chunk), cols, wordsPerRow, rowStart}; 1 W chunk (f32 or f16,
 * row-major [rows, cols]) read_write; 2 Mask u32 [allRows * wordsPerRow] read.
 * @module
 */
import { enableF16, type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Invocations per workgroup of the mask-apply kernel (one per mask word).
 *
 * @example Zero the masked weights of a 2 x 40 matrix (2 mask words a row, 4 words in all)
 * ```ts
 * import { Gpu, MASK_APPLY_WG, maskApplyKey, maskApplyWgsl, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rows = 2, cols = 40, wordsPerRow = Math.ceil(cols / 32);
 * const w = Float32Array.from({ length: rows * cols }, (_, i) => i + 1);
 * // bit j of a row's word q prunes column 32 q + j; bits past the last column stay 0
 * const words = Uint32Array.of(0b101, 1 << 7, 0, 0b1001);
 * const wBuf = gpu.upload(w, "W"), maskBuf = gpu.upload(words, "mask");
 * const pipe = gpu.pipeline(maskApplyKey("f32"), () => maskApplyWgsl("f32"));
 * const u = packUniforms([rows, cols, wordsPerRow, 0]);
 * gpu.dispatch(pipe, [wBuf, maskBuf], u, Math.ceil((rows * wordsPerRow) / MASK_APPLY_WG));
 * const got = await gpu.readF32(wBuf);
 * const pruned = [0, 2, 32 + 7, cols + 32, cols + 32 + 3]; // flat indices of the set bits
 * got.forEach((v, i) => assert.equal(v, pruned.includes(i) ? 0 : w[i]));
 * gpu.release(wBuf, maskBuf);
 * gpu.destroy();
 * ```
 */
export const MASK_APPLY_WG = 64;

/**
 * Pipeline cache key of {@linkcode maskApplyWgsl} for this weight dtype.
 *
 * @example One pipeline per weight dtype
 * ```ts
 * import { maskApplyKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(maskApplyKey("f32"), maskApplyKey("f32"));
 * assert.notEqual(maskApplyKey("f32"), maskApplyKey("f16"));
 * ```
 */
export function maskApplyKey(wDtype: GpuDType): string {
  return `mask-apply/${wDtype}`;
}

/**
 * WGSL of the kernel that zeroes the masked weights of one row chunk in place. Bindings: see the module doc.
 *
 * @example For f16 weights: visit each set bit of a word, write an f16 zero
 * ```ts
 * import { MASK_APPLY_WG, maskApplyWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = maskApplyWgsl("f16");
 * assert(wgsl.startsWith("enable f16;"));
 * assert(wgsl.includes(`@compute @workgroup_size(${MASK_APPLY_WG})`));
 * assert(wgsl.includes("var<storage, read_write> W: array<f16>;"));
 * assert(wgsl.includes("W[e0 + firstTrailingBit(m)] = f16(0.0);"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 3); // uniforms, W, Mask
 * ```
 */
export function maskApplyWgsl(wDtype: GpuDType): string {
  return `${enableF16(wDtype)}
struct U { rows: u32, cols: u32, wordsPerRow: u32, rowStart: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> W: array<${wDtype}>;
@group(0) @binding(2) var<storage, read> Mask: array<u32>;
@compute @workgroup_size(${MASK_APPLY_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let q = wid * ${MASK_APPLY_WG}u + lid;
  if (q >= u.rows * u.wordsPerRow) { return; }
  let row = q / u.wordsPerRow;
  let e0 = row * u.cols + (q - row * u.wordsPerRow) * 32u;
  var m = Mask[u.rowStart * u.wordsPerRow + q];
  while (m != 0u) {
    W[e0 + firstTrailingBit(m)] = ${wDtype}(0.0);
    m &= m - 1u;
  }
}`;
}
