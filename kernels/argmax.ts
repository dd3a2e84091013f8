/**
 * Greedy token choice on the device: the index of the largest of V logits (f32, one row), the
 * lowest index among equals, exactly as the host's `argmax` (src/generate/sampler.ts) picks it,
 * NaN included: a NaN never wins, except at index 0, where the host's scan starts and stays (so an
 * all-NaN row gives 0 too). The index is written to `ids[0]` (the next decode step's embedding
 * input) and to `out[u.outIndex]` (the tokens of a chunk, read back together): decoding then needs
 * no readback per token, whose latency (Deno's map polling sleeps 10 ms) is most of a small
 * model's step.
 *
 * One workgroup of {@linkcode ARGMAX_WG} lanes: lane l scans columns l, l + ARGMAX_WG, ... in
 * increasing order (a strict `>` keeps its lowest index), then a shared-memory tree merges the
 * lanes' (value, index) pairs, preferring the larger value, then the lower index; an index of
 * 0xffffffff means "no non-NaN value seen". Straight-line tree, one loop of ceil(V / ARGMAX_WG)
 * steps (lavapipe's loop limit: V <= ARGMAX_WG * 65535). Uniforms: V, row offset, outIndex.
 * @module
 */

/**
 * Lanes of the argmax workgroup.
 *
 * @example Argmax of 1000 logits with a tie: the lower index wins
 * ```ts
 * import { ARGMAX_WG, argmaxWgsl, Gpu, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const logits = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
 * logits[700] = logits[300] = 5;
 * const x = gpu.upload(logits, "logits"), ids = gpu.buffer(4, "ids"), out = gpu.buffer(3 * 4, "out");
 * const pipe = gpu.pipeline("argmax", () => argmaxWgsl());
 * gpu.dispatch(pipe, [x, ids, out], packUniforms([1000, 0, 2]), 1); // one workgroup of ARGMAX_WG lanes
 * assert.deepEqual([...await gpu.readU32(out)], [0, 0, 300]);
 * assert.deepEqual([...await gpu.readU32(ids)], [300]);
 * assert.equal(ARGMAX_WG, 256);
 * gpu.release(x, ids, out);
 * gpu.destroy();
 * ```
 */
export const ARGMAX_WG = 256;

/**
 * WGSL of the argmax kernel (contract: the module doc). Bindings: uniforms, logits, ids, out.
 *
 * @example A tree of log2(ARGMAX_WG) straight-line levels, NaN told apart by its bits
 * ```ts
 * import { ARGMAX_WG, argmaxWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = argmaxWgsl();
 * assert(wgsl.includes(`@compute @workgroup_size(${ARGMAX_WG})`));
 * assert.equal(wgsl.match(/workgroupBarrier\(\);/g)?.length, Math.log2(ARGMAX_WG) + 1);
 * assert(wgsl.includes("0x7f800000u")); // an exponent of all ones with a nonzero mantissa: NaN
 * ```
 */
export function argmaxWgsl(): string {
  const tree: string[] = [];
  for (let h = ARGMAX_WG / 2; h >= 1; h /= 2) {
    tree.push(`if (lid < ${h}u && better(sh_v[lid + ${h}u], sh_i[lid + ${h}u], sh_v[lid], sh_i[lid])) {`);
    tree.push(`  sh_v[lid] = sh_v[lid + ${h}u]; sh_i[lid] = sh_i[lid + ${h}u];`);
    tree.push("}");
    tree.push("workgroupBarrier();");
  }
  return `
struct U { V: u32, base: u32, outIndex: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
var<workgroup> sh_v: array<f32, ${ARGMAX_WG}>;
var<workgroup> sh_i: array<u32, ${ARGMAX_WG}>;
const NONE = 0xffffffffu;
// By its bits: compilers may fold x != x away.
fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// Does (v, i) beat (w, j)? NONE loses to anything; then the larger value, then the lower index.
fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
  if (i == NONE) { return false; }
  if (j == NONE) { return true; }
  return v > w || (v == w && i < j);
}
@compute @workgroup_size(${ARGMAX_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var bv = 0.0;
  var bi = NONE;
  for (var i = lid; i < u.V; i += ${ARGMAX_WG}u) {
    let x = P[u.base + i];
    if (!isNan(x) && (bi == NONE || x > bv)) { bv = x; bi = i; }
  }
  sh_v[lid] = bv;
  sh_i[lid] = bi;
  workgroupBarrier();
  ${tree.join("\n  ")}
  if (lid == 0u) {
    // The host's scan starts at index 0 and nothing beats a NaN there.
    var r = sh_i[0];
    if (r == NONE || isNan(P[u.base])) { r = 0u; }
    ids[0] = r;
    out[u.outIndex] = r;
  }
}`;
}
