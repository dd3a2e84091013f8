/**
 * Autoregressive generation on the GPU with a per-layer K/V cache: the prompt is one prefill
 * pass, then one token per pass.
 *
 * Tokens are chosen on the device (`argmaxToken` at temperature 0, else `sampleToken` with the
 * seeded generator's numbers uploaded once) and fed to the next step there, so steps are recorded
 * back to back and their tokens read back in chunks of 1, 2, 4, ... up to
 * {@linkcode DEVICE_CHUNK_MAX}: a readback costs at least 10 ms in Deno (its map polling sleeps
 * that long), which was a third of stories15M's decode step on lavapipe and would dwarf a
 * LLaMA-7B step on a real GPU. With `onDevice: false` every step's last row of logits is read
 * back for the host's `Sampler` instead: the same tokens when greedy; when sampling, the same
 * distribution but other tokens for a seed (kernels/sample.ts walks the nucleus in id order).
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { ForwardRunner, type GpuModel } from "../model/forward.ts";
import { Sampler, type SamplerOptions } from "./sampler.ts";

/**
 * Options of {@linkcode generate}: the sampler's settings plus the length limit, stop tokens and a token
 * callback.
 *
 * @example Greedy decoding that streams its tokens and stops before the token " was"
 * ```ts
 * import { generate, type GenerateOptions, Gpu, GpuModel, openTokenizer, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const tokenizer = await openTokenizer("stories15M");
 * const streamed: number[] = [];
 * const options: GenerateOptions = {
 *   maxTokens: 20,
 *   temperature: 0,
 *   stopIds: tokenizer.encode("was"), // [471]: "▁was"
 *   onToken: (id) => streamed.push(id),
 * };
 * const { ids } = await generate(model, tokenizer.encode("Once upon a time", { bos: true }), options);
 * assert.equal(tokenizer.decode(ids), ", there"); // the greedy continuation is ", there was a little"
 * assert.deepEqual(streamed, ids); // the stop token is not emitted
 * model.release();
 * gpu.destroy();
 * ```
 */
export interface GenerateOptions extends SamplerOptions {
  /** New tokens to generate at most (stops early at the model's context or at `stopIds`). */
  maxTokens: number;
  /** Token ids that end generation (e.g. EOS); they are not emitted. */
  stopIds?: number[];
  /**
   * Called with each new token id, in order, as soon as it is on the host (tokens chosen on the
   * device are read back in chunks, so they arrive in small bursts).
   */
  onToken?: (id: number) => void;
  /**
   * Choose tokens on the device and read them back in chunks (default true), or read every
   * step's logits back for the host's `Sampler` (false). Greedy tokens are the same either way;
   * sampled ones follow the same distribution, not the same ids for a seed.
   */
  onDevice?: boolean;
}

/** The largest chunk of tokens decoded on the device between two readbacks. */
export const DEVICE_CHUNK_MAX = 16;

/**
 * The result of {@linkcode generate}: the new tokens and the timings.
 *
 * @example Four sampled tokens after BOS, and the decode throughput
 * ```ts
 * import { generate, type GenerateResult, Gpu, GpuModel, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const r: GenerateResult = await generate(model, [1], { maxTokens: 4, temperature: 0.8, seed: 1 });
 * assert.equal(r.ids.length, 4); // no stop ids: exactly maxTokens new tokens
 * assert.ok(r.ids.every((id) => Number.isInteger(id) && id >= 0 && id < model.config.vocabSize));
 * assert.ok(r.prefillSeconds > 0 && r.decodeSeconds > 0);
 * assert.equal(r.tokensPerSecond, (r.ids.length - 1) / r.decodeSeconds); // the first token is prefill's
 * model.release();
 * gpu.destroy();
 * ```
 */
