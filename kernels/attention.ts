/**
 * Causal self-attention with grouped-query heads, reading K and V from a cache.
 *
 * Q, O: [T, nHeads * HD] f32, query t at absolute position pos0 + t.
 * K, V: [S, nKvHeads * HD] f32 (positions 0 .. pos0 + T - 1 are valid); head h reads kv head
 * h / (nHeads / nKvHeads). Query at position p attends to positions 0..p, softmax scaled by
 * 1/sqrt(HD), computed online (running max and sum, as in FlashAttention) in f32.
 *
 * One invocation per (head, tile of TQ consecutive queries): the tile shares every K/V load,
 * which matters on CPU implementations where each load is a gather. HD is a compile-time option
 * (accumulators live in registers); HD % 4 == 0.
 * Uniforms: T, nHeads, nKvHeads, pos0, scale (f32).
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Compile-time options of the attention kernel (one pipeline per distinct set; see the module doc).
 *
 * @example Options for 8-wide heads, 2 queries per invocation, and the kernel they give
 * ```ts
 * import { attentionKey, type AttentionOptions, attentionWgsl, attentionWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: AttentionOptions = { headDim: 8, tq: 2, workgroupSize: 32 };
 * const wgsl = attentionWgsl(o);
 * assert.match(wgsl, /@workgroup_size\(32\)/);
 * assert.match(wgsl, /let t0 = \(inv \/ u\.nHeads\) \* 2u;/); // each invocation takes 2 queries
 * assert.equal(attentionKey(o), "attention/hd8/tq2/wg32");
 * assert.equal(attentionWorkgroups(o, 5, 4), 1); // 4 heads x 3 query tiles = 12 invocations
 * ```
 */
export interface AttentionOptions {
  /** Head dimension HD, baked into the shader (accumulators live in registers); a multiple of 4. */
  headDim: number;
  /** Consecutive queries per invocation (TQ); they share every K/V load. */
  tq: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/**
 * Pipeline cache key of {@linkcode attentionWgsl} for these options.
 *
 * @example Equal options share a pipeline, different ones do not
 * ```ts
 * import { attentionKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const a = attentionKey({ headDim: 64, tq: 4, workgroupSize: 8 });
 * assert.equal(a, attentionKey({ headDim: 64, tq: 4, workgroupSize: 8 }));
 * assert.notEqual(a, attentionKey({ headDim: 64, tq: 1, workgroupSize: 8 }));
 * assert.notEqual(a, attentionKey({ headDim: 128, tq: 4, workgroupSize: 8 }));
 * ```
 */
export function attentionKey(o: AttentionOptions): string {
  return `attention/hd${o.headDim}/tq${o.tq}/wg${o.workgroupSize}`;
}

/**
 * Workgroups to dispatch for T queries over nHeads heads (one invocation per head and tile of `tq` queries).
 *
 * @example 10 queries over 6 heads in tiles of 4 queries
 * ```ts
 * import { attentionWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o = { headDim: 64, tq: 4, workgroupSize: 8 };
 * // 6 heads x ceil(10 / 4) = 3 tiles = 18 invocations, 8 per workgroup
 * assert.equal(attentionWorkgroups(o, 10, 6), Math.ceil(18 / 8));
 * assert.equal(attentionWorkgroups(o, 1, 6), 1); // one generated token: one tile per head
 * ```
 */
export function attentionWorkgroups(o: AttentionOptions, T: number, nHeads: number): number {
  return Math.ceil((nHeads * Math.ceil(T / o.tq)) / o.workgroupSize);
}

/**
 * WGSL of the causal grouped-query attention kernel. Bindings and uniforms: see the module doc.
 *
 * @example The kernel for 8-wide heads (2 vec4s a head) and 3 queries per invocation
 * ```ts
 * import { attentionWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = attentionWgsl({ headDim: 8, tq: 3, workgroupSize: 64 });
 * assert.match(wgsl, /@compute @workgroup_size\(64\)/);
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 5); // uniforms, Q, K, V, O
 * assert.match(wgsl, /struct U \{ T: u32, nHeads: u32, nKvHeads: u32, pos0: u32, scale: f32 \}/);
 * // one accumulator per query of the tile and vec4 of the head, unrolled into registers
 * assert(wgsl.includes("var o2_1 = vec4<f32>(0.0);"));
 * assert(!wgsl.includes("o3_") && !wgsl.includes("o0_2"));
 * ```
 */
export function attentionWgsl(o: AttentionOptions): string {
  const V = o.headDim / 4;
  const L: string[] = [];
  for (let i = 0; i < o.tq; i++) {
    L.push(`let tq${i} = min(t0 + ${i}u, u.T - 1u); let p${i} = u.pos0 + t0 + ${i}u;`);
    L.push(`var m${i} = -3.0e38; var l${i} = 0.0;`);
    for (let d = 0; d < V; d++) {
      L.push(
        `let q${i}_${d} = Q[(tq${i} * u.nHeads + h) * ${V}u + ${d}u] * u.scale; var o${i}_${d} = vec4<f32>(0.0);`,
      );
    }
  }
  const loop: string[] = [];
  for (let d = 0; d < V; d++) loop.push(`let k${d} = K[kbase + ${d}u];`);
  for (let i = 0; i < o.tq; i++) {
    const dots = Array.from({ length: V }, (_, d) => `dot(q${i}_${d}, k${d})`).join(" + ");
    loop.push(`let sc${i} = ${dots};`);
  }
  for (let d = 0; d < V; d++) loop.push(`let v${d} = Vv[kbase + ${d}u];`);
  for (let i = 0; i < o.tq; i++) {
    loop.push(`if (s <= p${i}) {`);
    loop.push(`  let mn = max(m${i}, sc${i}); let c = exp(m${i} - mn); let e = exp(sc${i} - mn);`);
    loop.push(`  l${i} = l${i} * c + e; m${i} = mn;`);
    for (let d = 0; d < V; d++) loop.push(`  o${i}_${d} = o${i}_${d} * c + e * v${d};`);
    loop.push("}");
  }
  const store: string[] = [];
  for (let i = 0; i < o.tq; i++) {
    store.push(`if (t0 + ${i}u < u.T) {`);
    store.push(`  let inv = 1.0 / l${i};`);
    for (let d = 0; d < V; d++) {
      store.push(`  O[(tq${i} * u.nHeads + h) * ${V}u + ${d}u] = o${i}_${d} * inv;`);
    }
    store.push("}");
  }
  return `
struct U { T: u32, nHeads: u32, nKvHeads: u32, pos0: u32, scale: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> Q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> K: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Vv: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> O: array<vec4<f32>>;
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let inv = wid * ${o.workgroupSize}u + lid;
  let h = inv % u.nHeads;
  let t0 = (inv / u.nHeads) * ${o.tq}u;
  if (t0 >= u.T) { return; }
  let kvh = h / (u.nHeads / u.nKvHeads);
  let sEnd = min(u.pos0 + t0 + ${o.tq}u, u.pos0 + u.T);
  ${L.join("\n  ")}
  for (var s = 0u; s < sEnd; s++) {
    let kbase = (s * u.nKvHeads + kvh) * ${V}u;
    ${loop.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}
