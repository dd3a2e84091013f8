/**
 * One prune job, from token ids to a report: windows, the pruning walk, and one evaluation pass
 * that gives the dense perplexity, the pruned perplexity and the KL. Uses no Deno API, so the CLI
 * (`runPrune`, which adds files, tokenizing and saving) and the browser demo run the same code and
 * report the same numbers.
 * @module
 */
import { calibrationWindows, evalWindows, namingCorpus, type TokenIds } from "../data/windows.ts";
import { ArgumentError } from "../errors.ts";
import { depthAllocation } from "./allocation.ts";
import { evaluatePerplexity } from "../eval/perplexity.ts";
import type { Gpu } from "../gpu/device.ts";
import { LINEARS, linearShape, type ModelConfig } from "../model/config.ts";
import { ForwardRunner, GpuModel } from "../model/forward.ts";
import type { WeightSource } from "../model/weights.ts";
import {
  type Allocation,
  isSparseGPT,
  type Method,
  type Pattern,
  prune,
  type PruneOptions,
  validatePruneOptions,
} from "./pipeline.ts";
import type { PruneReport } from "./report.ts";
import { type PrunedWeights, type PrunedWeightStore, readBlockLinears } from "./store.ts";
import type { PruneCheckpoint } from "./resume.ts";

/**
 * The settings of a job: `deno task prune`'s flags of the same names.
 *
 * @example Wanda 2:4 with the CLI's other defaults, checked against stories15M's shape
 * ```ts
 * import {
 *   ArgumentError, checkJobFits, llama2cConfig, patternName, type PruneJobSettings,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const settings: PruneJobSettings = {
 *   method: "wanda", allocation: "uniform", sparsity: 0.5, pattern: { kind: "nm", n: 2, m: 4 },
 *   owlM: 5, owlLambda: 0.08, beta: 0.02, alpha: 0.15, nmRounding: "reference", percdamp: 0.01,
 *   blocksize: 128, calib: "sotu", nsamples: 128, seqlen: 256, eval: "moby-dick", evalWindows: 128,
 * };
 * const stories15M = llama2cConfig({
 *   dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256,
 * });
 * checkJobFits(stories15M, settings);
 * assert.equal(patternName(settings.pattern), "2:4");
 * assert.throws(() => checkJobFits(stories15M, { ...settings, seqlen: 512 }), ArgumentError);
 * ```
 */
export interface PruneJobSettings {
  /** The pruning method (`--method`). */
  method: Method;
  /** The allocation rule (`--allocation`). */
  allocation: Allocation;
  /** Target sparsity in [0, 1) (`--sparsity`; N:M patterns ignore it). */
  sparsity: number;
  /** Sparsity pattern (`--pattern`, see {@linkcode parsePattern}). */
  pattern: Pattern;
  /** OWL's outlier threshold (`--owl-m`). */
  owlM: number;
  /** OWL's lambda: block sparsities span S +- lambda (`--owl-lambda`). */
  owlLambda: number;
  /** Depth schedule step (allocation "depth"). */
  beta: number;
  /** DLP range (allocation "dlp"). */
  alpha: number;
  /** Rounding of OWL's mixed N:M (`--nm-rounding`). */
  nmRounding: "reference" | "mass-preserving";
  /** SparseGPT damping (fraction of the mean Hessian diagonal). */
  percdamp: number;
  /** SparseGPT columns per block. */
  blocksize: number;
  /** Calibration corpus name, for the report. */
  calib: string;
  /** Calibration windows (`--nsamples`). */
  nsamples: number;
  /** Tokens per window (calibration and evaluation). */
  seqlen: number;
  /** Evaluation corpus name, for the report. */
  eval: string;
  /** Most evaluation windows (`--eval-windows`). */
  evalWindows: number;
  /**
   * Compare the two models token by token (default true): both stay on the GPU during the
   * evaluation, which reports KL(dense || pruned). false (`--no-kl`): evaluate them one after the
   * other, with only one model on the GPU at a time (half the evaluation's GPU memory: what lets a
   * 7B model be evaluated on a 24 GB GPU), and no KL.
   */
  kl?: boolean;
  /** How the walk keeps calibration activations on the GPU (`--calib-dtype`, default "f32"; see PruneOptions). */
  activationDtype?: "f32" | "f16";
  /** Keep the calibration activations in host memory (`--offload-activations`; see PruneOptions). */
  offloadActivations?: boolean;
  /**
   * Where the pruned linears go (default: host memory). The CLI passes a {@linkcode FileWeightStore},
   * so the job holds one linear at a time in host memory; the caller closes it.
   */
  store?: PrunedWeightStore;
  /** Resume the walk from this checkpoint (see PruneOptions.resume); `store` holds its finished blocks. */
  resume?: PruneCheckpoint;
  /** How refusals of `resume` name it (see PruneOptions.resumeName). */
  resumeName?: string;
  /** Called with the walk's state after the outlier pass and every block (see PruneOptions.onCheckpoint). */
  onCheckpoint?: (checkpoint: PruneCheckpoint) => void | Promise<void>;
}

