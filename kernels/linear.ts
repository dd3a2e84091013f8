/**
 * Linear layer kernels: Y[m, colOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]).
 *
 * Layouts: X row-major [M, K] f32; W row-major [N, K] (the checkpoint's [C_out, C_in]), f32 or
 * f16; Y row-major with leading dimension ldY (so a weight split in row chunks writes its slice
 * of columns); bias f32 over all C_out rows (indexed with colOffset). Accumulation is always f32.
 *
 * Versions, simplest to fastest on their target:
 * - `tile` (GEMM): each invocation owns a TM x TN block of Y and walks K with vec4 loads when
 *   K % 4 == 0 (scalar otherwise). No shared memory and no barriers: on CPU implementations
 *   (lavapipe) every load is a per-lane gather, so throughput grows with TM*TN/(TM+TN); 64x32
 *   reached ~10 GFLOP/s on 2 cores where 4x4 reached 1.2. On GPUs a 4x4 tile relies on caches.
 * - `texture` (GEMM, CPU adapters): the `tile` loop with X and W read through `textureLoad` from
 *   rgba32float textures (the launcher copies them there; flat layout, LINEAR_TEX_WIDTH texels a
 *   row, texel i at (i % width, i / width)). lavapipe fetches a texel per lane with one 16-byte
 *   load, where a storage vec4 load is a per-lane, per-component loop with bounds checks, so a
 *   32x32 tile runs ~30% faster than the storage 32x64 tile and compiles in ~2 s instead of ~8-15.
 *   (Workgroup-uniform storage addresses do not help on Mesa 22.3: its scalar-load fast path takes
 *   only constant addresses outside loops.) f32 weights and K % 4 == 0 only.
 * - `rowlane` (GEMV, M = 1 on CPUs): one invocation per output row, vec4 walk over K.
 * - `wgreduce` (GEMV, M = 1 on GPUs): a 64-thread workgroup per 4 rows; threads stride K so
 *   loads coalesce, then a shared-memory tree reduction.
 *
 * Uniforms: M, N, K, ldY, colOffset. Geometry: 1-D workgroup count, folded to 2-D by the runtime.
 * @module
 */
