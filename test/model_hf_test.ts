/**
 * Tests of the Hugging Face directory reader (src/model/hf.ts): tiny random LLaMA (bf16, GQA,
 * untied, with a stray rotary inv_freq tensor), Mistral (f16, one kv head) and Qwen2 (f32, q/k/v
 * biases, GQA, tied) directories written with our safetensors writer and hand-written config.json
 * files in the style of real checkpoints; and the errors a user can meet.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArgumentError, ModelFormatError, UnsupportedError } from "../src/errors.ts";
import { type DType, llamaConfig, type ModelConfig } from "../src/model/config.ts";
import { bytesToF32, f32ToBytes } from "../src/model/dtype.ts";
import { hfConfigJson } from "../src/model/export.ts";
import { expectedTensors, hfModelConfig, openHuggingFace } from "../src/model/hf.ts";
import { EMBED, linearBias, linearWeight, LM_HEAD } from "../src/model/names.ts";
import { type SafetensorsTensor, writeSafetensors } from "../src/model/safetensors.ts";
import { loadRefModel, randomRefModel, refLogits, refModelTensors } from "./ref/forward_ref.ts";

interface Case {
  /** config.json as a checkpoint would ship it. */
  json: Record<string, unknown>;
  /** What the reader must make of it. */
  config: ModelConfig;
  dtype: DType;
}

const COMMON = { ropeLayout: "half", maxSeqLen: 64, bosTokenId: 1, eosTokenId: 2, vocabSize: 20 } as const;

const LLAMA: Case = {
  json: {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    attention_bias: false,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
    torch_dtype: "bfloat16",
    vocab_size: 20,
  },
  config: {
    ...COMMON,
    architecture: "LlamaForCausalLM",
    dim: 16,
    hiddenDim: 40,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: false,
    qkvBias: false,
  },
  dtype: "bf16",
};

const MISTRAL: Case = {
  json: {
    architectures: ["MistralForCausalLM"],
    model_type: "mistral",
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 8,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 4096,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float16",
    vocab_size: 20,
  },
  config: {
    ...COMMON,
    architecture: "MistralForCausalLM",
    dim: 16,
    hiddenDim: 24,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    headDim: 8,
    normEps: 1e-6,
    ropeTheta: 1e6,
    tiedEmbeddings: false,
    qkvBias: false,
  },
  dtype: "f16",
};

const QWEN2: Case = {
  json: {
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    use_sliding_window: false,
    tie_word_embeddings: true,
    bos_token_id: 17,
    eos_token_id: [18, 19],
    hidden_act: "silu",
    torch_dtype: "float32",
    vocab_size: 20,
  },
  config: {
    ...COMMON,
    architecture: "Qwen2ForCausalLM",
    dim: 16,
    hiddenDim: 32,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    normEps: 1e-6,
    ropeTheta: 1e6,
    tiedEmbeddings: true,
    qkvBias: true,
    bosTokenId: 17,
    eosTokenId: 18,
    eosTokenIds: [18, 19],
  },
  dtype: "f32",
};

/** Random weights for `c.config` (as f32, before storage rounding) under canonical names. */
function randomTensors(c: Case, seed: number): Map<string, Float32Array> {
  return refModelTensors(randomRefModel(c.config, seed));
}

/** Write config.json and model.safetensors; `extra` tensors are stored too, `drop` ones left out. */
async function writeModel(
  dir: string,
  c: Case,
  tensors: Map<string, Float32Array>,
  opts: { extra?: SafetensorsTensor[]; drop?: string; json?: Record<string, unknown> } = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(opts.json ?? c.json, null, 2));
  const shapes = new Map(expectedTensors(c.config).map((t) => [t.name, t.shape]));
  const list: SafetensorsTensor[] = [...tensors]
    .filter(([name]) => name !== opts.drop)
    .map(([name, x]) => ({ name, dtype: c.dtype, shape: shapes.get(name)!, data: f32ToBytes(x, c.dtype) }));
  await writeSafetensors(join(dir, "model.safetensors"), [...list, ...(opts.extra ?? [])], { format: "pt" });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What a stored tensor reads back as: its values rounded to the storage dtype. */
