/**
 * End-to-end tests of the GPU forward pass (src/model/forward.ts) on the real stories15M:
 * - the whole pass in f32 against the float64 reference forward (test/ref/forward_ref.ts);
 * - greedy decoding with the per-layer K/V cache (prefill, then one token at a time), and a
 *   window fed in chunks through the cache giving the logits of one pass;
 * - `deno task ppl`'s evaluation (runPpl, in-process) against the protocol computed on the reference;
 * - the Hugging Face export (f32 and f16) read back through openWeights(dir) (rotate-half RoPE,
 *   permuted q/k rows) gives the logits of the llama2.c original on the GPU;
 * - `gemvTextures`: decoding (T = 1) runs the texture GEMV, prompts the storage kernels, and
 *   `replaceLinear` and `release` keep the textures in step;
 * - every GPU buffer is released (gpu.liveBuffers returns to its starting value).
 *
 * Relative error, throughout: max over all logits of |gpu - want| divided by max over all logits of
 * |want| (the logit scale), so near-zero logits do not blow the ratio up.
 *
 * The device is created with f16 available where the adapter has it; every stories15M model here is
 * loaded with `dtype: "f32"` explicitly (what OWLGPU_FORCE_F32=1 would give), except the f16 export,
 * which keeps f16 weights on the GPU when the device has shader-f16 (so the f16 kernels run too).
 *
 * Time: on lavapipe with a cold Mesa shader cache, compiling the 32-row GEMM tile of the T-token
 * pass takes over a minute (it is the tile every 256-token perplexity window uses); with the cache
 * warm the file runs in about 20 s.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPpl } from "../src/cli/ppl_main.ts";
import { tokenizeCorpus } from "../src/data/corpora.ts";
import { openTokenizer } from "../src/data/open_tokenizer.ts";
import { evalWindows } from "../src/data/windows.ts";
import { Gpu } from "../src/gpu/device.ts";
import { exportHuggingFace } from "../src/model/export.ts";
import { LINEARS, linearShape } from "../src/model/config.ts";
import { ForwardRunner, GpuModel, type GpuModelOptions } from "../src/model/forward.ts";
import { linearWeight } from "../src/model/names.ts";
import { releaseGemvTex, uploadGemvTex } from "../src/ops/gemv_tex.ts";
import { openWeights } from "../src/model/open.ts";
import type { WeightSource } from "../src/model/weights.ts";
import { loadRefModel, refLogits, type RefModel } from "./ref/forward_ref.ts";

/** BOS + "Once upon a time". */
const PROMPT = [1, 9038, 2501, 263, 931];
/** The known continuation: ", there was a little girl named Lily." (docs/PROTOCOL.md). */
const GREEDY_10 = [29892, 727, 471, 263, 2217, 7826, 4257, 365, 2354, 29889];
/** Window length of the logit comparisons: short, so the float64 reference stays fast. */
const T = 32;
/** Tokens per pass in the chunked-prefill runs (the greedy prompt's GEMM tile, already compiled). */
const CHUNK = 8;

const gpu = await Gpu.create();
const liveAtStart = gpu.liveBuffers;

/** A fixed T-token window: BOS + a story sentence (real text, so the logits are realistic). */
async function testWindow(): Promise<number[]> {
  const tok = await openTokenizer("stories15M");
  const ids = tok.encode(
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. " +
      "One day, she saw a big red ball in the park and ran to pick it up.",
    { bos: true },
  );
  assert(ids.length >= T, `the test sentence has only ${ids.length} tokens`);
  return ids.slice(0, T);
}

/**
 * GPU logits [ids.length, vocab] of `source` (loaded, run and released here). With `chunk` below
 * ids.length the window goes through in passes of `chunk` tokens at positions 0, chunk, 2 chunk...
 * (chunked prefill through the per-layer K/V cache).
 */
