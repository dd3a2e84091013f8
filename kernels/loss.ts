/**
 * Evaluation losses over logits rows [R, V] (f32), one workgroup of {@linkcode LOSS_WG} lanes per
 * row.
 * - `nll`: out[r] = logsumexp(P[r, :]) - P[r, target[r]] (next-token negative log-likelihood).
 * - `kl`: out[r] = KL(softmax(P[r]) || softmax(Q[r])) = sum_i p_i ((P_i - lseP) - (Q_i - lseQ)),
 *   P = reference (dense) logits, Q = the model under test. Computed in the same single pass as
 *   the two logsumexps, as E_p[P - Q] - lseP + lseQ with
 *   E_p[P - Q] = sum_i exp(P_i - maxP) (P_i - Q_i) / sum_i exp(P_i - maxP).
 *
 * Each lane walks its row with a stride of LOSS_WG (lane l reads columns l, l + LOSS_WG, ...: on
 * GPUs the loads coalesce, on CPU adapters a SIMD batch reads consecutive words) keeping an online
 * (running max m, sum s = sum exp(x - m)) pair (for `kl` also the P-weighted sum of P - Q, and
 * Q's pair), loads being the cost; the lanes' partials are merged by a shared-memory tree
 * (straight-line code, no loops). Each lane runs ceil(V / LOSS_WG) + 1 loop iterations in all,
 * far below llvmpipe's limit of 65535 per invocation (ARCHITECTURE.md, "Loop limit"):
 * V up to {@linkcode LOSS_MAX_V} there, no limit on GPUs.
 *
 * Bindings: 0 uniform {R, V}; 1 P f32 [R, V] read; 2 `nll`: targets u32 [R] read, `kl`: Q f32
 * [R, V] read; 3 out f32 [R] read_write.
 * Geometry: R workgroups (one per row; folded to 2-D by the runtime past 65535).
 * @module
 */
