/**
 * Shared pieces of WGSL generation: the linear workgroup index (dispatches larger than 65535
 * workgroups are folded into 2-D grids by the runtime) and the element type of a dtype.
 * Kernels import nothing from src/.
 * @module
 */

/**
 * Storage element type of a tensor on the GPU. bf16 never reaches the GPU (converted on load).
 *
 * @example One WGSL generator, two storage types of the table it reads
 * ```ts
 * import { embeddingWgsl, type GpuDType } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dtypes: GpuDType[] = ["f32", "f16"];
 * const [f32, f16] = dtypes.map((dtype) => embeddingWgsl(dtype));
 * assert.match(f32, /var<storage, read> E: array<f32>;/);
 * assert.match(f16, /var<storage, read> E: array<f16>;/);
 * assert(f16.startsWith("enable f16;") && !f32.includes("enable f16"));
 * ```
 */
export type GpuDType = "f32" | "f16";

/**
 * `enable f16;` when a kernel touches f16 data.
 *
 * @example The directive a WGSL module needs before it declares any f16 data
 * ```ts
 * import { enableF16, type GpuDType } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(enableF16("f32"), "");
 * assert.equal(enableF16("f32", "f16"), "enable f16;\n"); // one f16 operand is enough
 * const dtype: GpuDType = "f16";
 * const wgsl = `${enableF16(dtype)}@group(0) @binding(0) var<storage, read> W: array<${dtype}>;`;
 * assert(wgsl.startsWith("enable f16;\n@group(0)"));
 * ```
 */
export function enableF16(...dtypes: GpuDType[]): string {
  return dtypes.includes("f16") ? "enable f16;\n" : "";
}

/**
 * Mesa llvmpipe/lavapipe's loop limiter: every loop of an invocation decrements one counter that
 * starts at 65535, once per iteration plus once on leaving the loop (nested and sequential loops
 * alike); at 0 the running loop silently exits and each later loop runs at most once. The counter
 * belongs to a SIMD batch of 8 invocations, so it counts the longest lane's trip. Constant-count
 * loops of up to 32 short iterations are unrolled and cost nothing. ARCHITECTURE.md, "Loop limit".
 */
export const CPU_LOOP_LIMIT = 65535;

/**
 * Builtins + a `wid` (linear workgroup index) for kernels dispatched with Gpu.dispatch.
 *
 * @example The entry-point parameters of every generated kernel
 * ```ts
 * import { copyWgsl, LINEAR_WID, WORKGROUP_ID_ARGS } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = copyWgsl(1);
 * assert(wgsl.includes(`fn main(${WORKGROUP_ID_ARGS}) {\n  ${LINEAR_WID}`));
 * for (const name of ["wgid", "nwg", "lid"]) assert.match(WORKGROUP_ID_ARGS, new RegExp(`\\b${name}:`));
 * ```
 */
export const WORKGROUP_ID_ARGS =
  "@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32";
/**
 * WGSL statement that computes `wid`, the linear workgroup index, from {@linkcode WORKGROUP_ID_ARGS} (the
 * runtime folds large 1-D dispatches to 2-D).
 *
 * @example A kernel of your own: 70000 one-lane workgroups, more than one grid dimension holds
 * ```ts
 * import { Gpu, LINEAR_WID, WORKGROUP_ID_ARGS } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const n = 70000; // Gpu.dispatch folds n workgroups into a 2-D grid (65535 x 2 on most adapters)
 * const pipe = gpu.pipeline("example/iota", () => `
 *   @group(0) @binding(0) var<storage, read_write> out: array<u32>;
 *   @compute @workgroup_size(1)
 *   fn main(${WORKGROUP_ID_ARGS}) {
 *     ${LINEAR_WID}
 *     if (wid < arrayLength(&out)) { out[wid] = wid * 3u; }
 *   }`);
 * const out = gpu.buffer(n * 4, "out");
 * gpu.dispatch(pipe, [out], null, n);
 * const got = await gpu.readU32(out);
 * assert(got.every((v, i) => v === i * 3));
 * gpu.release(out);
 * gpu.destroy();
 * ```
 */
export const LINEAR_WID = "let wid = wgid.x + wgid.y * nwg.x;";

/**
 * Pack a uniform block of u32 and f32 fields (each 4 bytes) in declaration order.
 *
 * @example The bytes of `struct U { T: u32, scale: f32, n: u32 }`, padded to 16-byte rows
 * ```ts
 * import { packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const u = packUniforms([7, { f32: 0.5 }, 3]);
 * assert.equal(u.byteLength, 16);
 * const dv = new DataView(u.buffer);
 * assert.equal(dv.getUint32(0, true), 7);
 * assert.equal(dv.getFloat32(4, true), 0.5);
 * assert.equal(dv.getUint32(8, true), 3);
 * assert.equal(dv.getUint32(12, true), 0); // padding
 * assert.equal(packUniforms([1, 2, 3, 4, 5]).byteLength, 32);
 * ```
 */
export function packUniforms(fields: (number | { f32: number })[]): Uint32Array {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const dv = new DataView(buf);
  fields.forEach((f, i) => {
    if (typeof f === "number") dv.setUint32(i * 4, f, true);
    else dv.setFloat32(i * 4, f.f32, true);
  });
  return new Uint32Array(buf);
}
