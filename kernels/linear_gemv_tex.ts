/**
 * Dense GEMV for CPU adapters with the sparse kernels' techniques: Y[m, colOffset + r] = sum_k
 * X[m, k] * W[r, k] (+ bias[colOffset + r]), W read through `textureLoad` from persistent
 * read-only storage textures (rgba32float, or for f16 weights rgba16float (`half`), or `packed`: 8
 * halves to an rgba32uint texel, unpack2x16float; one 16-byte fetch then brings 8 weights, ~1.8x
 * faster on lavapipe), X from a 64 KiB uniform slot (at most GEMV_TEX_SLOT_FLOATS columns), f32
 * accumulation. Storage, not sampled, textures: lavapipe calls a generic texel-fetch function for a
 * sampled texture (mip level, per-lane row pitch and bounds), and reads a storage texture inline.
 *
 * Why (ARCHITECTURE.md): on lavapipe a storage load is a per-lane, per-component loop with bounds
 * checks, a texel fetch one 16-byte load per lane, and a uniform load with a per-lane index a
 * branch-free gather.
 *
 * Weight layout (built once at upload by src/ops/gemv_tex.ts), per texture piece: rows in blocks
 * of GEMV_TEX_LANES * rt rows (a SIMD batch of 8 lanes, `rt` rows each); block b, texel column k
 * (4 weights, 8 when packed), lane l, row i of the lane is texel `((b * kvp + k) * 8 + l) * rt + i` of a flat
 * layout (GEMV_TEX_WIDTH texels a texture row, texel t at (t % width, t / width)), so the 8 lanes
 * of a batch read one contiguous 128 * rt-byte run per step and each lane's rt texels share a
 * texture row. `kvp` = ceil(K / 4) (packed: K / 8) rounded up to the unroll `uk`; padding texels (columns past K,
 * rows past N) are zero, and the slot's columns past K are zeroed by the launcher.
 *
 * Uniforms: rows (of the piece), kvp, yBase (m * ldY + colOffset of the piece's first row),
 * bBase (bias index of that row). Bindings: 0 uniforms, 1 X slot, 2 W texture, 3 Y, 4 bias.
 * Loop steps per invocation: kvp / uk + 1 <= 4097, under lavapipe's 65535.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/** Lanes of a weight block (one lavapipe SIMD batch). */
export const GEMV_TEX_LANES = 8;
/**
 * Texels per texture row (flat layout).
 *
 * @example Texel t of the flat layout lies at (t % GEMV_TEX_WIDTH, t / GEMV_TEX_WIDTH) of the texture
 * ```ts
 * import { GEMV_TEX_WIDTH, gemvTexWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = gemvTexWgsl({ rt: 4, uk: 1, bias: false, workgroupSize: 64, packed: false });
 * const shift = Math.log2(GEMV_TEX_WIDTH); // a power of two: the kernel masks and shifts
 * assert(wgsl.includes(`vec2<i32>(i32(t & ${GEMV_TEX_WIDTH - 1}u), i32(t >> ${shift}u))`));
 * assert.deepEqual([5000 & (GEMV_TEX_WIDTH - 1), 5000 >> shift], [904, 4]); // texel 5000: column 904, row 4
 * ```
 */
export const GEMV_TEX_WIDTH = 1024;
/**
 * f32 columns of X in one uniform slot (64 KiB).
 *
 * @example The kernel's X binding is one uniform slot of GEMV_TEX_SLOT_FLOATS floats, as vec4s
 * ```ts
 * import { GEMV_TEX_SLOT_FLOATS, gemvTexSupported, gemvTexWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = gemvTexWgsl({ rt: 8, uk: 2, bias: true, workgroupSize: 64, packed: true });
 * assert(wgsl.includes(`var<uniform> XS: array<vec4<f32>, ${GEMV_TEX_SLOT_FLOATS / 4}>;`));
 * assert.equal(GEMV_TEX_SLOT_FLOATS * 4, 64 * 1024); // the WebGPU default maxUniformBufferBindingSize
 * // so it is the widest input (K) the texture GEMV takes
 * assert(gemvTexSupported(GEMV_TEX_SLOT_FLOATS) && !gemvTexSupported(GEMV_TEX_SLOT_FLOATS + 1));
 * ```
 */