import { enableF16, type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Compile-time options of the linear kernels: the version, weight dtype, load width, bias and tile shape.
 *
 * @example A 4 x 8 GEMM tile over f16 weights with a bias
 * ```ts
 * import { linearKey, type LinearOptions, linearWgsl, linearWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: LinearOptions = {
 *   variant: "tile", wDtype: "f16", vec: 4, bias: true, tm: 4, tn: 8, workgroupSize: 64,
 * };
 * const wgsl = linearWgsl(o);
 * assert(wgsl.startsWith("enable f16;"));
 * assert(wgsl.includes("var<storage, read> W: array<vec4<f16>>;"));
 * assert(wgsl.includes("var<storage, read> B: array<f32>;"));
 * assert.equal(linearKey(o), "linear/tile/f16/v4/b1/4x8/wg64");
 * assert.equal(linearWorkgroups(o, 16, 64), 1); // 4 x 8 = 32 tiles of 4 x 8
 * ```
 */
export interface LinearOptions {
  /** Kernel version: `tile` or `texture` (GEMM), `rowlane` or `wgreduce` (GEMV); see the module doc. */
  variant: "tile" | "texture" | "rowlane" | "wgreduce";
  /** Storage dtype of W. */
  wDtype: GpuDType;
  /** 4 when K % 4 == 0, else 1. */
  vec: 1 | 4;
  /** Whether the kernel adds a bias (and binds the bias buffer). */
  bias: boolean;
  /** Rows of Y per invocation (tile and texture). */
  tm: number;
  /** Columns of Y per invocation (tile and texture). */
  tn: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/**
 * Pipeline cache key of {@linkcode linearWgsl} for these options.
 *
 * @example Every option is part of the key
 * ```ts
 * import { linearKey, type LinearOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: LinearOptions = {
 *   variant: "rowlane", wDtype: "f32", vec: 4, bias: false, tm: 1, tn: 1, workgroupSize: 64,
 * };
 * assert.equal(linearKey(o), linearKey({ ...o }));
 * assert.notEqual(linearKey(o), linearKey({ ...o, wDtype: "f16" }));
 * assert.notEqual(linearKey(o), linearKey({ ...o, bias: true }));
 * assert.notEqual(linearKey(o), linearKey({ ...o, vec: 1 }));
 * ```
 */
export function linearKey(o: LinearOptions): string {
  return `linear/${o.variant}/${o.wDtype}/v${o.vec}/b${+o.bias}/${o.tm}x${o.tn}/wg${o.workgroupSize}`;
}

/**
 * Workgroups to dispatch for an M x N output.
 *
 * @example The same 10 x 30 output under three versions
 * ```ts
 * import { type LinearOptions, linearWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const base: LinearOptions = {
 *   variant: "tile", wDtype: "f32", vec: 4, bias: false, tm: 4, tn: 4, workgroupSize: 8,
 * };
 * assert.equal(linearWorkgroups(base, 10, 30), 3); // ceil(10 / 4) * ceil(30 / 4) = 24 tiles, 8 a group
 * assert.equal(linearWorkgroups({ ...base, variant: "rowlane" }, 10, 30), 10 * 4); // ceil(30 / 8) per row
 * assert.equal(linearWorkgroups({ ...base, variant: "wgreduce" }, 10, 30), 10 * 8); // 4 outputs a workgroup
 * ```
 */
export function linearWorkgroups(o: LinearOptions, M: number, N: number): number {
  if (o.variant === "wgreduce") return M * Math.ceil(N / 4);
  if (o.variant === "rowlane") return M * Math.ceil(N / o.workgroupSize);
  const tiles = Math.ceil(M / o.tm) * Math.ceil(N / o.tn);
  return Math.ceil(tiles / o.workgroupSize);
}

/** Texels per row of the textures the `texture` version reads (a flat layout; 16 KiB rows). */
export const LINEAR_TEX_WIDTH = 1024;

function header(o: LinearOptions): string {
  const v = o.vec === 4;
  const xt = v ? "vec4<f32>" : "f32";
  const wt = v ? `vec4<${o.wDtype}>` : o.wDtype;
  return `${enableF16(o.wDtype)}
struct U { M: u32, N: u32, K: u32, ldY: u32, colOffset: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<${xt}>;
@group(0) @binding(2) var<storage, read> W: array<${wt}>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${o.bias ? "@group(0) @binding(4) var<storage, read> B: array<f32>;" : ""}
`;
}

/**
 * Bindings of the `texture` version: X and W as flat rgba32float read-only storage textures (lavapipe
 * reads those inline; a sampled texture's fetch is a call that handles mip levels).
 */
function texHeader(o: LinearOptions): string {
  const at = (t: string) =>
    `textureLoad(${t}, vec2<u32>(i % ${LINEAR_TEX_WIDTH}u, i / ${LINEAR_TEX_WIDTH}u))`;
  return `struct U { M: u32, N: u32, K: u32, ldY: u32, colOffset: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var Xt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var Wt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${o.bias ? "@group(0) @binding(4) var<storage, read> B: array<f32>;" : ""}
fn xTexel(i: u32) -> vec4<f32> {
  return ${at("Xt")};
}
fn wTexel(i: u32) -> vec4<f32> {
  return ${at("Wt")};
}
`;
}

/** f32 value of one W element (vec4 or scalar). */
function wload(o: LinearOptions, idx: string): string {
  const t = o.vec === 4 ? "vec4<f32>" : "f32";
  return o.wDtype === "f16" ? `${t}(W[${idx}])` : `W[${idx}]`;
}

function prod(o: LinearOptions, a: string, b: string): string {
  return o.vec === 4 ? `dot(${a}, ${b})` : `(${a} * ${b})`;
}

function tileKernel(o: LinearOptions): string {
  if (o.variant === "texture" && (o.vec !== 4 || o.wDtype !== "f32")) {
    throw new Error("linear texture version needs f32 weights and K % 4 == 0");
  }
  const tex = o.variant === "texture";
  const xload = (idx: string) => tex ? `xTexel(${idx})` : `X[${idx}]`;
  const wload1 = (idx: string) => tex ? `wTexel(${idx})` : wload(o, idx);
  const { tm, tn } = o;
  const lines: string[] = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`var a${i}_${j} = 0.0;`);
  const decl = lines.join("\n  ");
  const body: string[] = [];
  for (let i = 0; i < tm; i++) body.push(`let x${i} = ${xload(`min(m0 + ${i}u, u.M - 1u) * kv + k`)};`);
  for (let j = 0; j < tn; j++) {
    body.push(`{ let w = ${wload1(`min(n0 + ${j}u, u.N - 1u) * kv + k`)};`);
    for (let i = 0; i < tm; i++) body.push(`  a${i}_${j} += ${prod(o, `x${i}`, "w")};`);
    body.push("}");
  }
  const store: string[] = [];
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) {
      const b = o.bias ? ` + B[u.colOffset + n0 + ${j}u]` : "";
      store.push(
        `if (m0 + ${i}u < u.M && n0 + ${j}u < u.N) { Y[(m0 + ${i}u) * u.ldY + u.colOffset + n0 + ${j}u] = a${i}_${j}${b}; }`,
      );
    }
  }
  const head = tex ? texHeader(o) : header(o);
  return `${head}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let t = wid * ${o.workgroupSize}u + lid;
  let tilesN = (u.N + ${tn - 1}u) / ${tn}u;
  let m0 = (t / tilesN) * ${tm}u;
  let n0 = (t % tilesN) * ${tn}u;
  if (m0 >= u.M) { return; }
  let kv = u.K / ${o.vec}u;
  ${decl}
  for (var k = 0u; k < kv; k++) {
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}

function rowlaneKernel(o: LinearOptions): string {
  const b = o.bias ? " + B[u.colOffset + n]" : "";
  return `${header(o)}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let blocksN = (u.N + ${o.workgroupSize - 1}u) / ${o.workgroupSize}u;
  let m = wid / blocksN;
  let n = (wid % blocksN) * ${o.workgroupSize}u + lid;
  if (n >= u.N || m >= u.M) { return; }
  let kv = u.K / ${o.vec}u;
  var acc = 0.0;
  for (var k = 0u; k < kv; k++) {
    acc += ${prod(o, "X[m * kv + k]", wload(o, "n * kv + k"))};
  }
  Y[m * u.ldY + u.colOffset + n] = acc${b};
}`;
}

function wgreduceKernel(o: LinearOptions): string {
  const WG = o.workgroupSize;
  const b = o.bias ? " + B[u.colOffset + n]" : "";
  return `${header(o)}
