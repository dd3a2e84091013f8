/**
 * Evaluation losses over logits rows [R, V] (f32), one invocation per row (a one-pass logsumexp, no barriers: rows are independent and R is in the hundreds).
 * - `nll`: out[r] = logsumexp(P[r, :]) - P[r, target[r]] (next-token negative log-likelihood).
 * - `kl`: out[r] = KL(softmax(P[r]) || softmax(Q[r])) = sum_i p_i ((P_i - lseP) - (Q_i - lseQ)),
 *   P = reference (dense) logits, Q = the model under test.
 * Uniforms: R, V.
 * @module
 */
import { LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

export type LossKind = "nll" | "kl";
export const LOSS_WG = 64;

/** logsumexp of one row of array `M` (WGSL has no pointer-to-storage parameters without extensions). */
function lseFn(M: string): string {
  return `
fn lse${M}(base: u32) -> f32 {
  // One pass with a running max (loads, not exps, are the cost on CPU adapters).
  var mx = -3.0e38;
  var s = 0.0;
  for (var i = 0u; i < u.V; i++) {
    let x = ${M}[base + i];
    if (x > mx) { s = s * exp(mx - x) + 1.0; mx = x; } else { s += exp(x - mx); }
  }
  return mx + log(s);
}`;
}

export function lossWgsl(kind: LossKind): string {
  const second = kind === "nll"
    ? "@group(0) @binding(2) var<storage, read> tgt: array<u32>;"
    : "@group(0) @binding(2) var<storage, read> Q: array<f32>;";
  const body = kind === "nll" ? "out[r] = lseP(base) - P[base + tgt[r]];" : `
  let lp = lseP(base);
  let lq = lseQ(base);
  var kl = 0.0;
  for (var i = 0u; i < u.V; i++) {
    let a = P[base + i] - lp;
    kl += exp(a) * (a - (Q[base + i] - lq));
  }
  out[r] = kl;`;
  return `
struct U { R: u32, V: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> P: array<f32>;
${second}
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${lseFn("P")}${kind === "kl" ? lseFn("Q") : ""}
@compute @workgroup_size(${LOSS_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let r = wid * ${LOSS_WG}u + lid;
  if (r >= u.R) { return; }
  let base = r * u.V;
  ${body}
}`;
}
