/**
 * RoPE scaling of long-context checkpoints (Hugging Face `rope_scaling`: linear, llama3):
 * - `ropeInverseFrequencies` against a float64 reference written the way transformers computes
 *   the llama3 frequencies (test/ref/kernels_ref.ts), on shapes whose frequencies fall in all
 *   three of its bands;
 * - config.json parsing (transformers 4 `rope_scaling`, the older `type` key, transformers 5
 *   `rope_parameters`), its errors, and the export writing it back;
 * - the RoPE kernel with scaled tables, and a tiny Llama-3-style model written as a Hugging Face
 *   directory, loaded and run on the GPU against the float64 reference forward. Each GPU check also
 *   asserts that the scaling moves the result by far more than the tolerance, so a forward pass
 *   that ignored it would fail.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ropeInverseFrequencies, type RopeScaling, ropeTables } from "../kernels/rope.ts";
import { ModelFormatError, UnsupportedError } from "../src/errors.ts";
import { Gpu } from "../src/gpu/device.ts";
import { llamaConfig } from "../src/model/config.ts";
import { exportHuggingFace, hfConfigJson } from "../src/model/export.ts";
import { ForwardRunner, GpuModel } from "../src/model/forward.ts";
import { hfModelConfig, openHuggingFace } from "../src/model/hf.ts";
import { rope } from "../src/ops/basic.ts";
import { memoryWeights, randomRefModel, refLogits, refModelTensors } from "./ref/forward_ref.ts";
import { assertClose, randomArray, refRope, refRopeFrequency } from "./ref/kernels_ref.ts";

/** Llama 3.2 1B / 3B. */
const LLAMA32: RopeScaling = {
  type: "llama3",
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositions: 8192,
};

/** Which of llama3's bands each frequency of (headDim, theta) falls in: kept, blended, divided. */
function bands(headDim: number, theta: number, s: RopeScaling & { type: "llama3" }): number[] {
  const count = [0, 0, 0];
  for (let i = 0; i < headDim / 2; i++) {
    const wavelength = 2 * Math.PI * theta ** ((2 * i) / headDim);
    if (wavelength < s.originalMaxPositions / s.highFreqFactor) count[0]++;
    else if (wavelength > s.originalMaxPositions / s.lowFreqFactor) count[2]++;
    else count[1]++;
  }
  return count;
}

Deno.test("rope scaling: inverse frequencies match the float64 reference (linear; llama3, all three bands)", () => {
  const cases: [number, number, RopeScaling][] = [
    [64, 500000, LLAMA32],
    [128, 500000, { ...LLAMA32, factor: 8 }], // Llama 3.1 8B
    [12, 10000, {
      type: "llama3",
      factor: 4,
      lowFreqFactor: 1,
      highFreqFactor: 8,
      originalMaxPositions: 1024,
    }],
    [36, 10000, { type: "linear", factor: 2.5 }],
  ];
  for (const [hd, theta, s] of cases) {
    if (s.type === "llama3") assert.ok(bands(hd, theta, s).every((n) => n > 0), `bands of ${hd}, ${theta}`);
    const got = ropeInverseFrequencies(hd, theta, s);
    const plain = ropeInverseFrequencies(hd, theta);
    assert.equal(got.length, hd / 2);
    for (let i = 0; i < hd / 2; i++) {
      const want = refRopeFrequency(i, hd, theta, s);
      assert.ok(
        Math.abs(got[i] - want) <= 1e-15 * want,
        `${s.type} ${hd}/${theta} i=${i}: ${got[i]} vs ${want}`,
      );
      assert.ok(got[i] <= plain[i] && got[i] >= plain[i] / s.factor, `i=${i} outside [f / factor, f]`);
    }
  }
  // The tables rotate position p by p times each (scaled) frequency.
  const { cos, sin } = ropeTables(300, 12, 10000, cases[2][2]);
  const inv = ropeInverseFrequencies(12, 10000, cases[2][2]);
  for (const [p, i] of [[0, 0], [299, 5], [150, 3]]) {
    assert.equal(cos[p * 6 + i], Math.fround(Math.cos(p * inv[i])));
    assert.equal(sin[p * 6 + i], Math.fround(Math.sin(p * inv[i])));
  }
});

