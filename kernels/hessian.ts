/**
 * SparseGPT's Hessian, accumulated on the GPU as a running average over calibration sequences
 * (ALGORITHMS.md, "SparseGPT"): after a batch X f32 [T, n] of b sequences with `nBefore` seen,
 * `H <- H * ratio + scale * X^T X`, with `ratio = nBefore / (nBefore + b)` and
 * `scale = 2 / (nBefore + b)` (f32 uniforms computed on the host), so that after N sequences
 * `H = (2 / N) * sum over all tokens of x x^T`. The product is accumulated in f32 in token order.
 *
 * Storage: REVERSED order, `A = J H J` (J the reversal permutation): `A[a][b] = H[n-1-a][n-1-b]`.
 * The factorisation (kernels/cholesky.ts) works on A so that the upper Cholesky factor of H^-1
 * comes out of one lower Cholesky factorisation and one triangular inverse. A is n x n row-major,
 * split in row chunks (each one binding); this kernel runs once per chunk and writes only the
 * tiles that touch A's lower triangle (b <= a) — the rest of the upper triangle is never read.
 *
 * Geometry: one invocation per TM x TN tile of the chunk (rows r0.., columns 0..), outer products
 * over tokens: per token TM + TN loads (vec4 when n % 4 == 0) and TM * TN fused multiply-adds
 * into vec4 accumulators. No shared memory, no barriers: on CPU adapters (lavapipe) every load is
 * a per-lane gather, so big tiles (32 x 32) pay; on GPUs 4 x 4 tiles with 64-lane workgroups.
 * The loop runs T times per invocation: on llvmpipe T must stay under 65535 (launcher checks).
 *
 * Bindings: 0 uniform {T, n, r0, rc, ratio f32, scale f32}; 1 X f32 [T, n] read;
 * 2 A chunk f32 [rc, n] read_write.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Compile-time options of the Hessian accumulation kernel (tile shape and load width).
 *
 * @example 8 x 8 tiles with vec4 loads (n % 4 == 0)
 * ```ts
 * import { hessianKey, type HessianOptions, hessianWgsl, hessianWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: HessianOptions = { tm: 8, tn: 8, vec: 4, workgroupSize: 16 };
 * const wgsl = hessianWgsl(o);
 * assert(wgsl.includes("var<storage, read> X: array<vec4<f32>>;"));
 * assert(wgsl.includes("var c7_1 = vec4<f32>(0.0);") && !wgsl.includes("c8_")); // 8 rows x 2 vec4s
 * assert.equal(hessianKey(o), "sparsegpt/hessian/v4/8x8/wg16");
 * assert.equal(hessianWorkgroups(o, 64, 64), 4); // 8 x 8 = 64 tiles
 * assert.throws(() => hessianWgsl({ ...o, tm: 6 }), /multiples of 4/);
 * ```
 */
