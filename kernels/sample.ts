/**
 * Sampling a token on the device from one row of V logits (f32) at temperature T with nucleus
 * (top-p) truncation, given a uniform random number r in [0, 1) per token (drawn on the host from
 * the seeded generator, uploaded once a generation). Writes the id to `ids[0]` (the next decode
 * step's embedding input) and to `out[u.outIndex]`, like kernels/argmax.ts, so sampled decoding
 * needs no readback per token either.
 *
 * The rule (test/ref/kernels_ref.ts `refSample` is its float64 reference):
 * 1. m = the largest logit; e_i = exp((l_i - m) / T) (NaN logits: e = 0); S = sum e.
 * 2. The nucleus: the ids whose e_i >= tau, tau the largest value whose set {e >= tau} holds at
 *    least topP S of the mass (topP >= 1: every id). This is the host sampler's descending-order
 *    prefix, except that ties at the cut all join.
 * 3. The pick: walking the nucleus in id order (the host walks it in descending probability),
 *    the first id whose running mass exceeds r times the nucleus mass; the last nucleus id if
 *    rounding leaves none; id 0 when no logit is finite.
 * So the same seed gives other tokens than the host's `Sampler`, from the same distribution.
 *
 * One workgroup of {@linkcode SAMPLE_WG} lanes, lane l owning a contiguous span of ids (in
 * vec4 slots, so that the pick walks ids in order and lavapipe makes one load of 4 logits), every
 * reduction a write to shared memory that every lane then sums in full (two barriers, no tree).
 * tau comes from a 16-way search over the f32 bit patterns in [0, 1] (positive floats order as
 * their bits): 15 probe thresholds a round, each lane summing e over its span for all of them
 * (nested sets, so the float totals are monotone too), 8 rounds. Then the lanes' nucleus masses,
 * in id order, say which lane's span holds r times the nucleus mass, and that lane walks it. 12
 * passes over the row in all. Uniforms: V, row offset, outIndex, random index, 1 / T, topP, and
 * nq, the whole vec4s bound as P4 (the same bytes bound as scalars, P1, serve the rest).
 *
 * On lavapipe a stories15M row (V = 32000) takes 3.2 ms at top-p 0.9 and 0.9 ms at top-p 1
 * (workgroups of 64: 4.9 and 0.9 ms), against 11.5 ms for a readback; a binary search (31 rounds
 * of one probe) took 14 ms with 256 lanes.
 * @module
 */

/**
 * Lanes of the sampling workgroup.
 *
 * @example Sample from 3 logits twice: r = 0.1 picks id 0, r = 0.95 the last id of the nucleus
 * ```ts
 * import { Gpu, SAMPLE_WG, sampleWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const x = gpu.upload(new Float32Array([1, 0, 1, 0]), "logits"); // V = 3: p = [0.42, 0.16, 0.42]
 * const r = gpu.upload(new Float32Array([0.1, 0.95]), "r");
 * const ids = gpu.buffer(4, "ids"), out = gpu.buffer(2 * 4, "out");
 * const pipe = gpu.pipeline("sample", () => sampleWgsl());
 * const u = (k: number, topP: number) => {
 *   const a = new Uint32Array([3, 0, k, k, 0, 0, 1, 0]); // V, row offset, outIndex, random index, .., nq
 *   new Float32Array(a.buffer).set([1 / 1, topP], 4); // 1 / T, topP
 *   return a;
 * };
 * gpu.dispatch(pipe, [x, x, r, ids, out], u(0, 1), 1); // one workgroup of SAMPLE_WG lanes
 * gpu.dispatch(pipe, [x, x, r, ids, out], u(1, 0.5), 1); // top-p 0.5: ids 0 and 2 (a tie) only
 * assert.deepEqual([...await gpu.readU32(out)], [0, 2]);
 * assert.equal(SAMPLE_WG, 32);
 * gpu.release(x, r, ids, out);
 * gpu.destroy();
 * ```
 */
export const SAMPLE_WG = 32;

/**
 * WGSL of the sampling kernel (contract: the module doc). Bindings: uniforms (V, row offset,
 * outIndex, random index, 1 / T, topP, nq), logits as vec4s and as scalars, randoms, ids, out.
 *
 * @example Fixed loop bounds around every barrier, as WGSL's uniformity rules ask; probes unrolled
 * ```ts
 * import { SAMPLE_WG, sampleWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = sampleWgsl();
 * assert(wgsl.includes(`@compute @workgroup_size(${SAMPLE_WG})`));
 * assert(wgsl.includes("for (var rnd = 0u; rnd < 8u; rnd++)"));
 * assert(wgsl.includes("if (e >= th14) { part14 += e; }"));
 * ```
 */
