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

/** Invocations per workgroup of the mask-apply kernel (one per mask word). */
export const MASK_APPLY_WG = 64;

/** Pipeline cache key of {@linkcode maskApplyWgsl} for this weight dtype. */
export function maskApplyKey(wDtype: GpuDType): string {
  return `mask-apply/${wDtype}`;
}

/**
 * WGSL of the kernel that zeroes the masked weights of one row chunk in place. Bindings: see the module doc.
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
