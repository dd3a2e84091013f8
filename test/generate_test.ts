/**
 * Generation: the sampler (pure) and greedy decoding on the GPU with a per-layer K/V cache, which
 * must reproduce the protocol's known continuation of BOS + "Once upon a time"; greedy tokens chosen
 * on the device (read back in chunks) must equal the host's, stop tokens included.
 * @module
 */
import assert from "node:assert/strict";
import { generateMain } from "../src/cli/generate_main.ts";
import { ArgumentError } from "../src/errors.ts";
import { generate } from "../src/generate/generate.ts";
import { argmax, Sampler, seededRandom } from "../src/generate/sampler.ts";
import { Gpu } from "../src/gpu/device.ts";
import { type ForwardRunner, GpuModel } from "../src/model/forward.ts";
import { evaluatePerplexity } from "../src/eval/perplexity.ts";
import { openWeights } from "../src/model/open.ts";

Deno.test("sampler: greedy is argmax with ties to the lower id", () => {
  assert.equal(argmax([1, 3, 3, 2]), 1);
  assert.equal(new Sampler({ temperature: 0 }).sample([0, 5, 5]), 1);
});

Deno.test("sampler: seeded, reproducible, and follows the softmax", () => {
  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
  const a = new Sampler({ temperature: 1, topP: 1, seed: 3 });
  const b = new Sampler({ temperature: 1, topP: 1, seed: 3 });
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) {
    const x = a.sample(logits);
    assert.equal(x, b.sample(logits));
    counts[x]++;
  }
  for (const [i, p] of [0.5, 0.3, 0.2].entries()) {
    assert(Math.abs(counts[i] / 20000 - p) < 0.015, `${counts}`);
  }
  // top-p 0.6 keeps {0, 1} (0.5 < 0.6 <= 0.8): token 2 never appears.
  const c = new Sampler({ temperature: 1, topP: 0.6, seed: 1 });
  for (let i = 0; i < 2000; i++) assert.notEqual(c.sample(logits), 2);
  // A tiny top-p is greedy.
  assert.equal(new Sampler({ temperature: 1, topP: 1e-9 }).sample(logits), 0);
  const r = seededRandom(1);
  for (let i = 0; i < 1000; i++) {
    const x = r();
    assert(x >= 0 && x < 1);
  }
  assert.throws(() => new Sampler({ topP: 0 }), /top-p/);
  assert.throws(() => new Sampler({ temperature: -1 }), /temperature/);
  for (const seed of [1.5, -1, 2 ** 32, NaN]) {
    assert.throws(() => new Sampler({ seed }), /seed must be an integer in \[0, 2\^32\)/, `seed ${seed}`);
  }
});

Deno.test("generate: greedy from BOS + 'Once upon a time' gives the known continuation, no leaks", async () => {
  const gpu = await Gpu.create();
  const source = await openWeights("stories15M");
  const live = gpu.liveBuffers;
  try {
    const model = await GpuModel.load(gpu, source);
    const seen: number[] = [];
    const r = await generate(model, [1, 9038, 2501, 263, 931], {
      maxTokens: 10,
      temperature: 0,
      onToken: (id) => seen.push(id),
    });
    assert.deepEqual(r.ids, [29892, 727, 471, 263, 2217, 7826, 4257, 365, 2354, 29889]);
    assert.deepEqual(seen, r.ids);
    assert(r.tokensPerSecond > 0);
    model.release();
    assert.equal(gpu.liveBuffers, live);
  } finally {
    source.close();
    gpu.destroy();
  }
});