/**
 * A finished job: the report, the pruned weights, and both models still on the GPU.
 *
 * @example A "dense" job on a tiny random model: one model, unchanged weights, nothing left after release
 * ```ts
 * import {
 *   Gpu, linearWeight, MemoryByteSource, openLlama2c, type PruneJob, pruneAndEvaluate,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // A tiny random llama2.c checkpoint: dim 8, hidden 12, 2 layers, 2 heads, vocab 16, context 8.
 * const [D, H, L, V, S] = [8, 12, 2, 16, 8];
 * const n = V * D + L * (2 * D + 4 * D * D + 3 * H * D) + D + S * (D / 2); // f32 values after the header
 * const bytes = new Uint8Array(28 + 4 * n);
 * new Int32Array(bytes.buffer, 0, 7).set([D, H, L, 2, 2, V, S]);
 * new Float32Array(bytes.buffer, 28).set(Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1)));
 * const source = await openLlama2c(new MemoryByteSource(bytes));
 *
 * const gpu = await Gpu.create();
 * const before = gpu.liveBuffers;
 * const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % V);
 * const job: PruneJob = await pruneAndEvaluate(gpu, source, "tiny", ids, ids, {
 *   method: "dense", allocation: "uniform", sparsity: 0, pattern: { kind: "unstructured" }, owlM: 5,
 *   owlLambda: 0.08, beta: 0, alpha: 0, nmRounding: "reference", percdamp: 0.01, blocksize: 128,
 *   calib: "mine", nsamples: 2, seqlen: 8, eval: "mine", evalWindows: 4,
 * });
 * assert(job.pruned === job.dense);
 * const q = linearWeight(1, "q");
 * assert.deepEqual(await job.weights.read(q), await source.readF32(q));
 * assert.equal(job.report.ppl, job.report.ppl_dense);
 * assert.equal(job.report.kl, 0);
 * job.release();
 * assert.equal(gpu.liveBuffers, before);
 * gpu.destroy();
 * ```
 */
export interface PruneJob {
  /** What report.json holds. */
  report: PruneReport;
  /**
   * Every linear of every block after pruning, by canonical name, f32 [C_out, C_in]; for method
   * "dense", every linear unchanged. `settings.store` when given.
   */
  weights: PrunedWeightStore;
  /** The dense model, loaded for the evaluation; undefined when it ran one model at a time (`kl: false`). */
  dense: GpuModel | undefined;
  /** The pruned model (the dense one for method "dense"). */
  pruned: GpuModel;
  /** Free both models' GPU buffers. */
  release(): void;
}

/**
 * `unstructured` or `N:M`, as `--pattern` takes it.
 *
 * @example Parse the two forms; N above M is an ArgumentError
 * ```ts
 * import { ArgumentError, parsePattern } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parsePattern("unstructured"), { kind: "unstructured" });
 * assert.deepEqual(parsePattern("2:4"), { kind: "nm", n: 2, m: 4 });
 * assert.throws(() => parsePattern("4:2"), ArgumentError);
 * assert.throws(() => parsePattern("50%"), ArgumentError);
 * ```
 */
export function parsePattern(p: string): Pattern {
  if (p === "unstructured") return { kind: "unstructured" };
  const m = /^(\d+):(\d+)$/.exec(p);
  if (!m) {
    throw new ArgumentError(`--pattern must be unstructured or N:M (e.g. 2:4), got ${JSON.stringify(p)}`);
  }
  const n = Number(m[1]), mm = Number(m[2]);
  if (mm < 1 || n > mm) throw new ArgumentError(`--pattern ${p}: need 0 <= N <= M and M >= 1`);
  return { kind: "nm", n, m: mm };
}

