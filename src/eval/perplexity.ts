/**
 * Perplexity and KL divergence under the reference protocol: windows of seqlen tokens, each
 * scored on its seqlen-1 next-token predictions; ppl = exp(mean over windows of the window's
 * mean NLL). Per-token losses are computed on the GPU into one buffer and read back once; the
 * means are taken on the host in float64.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { InFlight } from "../gpu/inflight.ts";
import type { ForwardRunner } from "../model/forward.ts";
import { ArgumentError } from "../errors.ts";
import { loss } from "../ops/basic.ts";

/**
 * The result of {@linkcode evaluatePerplexity}.
 *
 * @example What three windows of 6 tokens give
 * ```ts
 * import {
 *   evaluatePerplexity, type EvalResult, ForwardRunner, Gpu, GpuModel, openWeights,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const runner = new ForwardRunner(model, 6);
 * const windows = [ // token ids, BOS first
 *   [1, 9038, 2501, 263, 931, 29892],
 *   [1, 365, 2354, 471, 263, 2217],
 *   [1, 3118, 2462, 29892, 263, 2217],
 * ];
 * const r: EvalResult = await evaluatePerplexity(runner, windows);
 * assert.deepEqual([r.windows, r.tokens], [3, 3 * 5]); // each window scores its 5 next-token predictions
 * assert.equal(r.ppl, Math.exp(r.meanNll));
 * assert.ok(r.ppl > 1 && r.ppl < model.config.vocabSize); // better than a uniform guess
 * assert.equal(r.kl, undefined); // no reference model was given
 * runner.release();
 * model.release();
 * gpu.destroy();
 * ```
 */
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

/**
 * Options of {@linkcode evaluatePerplexity}.
 *
 * @example KL divergence from the dense model, for a model with its last MLP output zeroed
 * ```ts
 * import {
 *   evaluatePerplexity, type EvalOptions, ForwardRunner, Gpu, GpuModel, openWeights,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const source = await openWeights("stories15M");
 * const dense = await GpuModel.load(gpu, source);
 * const damaged = await GpuModel.load(gpu, source);
 * damaged.replaceLinear(5, "down", new Float32Array(288 * 768));
 * const reference = new ForwardRunner(dense, 8), runner = new ForwardRunner(damaged, 8);
 * const windows = [1, 2, 3, 4, 5].map((w) => Int32Array.from({ length: 8 }, (_, i) => 300 * w + i));
 * const progress: string[] = [];
 * const options: EvalOptions = { reference, onProgress: (done, total) => progress.push(`${done}/${total}`) };
 * const r = await evaluatePerplexity(runner, windows, options);
 * assert.deepEqual(progress, ["4/5", "5/5"]); // reported every 4 windows and at the end
 * assert.ok(r.kl! > 0); // the two models' next-token distributions differ
 * const denseOnly = await evaluatePerplexity(reference, windows);
 * assert.ok(Math.abs(r.referencePpl! - denseOnly.ppl) < 1e-4 * denseOnly.ppl);
 * for (const x of [runner, reference, damaged, dense]) x.release();
 * gpu.destroy();
 * ```
 */
export interface EvalOptions {
  /** Dense reference model for the KL divergence (same tokenizer and vocab). */
  reference?: ForwardRunner;
  /** Called after each window with the windows done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Evaluate `runner`'s model on equal-length windows.
 *
 * @example The perplexity of one window, and the same number computed on the host from the logits
 * ```ts
 * import {
 *   evaluatePerplexity, ForwardRunner, Gpu, GpuModel, openTokenizer, openWeights,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const tokenizer = await openTokenizer("stories15M");
 * const ids = tokenizer.encode("Once upon a time, there was", { bos: true }); // 8 tokens
 * const runner = new ForwardRunner(model, ids.length);
 * const { ppl, tokens } = await evaluatePerplexity(runner, [ids]);
 * runner.forward(ids);
 * const V = model.config.vocabSize, logits = await gpu.readF32(runner.logits);
 * let nll = 0; // sum over positions of -log softmax(row t)[ids[t + 1]]
 * for (let t = 0; t + 1 < ids.length; t++) {
 *   const row = logits.subarray(t * V, (t + 1) * V), max = row.reduce((a, b) => Math.max(a, b));
 *   nll += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[ids[t + 1]];
 * }
 * assert.equal(tokens, 7);
 * assert.ok(Math.abs(ppl - Math.exp(nll / 7)) < 1e-4 * ppl);
 * runner.release();
 * model.release();
 * gpu.destroy();
 * ```
 */
export async function evaluatePerplexity(
  runner: ForwardRunner,
  windows: ArrayLike<number>[],
  opts: EvalOptions = {},
): Promise<EvalResult> {
  const gpu: Gpu = runner.model.gpu;
  const V = runner.model.config.vocabSize;
  checkWindows(windows, V, runner.maxTokens);
  if (opts.reference && opts.reference.model.config.vocabSize !== V) {
    throw new ArgumentError(
      `evaluatePerplexity: the reference model's vocabulary has ${opts.reference.model.config.vocabSize} ` +
        `tokens but the model's has ${V}; the KL needs the same tokenizer`,
    );
  }
  if (opts.reference && opts.reference.maxTokens < windows[0].length) {
    throw new ArgumentError(
      `evaluatePerplexity: windows of ${windows[0].length} tokens exceed the reference runner's ` +
        `${opts.reference.maxTokens}; create it with maxTokens >= the window length`,
    );
  }
  const T = windows[0].length;
  const R = T - 1;
  const n = windows.length;
  const targets = gpu.buffer(R * 4, "targets");
  const rowLoss = gpu.buffer(R * 4, "row-loss");
  const allNll = gpu.buffer(n * R * 4, "nll-all");
  const allKl = opts.reference ? gpu.buffer(n * R * 4, "kl-all") : undefined;
  const allRefNll = opts.reference ? gpu.buffer(n * R * 4, "ref-nll-all") : undefined;
  const progress = new InFlight(1);
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
      // Progress when the GPU has finished every 4th window (so it is real), waited for one
      // report late so the GPU has the next windows queued meanwhile; the queue stays short.
      if (opts.onProgress && (w % 4 === 3 || w === n - 1)) {
        const [done, report] = [w + 1, opts.onProgress];
        await progress.add(gpu.done().then(() => report(done, n)));
      }
    }
    await progress.drain();
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

/**
 * Windows must be non-empty, all of one length in [2, maxTokens], of integer token ids in [0, V):
 * an id past the vocabulary would read no embedding row and no logit (a silently wrong NLL).
 */
function checkWindows(windows: ArrayLike<number>[], V: number, maxTokens: number): void {
  const fn = "evaluatePerplexity";
  if (windows.length === 0) throw new ArgumentError(`${fn}: no windows to evaluate`);
  const T = windows[0].length;
  if (!(T >= 2)) throw new ArgumentError(`${fn}: windows need at least 2 tokens, got ${T}`);
  if (T > maxTokens) {
    throw new ArgumentError(
      `${fn}: windows of ${T} tokens exceed the runner's ${maxTokens}; create it with maxTokens >= ${T}`,
    );
  }
  for (let w = 0; w < windows.length; w++) {
    const ids = windows[w];
    if (ids.length !== T) {
      throw new ArgumentError(
        `${fn}: window ${w} has ${ids.length} tokens but window 0 has ${T}; all must match`,
      );
    }
    for (let i = 0; i < T; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < V)) {
        throw new ArgumentError(`${fn}: window ${w} token ${i} is ${id}, not an id in [0, ${V})`);
      }
    }
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