const BASE_JSON = {
  architectures: ["LlamaForCausalLM"],
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
  rope_theta: 500000,
};
const LLAMA3_JSON = {
  rope_type: "llama3",
  factor: 32.0,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 8192,
};

Deno.test("rope scaling: config.json's rope_scaling and rope_parameters are read, exported and checked", () => {
  const read = (patch: Record<string, unknown>) => hfModelConfig({ ...BASE_JSON, ...patch }, "config.json");
  assert.deepEqual(read({ rope_scaling: LLAMA3_JSON }).ropeScaling, LLAMA32);
  assert.deepEqual(read({ rope_scaling: { type: "linear", factor: 2 } }).ropeScaling, {
    type: "linear",
    factor: 2,
  });
  assert.equal("ropeScaling" in read({ rope_scaling: null }), false);
  assert.equal("ropeScaling" in read({ rope_scaling: { rope_type: "default" } }), false);
  // transformers 5: theta and scaling in one object (the top-level rope_theta is ignored then).
  const v5 = read({ rope_theta: undefined, rope_parameters: { ...LLAMA3_JSON, rope_theta: 250000 } });
  assert.deepEqual([v5.ropeTheta, v5.ropeScaling], [250000, LLAMA32]);
  assert.equal("ropeScaling" in read({ rope_parameters: { rope_type: "default", rope_theta: 1e4 } }), false);

  // What the export writes reads back as the same config.
  for (const patch of [{ rope_scaling: LLAMA3_JSON }, { rope_scaling: { type: "linear", factor: 4 } }, {}]) {
    const c = read(patch);
    assert.deepEqual(hfModelConfig(hfConfigJson(c, "f32"), "config.json"), c);
  }

  const errors: [Record<string, unknown>, typeof ModelFormatError | typeof UnsupportedError, RegExp][] = [
    [
      { rope_scaling: { rope_type: "dynamic", factor: 2 } },
      UnsupportedError,
      /rope type "dynamic".*linear, llama3/,
    ],
    [{ rope_scaling: { type: "yarn", factor: 4 } }, UnsupportedError, /rope_scaling: rope type "yarn"/],
    [
      { rope_scaling: { type: "linear" } },
      ModelFormatError,
      /rope_scaling: factor must be a positive number/,
    ],
    [{ rope_scaling: { type: "linear", factor: -2 } }, ModelFormatError, /factor must be a positive number/],
    [{ rope_scaling: "linear" }, ModelFormatError, /rope_scaling must be an object/],
    [
      { rope_scaling: { ...LLAMA3_JSON, original_max_position_embeddings: undefined } },
      ModelFormatError,
      /original_max_position_embeddings must be a positive integer/,
    ],
    [
      { rope_scaling: { ...LLAMA3_JSON, high_freq_factor: 1 } },
      ModelFormatError,
      /high_freq_factor 1 must exceed low_freq_factor 1/,
    ],
    [
      { rope_parameters: { ...LLAMA3_JSON, low_freq_factor: 0 } },
      ModelFormatError,
      /rope_parameters: low_freq/,
    ],
  ];
  for (const [patch, type, re] of errors) {
    assert.throws(
      () => read(patch),
      (e: Error) => e instanceof type && re.test(e.message),
      JSON.stringify(patch),
    );
  }
});

const gpu = await Gpu.create();
const liveAtStart = gpu.liveBuffers;