/**
 * The pattern's name in reports: "unstructured" or "N:M".
 *
 * @example The inverse of {@linkcode parsePattern}
 * ```ts
 * import { parsePattern, patternName } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(patternName({ kind: "nm", n: 1, m: 8 }), "1:8");
 * for (const p of ["unstructured", "2:4", "4:8"]) assert.equal(patternName(parsePattern(p)), p);
 * ```
 */
export function patternName(p: Pattern): string {
  return p.kind === "nm" ? `${p.n}:${p.m}` : "unstructured";
}

/**
 * Check what the model decides, before any work: N:M against every C_in, seqlen against the context
 * (and at least 2 tokens), and a depth schedule's beta against the block count.
 *
 * @example stories15M (dim 288, hidden 768, context 256) takes 2:4 and 4:16, not 2:5 nor 512 tokens
 * ```ts
 * import { ArgumentError, checkJobFits, llama2cConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const config = llama2cConfig({
 *   dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256,
 * });
 * checkJobFits(config, { pattern: { kind: "nm", n: 2, m: 4 }, seqlen: 256 });
 * checkJobFits(config, { pattern: { kind: "nm", n: 4, m: 16 }, seqlen: 128 });
 * const bad = [
 *   { pattern: { kind: "nm", n: 2, m: 5 }, seqlen: 256 }, // 5 divides no C_in
 *   { pattern: { kind: "unstructured" }, seqlen: 512 }, // longer than the context
 *   { pattern: { kind: "unstructured" }, seqlen: 256, allocation: "depth", sparsity: 0.7, beta: 0.2 }, // block 5 at 1.2
 * ] as const;
 * for (const s of bad) assert.throws(() => checkJobFits(config, s), ArgumentError);
 * ```
 */
export function checkJobFits(
  c: ModelConfig,
  s:
    & Pick<PruneJobSettings, "pattern" | "seqlen">
    & Partial<Pick<PruneJobSettings, "allocation" | "sparsity" | "beta">>,
): void {
  if (s.pattern.kind === "nm") {
    for (const lin of LINEARS) {
      const cIn = linearShape(c, lin)[1];
      if (cIn % s.pattern.m !== 0) {
        throw new ArgumentError(
          `--pattern ${s.pattern.n}:${s.pattern.m}: M = ${s.pattern.m} does not divide C_in = ${cIn} of the ${lin} projection`,
        );
      }
    }
  }
  if (s.seqlen > c.maxSeqLen) {
    throw new ArgumentError(`--seqlen ${s.seqlen} exceeds the model's context of ${c.maxSeqLen} tokens`);
  }
  if (s.seqlen < 2) {
    throw new ArgumentError(
      `windows of ${s.seqlen} token(s) cannot be evaluated (the model's context is ${c.maxSeqLen}); ` +
        `a window needs at least 2 tokens`,
    );
  }
  // The depth schedule depends only on the block count: refuse a beta that overshoots now, not
  // after the calibration pass.
  if (s.allocation === "depth" && s.sparsity !== undefined && s.beta !== undefined) {
    depthAllocation(c.nLayers, s.sparsity, s.beta);
  }
}

/** Pruned / total over the pruned linears, from the masks. */
function maskSparsity(counts: { pruned: number; numel: number }[]): number {
  let p = 0, t = 0;
  for (const c of counts) [p, t] = [p + c.pruned, t + c.numel];
  return t ? p / t : 0;
}

