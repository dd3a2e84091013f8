/**
 * Perplexity and KL divergence under the reference protocol: windows of seqlen tokens, each
 * scored on its seqlen-1 next-token predictions; ppl = exp(mean over windows of the window's
 * mean NLL). Per-token losses are computed on the GPU into one buffer and read back once; the
 * means are taken on the host in float64.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { ForwardRunner } from "../model/forward.ts";
import { loss } from "../ops/basic.ts";

/** The result of {@linkcode evaluatePerplexity}. */
export interface EvalResult {
  /** Perplexity: exp of {@linkcode EvalResult.meanNll}. */
  ppl: number;
  /** Mean over windows of each window's mean NLL (nats). */
  meanNll: number;
  /** Mean per-token KL(reference || model), when a reference runner was given. */
  kl?: number;
  /** The reference model's own perplexity on the same windows (free: its logits are computed anyway). */
  referencePpl?: number;
  /** Windows evaluated. */
  windows: number;
  /** Scored predictions: windows * (seqlen - 1). */
  tokens: number;
}

/** Options of {@linkcode evaluatePerplexity}. */
export interface EvalOptions {
  /** Dense reference model for the KL divergence (same tokenizer and vocab). */
  reference?: ForwardRunner;
  /** Called after each window with the windows done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Evaluate `runner`'s model on equal-length windows. */
export async function evaluatePerplexity(
  runner: ForwardRunner,
  windows: ArrayLike<number>[],
  opts: EvalOptions = {},
): Promise<EvalResult> {
  const gpu: Gpu = runner.model.gpu;
  const T = windows[0].length;
  const R = T - 1, V = runner.model.config.vocabSize;
  const n = windows.length;
  const targets = gpu.buffer(R * 4, "targets");
  const rowLoss = gpu.buffer(R * 4, "row-loss");
  const allNll = gpu.buffer(n * R * 4, "nll-all");
  const allKl = opts.reference ? gpu.buffer(n * R * 4, "kl-all") : undefined;
  const allRefNll = opts.reference ? gpu.buffer(n * R * 4, "ref-nll-all") : undefined;
  try {
    for (let w = 0; w < n; w++) {
      const ids = windows[w];
      gpu.write(targets, Uint32Array.from(Array.prototype.slice.call(ids, 1) as number[]));
      runner.forward(ids);
      loss(gpu, "nll", runner.logits, targets, rowLoss, R, V);
      gpu.copy(rowLoss, 0, allNll, w * R * 4, R * 4);
      if (opts.reference && allKl && allRefNll) {
        opts.reference.forward(ids);
        loss(gpu, "nll", opts.reference.logits, targets, rowLoss, R, V);
        gpu.copy(rowLoss, 0, allRefNll, w * R * 4, R * 4);
        loss(gpu, "kl", opts.reference.logits, runner.logits, rowLoss, R, V);
        gpu.copy(rowLoss, 0, allKl, w * R * 4, R * 4);
      }
      // Sync every few windows so progress is real and the queue stays short.
      if (opts.onProgress && (w % 4 === 3 || w === n - 1)) {
        await gpu.sync();
        opts.onProgress(w + 1, n);
      }
    }
    const meanNll = meanOfWindowMeans(await gpu.readF32(allNll), n, R);
    const result: EvalResult = { ppl: Math.exp(meanNll), meanNll, windows: n, tokens: n * R };
    if (allRefNll) result.referencePpl = Math.exp(meanOfWindowMeans(await gpu.readF32(allRefNll), n, R));
    if (allKl) {
      const kl = await gpu.readF32(allKl);
      let s = 0;
      for (let i = 0; i < kl.length; i++) s += kl[i];
      result.kl = s / kl.length;
    }
    return result;
  } finally {
    gpu.release(targets, rowLoss, allNll, allKl, allRefNll);
  }
}

/** Mean over n windows of each window's mean over its R per-token losses, in float64. */
function meanOfWindowMeans(nll: Float32Array, n: number, R: number): number {
  let sumWindowMeans = 0;
  for (let w = 0; w < n; w++) {
    let s = 0;
    for (let r = 0; r < R; r++) s += nll[w * R + r];
    sumWindowMeans += s / R;
  }
  return sumWindowMeans / n;
}