export interface HessianOptions {
  /** Tile rows (multiple of 4). */
  tm: number;
  /** Tile columns (multiple of 4). */
  tn: number;
  /** 4 when n % 4 == 0 (vec4 loads), else 1. */
  vec: 1 | 4;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/**
 * Pipeline cache key of {@linkcode hessianWgsl} for these options.
 *
 * @example Equal options share a pipeline, different ones do not
 * ```ts
 * import { hessianKey, type HessianOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: HessianOptions = { tm: 32, tn: 32, vec: 4, workgroupSize: 8 };
 * assert.equal(hessianKey(o), hessianKey({ ...o }));
 * assert.notEqual(hessianKey(o), hessianKey({ ...o, vec: 1 }));
 * assert.notEqual(hessianKey(o), hessianKey({ ...o, tn: 16 }));
 * ```
 */
export function hessianKey(o: HessianOptions): string {
  return `sparsegpt/hessian/v${o.vec}/${o.tm}x${o.tn}/wg${o.workgroupSize}`;
}

/**
 * Workgroups for a chunk of `rc` rows of an n x n Hessian.
 *
 * @example Accumulate H = 2 X^T X for one sequence of 3 tokens (n = 5) and read it in reversed order
 * ```ts
 * import {
 *   Gpu, hessianKey, type HessianOptions, hessianWgsl, hessianWorkgroups, packUniforms,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const T = 3, n = 5, o: HessianOptions = { tm: 4, tn: 4, vec: 1, workgroupSize: 8 };
 * const X = Float32Array.of(1, 2, 0, 1, 3, 0, 1, 1, 2, 1, 2, 0, 1, 0, 1);
 * const x = gpu.upload(X, "X"), a = gpu.buffer(n * n * 4, "A");
 * const pipe = gpu.pipeline(hessianKey(o), () => hessianWgsl(o));
 * // one chunk (r0 = 0, rc = n); no sequence seen before this batch of 1: ratio = 0, scale = 2 / 1
 * const u = packUniforms([T, n, 0, n, { f32: 0 }, { f32: 2 }]);
 * gpu.dispatch(pipe, [x, a], u, hessianWorkgroups(o, n, n)); // 2 x 2 tiles: 1 workgroup
 * const A = await gpu.readF32(a);
 * const H = (i: number, j: number) => 2 * [0, 1, 2].reduce((s, t) => s + X[t * n + i] * X[t * n + j], 0);
 * for (let r = 0; r < n; r++) {
 *   for (let c = 0; c <= r; c++) assert.equal(A[r * n + c], H(n - 1 - r, n - 1 - c)); // lower triangle
 * }
 * gpu.release(x, a);
 * gpu.destroy();
 * ```
 */
export function hessianWorkgroups(o: HessianOptions, rc: number, n: number): number {
  return Math.ceil((Math.ceil(rc / o.tm) * Math.ceil(n / o.tn)) / o.workgroupSize);
}

/**
 * WGSL of the Hessian update `H <- H * ratio + scale * X^T X` on one row chunk of the reversed Hessian.
 * Bindings: see the module doc.
 *
 * @example Scalar loads (n % 4 != 0) read X's columns in reverse through `col`
 * ```ts
 * import { hessianWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = hessianWgsl({ tm: 4, tn: 4, vec: 1, workgroupSize: 64 });
 * assert(wgsl.includes("@compute @workgroup_size(64)"));
 * assert(wgsl.includes("struct U { T: u32, n: u32, r0: u32, rc: u32, ratio: f32, scale: f32 }"));
 * assert(wgsl.includes("fn col(a: u32) -> u32 { return u.n - 1u - min(a, u.n - 1u); }"));
 * assert(wgsl.includes("A[k] = A[k] * u.ratio + u.scale * c3_0.w;"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 3); // uniforms, X, A chunk
 * ```
 */
export function hessianWgsl(o: HessianOptions): string {
  const { tm, tn } = o;
  if (tm % 4 || tn % 4) throw new Error("hessian tiles must be multiples of 4");
  const tq = tn / 4;
  const decl: string[] = [];
  for (let i = 0; i < tm; i++) for (let q = 0; q < tq; q++) decl.push(`var c${i}_${q} = vec4<f32>(0.0);`);
  const body: string[] = [];
  if (o.vec === 4) {
    // Row a0+i reads column n-1-a0-i: the TM columns form whole vec4s (n, a0, TM multiples of 4),
    // the vec4 at index cbA + p holds rows a0+TM-1-4p-3 .. a0+TM-1-4p in reverse.
    for (let p = 0; p < tm / 4; p++) body.push(`let xa${p} = X[tv + u32(max(cbA + ${p}, 0))];`);
    for (let p = 0; p < tq; p++) body.push(`let yb${p} = X[tv + u32(max(cbB + ${p}, 0))].wzyx;`);
    for (let i = 0; i < tm; i++) {
      const r = tm - 1 - i;
      const x = `xa${r >> 2}.${"xyzw"[r & 3]}`;
      for (let q = 0; q < tq; q++) body.push(`c${i}_${q} += ${x} * yb${tq - 1 - q};`);
    }
  } else {
    for (let i = 0; i < tm; i++) body.push(`let x${i} = X[t * u.n + col(a0 + ${i}u)];`);
    for (let q = 0; q < tq; q++) {
      const l = [0, 1, 2, 3].map((m) => `X[t * u.n + col(b0 + ${4 * q + m}u)]`);
      body.push(`let y${q} = vec4<f32>(${l.join(", ")});`);
    }
    for (let i = 0; i < tm; i++) for (let q = 0; q < tq; q++) body.push(`c${i}_${q} += x${i} * y${q};`);
  }
  const store: string[] = [];
  for (let i = 0; i < tm; i++) {
    store.push(`if (a0 + ${i}u < rEnd) {`, `  let rb = (a0 + ${i}u - u.r0) * u.n;`);
    for (let q = 0; q < tq; q++) {
      for (let m = 0; m < 4; m++) {
        const j = 4 * q + m;
        store.push(
          `  if (b0 + ${j}u < u.n) { let k = rb + b0 + ${j}u; A[k] = A[k] * u.ratio + u.scale * c${i}_${q}.${
            "xyzw"[m]
          }; }`,
        );
      }
    }
    store.push("}");
  }
  const xt = o.vec === 4 ? "vec4<f32>" : "f32";
  return `
struct U { T: u32, n: u32, r0: u32, rc: u32, ratio: f32, scale: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<${xt}>;
@group(0) @binding(2) var<storage, read_write> A: array<f32>;
/** X column of A's row/column a (reversed), clamped into range for rows past the end. */
fn col(a: u32) -> u32 { return u.n - 1u - min(a, u.n - 1u); }
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let tile = wid * ${o.workgroupSize}u + lid;
  let tilesB = (u.n + ${tn - 1}u) / ${tn}u;
  let a0 = u.r0 + (tile / tilesB) * ${tm}u;
  let b0 = (tile % tilesB) * ${tn}u;
  let rEnd = u.r0 + u.rc;
  if (a0 >= rEnd || b0 > a0 + ${tm - 1}u) { return; }
  let nv = u.n / 4u;
  let cbA = (i32(u.n) - i32(a0) - ${tm}) / 4;
  let cbB = (i32(u.n) - i32(b0) - ${tn}) / 4;
  ${decl.join("\n  ")}
  for (var t = 0u; t < u.T; t++) {
    let tv = t * nv;
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}