async function gpuLogits(
  source: WeightSource,
  ids: number[],
  opts: GpuModelOptions,
  chunk = ids.length,
): Promise<Float32Array> {
  const V = source.config.vocabSize;
  const model = await GpuModel.load(gpu, source, opts);
  const runner = new ForwardRunner(model, chunk, { perLayerCache: chunk < ids.length, maxSeq: ids.length });
  try {
    if (opts.dtype) assert.equal(model.dtype, opts.dtype);
    const out = new Float32Array(ids.length * V);
    for (let s = 0; s < ids.length; s += chunk) {
      const part = ids.slice(s, s + chunk);
      runner.forward(part, s);
      out.set(await gpu.readF32(runner.logits, 0, part.length * V), s * V);
    }
    return out;
  } finally {
    runner.release();
    model.release();
  }
}

/** max|a - b| / max|b| over all elements (see the module doc). */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

function argmax(x: ArrayLike<number>, from = 0, n = x.length - from): number {
  let best = from;
  for (let i = from + 1; i < from + n; i++) if (x[i] > x[best]) best = i;
  return best - from;
}

/** Positions (rows of V logits) where a and b have the same argmax. */
function argmaxAgreement(a: ArrayLike<number>, b: ArrayLike<number>, V: number): number {
  let same = 0;
  for (let r = 0; r < a.length / V; r++) if (argmax(a, r * V, V) === argmax(b, r * V, V)) same++;
  return same;
}

// The original stories15M (llama2.c layout, f32) and its GPU logits on the test window, shared.
const window = await testWindow();
const original = await openWeights("stories15M");
let originalLogits: Float32Array | undefined;
async function originalGpuLogits(): Promise<Float32Array> {
  return originalLogits ??= await gpuLogits(original, window, { dtype: "f32" });
}

let refModel: RefModel | undefined;
async function originalRef(): Promise<RefModel> {
  return refModel ??= await loadRefModel(original);
}

Deno.test("forward e2e: stories15M f32 on the GPU matches the float64 reference (rel. err < 1e-3)", async () => {
  const got = await originalGpuLogits();
  const want = refLogits(await originalRef(), window);
  const err = relError(got, want);
  console.log(`  ${T} tokens: max|gpu - ref| / max|ref| = ${err.toExponential(2)}`);
  assert(err < 1e-3, `relative error ${err} >= 1e-3`);
  const V = original.config.vocabSize;
  assert.equal(argmaxAgreement(got, want, V), T, "argmax differs from the reference at some position");
});

Deno.test("forward e2e: greedy decoding on the GPU continues 'Once upon a time' as the reference", async () => {
  const V = original.config.vocabSize;
  const maxSeq = PROMPT.length + GREEDY_10.length;
  const model = await GpuModel.load(gpu, original, { dtype: "f32" });
  const runner = new ForwardRunner(model, PROMPT.length, { perLayerCache: true, maxSeq });
  try {
    const out: number[] = [];
    runner.forward(PROMPT, 0); // prefill (a GEMM per linear)...
    let last = PROMPT.length - 1;
    for (let i = 0; i < GREEDY_10.length; i++) {
      out.push(argmax(await gpu.readF32(runner.logits, last * V, V)));
      if (i + 1 < GREEDY_10.length) {
        runner.forward([out[i]], PROMPT.length + i); // ...then one token at a time (GEMV, K/V cache)
        last = 0;
      }
    }
    // Past the end of the K/V cache is an error, not a silently wrong answer.
    assert.throws(() => runner.forward([out[0]], maxSeq), /exceed the K\/V cache/);
    const text = (await openTokenizer("stories15M")).decode(out);
    assert.deepEqual(out, GREEDY_10, `got ${JSON.stringify(text)}`);
    assert.equal(text, ", there was a little girl named Lily.");
  } finally {
    runner.release();
    model.release();
  }
});

