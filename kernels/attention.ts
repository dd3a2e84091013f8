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

/** Compile-time options of the attention kernel (one pipeline per distinct set; see the module doc). */
export interface AttentionOptions {
  /** Head dimension HD, baked into the shader (accumulators live in registers); a multiple of 4. */
  headDim: number;
  /** Consecutive queries per invocation (TQ); they share every K/V load. */
  tq: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/** Pipeline cache key of {@linkcode attentionWgsl} for these options. */
export function attentionKey(o: AttentionOptions): string {
  return `attention/hd${o.headDim}/tq${o.tq}/wg${o.workgroupSize}`;
}

/**
 * Workgroups to dispatch for T queries over nHeads heads (one invocation per head and tile of `tq` queries).
 */
export function attentionWorkgroups(o: AttentionOptions, T: number, nHeads: number): number {
  return Math.ceil((nHeads * Math.ceil(T / o.tq)) / o.workgroupSize);
}

/** WGSL of the causal grouped-query attention kernel. Bindings and uniforms: see the module doc. */
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
