/**
 * Autoregressive generation on the GPU with a per-layer K/V cache: the prompt is one prefill
 * pass, then one token per pass; only the last row of logits is read back for the sampler.
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { ForwardRunner, type GpuModel } from "../model/forward.ts";
import { Sampler, type SamplerOptions } from "./sampler.ts";

/**
 * Options of {@linkcode generate}: the sampler's settings plus the length limit, stop tokens and a token
 * callback.
 */
export interface GenerateOptions extends SamplerOptions {
  /** New tokens to generate at most (stops early at the model's context or at `stopIds`). */
  maxTokens: number;
  /** Token ids that end generation (e.g. EOS); they are not emitted. */
  stopIds?: number[];
  /** Called with each new token id as soon as it is chosen. */
  onToken?: (id: number) => void;
}

/** The result of {@linkcode generate}: the new tokens and the timings. */
export interface GenerateResult {
  /** The new token ids (prompt excluded). */
  ids: number[];
  /** Seconds for the prompt pass, and for all the decode steps. */
  prefillSeconds: number;
  /** Seconds for all the decode steps. */
  decodeSeconds: number;
  /** Decode throughput: tokens after the first / decode seconds. */
  tokensPerSecond: number;
}

/** Generate from `prompt` (token ids, BOS included if wanted) with `model`. */
export async function generate(
  model: GpuModel,
  prompt: number[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  if (prompt.length === 0) throw new ArgumentError("the prompt must have at least one token (e.g. BOS)");
  const ctx = model.config.maxSeqLen;
  if (prompt.length >= ctx) {
    throw new ArgumentError(`the prompt has ${prompt.length} tokens; the model's context is ${ctx}`);
  }
  if (!(Number.isInteger(opts.maxTokens) && opts.maxTokens >= 1)) {
    throw new ArgumentError(`max tokens must be an integer >= 1, got ${opts.maxTokens}`);
  }
  const total = Math.min(ctx, prompt.length + opts.maxTokens);
  const sampler = new Sampler(opts);
  const V = model.config.vocabSize;
  const gpu = model.gpu;
  const runner = new ForwardRunner(model, prompt.length, { perLayerCache: true, maxSeq: total });
  const ids: number[] = [];
  const stop = new Set(opts.stopIds ?? []);
  try {
    const t0 = performance.now();
    runner.forward(prompt, 0);
    let logits = await gpu.readF32(runner.logits, (prompt.length - 1) * V, V);
    const t1 = performance.now();
    let pos = prompt.length;
    while (pos < total) {
      const id = sampler.sample(logits);
      if (stop.has(id)) break;
      ids.push(id);
      opts.onToken?.(id);
      if (pos + 1 >= total) break;
      runner.forward([id], pos);
      logits = await gpu.readF32(runner.logits, 0, V);
      pos++;
    }
    const t2 = performance.now();
    const decodeSeconds = (t2 - t1) / 1000;
    return {
      ids,
      prefillSeconds: (t1 - t0) / 1000,
      decodeSeconds,
      tokensPerSecond: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
    };
  } finally {
    runner.release();
  }
}
