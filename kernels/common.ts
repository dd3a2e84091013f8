/**
 * Shared pieces of WGSL generation: the linear workgroup index (dispatches larger than 65535
 * workgroups are folded into 2-D grids by the runtime) and the element type of a dtype.
 * Kernels import nothing from src/.
 * @module
 */

/** Storage element type of a tensor on the GPU. bf16 never reaches the GPU (converted on load). */
export type GpuDType = "f32" | "f16";

/** `enable f16;` when a kernel touches f16 data. */
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

/** Builtins + a `wid` (linear workgroup index) for kernels dispatched with Gpu.dispatch. */
export const WORKGROUP_ID_ARGS =
  "@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32";
/**
 * WGSL statement that computes `wid`, the linear workgroup index, from {@linkcode WORKGROUP_ID_ARGS} (the
 * runtime folds large 1-D dispatches to 2-D).
 */
export const LINEAR_WID = "let wid = wgid.x + wgid.y * nwg.x;";

/** Pack a uniform block of u32 and f32 fields (each 4 bytes) in declaration order. */
export function packUniforms(fields: (number | { f32: number })[]): Uint32Array {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const dv = new DataView(buf);
  fields.forEach((f, i) => {
    if (typeof f === "number") dv.setUint32(i * 4, f, true);
    else dv.setFloat32(i * 4, f.f32, true);
  });
  return new Uint32Array(buf);
}
