/**
 * Embedding lookup: Out[t, :] = E[ids[t] - rowStart, :] for tokens whose id lies in this chunk
 * of the table [rowStart, rowStart + rows) (tables over the binding limit come in row chunks;
 * each chunk is one dispatch). E is f32 or f16; Out f32 [T, dim]. One invocation per element.
 * Uniforms: T, dim, rowStart, rows.
 * @module
 */
import { enableF16, type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Invocations per workgroup of the embedding lookup (one per output element).
 *
 * @example Look up 3 tokens in a 5-row table stored as two row chunks (one dispatch each)
 * ```ts
 * import { EMBEDDING_WG, embeddingWgsl, Gpu, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const T = 3, dim = 2;
 * const table = Float32Array.of(0, 1, 10, 11, 20, 21, 30, 31, 40, 41); // row r: [10r, 10r + 1]
 * const ids = gpu.upload(Uint32Array.of(4, 0, 3), "ids"), out = gpu.buffer(T * dim * 4, "out");
 * const pipe = gpu.pipeline("embedding/f32", () => embeddingWgsl("f32"));
 * const workgroups = Math.ceil((T * dim) / EMBEDDING_WG); // one invocation per output element
 * const parts: GPUBuffer[] = [];
 * for (const [rowStart, rows] of [[0, 3], [3, 2]]) {
 *   parts.push(gpu.upload(table.subarray(rowStart * dim, (rowStart + rows) * dim), "E chunk"));
 *   gpu.dispatch(pipe, [ids, parts.at(-1)!, out], packUniforms([T, dim, rowStart, rows]), workgroups);
 * }
 * assert.deepEqual(Array.from(await gpu.readF32(out)), [40, 41, 0, 1, 30, 31]);
 * gpu.release(ids, out, ...parts);
 * gpu.destroy();
 * ```
 */
export const EMBEDDING_WG = 256;

/**
 * WGSL of the embedding lookup for a table stored as `dtype`, run once per row chunk of the table. Contract:
 * see the module doc.
 *
 * @example An f16 table: the kernel enables f16 and widens each element to f32
 * ```ts
 * import { EMBEDDING_WG, embeddingWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = embeddingWgsl("f16");
 * assert(wgsl.startsWith("enable f16;"));
 * assert(wgsl.includes(`@compute @workgroup_size(${EMBEDDING_WG})`));
 * assert(wgsl.includes("var<storage, read> E: array<f16>;"));
 * assert(wgsl.includes("Out[i] = f32(E[(id - u.rowStart) * u.dim + i % u.dim]);"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 4); // uniforms, ids, E, Out
 * ```
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