Deno.test("rope scaling: the RoPE kernel with llama3-scaled tables matches the float64 reference", async () => {
  const T = 7, nHeads = 3, hd = 12, pos0 = 500, theta = 10000;
  const scaling: RopeScaling = {
    type: "llama3",
    factor: 4,
    lowFreqFactor: 1,
    highFreqFactor: 8,
    originalMaxPositions: 1024,
  };
  const tab = ropeTables(pos0 + T, hd, theta, scaling);
  const cos = gpu.upload(tab.cos, "cos"), sin = gpu.upload(tab.sin, "sin");
  const X = randomArray(T * nHeads * hd, 21);
  const x = gpu.upload(X, "x");
  rope(gpu, "half", x, cos, sin, T, nHeads, hd, pos0);
  const got = await gpu.readF32(x, 0, X.length);
  gpu.release(x, cos, sin);
  assertClose(got, refRope(X, T, nHeads, hd, pos0, theta, "half", scaling), 1e-6, 1e-5, "rope llama3");
  const unscaled = refRope(X, T, nHeads, hd, pos0, theta, "half");
  const moved = Math.max(...got.map((v, i) => Math.abs(v - unscaled[i])));
  assert.ok(moved > 0.1, `the scaling moved the rotation by only ${moved}`);
});

/** A Llama-3-style model small enough for the float64 reference; its 4 frequencies span all bands. */
const TINY = llamaConfig({ dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, vocabSize: 50 }, {
  nKvHeads: 2,
  maxSeqLen: 64,
  ropeTheta: 100,
  ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 8, originalMaxPositions: 128 },
});

/** max|a - b| / max|b|. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

Deno.test("rope scaling: a tiny Llama-3-style Hugging Face directory runs on the GPU as the float64 reference", async () => {
  assert.ok(
    bands(TINY.headDim, TINY.ropeTheta, TINY.ropeScaling as RopeScaling & { type: "llama3" })
      .every((n) => n > 0),
  );
  const ref = randomRefModel(TINY, 17);
  const dir = await Deno.makeTempDir({ prefix: "owlgpu_rope_" });
  try {
    await exportHuggingFace(memoryWeights(TINY, refModelTensors(ref)), join(dir, "m"), { dtype: "f32" });
    const json = JSON.parse(await Deno.readTextFile(join(dir, "m", "config.json")));
    assert.equal(json.rope_scaling.rope_type, "llama3");
    const source = await openHuggingFace(join(dir, "m"));
    assert.deepEqual(source.config, TINY);
    const T = 48, V = TINY.vocabSize;
    const ids = Array.from({ length: T }, (_, t) => (7 * t + 3) % V);
    const model = await GpuModel.load(gpu, source, { dtype: "f32" });
    // The whole window in one pass, then its last 4 tokens again one at a time through the cache.
    const runner = new ForwardRunner(model, T, { perLayerCache: true, maxSeq: T });
    const got = new Float32Array(T * V);
    try {
      runner.forward(ids, 0);
      got.set(await gpu.readF32(runner.logits, 0, T * V));
      runner.forward(ids.slice(0, T - 4), 0);
      for (let t = T - 4; t < T; t++) {
        runner.forward([ids[t]], t);
        const step = await gpu.readF32(runner.logits, 0, V);
        assert.ok(relError(step, got.subarray(t * V, (t + 1) * V)) < 1e-4, `decode step ${t}`);
      }
    } finally {
      runner.release();
      model.release();
      source.close();
    }
    const want = refLogits(ref, ids);
    const err = relError(got, want);
    const unscaled = refLogits({ ...ref, config: { ...TINY, ropeScaling: undefined } }, ids);
    const effect = relError(unscaled, want);
    console.log(`  gpu vs ref ${err.toExponential(2)}; unscaled vs scaled ref ${effect.toExponential(2)}`);
    assert.ok(err < 1e-4, `relative error ${err}`);
    assert.ok(effect > 100 * err && effect > 1e-3, `the scaling changes the logits by only ${effect}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rope scaling: every GPU buffer is released", async () => {
  await gpu.device.queue.onSubmittedWorkDone();
  assert.equal(gpu.liveBuffers, liveAtStart);
  gpu.destroy();
});