export interface GenerateResult {
  /** The new token ids (prompt excluded). */
  ids: number[];
  /** Seconds for the prompt pass, and for all the decode steps. */
  prefillSeconds: number;
  /** Seconds for all the decode steps. */
  decodeSeconds: number;
  /** Decode throughput: tokens after the first / decode seconds. */
  tokensPerSecond: number;
  /**
   * Why generation ended: a stop token ("stop", not among `ids`), `maxTokens` new tokens
   * ("max-tokens"), or the model's context full before that ("context").
   */
  stoppedBy: "stop" | "max-tokens" | "context";
}

/**
 * Generate from `prompt` (token ids, BOS included if wanted) with `model`.
 *
 * @example Greedy continuation of "Once upon a time" with the embedded stories15M
 * ```ts
 * import { generate, Gpu, GpuModel, openTokenizer, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const tokenizer = await openTokenizer("stories15M");
 * const prompt = tokenizer.encode("Once upon a time", { bos: true }); // [1, 9038, 2501, 263, 931]
 * const result = await generate(model, prompt, { maxTokens: 5, temperature: 0 });
 * assert.deepEqual(result.ids, [29892, 727, 471, 263, 2217]);
 * assert.equal(tokenizer.decode(result.ids), ", there was a little");
 * model.release();
 * gpu.destroy();
 * ```
 */
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
  const vocab = model.config.vocabSize;
  const bad = prompt.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < vocab));
  if (bad >= 0) {
    throw new ArgumentError(
      `prompt token ${bad} is ${prompt[bad]}, not an id in [0, ${vocab}) for this model`,
    );
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
  let stopped = false;
  /** Emit a chosen token; false (nothing emitted) for a stop token, which ends generation. */
  const accept = (id: number): boolean => {
    if (stop.has(id)) return !(stopped = true);
    ids.push(id);
    opts.onToken?.(id);
    return true;
  };
  const n = total - prompt.length; // tokens at most
  const onDevice = opts.onDevice ?? true, greedy = sampler.temperature === 0;
  const chosen = onDevice ? gpu.buffer(n * 4, "chosen tokens") : null;
  const randoms = onDevice && !greedy ? gpu.upload(sampler.draws(n), "sampling randoms") : null;
  // Token k from logits row `row`, into chosen[k] and the runner's ids.
  const choose = (row: number, k: number) =>
    greedy
      ? runner.chooseGreedy(row, chosen!, k)
      : runner.chooseSampled(row, randoms!, k, sampler.temperature, sampler.topP, chosen!, k);
  try {
    const t0 = performance.now();
    let t1 = t0;
    runner.forward(prompt, 0);
    if (chosen) {
      // Token k is chosen from the logits at position prompt.length - 1 + k into chosen[k]; the
      // step for token k reads token k - 1 from the runner's ids. Chunks of 1, 2, 4, ... tokens.
      choose(prompt.length - 1, 0);
      let done = 0, recorded = 1, chunk = 1;
      while (done < n) {
        const got = await gpu.readU32(chosen, done, recorded - done);
        if (done === 0) t1 = performance.now();
        done = recorded;
        if (!got.every(accept)) break;
        chunk = Math.min(2 * chunk, DEVICE_CHUNK_MAX);
        for (const end = Math.min(n, recorded + chunk); recorded < end; recorded++) {
          runner.forwardOnDevice(prompt.length + recorded - 1);
          choose(0, recorded);
        }
      }
    } else {
      let logits = await gpu.readF32(runner.logits, (prompt.length - 1) * V, V);
      t1 = performance.now();
      let pos = prompt.length;
      while (pos < total) {
        const id = sampler.sample(logits);
        if (!accept(id) || pos + 1 >= total) break;
        runner.forward([id], pos);
        logits = await gpu.readF32(runner.logits, 0, V);
        pos++;
      }
    }
    const t2 = performance.now();
    const decodeSeconds = (t2 - t1) / 1000;
    return {
      ids,
      prefillSeconds: (t1 - t0) / 1000,
      decodeSeconds,
      tokensPerSecond: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
      stoppedBy: stopped ? "stop" : ids.length === opts.maxTokens ? "max-tokens" : "context",
    };
  } finally {
    runner.release();
    gpu.release(chosen, randoms);
  }
}
