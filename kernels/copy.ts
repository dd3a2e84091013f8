/**
 * Buffer copy, the bandwidth baseline of the benchmarks: Dst[i] = Src[i] over vec4<f32>.
 * Each invocation copies `perThread` consecutive vec4s (large on CPU adapters, where fewer,
 * longer invocations run faster; 1 on GPUs, where consecutive threads must touch consecutive
 * addresses). Uniforms: n (vec4 count).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/** Invocations per workgroup of the copy kernel. */
export const COPY_WG = 64;

/**
 * WGSL of the vec4 buffer copy, each invocation copying `perThread` consecutive vec4s. Bindings: see the
 * module doc.
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