const stored = (x: Float32Array, dtype: DType) => bytesToF32(f32ToBytes(x, dtype), dtype);

for (const [label, c] of [["LLaMA", LLAMA], ["Mistral", MISTRAL], ["Qwen2", QWEN2]] as const) {
  Deno.test(`hf: a tiny ${label} directory loads with its config and every tensor`, async () => {
    await withTempDir(async (dir) => {
      const tensors = randomTensors(c, 11);
      const invFreq: SafetensorsTensor = {
        name: "model.layers.0.self_attn.rotary_emb.inv_freq",
        dtype: "f32",
        shape: [2],
        data: new Uint8Array(8),
      };
      await writeModel(dir, c, tensors, { extra: [invFreq] });
      const w = await openHuggingFace(dir);
      assert.deepEqual(w.config, c.config);
      assert.equal(w.dtype, c.dtype);
      assert.equal(w.description, dir);
      assert.ok(w.has(LM_HEAD));
      assert.equal(w.has(invFreq.name), false);
      const names = expectedTensors(c.config).map((t) => t.name);
      assert.deepEqual(w.tensorNames(), names);
      for (const [name, x] of tensors) {
        assert.deepEqual(await w.readF32(name), stored(x, c.dtype), name);
        assert.deepEqual(w.info(name).dtype, c.dtype);
      }
      if (c.config.tiedEmbeddings) assert.deepEqual(await w.readF32(LM_HEAD), await w.readF32(EMBED));
      if (c.config.qkvBias) assert.deepEqual(w.info(linearBias(1, "k")).shape, [8]);
      assert.deepEqual(w.info(linearWeight(0, "k")).shape, [
        c.config.nKvHeads * c.config.headDim,
        c.config.dim,
      ]);
      w.close();
    });
  });
}

Deno.test("hf: the reference forward of a loaded f32 Qwen2 equals that of the weights written", async () => {
  await withTempDir(async (dir) => {
    const m = randomRefModel(QWEN2.config, 3);
    await writeModel(dir, QWEN2, refModelTensors(m));
    const w = await openHuggingFace(dir);
    const got = refLogits(await loadRefModel(w), [1, 5, 19, 0, 7]);
    w.close();
    assert.deepEqual(got, refLogits(m, [1, 5, 19, 0, 7]));
    assert.ok(got.every(Number.isFinite));
  });
});

Deno.test("hf: every EOS id of a list is kept (generation stops at any) and exported back", () => {
  const c = hfModelConfig(QWEN2.json, "config.json");
  assert.deepEqual([c.eosTokenId, c.eosTokenIds], [18, [18, 19]]);
  assert.deepEqual(hfConfigJson(c, "f32").eos_token_id, [18, 19]);
  assert.deepEqual(hfModelConfig(hfConfigJson(c, "f32"), "config.json"), c);
  const single = hfModelConfig({ ...QWEN2.json, eos_token_id: [18] }, "config.json");
  assert.equal("eosTokenIds" in single, false);
  assert.throws(
    () => hfModelConfig({ ...QWEN2.json, eos_token_id: [18, "x"] }, "config.json"),
    /eos_token_id must list token ids/,
  );
});

Deno.test("llamaConfig: a shape plus LLaMA-2's defaults is a config that survives config.json", () => {
  const shape = { dim: 48, hiddenDim: 130, nLayers: 3, nHeads: 6, vocabSize: 77 };
  const c = llamaConfig(shape);
  assert.deepEqual([c.nKvHeads, c.headDim, c.maxSeqLen, c.ropeLayout, c.tiedEmbeddings], [
    6,
    8,
    2048,
    "half",
    false,
  ]);
  assert.deepEqual(hfModelConfig(hfConfigJson(c, "f16"), "config.json"), c);
  const gqa = llamaConfig(shape, { nKvHeads: 2, maxSeqLen: 64, tiedEmbeddings: true });
  assert.deepEqual([gqa.nKvHeads, gqa.maxSeqLen, gqa.tiedEmbeddings, gqa.dim], [2, 64, true, 48]);
  assert.deepEqual(hfModelConfig(hfConfigJson(gqa, "f32"), "config.json"), gqa);
  assert.throws(
    () => llamaConfig({ ...shape, nHeads: 5 }),
    (e: Error) => e instanceof ArgumentError && /headDim/.test(e.message),
  );
  assert.equal(llamaConfig({ ...shape, nHeads: 5 }, { headDim: 8 }).headDim, 8);
});

