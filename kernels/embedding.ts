/**
 * Embedding lookup: Out[t, :] = E[ids[t] - rowStart, :] for tokens whose id lies in this chunk
 * of the table [rowStart, rowStart + rows) (tables over the binding limit come in row chunks;
 * each chunk is one dispatch). E is f32 or f16; Out f32 [T, dim]. One invocation per element.
 * Uniforms: T, dim, rowStart, rows.
 * @module
 */
import { enableF16, type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/** Invocations per workgroup of the embedding lookup (one per output element). */
export const EMBEDDING_WG = 256;

/**
 * WGSL of the embedding lookup for a table stored as `dtype`, run once per row chunk of the table. Contract:
 * see the module doc.
 */
export function embeddingWgsl(dtype: GpuDType): string {
  return `${enableF16(dtype)}
struct U { T: u32, dim: u32, rowStart: u32, rows: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> E: array<${dtype}>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(${EMBEDDING_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${EMBEDDING_WG}u + lid;
  if (i >= u.T * u.dim) { return; }
  let t = i / u.dim;
  let id = ids[t];
  if (id < u.rowStart || id >= u.rowStart + u.rows) { return; }
  Out[i] = f32(E[(id - u.rowStart) * u.dim + i % u.dim]);
}`;
}