Deno.test("generate: tokens chosen on the device: the host's greedy tokens, streamed, stopped mid-chunk, read back in chunks; seeded sampling", async () => {
  const gpu = await Gpu.create();
  const source = await openWeights("stories15M");
  const live = gpu.liveBuffers;
  try {
    const model = await GpuModel.load(gpu, source, { gemvTextures: gpu.cpu?.weightTextures ?? false });
    const prompt = [1, 9038, 2501, 263, 931];
    const host = await generate(model, prompt, { maxTokens: 40, temperature: 0, onDevice: false });
    assert.equal(host.ids.length, 40);
    const s0 = gpu.submitCount;
    const seen: number[] = [];
    const dev = await generate(model, prompt, {
      maxTokens: 40,
      temperature: 0,
      onToken: (id) => seen.push(id),
    });
    const submits = gpu.submitCount - s0;
    assert.deepEqual(dev.ids, host.ids);
    assert.deepEqual(seen, dev.ids);
    // The host path submits (and reads back) once a token; the device path once a chunk (1, 2,
    // 4, 8, 16, 9 tokens), plus a flush when the uniform arena fills.
    assert(submits < 20, `${submits} submits for 40 greedy tokens on the device`);
    // Lengths that end inside a chunk and on its boundary.
    for (const n of [1, 2, 3, 8, 17]) {
      assert.deepEqual(
        (await generate(model, prompt, { maxTokens: n, temperature: 0 })).ids,
        host.ids.slice(0, n),
      );
    }
    // A stop token first chosen inside the 16-token chunk (tokens 15..30): nothing from it on.
    const k = host.ids.findIndex((id, i) => i >= 16 && host.ids.indexOf(id) === i);
    assert(k >= 16 && k < 31, `no token first seen in 16..30: ${host.ids}`);
    const stopped = await generate(model, prompt, { maxTokens: 40, temperature: 0, stopIds: [host.ids[k]] });
    assert.deepEqual(stopped.ids, host.ids.slice(0, k));
    assert.deepEqual([host.stoppedBy, dev.stoppedBy, stopped.stoppedBy], [
      "max-tokens",
      "max-tokens",
      "stop",
    ]);
    // A prompt 3 tokens short of the context: 3 new tokens, ended by the context, on both paths.
    const long = Array.from({ length: model.config.maxSeqLen - 3 }, (_, i) => prompt[i % prompt.length]);
    for (const onDevice of [false, true]) {
      const full = await generate(model, long, { maxTokens: 10, temperature: 0, onDevice });
      assert.deepEqual([full.ids.length, full.stoppedBy], [3, "context"], `onDevice ${onDevice}`);
    }
    // Sampling on the device: reproducible for a seed, read back in chunks too, and at a
    // temperature near 0 the greedy tokens.
    const s1 = gpu.submitCount;
    const a = await generate(model, prompt, { maxTokens: 40, temperature: 0.8, seed: 3 });
    assert(gpu.submitCount - s1 < 20, `${gpu.submitCount - s1} submits for 40 sampled tokens on the device`);
    const b = await generate(model, prompt, { maxTokens: 40, temperature: 0.8, seed: 3 });
    const c = await generate(model, prompt, { maxTokens: 40, temperature: 0.8, seed: 4 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
    assert.notDeepEqual(a.ids, host.ids);
    const cold = await generate(model, prompt, { maxTokens: 40, temperature: 1e-3, topP: 0.9, seed: 5 });
    assert.deepEqual(cold.ids, host.ids);
    model.release();
    assert.equal(gpu.liveBuffers, live);
  } finally {
    source.close();
    gpu.destroy();
  }
});

Deno.test("generate and evaluatePerplexity: token ids outside the vocabulary are refused before any GPU work", async () => {
  // Checked first, so a stand-in model (no device) is enough; an id past the vocabulary used to read
  // no embedding row (zeros) and, as a target, no logit: a silently wrong continuation or NLL.
  const model = { config: { maxSeqLen: 64, vocabSize: 10 } } as unknown as GpuModel;
  for (const id of [10, -1, 2.5]) {
    await assert.rejects(
      () => generate(model, [1, id], { maxTokens: 2, temperature: 0 }),
      (e: Error) =>
        e instanceof ArgumentError && /prompt token 1 is .*, not an id in \[0, 10\)/.test(e.message),
    );
  }
  const runner = { model, maxTokens: 4 } as unknown as ForwardRunner;
  const bad = (windows: number[][], re: RegExp, opts = {}) =>
    assert.rejects(
      () => evaluatePerplexity(runner, windows, opts),
      (e: Error) => e instanceof ArgumentError && re.test(e.message),
    );
  await bad([], /no windows/);
  await bad([[1]], /at least 2 tokens/);
  await bad([[1, 2, 3, 4, 5]], /windows of 5 tokens exceed the runner's 4/);
  await bad([[1, 2, 3], [1, 2]], /window 1 has 2 tokens but window 0 has 3/);
  await bad([[1, 2, 10]], /window 0 token 2 is 10, not an id in \[0, 10\)/);
  const other = { model: { config: { vocabSize: 11 } }, maxTokens: 4 } as unknown as ForwardRunner;
  await bad([[1, 2, 3]], /reference model's vocabulary has 11 tokens but the model's has 10/, {
    reference: other,
  });
});

Deno.test("generate CLI: a bad temperature or top-p is refused before anything loads or prints", async () => {
  const write = Deno.stdout.writeSync;
  let written = 0;
  Deno.stdout.writeSync = (p: Uint8Array) => (written += p.length, p.length);
  try {
    for (const bad of [["--top-p", "0"], ["--top-p", "1.5"], ["--temperature=-1"]]) {
      await assert.rejects(() => generateMain(bad), ArgumentError, bad.join(" "));
    }
  } finally {
    Deno.stdout.writeSync = write;
  }
  assert.equal(written, 0, "nothing printed");
});
