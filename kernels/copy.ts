/**
 * Buffer copy, the bandwidth baseline of the benchmarks: Dst[i] = Src[i] over vec4<f32>.
 * Each invocation copies `perThread` consecutive vec4s (large on CPU adapters, where fewer,
 * longer invocations run faster; 1 on GPUs, where consecutive threads must touch consecutive
 * addresses). Uniforms: n (vec4 count).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Invocations per workgroup of the copy kernel.
 *
 * @example Size a copy dispatch: each workgroup copies COPY_WG * perThread vec4s
 * ```ts
 * import { COPY_WG, copyWgsl, Gpu, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const n = 150, perThread = 2; // vec4s; 2 workgroups of 64 x 2
 * const data = Float32Array.from({ length: n * 4 }, (_, i) => i / 8);
 * const src = gpu.upload(data, "src"), dst = gpu.buffer(n * 16, "dst");
 * const pipe = gpu.pipeline(`copy/${perThread}`, () => copyWgsl(perThread));
 * gpu.dispatch(pipe, [src, dst], packUniforms([n]), Math.ceil(n / (COPY_WG * perThread)));
 * assert.deepEqual(await gpu.readF32(dst), data);
 * gpu.release(src, dst);
 * gpu.destroy();
 * ```
 */
export const COPY_WG = 64;

/**
 * WGSL of the vec4 buffer copy, each invocation copying `perThread` consecutive vec4s. Bindings: see the
 * module doc.
 *
 * @example A workgroup of the 4-per-invocation copy covers 4 * COPY_WG vec4s
 * ```ts
 * import { COPY_WG, copyWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = copyWgsl(4);
 * assert(wgsl.includes(`@compute @workgroup_size(${COPY_WG})`));
 * assert(wgsl.includes(`let base = wid * ${4 * COPY_WG}u;`));
 * assert(wgsl.includes("for (var j = 0u; j < 4u; j++)"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 3); // uniforms, Src, Dst
 * ```
 */
export function copyWgsl(perThread: number): string {
  return `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> Src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Dst: array<vec4<f32>>;
@compute @workgroup_size(${COPY_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let base = wid * ${COPY_WG * perThread}u;
  for (var j = 0u; j < ${perThread}u; j++) {
    let i = base + j * ${COPY_WG}u + lid;
    if (i < u.n) { Dst[i] = Src[i]; }
  }
}`;
}
