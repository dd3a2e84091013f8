/**
 * Float64 host reference (test oracle) of the whole pruning walk of ALGORITHMS.md, the contract
 * `src/prune/pipeline.ts` implements on the GPU:
 *
 * 1. LOD pass (OWL / DLP allocations): the calibration windows flow through the DENSE model; for
 *    block l the Wanda scores of its 7 linears are one population and
 *    `D_l = 100 * count(A > M * mean(A)) / numel`.
 * 2. Allocation: the pure functions of `src/prune/allocation.ts` (tested on their own).
 * 3. Sequential pass: block l's statistics come from the still-dense block l run on the outputs of
 *    the already-pruned blocks 0..l-1; its 7 linears are pruned (Wanda per row, magnitude per
 *    matrix, or N:M) with the `prune_ref.ts` oracles; its outputs are recomputed with the pruned
 *    weights and feed block l+1. SparseGPT: block l's Hessians (one per linear input, a running
 *    average per window, {@linkcode refHessianUpdate}) from the same pass, then
 *    {@linkcode refSparseGPT} per linear (which also UPDATES the kept weights).
 *
 * Numerics: activations, the `scaler_row` statistics and the outlier mean are float64. Scores are
 * what the contract scores are: `f32(|W| * f32(sqrt(r)))` ({@linkcode refWandaScores},
 * {@linkcode refSqrtScaler}) and `|W|` for magnitude; the outlier threshold is the f32 product
 * `f32(f32(M) * f32(mean))` of the reference's f32 tensors ({@linkcode refOutlierCountGivenMean}).
 * The block forward is written here on the batched kernel references of `kernels_ref.ts`, because
 * `forward_ref.ts` runs one token at a time and does not expose a linear's input;
 * {@linkcode refBlockForward} chained over all blocks reproduces `refLogits` (checked in
 * `test/prune_pipeline_test.ts`).
 * @module
 */
import { type LinearName, LINEARS, linearShape } from "../../src/model/config.ts";
import { f16ToF32, f32ToF16 } from "../../src/model/dtype.ts";
import { linearWeight } from "../../src/model/names.ts";
import {
  depthAllocation,
  dlpAllocation,
  outlierRatio,
  owlAllocation,
  owlMixedNM,
  pruneCount,
  uniformAllocation,
} from "../../src/prune/allocation.ts";
import type { RefLayer, RefModel } from "./forward_ref.ts";
import { refAttention, refLinear, refRmsnorm, refRope } from "./kernels_ref.ts";
import {
  refHessianUpdate,
  refMagnitudeMask,
  refNMMask,
  refOutlierCount,
  refOutlierCountGivenMean,
  refRowMask,
  refScalerRowUpdate,
  refSparseGPT,
  refSqrtScaler,
  refWandaScores,
} from "./prune_ref.ts";

/** Where a linear's input is observed (as `LinearInputGroup` in src/model/forward.ts). */
export type RefInputGroup = "qkv" | "o" | "gateup" | "down";

/** The input group each linear reads. */
export const REF_GROUP_OF: Record<LinearName, RefInputGroup> = {
  q: "qkv",
  k: "qkv",
  v: "qkv",
  o: "o",
  gate: "gateup",
  up: "gateup",
  down: "down",
};

/** The inputs of a block's linears over one window, each row-major [T, C_in]. */
export type RefBlockInputs = Record<RefInputGroup, Float64Array>;

/**
 * Block `l` of `m` over one window: `x` is [T, dim] (positions 0..T-1, causal). Returns the block
 * output [T, dim] and the inputs its linears saw: `qkv` = rmsnorm(x), `o` = the attention output,
 * `gateup` = rmsnorm(h), `down` = silu(gate) * up.
 */
export function refBlockForward(
  m: RefModel,
  l: number,
  x: Float64Array,
  T: number,
): { out: Float64Array; inputs: RefBlockInputs } {
  const c = m.config, w: RefLayer = m.layers[l];
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
  const n1 = refRmsnorm(x, w.attnNorm, T, c.dim, c.normEps);
  const q = refLinear(n1, w.q, T, qDim, c.dim, w.bias?.q);
  const k = refLinear(n1, w.k, T, kvDim, c.dim, w.bias?.k);
  const v = refLinear(n1, w.v, T, kvDim, c.dim, w.bias?.v);
  const qr = refRope(q, T, c.nHeads, c.headDim, 0, c.ropeTheta, c.ropeLayout, c.ropeScaling);
  const kr = refRope(k, T, c.nKvHeads, c.headDim, 0, c.ropeTheta, c.ropeLayout, c.ropeScaling);
  const att = refAttention(qr, kr, v, T, c.nHeads, c.nKvHeads, c.headDim, 0);
  const o = refLinear(att, w.o, T, c.dim, qDim);
  const h = x.map((xi, i) => xi + o[i]);
  const n2 = refRmsnorm(h, w.mlpNorm, T, c.dim, c.normEps);
  const gate = refLinear(n2, w.gate, T, c.hiddenDim, c.dim);
  const up = refLinear(n2, w.up, T, c.hiddenDim, c.dim);
  const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
  const down = refLinear(act, w.down, T, c.dim, c.hiddenDim);
  return { out: h.map((hi, i) => hi + down[i]), inputs: { qkv: n1, o: att, gateup: n2, down: act } };
}