/**
 * Prune `source` and evaluate the dense and pruned models on the protocol's windows of
 * `calibIds` / `evalIds` (token ids of whole corpora, BOS first). `modelLabel` is the report's
 * `model`. Progress phases: those of `prune`, then "evaluate". The caller releases the models.
 *
 * @example OWL-Wanda at 50% on a tiny random model, evaluated on 3 windows of 8 tokens
 * ```ts
 * import { Gpu, MemoryByteSource, openLlama2c, pruneAndEvaluate } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // A tiny random llama2.c checkpoint: dim 8, hidden 12, 2 layers, 2 heads, vocab 16, context 8.
 * const [D, H, L, V, S] = [8, 12, 2, 16, 8];
 * const n = V * D + L * (2 * D + 4 * D * D + 3 * H * D) + D + S * (D / 2); // f32 values after the header
 * const bytes = new Uint8Array(28 + 4 * n);
 * new Int32Array(bytes.buffer, 0, 7).set([D, H, L, 2, 2, V, S]);
 * new Float32Array(bytes.buffer, 28).set(Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1)));
 * const source = await openLlama2c(new MemoryByteSource(bytes));
 *
 * const gpu = await Gpu.create();
 * const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % V); // 40 tokens: 5 windows fit, 3 used
 * const job = await pruneAndEvaluate(gpu, source, "tiny", ids, ids, {
 *   method: "owl-wanda", allocation: "owl", sparsity: 0.5, pattern: { kind: "unstructured" }, owlM: 1,
 *   owlLambda: 0.08, beta: 0, alpha: 0, nmRounding: "reference", percdamp: 0.01, blocksize: 128,
 *   calib: "mine", nsamples: 2, seqlen: 8, eval: "mine", evalWindows: 3,
 * });
 * const r = job.report;
 * job.release();
 * gpu.destroy();
 * const [s0, s1] = r.blocks.map((b) => b.sparsity);
 * assert(Math.abs((s0 + s1) / 2 - 0.5) < 1e-12); // OWL: mean S,
 * assert(Math.abs(Math.abs(s0 - s1) - 2 * 0.08) < 1e-12); // spread 2 lambda
 * assert.equal(r.settings.eval_tokens, 3 * (8 - 1)); // each window predicts its last 7 tokens
 * let zeros = 0, total = 0;
 * for (const name of job.weights.names()) {
 *   const w = await job.weights.read(name);
 *   [zeros, total] = [zeros + w.filter((x) => x === 0).length, total + w.length];
 * }
 * assert.equal(r.sparsity_realised, zeros / total);
 * assert(Number.isFinite(r.ppl_dense) && r.ppl > 1 && r.kl !== null && r.kl >= 0);
 * ```
 */
export async function pruneAndEvaluate(
  gpu: Gpu,
  source: WeightSource,
  modelLabel: string,
  calibIds: TokenIds,
  evalIds: TokenIds,
  s: PruneJobSettings,
  onProgress: (phase: string, done: number, total: number) => void = () => {},
): Promise<PruneJob> {
  const t0 = performance.now();
  const c = source.config;
  checkJobFits(c, s);
  const calib = namingCorpus(
    `calibration text ${s.calib}`,
    () => calibrationWindows(calibIds, s.nsamples, s.seqlen),
  );
  const evalW = namingCorpus(
    `evaluation text ${s.eval}`,
    () => evalWindows(evalIds, s.seqlen, s.evalWindows),
  );
  const popts: PruneOptions = {
    method: s.method,
    allocation: s.allocation,
    sparsity: s.sparsity,
    pattern: s.pattern,
    owlM: s.owlM,
    owlLambda: s.owlLambda,
    beta: s.beta,
    alpha: s.alpha,
    nmRounding: s.nmRounding,
    percdamp: s.percdamp,
    blocksize: s.blocksize,
    calibration: calib,
    onProgress,
    store: s.store,
    activationDtype: s.activationDtype,
    offloadActivations: s.offloadActivations,
    resume: s.resume,
    resumeName: s.resumeName,
    onCheckpoint: s.onCheckpoint,
  };
  validatePruneOptions(popts);
  const pruned = await prune(gpu, source, popts);

  const evalProgress = (d: number, t: number) => onProgress("evaluate", d, t);
  const e = s.kl === false && s.method !== "dense"
    ? await evaluateOneAtATime(gpu, source, pruned.weights, evalW, s.seqlen, evalProgress)
    : await evaluateSideBySide(
      gpu,
      source,
      s.method === "dense" ? undefined : pruned.weights,
      evalW,
      s.seqlen,
      evalProgress,
    );
  const report: PruneReport = {
    model: modelLabel,
    method: s.method,
    allocation: s.allocation,
    pattern: patternName(s.pattern),
    sparsity_target: s.pattern.kind === "nm" ? s.pattern.n / s.pattern.m : s.sparsity,
    sparsity_realised: maskSparsity(pruned.counts),
    ppl_dense: e.pplDense,
    ppl: e.ppl,
    kl: e.kl,
    seconds: 0,
    adapter: gpu.adapterName,
    blocks: pruned.blocks,
    linears: pruned.counts,
    settings: {
      owl_m: s.owlM,
      owl_lambda: s.owlLambda,
      depth_beta: s.beta,
      dlp_alpha: s.alpha,
      nm_rounding: s.nmRounding,
      calib: s.calib,
      calib_dtype: s.activationDtype ?? "f32",
      nsamples: s.nsamples,
      seqlen: s.seqlen,
      eval: s.eval,
      eval_windows: evalW.length,
      eval_tokens: evalW.length * (s.seqlen - 1),
      // Resumed: the blocks an earlier run pruned; `seconds` counts this run only.
      ...(pruned.resumedAfterBlock !== undefined ? { resumed_after_block: pruned.resumedAfterBlock } : {}),
      ...(isSparseGPT(s.method)
        ? {
          percdamp: s.percdamp,
          blocksize: s.blocksize,
          // Hessians that were not positive definite at percdamp: the damping that worked.
          damping_retries: pruned.dampingRetries ?? [],
        }
        : {}),
    },
    ...(pruned.meanN !== undefined ? { mean_n: pruned.meanN } : {}),
  };
  report.seconds = (performance.now() - t0) / 1000;
  return {
    report,
    weights: pruned.weights,
    dense: e.dense,
    pruned: e.pruned,
    release() {
      if (e.pruned !== e.dense) e.pruned.release();
      e.dense?.release();
    },
  };
}