import { CPU_LOOP_LIMIT, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * The evaluation losses: `nll` (next-token negative log-likelihood) and `kl` (KL divergence from reference
 * logits).
 *
 * @example Binding 2 is the target ids for `nll` and the logits under test for `kl`
 * ```ts
 * import { type LossKind, lossWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const kinds: LossKind[] = ["nll", "kl"];
 * const [nll, kl] = kinds.map((kind) => lossWgsl(kind));
 * assert(nll.includes("@group(0) @binding(2) var<storage, read> tgt: array<u32>;"));
 * assert(kl.includes("@group(0) @binding(2) var<storage, read> Q: array<f32>;"));
 * ```
 */
export type LossKind = "nll" | "kl";
/**
 * Lanes per workgroup (one workgroup per row).
 *
 * @example Mean next-token NLL of 2 rows of 5 logits: dispatch one workgroup of LOSS_WG lanes per row
 * ```ts
 * import { Gpu, LOSS_WG, lossWgsl, packUniforms } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const R = 2, V = 5, targets = [3, 0];
 * const logits = Float32Array.of(1, 2, 0.5, 4, -1, 0, 0, 0, 0, 0);
 * const p = gpu.upload(logits, "P"), t = gpu.upload(Uint32Array.from(targets), "targets");
 * const out = gpu.buffer(R * 4, "out");
 * const wgsl = lossWgsl("nll");
 * assert(wgsl.includes(`@workgroup_size(${LOSS_WG})`));
 * const pipe = gpu.pipeline("loss/nll", () => wgsl);
 * gpu.dispatch(pipe, [p, t, out], packUniforms([R, V]), R); // one workgroup per row
 * const got = await gpu.readF32(out);
 * for (let r = 0; r < R; r++) {
 *   const row = Array.from(logits.subarray(r * V, (r + 1) * V));
 *   const want = Math.log(row.reduce((s, x) => s + Math.exp(x), 0)) - row[targets[r]];
 *   assert(Math.abs(got[r] - want) < 1e-5);
 * }
 * assert(Math.abs(got[1] - Math.log(5)) < 1e-6); // uniform logits: log V
 * gpu.release(p, t, out);
 * gpu.destroy();
 * ```
 */
export const LOSS_WG = 256;
/** Largest V whose row walk stays under llvmpipe's 65535 loop iterations per invocation. */
export const LOSS_MAX_V = LOSS_WG * (CPU_LOOP_LIMIT - 1);

/** Workgroups of a dispatch over R rows. */
export function lossWorkgroups(R: number): number {
  return R;
}

/**
 * WGSL of the per-row loss kernel for `kind`, one workgroup per logits row. Bindings: see the module doc.
 *
 * @example The KL kernel keeps P's and Q's running (max, sum) pairs, merged by a shared-memory tree
 * ```ts
 * import { LOSS_WG, lossWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = lossWgsl("kl");
 * assert(wgsl.includes(`@compute @workgroup_size(${LOSS_WG})`));
 * assert.equal(wgsl.match(/@binding\(\d\)/g)?.length, 4); // uniforms, P, Q, out
 * for (const v of ["mp", "sp", "tp", "mq", "sq"]) {
 *   assert(wgsl.includes(`var<workgroup> sh_${v}: array<f32, ${LOSS_WG}>;`));
 * }
 * // log2(LOSS_WG) levels of the tree, each ending in a barrier (plus the one before the tree)
 * assert.equal(wgsl.match(/workgroupBarrier\(\);/g)?.length, Math.log2(LOSS_WG) + 1);
 * ```
 */
export function lossWgsl(kind: LossKind): string {
  const kl = kind === "kl";
  const vars = kl ? ["mp", "sp", "tp", "mq", "sq"] : ["mp", "sp"];
  // Online update with one element x of P (and y of Q): rescale to the new max, add exp.
  const update = [
    "{ let mn = max(mp, x); let c = exp(mp - mn); let e = exp(x - mn);",
    `  sp = sp * c + e;${kl ? " tp = tp * c + e * (x - y);" : ""} mp = mn; }`,
  ];
  if (kl) update.push("{ let mn = max(mq, y); sq = sq * exp(mq - mn) + exp(y - mn); mq = mn; }");
  // Tree merge of the lanes' partials: straight-line, a barrier after each level.
  const tree: string[] = [];
  for (let h = LOSS_WG / 2; h >= 1; h /= 2) {
    tree.push(`if (lid < ${h}u) {`);
    tree.push(`  let b = lid + ${h}u;`);
    tree.push("  let m1 = sh_mp[lid]; let m2 = sh_mp[b]; let mn = max(m1, m2);");
    tree.push("  let c1 = exp(m1 - mn); let c2 = exp(m2 - mn);");
    tree.push("  sh_sp[lid] = sh_sp[lid] * c1 + sh_sp[b] * c2; sh_mp[lid] = mn;");
    if (kl) {
      tree.push("  sh_tp[lid] = sh_tp[lid] * c1 + sh_tp[b] * c2;");
      tree.push("  let q1 = sh_mq[lid]; let q2 = sh_mq[b]; let qn = max(q1, q2);");
      tree.push("  sh_sq[lid] = sh_sq[lid] * exp(q1 - qn) + sh_sq[b] * exp(q2 - qn); sh_mq[lid] = qn;");
    }
    tree.push("}");
    tree.push("workgroupBarrier();");
  }
  const result = kl
    ? "sh_tp[0] / sh_sp[0] - (sh_mp[0] + log(sh_sp[0])) + (sh_mq[0] + log(sh_sq[0]))"
    : "sh_mp[0] + log(sh_sp[0]) - P[base + tgt[r]]";
  return `
struct U { R: u32, V: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> P: array<f32>;
${
    kl
      ? "@group(0) @binding(2) var<storage, read> Q: array<f32>;"
      : "@group(0) @binding(2) var<storage, read> tgt: array<u32>;"
  }
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${vars.map((v) => `var<workgroup> sh_${v}: array<f32, ${LOSS_WG}>;`).join("\n")}
@compute @workgroup_size(${LOSS_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let r = wid;
  if (r >= u.R) { return; } // uniform: the whole workgroup leaves
  let base = r * u.V;
  var mp = -3.0e38;
  var sp = 0.0;${kl ? "\n  var tp = 0.0;\n  var mq = -3.0e38;\n  var sq = 0.0;" : ""}
  for (var i = lid; i < u.V; i += ${LOSS_WG}u) {
    let x = P[base + i];${kl ? "\n    let y = Q[base + i];" : ""}
    ${update.join("\n    ")}
  }
  ${vars.map((v) => `sh_${v}[lid] = ${v};`).join(" ")}
  workgroupBarrier();
  ${tree.join("\n  ")}
  if (lid == 0u) { out[r] = ${result}; }
}`;
}