export const GEMV_TEX_SLOT_FLOATS = 16384;
export const GEMV_TEX_SLOT_BYTES = GEMV_TEX_SLOT_FLOATS * 4;

/**
 * Compile-time options of the texture GEMV kernel (register tile, unroll, bias, workgroup size and packing).
 *
 * @example 4 rows a lane, unrolled twice, f16 weights packed 8 to a texel
 * ```ts
 * import { gemvTexKey, type GemvTexOptions, gemvTexWgsl, gemvTexWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: GemvTexOptions = { rt: 4, uk: 2, bias: false, workgroupSize: 64, packed: true };
 * const wgsl = gemvTexWgsl(o);
 * assert(wgsl.includes("var Wt: texture_storage_2d<rgba32uint, read>;")); // packed: 8 halves a texel
 * assert(wgsl.includes("unpack2x16float(w.x)"));
 * assert(wgsl.includes("var a3 = 0.0;") && !wgsl.includes("var a4"));
 * assert.equal(gemvTexKey(o), "gemvtex/r4/u2/b0/p1/wg64");
 * assert.equal(gemvTexWorkgroups(o, 288), 2); // 288 rows / 4 a lane = 72 invocations
 * ```
 */
export interface GemvTexOptions {
  /** Rows per lane (register tile): a power of two, 1..32. */
  rt: number;
  /** Texel columns per loop iteration (unroll): 1, 2 or 4. */
  uk: number;
  /** Whether the kernel adds a bias (binding 4). */
  bias: boolean;
  /** Invocations per workgroup, a multiple of GEMV_TEX_LANES. */
  workgroupSize: number;
  /**
   * f16 weights packed 8 to an rgba32uint texel (two halves a word, low half first; unpacked with
   * unpack2x16float), instead of 4 to an rgba32float or rgba16float texel.
   */
  packed: boolean;
  /** Unpacked f16 weights: rgba16float texels (default false: rgba32float). */
  half?: boolean;
}

/**
 * Pipeline cache key of {@linkcode gemvTexWgsl} for these options.
 *
 * @example Every option is part of the key
 * ```ts
 * import { gemvTexKey, type GemvTexOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: GemvTexOptions = { rt: 8, uk: 4, bias: true, workgroupSize: 32, packed: false };
 * assert.equal(gemvTexKey(o), gemvTexKey({ ...o }));
 * assert.notEqual(gemvTexKey(o), gemvTexKey({ ...o, packed: true }));
 * assert.notEqual(gemvTexKey(o), gemvTexKey({ ...o, bias: false }));
 * assert.notEqual(gemvTexKey(o), gemvTexKey({ ...o, rt: 4 }));
 * ```
 */
export function gemvTexKey(o: GemvTexOptions): string {
  return `gemvtex/r${o.rt}/u${o.uk}/b${+o.bias}/p${+o.packed}${o.half ? "/h" : ""}/wg${o.workgroupSize}`;
}

/** The texel format of the weight textures these options read. */
export function gemvTexFormat(
  o: Pick<GemvTexOptions, "packed" | "half">,
): "rgba32uint" | "rgba16float" | "rgba32float" {
  return o.packed ? "rgba32uint" : o.half ? "rgba16float" : "rgba32float";
}

/** Rows of one weight block. */
export function gemvTexBlockRows(rt: number): number {
  return GEMV_TEX_LANES * rt;
}

/**
 * Workgroups for a piece of `rows` rows.
 *
 * @example Each invocation takes `rt` rows
 * ```ts
 * import { gemvTexWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o = { rt: 4, uk: 1, bias: false, workgroupSize: 64, packed: false };
 * assert.equal(gemvTexWorkgroups(o, 1000), 4); // ceil(1000 / 4) = 250 invocations, 64 a workgroup
 * assert.equal(gemvTexWorkgroups(o, 256), 1);
 * assert.equal(gemvTexWorkgroups(o, 257), 2);
 * ```
 */
export function gemvTexWorkgroups(o: GemvTexOptions, rows: number): number {
  return Math.ceil(Math.ceil(rows / o.rt) / o.workgroupSize);
}