export function sampleWgsl(): string {
  const PROBES = 15;
  const probes = Array.from({ length: PROBES }, (_, j) => j);
  // A lane's ids in order, 4 logits a load (lavapipe pays per load): x = logit of id i, for the
  // ids that are in the row and not NaN.
  const each = (body: string) =>
    `for (var q = q0; q < q1; q++) {
    let v = load4(q);
    for (var c = 0u; c < 4u; c++) {
      let g = q * 4u + c;
      let x = v[c];
      if (g >= u.base && g < u.base + u.V && !isNan(x)) {
        let i = g - u.base;
        ${body}
      }
    }
  }`;
  return `
struct U { V: u32, base: u32, outIndex: u32, rIndex: u32, invT: f32, topP: f32, nq: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> P4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> P1: array<f32>;
@group(0) @binding(3) var<storage, read> R: array<f32>;
@group(0) @binding(4) var<storage, read_write> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
var<workgroup> sh: array<f32, ${SAMPLE_WG}>;
var<workgroup> probe: array<f32, ${PROBES * SAMPLE_WG}>;
var<workgroup> cand: array<u32, ${SAMPLE_WG}>;
var<workgroup> lastId: u32;
const NONE = 0xffffffffu;
fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// Binding elements 4q..4q+3: one vec4 load, or scalar loads past the u.nq whole vec4s (P1 is the
// same bytes as P4, whose binding holds whole vec4s only).
fn load4(q: u32) -> vec4<f32> {
  if (q < u.nq) { return P4[q]; }
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { let g = q * 4u + c; if (g < arrayLength(&P1)) { v[c] = P1[g]; } }
  return v;
}
// Every lane gets the sum (or max) of the lanes' partials; sh is free again afterwards.
fn total(v: f32, lid: u32, isMax: bool) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  var t = sh[0];
  for (var l = 1u; l < ${SAMPLE_WG}u; l++) { if (isMax) { t = max(t, sh[l]); } else { t += sh[l]; } }
  workgroupBarrier();
  return t;
}
@compute @workgroup_size(${SAMPLE_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  // Lane lid's span: vec4 slots [q0, q1) of the row's slots [Q0, Q1), in id order.
  let Q0 = u.base / 4u;
  let Q1 = (u.base + u.V + 3u) / 4u;
  let C = (Q1 - Q0 + ${SAMPLE_WG - 1}u) / ${SAMPLE_WG}u;
  let q0 = min(Q1, Q0 + lid * C);
  let q1 = min(Q1, q0 + C);
  var m = -3.4e38;
  ${each("m = max(m, x);")}
  m = total(m, lid, true);
  var s = 0.0;
  ${each("s += exp((x - m) * u.invT);")}
  let S = total(s, lid, false);
  // tau: the largest bit pattern in [0, 1.0] whose set {e >= tau} keeps topP of the mass, by a
  // 16-way search: 15 probes a pass (nested sets, so their float sums are monotone too), 8 passes.
  var lo = 0u;
  var hi = 0x3f800000u;
  if (u.topP >= 1.0) { hi = 0u; }
  let goal = u.topP * S;
  for (var rnd = 0u; rnd < 8u; rnd++) {
    let gap = (hi - lo + ${PROBES}u) / ${PROBES + 1}u;
    // Probes unrolled into scalars: an indexed private array is memory traffic on lavapipe.
    ${
    probes.map((j) =>
      `var part${j} = 0.0;
    let th${j} = bitcast<f32>(lo + ${j + 1}u * gap);`
    ).join("\n    ")
  }
    if (gap > 0u) {
      ${
    each(`let e = exp((x - m) * u.invT);
        ${probes.map((j) => `if (e >= th${j}) { part${j} += e; }`).join("\n        ")}`)
  }
    }
    ${probes.map((j) => `probe[${j * SAMPLE_WG}u + lid] = part${j};`).join("\n    ")}
    workgroupBarrier();
    var newLo = lo;
    var newHi = hi;
    for (var j = 0u; j < ${PROBES}u; j++) {
      let b = lo + (j + 1u) * gap;
      if (gap > 0u && b <= hi) {
        var mass = 0.0;
        for (var l = 0u; l < ${SAMPLE_WG}u; l++) { mass += probe[j * ${SAMPLE_WG}u + l]; }
        if (mass >= goal) { newLo = b; } else { newHi = min(newHi, b - 1u); }
      }
    }
    lo = newLo;
    hi = newHi;
    workgroupBarrier();
  }
  let tau = bitcast<f32>(lo);
  var mine = 0.0;
  ${each("let e = exp((x - m) * u.invT); if (e >= tau) { mine += e; }")}
  sh[lid] = mine;
  workgroupBarrier();
  // The lanes' nucleus masses in id order: the lane whose span holds the aim walks its ids.
  var before = 0.0;
  var nucleus = 0.0;
  var lastLane = 0u;
  for (var l = 0u; l < ${SAMPLE_WG}u; l++) {
    if (l < lid) { before += sh[l]; }
    nucleus += sh[l];
    if (sh[l] > 0.0) { lastLane = l; }
  }
  let aim = R[u.rIndex] * nucleus;
  var pick = NONE;
  var lastHere = NONE;
  if (before <= aim || lid == lastLane) {
    var run = before;
    ${
    each(`let e = exp((x - m) * u.invT);
        if (e >= tau) {
          lastHere = i;
          run += e;
          if (pick == NONE && before <= aim && aim < run) { pick = i; }
        }`)
  }
  }
  cand[lid] = pick;
  if (lid == lastLane) { lastId = lastHere; }
  workgroupBarrier();
  if (lid == 0u) {
    // Rounding can put the aim on two lanes' spans (the first wins) or on none (the last id).
    var r = NONE;
    for (var l = 0u; l < ${SAMPLE_WG}u; l++) { if (r == NONE) { r = cand[l]; } }
    if (r == NONE) { r = lastId; }
    if (r == NONE || !(nucleus > 0.0)) { r = 0u; } // no finite logit: id 0
    ids[0] = r;
    out[u.outIndex] = r;
  }
}`;
}