/** Embeddings of one window, [T, dim]. */
export function refEmbed(m: RefModel, ids: ArrayLike<number>): Float64Array {
  const d = m.config.dim;
  const x = new Float64Array(ids.length * d);
  for (let t = 0; t < ids.length; t++) x.set(m.embed.subarray(ids[t] * d, (ids[t] + 1) * d), t * d);
  return x;
}

/** Logits [T, vocab] of the final hidden states x [T, dim]. */
export function refHead(m: RefModel, x: Float64Array, T: number): Float64Array {
  const c = m.config;
  return refLinear(refRmsnorm(x, m.finalNorm, T, c.dim, c.normEps), m.lmHead, T, c.vocabSize, c.dim);
}

/** Options of {@linkcode refPrune}: the fields of the pipeline's `PruneOptions` it needs. */
export interface RefPruneOptions {
  method: "dense" | "magnitude" | "wanda" | "owl-magnitude" | "owl-wanda" | "sparsegpt" | "owl-sparsegpt";
  /** Default: "owl" for owl-* methods, "uniform" otherwise (as the pipeline). */
  allocation?: "uniform" | "owl" | "depth" | "dlp";
  sparsity: number;
  pattern: { kind: "unstructured" } | { kind: "nm"; n: number; m: number };
  owlM: number;
  owlLambda: number;
  /** Depth schedule step; default 0.02 (the pipeline's). */
  beta?: number;
  /** DLP range; default 0.15 (the pipeline's). */
  alpha?: number;
  nmRounding?: "reference" | "mass-preserving";
  /** SparseGPT damping; default 0.01 (the pipeline's). */
  percdamp?: number;
  /** SparseGPT block size; default 128 (the pipeline's). */
  blocksize?: number;
  /** "f16": every block input (embeddings, block outputs) rounded to f16 via f32, as the walk stores them. */
  activationDtype?: "f32" | "f16";
}

/** How a linear's mask was chosen, for telling genuine mask differences from near-ties. */
export type MaskRule =
  | { kind: "row"; k: number }
  | { kind: "matrix"; count: number }
  | { kind: "nm"; n: number; m: number }
  | { kind: "sparsegpt" };

/** One pruned linear of {@linkcode RefPruneResult}. */
export interface RefLinearResult {
  name: string;
  rows: number;
  cols: number;
  /** 1 = pruned, row-major [rows, cols]. */
  mask: Uint8Array;
  /** The scores the mask was chosen from: Wanda scores (f32) or |W| (SparseGPT: empty, its
   * scores come from the weights as updated block by block). */
  scores: Float32Array;
  rule: MaskRule;
  /** Pruned entries (the mask's popcount) and what the floor rule asks for. */
  pruned: number;
  expected: number;
}

export interface RefPruneResult {
  /** D_l in percent from the dense LOD pass (OWL / DLP allocations), else null. */
  D: number[] | null;
  /** Mean Wanda score per block from the LOD pass (DLP), else null. */
  meanScores: number[] | null;
  /** Target sparsity per block (N:M: n_l / m; dense: 0). */
  sparsities: number[];
  /** N per block of an N:M pattern. */
  nPerBlock?: number[];
  /** Per pruned linear, in block order then `LINEARS` order; keyed by canonical tensor name. */
  linears: Map<string, RefLinearResult>;
  /** The model with pruned weights. */
  pruned: RefModel;
}

type Stats = Record<RefInputGroup, { r: Float64Array; n: number }>;

function newStats(m: RefModel): Stats {
  const c = m.config;
  const mk = (lin: LinearName) => ({ r: new Float64Array(linearShape(c, lin)[1]), n: 0 });
  return { qkv: mk("q"), o: mk("o"), gateup: mk("gate"), down: mk("down") };
}

type Hessians = Record<RefInputGroup, { H: Float64Array; n: number }>;