/**
 * WGSL of the texture GEMV kernel over one texture piece of the weights. Bindings and layout: see the module
 * doc.
 *
 * @example The f32 kernel with a bias, and the options it refuses
 * ```ts
 * import { gemvTexWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o = { rt: 2, uk: 1, bias: true, workgroupSize: 64, packed: false };
 * const wgsl = gemvTexWgsl(o);
 * assert(wgsl.includes("@compute @workgroup_size(64)"));
 * assert(wgsl.includes("var Wt: texture_storage_2d<rgba32float, read>;"));
 * assert(gemvTexWgsl({ ...o, half: true }).includes("var Wt: texture_storage_2d<rgba16float, read>;"));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 5); // uniforms, X slot, W texture, Y, bias
 * assert(wgsl.includes("Y[u.yBase + r + 1u] = a1 + B[u.bBase + r + 1u];"));
 * assert.throws(() => gemvTexWgsl({ ...o, rt: 3 }), /power of 2/);
 * assert.throws(() => gemvTexWgsl({ ...o, uk: 3 }), /not 1, 2 or 4/);
 * assert.throws(() => gemvTexWgsl({ ...o, workgroupSize: 12 }), /multiple of 8/);
 * ```
 */
export function gemvTexWgsl(o: GemvTexOptions): string {
  const { rt, uk } = o;
  if (!(rt >= 1 && rt <= 32 && (rt & (rt - 1)) === 0)) {
    throw new Error(`gemvTex: rt ${rt} not a power of 2 <= 32`);
  }
  if (![1, 2, 4].includes(uk)) throw new Error(`gemvTex: uk ${uk} not 1, 2 or 4`);
  if (o.workgroupSize % GEMV_TEX_LANES !== 0) throw new Error("gemvTex: workgroup size not a multiple of 8");
  const step = GEMV_TEX_LANES * rt; // texels between one k and the next for a lane
  const accs = Array.from({ length: rt }, (_, i) => `var a${i} = 0.0;`).join("\n  ");
  const body: string[] = [];
  for (let q = 0; q < uk; q++) {
    body.push(
      o.packed
        ? `{ let x0 = XS[2u * (k + ${q}u)]; let x1 = XS[2u * (k + ${q}u) + 1u]; let t = t0 + ${q * step}u;`
        : `{ let x = XS[k + ${q}u]; let t = t0 + ${q * step}u;`,
    );
    body.push(
      `  let c = vec2<i32>(i32(t & ${GEMV_TEX_WIDTH - 1}u), i32(t >> ${Math.log2(GEMV_TEX_WIDTH)}u));`,
    );
    for (let i = 0; i < rt; i++) {
      const at = i === 0 ? "c" : `c + vec2<i32>(${i}, 0)`;
      body.push(
        o.packed
          ? `  { let w = textureLoad(Wt, ${at}); a${i} += dot(x0, vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y))) + dot(x1, vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w))); }`
          : `  a${i} += dot(x, textureLoad(Wt, ${at}));`,
      );
    }
    body.push("}");
  }
  const store: string[] = [];
  for (let i = 0; i < rt; i++) {
    const b = o.bias ? ` + B[u.bBase + r + ${i}u]` : "";
    store.push(`if (r + ${i}u < u.rows) { Y[u.yBase + r + ${i}u] = a${i}${b}; }`);
  }
  return `struct U { rows: u32, kvp: u32, yBase: u32, bBase: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<uniform> XS: array<vec4<f32>, ${GEMV_TEX_SLOT_FLOATS / 4}>;
@group(0) @binding(2) var Wt: texture_storage_2d<${gemvTexFormat(o)}, read>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${o.bias ? "@group(0) @binding(4) var<storage, read> B: array<f32>;" : ""}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let g = wid * ${o.workgroupSize}u + lid;
  let blk = g / ${GEMV_TEX_LANES}u;
  let lane = g % ${GEMV_TEX_LANES}u;
  let r = blk * ${step}u + lane * ${rt}u;
  if (r >= u.rows) { return; }
  ${accs}
  var t0 = (blk * u.kvp * ${GEMV_TEX_LANES}u + lane) * ${rt}u;
  for (var k = 0u; k < u.kvp; k += ${uk}u) {
    ${body.join("\n    ")}
    t0 += ${uk * step}u;
  }
  ${store.join("\n  ")}
}`;
}
