/**
 * One prune job, from token ids to a report: windows, the pruning walk, and one evaluation pass
 * that gives the dense perplexity, the pruned perplexity and the KL. Uses no Deno API, so the CLI
 * (`runPrune`, which adds files, tokenizing and saving) and the browser demo run the same code and
 * report the same numbers.
 * @module
 */
import { calibrationWindows, evalWindows, type TokenIds } from "../data/windows.ts";
import { ArgumentError } from "../errors.ts";
import { evaluatePerplexity } from "../eval/perplexity.ts";
import type { Gpu } from "../gpu/device.ts";
import { LINEARS, linearShape, type ModelConfig } from "../model/config.ts";
import { ForwardRunner, GpuModel } from "../model/forward.ts";
import { linearWeight } from "../model/names.ts";
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

/** The settings of a job: `deno task prune`'s flags of the same names. */
export interface PruneJobSettings {
  method: Method;
  allocation: Allocation;
  sparsity: number;
  pattern: Pattern;
  owlM: number;
  owlLambda: number;
  /** Depth schedule step (allocation "depth"). */
  beta: number;
  /** DLP range (allocation "dlp"). */
  alpha: number;
  nmRounding: "reference" | "mass-preserving";
  /** SparseGPT damping (fraction of the mean Hessian diagonal). */
  percdamp: number;
  /** SparseGPT columns per block. */
  blocksize: number;
  /** Calibration corpus name, for the report. */
  calib: string;
  nsamples: number;
  /** Tokens per window (calibration and evaluation). */
  seqlen: number;
  /** Evaluation corpus name, for the report. */
  eval: string;
  evalWindows: number;
}

/** A finished job: the report, the pruned weights, and both models still on the GPU. */
export interface PruneJob {
  report: PruneReport;
  /** Pruned linears by canonical name (empty for method "dense"). */
  weights: Map<string, Float32Array>;
  dense: GpuModel;
  /** The pruned model (the dense one for method "dense"). */
  pruned: GpuModel;
  /** Free both models' GPU buffers. */
  release(): void;
}

/** `unstructured` or `N:M`, as `--pattern` takes it. */
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

/** The pattern's name in reports: "unstructured" or "N:M". */
export function patternName(p: Pattern): string {
  return p.kind === "nm" ? `${p.n}:${p.m}` : "unstructured";
}

/** Check what the model decides: N:M against every C_in, seqlen against the context. */
export function checkJobFits(c: ModelConfig, s: Pick<PruneJobSettings, "pattern" | "seqlen">): void {
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
  const calib = calibrationWindows(calibIds, s.nsamples, s.seqlen);
  const evalW = evalWindows(evalIds, s.seqlen, s.evalWindows);
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
  };
  validatePruneOptions(popts);
  const pruned = await prune(gpu, source, popts);

  // One pass over the evaluation windows: the dense logits give the dense perplexity and the KL.
  const dense = await GpuModel.load(gpu, source);
  const denseRunner = new ForwardRunner(dense, s.seqlen);
  let prunedModel = dense;
  let ppl: number, pplDense: number, kl: number;
  const evalProgress = (d: number, t: number) => onProgress("evaluate", d, t);
  evalProgress(0, evalW.length);
  try {
    if (s.method === "dense") {
      const r = await evaluatePerplexity(denseRunner, evalW, { onProgress: evalProgress });
      ppl = pplDense = r.ppl;
      kl = 0;
    } else {
      prunedModel = await GpuModel.load(gpu, source, { lazyBlocks: true });
      const runner = new ForwardRunner(prunedModel, s.seqlen);
      try {
        for (let l = 0; l < c.nLayers; l++) {
          await prunedModel.loadBlock(
            l,
            Object.fromEntries(LINEARS.map((lin) => [lin, pruned.weights.get(linearWeight(l, lin))!])),
          );
        }
        const r = await evaluatePerplexity(runner, evalW, {
          reference: denseRunner,
          onProgress: evalProgress,
        });
        ppl = r.ppl;
        pplDense = r.referencePpl!;
        kl = r.kl!;
      } finally {
        runner.release();
      }
    }
  } catch (e) {
    if (prunedModel !== dense) prunedModel.release();
    dense.release();
    throw e;
  } finally {
    denseRunner.release();
  }

  const report: PruneReport = {
    model: modelLabel,
    method: s.method,
    allocation: s.allocation,
    pattern: patternName(s.pattern),
    sparsity_target: s.pattern.kind === "nm" ? s.pattern.n / s.pattern.m : s.sparsity,
    sparsity_realised: maskSparsity(pruned.counts),
    ppl_dense: pplDense,
    ppl,
    kl,
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
      nsamples: s.nsamples,
      seqlen: s.seqlen,
      eval: s.eval,
      eval_windows: evalW.length,
      eval_tokens: evalW.length * (s.seqlen - 1),
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
    dense,
    pruned: prunedModel,
    release() {
      if (prunedModel !== dense) prunedModel.release();
      dense.release();
    },
  };
}