function newHessians(m: RefModel): Hessians {
  const c = m.config;
  const mk = (lin: LinearName) => {
    const n = linearShape(c, lin)[1];
    return { H: new Float64Array(n * n), n: 0 };
  };
  return { qkv: mk("q"), o: mk("o"), gateup: mk("gate"), down: mk("down") };
}

/** Fold one window's linear inputs into the running Hessians (batch of one sequence). */
function accumulateHessians(hs: Hessians, inputs: RefBlockInputs): void {
  for (const g of Object.keys(hs) as RefInputGroup[]) {
    const u = refHessianUpdate(hs[g].H, hs[g].n, inputs[g], 1);
    hs[g].H = u.H;
    hs[g].n = u.nSamples;
  }
}

/** Fold one window's linear inputs into the running `scaler_row` (batch of one sequence). */
function accumulate(stats: Stats, inputs: RefBlockInputs, T: number): void {
  for (const g of Object.keys(stats) as RefInputGroup[]) {
    const x = inputs[g], s = stats[g];
    const C = s.r.length;
    const sumSq = new Float64Array(C);
    for (let t = 0; t < T; t++) for (let j = 0; j < C; j++) sumSq[j] += x[t * C + j] ** 2;
    const u = refScalerRowUpdate(s.r, s.n, sumSq, 1);
    s.r = u.r;
    s.n = u.nSamples;
  }
}

/** Wanda scores of every linear of block l from the statistics. */
function blockScores(m: RefModel, l: number, stats: Stats): Record<LinearName, Float32Array> {
  const c = m.config;
  const sq = {} as Record<RefInputGroup, Float32Array>;
  for (const g of Object.keys(stats) as RefInputGroup[]) sq[g] = refSqrtScaler(stats[g].r);
  const out = {} as Record<LinearName, Float32Array>;
  for (const lin of LINEARS) {
    const [rows, cols] = linearShape(c, lin);
    out[lin] = refWandaScores(Float32Array.from(m.layers[l][lin]), rows, cols, sq[REF_GROUP_OF[lin]]);
  }
  return out;
}

function cloneModel(m: RefModel): RefModel {
  return {
    ...m,
    layers: m.layers.map((w) => ({
      ...w,
      ...Object.fromEntries(LINEARS.map((lin) => [lin, w[lin].slice()])),
    })),
  };
}

/**
 * The whole ALGORITHMS.md pruning walk of `model` on `calibration` (windows of equal length), in
 * float64 on the host. See the module documentation for the numerics.
 */