Deno.test("forward e2e: chunked prefill (4 passes of 8 tokens through the K/V cache) equals one pass", async () => {
  const chunked = await gpuLogits(original, window, { dtype: "f32" }, CHUNK);
  const err = relError(chunked, await originalGpuLogits());
  console.log(`  rel. err ${err.toExponential(2)}`);
  assert(err <= 1e-5, `chunked prefill: relative error ${err} > 1e-5`);
});

for (const dtype of ["f32", "f16"] as const) {
  Deno.test(`forward e2e: stories15M exported to Hugging Face ${dtype} and read back gives the original logits`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "owlgpu-e2e-" });
    try {
      const out = join(dir, `stories15M-${dtype}`);
      await exportHuggingFace(original, out, { dtype });
      const hf = await openWeights(out);
      let got: Float32Array;
      try {
        assert.equal(hf.config.ropeLayout, "half");
        assert.equal(hf.dtype, dtype);
        // f16 stays f16 on the GPU where the device supports it (the default choice). It runs in
        // passes of CHUNK tokens: on lavapipe a new 32-row GEMM tile costs over a minute to compile
        // (no shader cache), the 8-row one a few seconds.
        got = dtype === "f32"
          ? await gpuLogits(hf, window, { dtype: "f32" })
          : await gpuLogits(hf, window, {}, CHUNK);
      } finally {
        hf.close();
      }
      const want = await originalGpuLogits();
      const V = original.config.vocabSize;
      const err = relError(got, want);
      const agree = argmaxAgreement(got, want, V);
      console.log(
        `  ${dtype}${dtype === "f16" ? ` (GPU weights ${gpu.f16 ? "f16" : "f32"})` : ""}: ` +
          `rel. err ${err.toExponential(2)}, argmax agrees on ${agree}/${T}`,
      );
      if (dtype === "f32") {
        assert(err <= 1e-4, `f32 export: relative error ${err} > 1e-4`);
        assert.equal(agree, T);
      } else {
        assert(err <= 2e-2, `f16 export: relative error ${err} > 2e-2`);
        assert(agree >= T - 2, `f16 export: argmax agrees on only ${agree}/${T} positions`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("forward e2e: `deno task ppl` (runPpl) on 2 windows of 8 tokens matches the float64 reference", async () => {
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-e2e-" });
  try {
    const json = join(dir, "ppl.json");
    const report = await runPpl({
      model: "stories15M",
      eval: "moby-dick",
      evalWindows: 2,
      seqlen: CHUNK,
      json,
    });
    // The protocol on the reference: exp(mean over windows of the window's mean next-token NLL).
    const tokens = await tokenizeCorpus("moby-dick", await openTokenizer("stories15M"));
    const ref = await originalRef();
    const V = original.config.vocabSize;
    let sumWindowMeans = 0;
    for (const w of evalWindows(tokens, CHUNK, 2)) {
      const ids = Array.from(w);
      const logits = refLogits(ref, ids);
      let nll = 0;
      for (let r = 0; r + 1 < ids.length; r++) {
        const row = logits.subarray(r * V, (r + 1) * V);
        let max = -Infinity, sum = 0;
        for (const v of row) max = Math.max(max, v);
        for (const v of row) sum += Math.exp(v - max);
        nll += max + Math.log(sum) - row[ids[r + 1]];
      }
      sumWindowMeans += nll / (ids.length - 1);
    }
    const want = Math.exp(sumWindowMeans / 2);
    console.log(`  ppl ${report.ppl} (reference ${want})`);
    assert(Math.abs(report.ppl - want) / want < 1e-4, `ppl ${report.ppl}, reference ${want}`);
    assert.equal(report.windows, 2);
    assert.equal(report.tokens, 2 * (CHUNK - 1));
    // --json: exactly these fields, written atomically (no temporary file left behind).
    const written = JSON.parse(await Deno.readTextFile(json));
    assert.deepEqual(Object.keys(written).sort(), [
      "adapter",
      "model",
      "ppl",
      "seconds",
      "tokens",
      "windows",
    ]);
    assert.deepEqual(written, report);
    assert.deepEqual(Array.from(Deno.readDirSync(dir), (e) => e.name), ["ppl.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forward e2e: gemvTextures decodes (T = 1) with the texture GEMV and prompts with the storage kernels", async () => {
  const V = original.config.vocabSize, [rows, cols] = linearShape(original.config, "down");
  const plain = await GpuModel.load(gpu, original, { dtype: "f32" });
  const tex = await GpuModel.load(gpu, original, { dtype: "f32", gemvTextures: true });
  const texes = tex.blocks.flatMap((b) => LINEARS.map((lin) => b!.tex![lin]!));
  /** Logits of the 5-token prompt (last row) and of one decoded token after it. */
  async function promptThenToken(model: GpuModel): Promise<[Float32Array, Float32Array]> {
    const runner = new ForwardRunner(model, PROMPT.length, {
      perLayerCache: true,
      maxSeq: PROMPT.length + 1,
    });
    try {
      runner.forward(PROMPT, 0);
      const prompt = await gpu.readF32(runner.logits, (PROMPT.length - 1) * V, V);
      runner.forward([GREEDY_10[0]], PROMPT.length);
      return [prompt, await gpu.readF32(runner.logits, 0, V)];
    } finally {
      runner.release();
    }
  }
  try {
    assert.equal(plain.blocks[0]!.tex, undefined);
    assert.equal(plain.lmHeadTex, undefined);
    assert.ok(texes.every((t) => t.pieces.length > 0), "every dense linear has its texture");
    assert.ok(tex.lmHeadTex, "the (tied) LM head has its texture");
    assert.equal(plain.gemvTextureBytes(), 0);
    assert.ok(tex.gemvTextureBytes() >= tex.linearBytes() + 32000 * 288 * 4, "a second copy of every linear");

    const [p0, d0] = await promptThenToken(plain), [p1, d1] = await promptThenToken(tex);
    assert.deepEqual(p1, p0, "the prompt runs the same storage kernels");
    assert.ok(relError(d1, d0) < 1e-5, `decoded token's logits: rel. error ${relError(d1, d0)}`);

    // The decode step reads the texture: a texture of zeros in its place changes the decoded
    // token's logits and not the prompt's.
    const down = tex.blocks[0]!.tex!.down!;
    tex.blocks[0]!.tex!.down = uploadGemvTex(gpu, new Float32Array(rows * cols), rows, cols);
    const [p2, d2] = await promptThenToken(tex);
    releaseGemvTex(gpu, tex.blocks[0]!.tex!.down);
    tex.blocks[0]!.tex!.down = down;
    assert.deepEqual(p2, p0);
    assert.ok(relError(d2, d0) > 1e-3, `zeroed texture: rel. change ${relError(d2, d0)}`);

    // replaceLinear (how the pruner writes weights back) replaces the texture too.
    const halved = (await original.readF32(linearWeight(0, "down"))).map((w) => w / 2);
    plain.replaceLinear(0, "down", halved);
    tex.replaceLinear(0, "down", halved);
    assert.equal(down.pieces.length, 0, "the old texture is released");
    assert.ok(tex.blocks[0]!.tex!.down!.pieces.length > 0, "and a new one uploaded");
    const [p3, d3] = await promptThenToken(plain), [p4, d4] = await promptThenToken(tex);
    assert.deepEqual(p4, p3);
    assert.ok(relError(d3, d0) > 1e-3, "the halved weights change the logits");
    assert.ok(relError(d4, d3) < 1e-5, `after replaceLinear: rel. error ${relError(d4, d3)}`);
  } finally {
    plain.release();
    tex.release();
  }
  assert.ok(texes.every((t) => t.pieces.length === 0), "release frees every texture");
  assert.equal(tex.lmHeadTex, undefined);
});

Deno.test("forward e2e: every GPU buffer is released", () => {
  original.close();
  assert.equal(gpu.liveBuffers, liveAtStart, `${gpu.liveBuffers - liveAtStart} GPU buffers leaked`);
  gpu.destroy();
});