var<workgroup> part: array<vec4<f32>, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let blocksN = (u.N + 3u) / 4u;
  let m = wid / blocksN;
  let n0 = (wid % blocksN) * 4u;
  let kv = u.K / ${o.vec}u;
  var acc = vec4<f32>(0.0);
  for (var k = lid; k < kv; k += ${WG}u) {
    let x = X[m * kv + k];
    acc.x += ${prod(o, "x", wload(o, "min(n0, u.N - 1u) * kv + k"))};
    acc.y += ${prod(o, "x", wload(o, "min(n0 + 1u, u.N - 1u) * kv + k"))};
    acc.z += ${prod(o, "x", wload(o, "min(n0 + 2u, u.N - 1u) * kv + k"))};
    acc.w += ${prod(o, "x", wload(o, "min(n0 + 3u, u.N - 1u) * kv + k"))};
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  if (lid < 4u) {
    let n = n0 + lid;
    if (n < u.N) { Y[m * u.ldY + u.colOffset + n] = part[0][lid]${b}; }
  }
}`;
}

/**
 * WGSL for the chosen linear variant.
 *
 * @example The GPU GEMV: a shared-memory tree reduction over a 64-lane workgroup
 * ```ts
 * import { type LinearOptions, linearWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: LinearOptions = {
 *   variant: "wgreduce", wDtype: "f32", vec: 1, bias: false, tm: 1, tn: 1, workgroupSize: 64,
 * };
 * const wgsl = linearWgsl(o);
 * assert(wgsl.includes("@compute @workgroup_size(64)"));
 * assert(wgsl.includes("var<workgroup> part: array<vec4<f32>, 64>;"));
 * assert(wgsl.includes("var<storage, read> X: array<f32>;")); // vec: 1, scalar loads
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 4); // uniforms, X, W, Y (no bias)
 * // the texture version reads f32 weights only
 * assert.throws(() => linearWgsl({ ...o, variant: "texture", wDtype: "f16", vec: 4 }), /f32 weights/);
 * ```
 */
export function linearWgsl(o: LinearOptions): string {
  if (o.variant === "tile" || o.variant === "texture") return tileKernel(o);
  if (o.variant === "rowlane") return rowlaneKernel(o);
  return wgreduceKernel(o);
}