export function refPrune(model: RefModel, calibration: number[][], opts: RefPruneOptions): RefPruneResult {
  const c = model.config, L = c.nLayers;
  const T = calibration[0].length;
  if (calibration.some((w) => w.length !== T)) throw new Error("calibration windows must have equal length");
  const alloc = opts.allocation ?? (opts.method.startsWith("owl-") ? "owl" : "uniform");
  const isWanda = opts.method === "wanda" || opts.method === "owl-wanda";
  const sgpt = opts.method === "sparsegpt" || opts.method === "owl-sparsegpt";
  // What the walk keeps between blocks: the value itself, or (f16 activations) its f16 rounding.
  const kept = opts.activationDtype === "f16"
    ? (x: Float64Array) => Float64Array.from(f16ToF32(f32ToF16(Float32Array.from(x))))
    : (x: Float64Array) => x;

  // 1. LOD pass, dense propagation.
  let D: number[] | null = null, meanScores: number[] | null = null;
  if (alloc === "owl" || alloc === "dlp") {
    D = [];
    meanScores = [];
    let xs = calibration.map((ids) => kept(refEmbed(model, ids)));
    for (let l = 0; l < L; l++) {
      const stats = newStats(model);
      xs = xs.map((x) => {
        const { out, inputs } = refBlockForward(model, l, x, T);
        accumulate(stats, inputs, T);
        return kept(out);
      });
      const byLinear = blockScores(model, l, stats);
      const scores = LINEARS.map((lin) => byLinear[lin]);
      const { mean } = refOutlierCount(scores, opts.owlM);
      const { count, numel } = refOutlierCountGivenMean(scores, opts.owlM, mean);
      D.push(outlierRatio(count, numel));
      meanScores.push(mean);
    }
  }

  // 2. Allocation, exactly as the pipeline chooses it.
  const S = opts.sparsity;
  let sparsities: number[];
  let nPerBlock: number[] | undefined;
  const pat = opts.pattern;
  if (pat.kind === "nm" && alloc === "owl") {
    nPerBlock = owlMixedNM(D!, pat.n, pat.m, opts.owlLambda, { rounding: opts.nmRounding ?? "reference" }).n;
    sparsities = nPerBlock.map((n) => n / pat.m);
  } else if (pat.kind === "nm") {
    nPerBlock = new Array<number>(L).fill(pat.n);
    sparsities = nPerBlock.map((n) => n / pat.m);
  } else if (alloc === "owl") sparsities = owlAllocation(D!, S, opts.owlLambda);
  else if (alloc === "dlp") sparsities = dlpAllocation(meanScores!, S, opts.alpha ?? 0.15);
  else if (alloc === "depth") sparsities = depthAllocation(L, S, opts.beta ?? 0.02);
  else sparsities = uniformAllocation(L, S);

  // 3. Sequential pass.
  const pruned = cloneModel(model);
  const linears = new Map<string, RefLinearResult>();
  if (opts.method === "dense") return { D, meanScores, sparsities: sparsities.map(() => 0), linears, pruned };
  let xs = isWanda || sgpt ? calibration.map((ids) => kept(refEmbed(model, ids))) : [];
  for (let l = 0; l < L; l++) {
    if (sgpt) {
      // Hessians of the still-dense block l on the outputs of the pruned blocks 0..l-1.
      const hs = newHessians(model);
      for (const x of xs) accumulateHessians(hs, refBlockForward(model, l, x, T).inputs);
      for (const lin of LINEARS) {
        const [rows, cols] = linearShape(c, lin);
        const bs = opts.blocksize ?? 128;
        const nm = nPerBlock && pat.kind === "nm" ? { prunen: nPerBlock[l], prunem: pat.m } : {};
        const r = refSparseGPT(model.layers[l][lin], rows, cols, hs[REF_GROUP_OF[lin]].H, {
          sparsity: sparsities[l],
          blocksize: bs,
          percdamp: opts.percdamp ?? 0.01,
          ...nm,
        });
        let expected = 0;
        if (nPerBlock && pat.kind === "nm") expected = rows * (cols / pat.m) * nPerBlock[l];
        else {for (let i1 = 0; i1 < cols; i1 += bs) {
            expected += Math.floor(rows * Math.min(bs, cols - i1) * sparsities[l]);
          }}
        pruned.layers[l][lin] = r.W;
        const name = linearWeight(l, lin);
        const count = r.mask.reduce((a, b) => a + b, 0);
        const rule: MaskRule = { kind: "sparsegpt" };
        linears.set(name, {
          name,
          rows,
          cols,
          mask: r.mask,
          scores: new Float32Array(0),
          rule,
          pruned: count,
          expected,
        });
      }
      xs = xs.map((x) => kept(refBlockForward(pruned, l, x, T).out));
      continue;
    }
    let scores: Record<LinearName, Float32Array> | null = null;
    if (isWanda) {
      // Statistics of the still-dense block l on the outputs of the pruned blocks 0..l-1.
      const stats = newStats(model);
      for (const x of xs) accumulate(stats, refBlockForward(model, l, x, T).inputs, T);
      scores = blockScores(model, l, stats);
    }
    for (const lin of LINEARS) {
      const [rows, cols] = linearShape(c, lin);
      const W = model.layers[l][lin];
      const s = scores ? scores[lin] : Float32Array.from(W, Math.abs);
      let mask: Uint8Array, rule: MaskRule, expected: number;
      if (nPerBlock && pat.kind === "nm") {
        rule = { kind: "nm", n: nPerBlock[l], m: pat.m };
        mask = refNMMask(s, rows, cols, nPerBlock[l], pat.m);
        expected = rows * (cols / pat.m) * nPerBlock[l];
      } else if (isWanda) {
        const k = pruneCount(cols, sparsities[l]);
        rule = { kind: "row", k };
        mask = refRowMask(s, rows, cols, k);
        expected = rows * k;
      } else {
        expected = Math.floor(rows * cols * sparsities[l]);
        rule = { kind: "matrix", count: expected };
        mask = refMagnitudeMask(W, sparsities[l]);
      }
      let count = 0;
      const P = pruned.layers[l][lin];
      for (let i = 0; i < mask.length; i++) {
        if (mask[i]) {
          P[i] = 0;
          count++;
        }
      }
      const name = linearWeight(l, lin);
      linears.set(name, { name, rows, cols, mask, scores: s, rule, pruned: count, expected });
    }
    // Outputs of the PRUNED block feed block l+1.
    if (isWanda) xs = xs.map((x) => kept(refBlockForward(pruned, l, x, T).out));
  }
  return { D, meanScores, sparsities, nPerBlock, linears, pruned };
}