/** Perplexities (and KL) of an evaluation, and the models it leaves on the GPU. */
interface Evaluation {
  ppl: number;
  pplDense: number;
  kl: number | null;
  dense: GpuModel | undefined;
  pruned: GpuModel;
}

/** The pruned model on the GPU: the source's other tensors, and `weights` as its block linears. */
async function loadPruned(
  gpu: Gpu,
  source: WeightSource,
  weights: PrunedWeights,
): Promise<GpuModel> {
  const model = await GpuModel.load(gpu, source, { lazyBlocks: true });
  try {
    for (let l = 0; l < source.config.nLayers; l++) {
      await model.loadBlock(l, await readBlockLinears(weights, l));
    }
    return model;
  } catch (e) {
    model.release();
    throw e;
  }
}

/**
 * One pass over the windows with both models on the GPU: the dense logits give the dense
 * perplexity and the KL. Without pruned `weights` (method "dense") the dense model alone, KL 0.
 */
async function evaluateSideBySide(
  gpu: Gpu,
  source: WeightSource,
  weights: PrunedWeights | undefined,
  evalW: Int32Array[],
  seqlen: number,
  progress: (done: number, total: number) => void,
): Promise<Evaluation> {
  progress(0, evalW.length);
  const dense = await GpuModel.load(gpu, source);
  const denseRunner = new ForwardRunner(dense, seqlen);
  let pruned: GpuModel | undefined;
  try {
    if (!weights) {
      const r = await evaluatePerplexity(denseRunner, evalW, { onProgress: progress });
      return { ppl: r.ppl, pplDense: r.ppl, kl: 0, dense, pruned: dense };
    }
    pruned = await loadPruned(gpu, source, weights);
    const runner = new ForwardRunner(pruned, seqlen);
    try {
      const r = await evaluatePerplexity(runner, evalW, { reference: denseRunner, onProgress: progress });
      return { ppl: r.ppl, pplDense: r.referencePpl!, kl: r.kl!, dense, pruned };
    } finally {
      runner.release();
    }
  } catch (e) {
    pruned?.release();
    dense.release();
    throw e;
  } finally {
    denseRunner.release();
  }
}

/**
 * The dense model over every window, released, then the pruned one (`kl: false`): one model on the
 * GPU at a time. Progress counts both passes.
 */
async function evaluateOneAtATime(
  gpu: Gpu,
  source: WeightSource,
  weights: PrunedWeights,
  evalW: Int32Array[],
  seqlen: number,
  progress: (done: number, total: number) => void,
): Promise<Evaluation> {
  const n = evalW.length;
  progress(0, 2 * n);
  const dense = await GpuModel.load(gpu, source);
  let pplDense: number;
  const denseRunner = new ForwardRunner(dense, seqlen);
  try {
    pplDense = (await evaluatePerplexity(denseRunner, evalW, { onProgress: (d) => progress(d, 2 * n) })).ppl;
  } finally {
    denseRunner.release();
    dense.release();
  }
  const pruned = await loadPruned(gpu, source, weights);
  try {
    const runner = new ForwardRunner(pruned, seqlen);
    try {
      const r = await evaluatePerplexity(runner, evalW, { onProgress: (d) => progress(n + d, 2 * n) });
      return { ppl: r.ppl, pplDense, kl: null, dense: undefined, pruned };
    } finally {
      runner.release();
    }
  } catch (e) {
    pruned.release();
    throw e;
  }
}