Deno.test("hf: a sliding attention window shorter than max_position_embeddings becomes the context", () => {
  const context = (c: Case, patch: Record<string, unknown>) =>
    hfModelConfig({ ...c.json, ...patch }, "config.json").maxSeqLen;
  assert.equal(context(MISTRAL, {}), 64); // window 4096 > 64 positions
  assert.equal(context(MISTRAL, { sliding_window: 32 }), 32);
  assert.equal(context(MISTRAL, { sliding_window: null }), 64);
  assert.equal(context(QWEN2, { sliding_window: 16 }), 64); // use_sliding_window: false
  assert.equal(context(QWEN2, { use_sliding_window: true, sliding_window: 16 }), 16);
  assert.equal(context(LLAMA, { sliding_window: 16 }), 64); // LLaMA has none
  assert.throws(() => context(MISTRAL, { sliding_window: 0 }), /sliding_window must be a positive integer/);
});

Deno.test("hf: unknown architecture and unsupported features are UnsupportedErrors", async () => {
  await withTempDir(async (dir) => {
    const tensors = randomTensors(LLAMA, 1);
    const variants: [Record<string, unknown>, RegExp][] = [
      [
        { architectures: ["GPT2LMHeadModel"] },
        /"GPT2LMHeadModel".*LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM/,
      ],
      [{ rope_scaling: { type: "dynamic", factor: 2 } }, /rope_scaling: rope type "dynamic"/],
      [{ rope_parameters: { rope_type: "yarn", factor: 4 } }, /rope_parameters: rope type "yarn"/],
      [{ hidden_act: "gelu" }, /hidden_act/],
      [{ attention_bias: true }, /attention_bias/],
    ];
    for (const [patch, re] of variants) {
      await writeModel(dir, LLAMA, tensors, { json: { ...LLAMA.json, ...patch } });
      await assert.rejects(
        () => openHuggingFace(dir),
        (e: Error) => e instanceof UnsupportedError && re.test(e.message),
      );
    }
  });
});

Deno.test("hf: missing config.json, weights or tensor, and wrong shapes are ModelFormatErrors", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      () => openHuggingFace(dir),
      (e: Error) =>
        e instanceof ModelFormatError && e.message.includes(dir) &&
        e.message.includes("a Hugging Face model directory needs config.json"),
    );
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(LLAMA.json));
    await assert.rejects(() => openHuggingFace(dir), /no weights: expected model.safetensors or/);

    const tensors = randomTensors(LLAMA, 1);
    const gone = linearWeight(1, "up");
    await writeModel(dir, LLAMA, tensors, { drop: gone });
    await assert.rejects(
      () => openHuggingFace(dir),
      (e: Error) => e instanceof ModelFormatError && e.message.includes(`${gone} (shape [40,16]) is missing`),
    );

    await writeModel(dir, LLAMA, tensors, { json: { ...LLAMA.json, intermediate_size: 48 } });
    await assert.rejects(
      () => openHuggingFace(dir),
      (e: Error) =>
        e instanceof ModelFormatError &&
        /gate_proj.weight has shape \[40,16\] but config.json implies \[48,16\]/.test(e.message),
    );

    await writeModel(dir, LLAMA, tensors, { json: { ...LLAMA.json, num_key_value_heads: 3 } });
    await assert.rejects(() => openHuggingFace(dir), /not a multiple of num_key_value_heads 3/);
    await writeModel(dir, LLAMA, tensors, { json: { ...LLAMA.json, hidden_size: "16" } });
    await assert.rejects(() => openHuggingFace(dir), /hidden_size must be a positive integer/);
  });
});
