/**
 * The one model description every loader produces and every consumer reads. Loaders translate their
 * format's own field names into this; nothing downstream reads a raw config.json.
 * @module
 */
import type { RopeLayout, RopeScaling } from "../../kernels/rope.ts";
import { ArgumentError } from "../errors.ts";

/**
 * Architectures we load. All are LLaMA-style decoders; Qwen2 adds q/k/v biases.
 *
 * @example Every listed architecture is accepted in a config.json, anything else is refused
 * ```ts
 * import { hfModelConfig, SUPPORTED_ARCHITECTURES, UnsupportedError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const json = {
 *   hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100,
 * };
 * const names = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];
 * assert.deepEqual([...SUPPORTED_ARCHITECTURES], names);
 * for (const arch of SUPPORTED_ARCHITECTURES) {
 *   assert.equal(hfModelConfig({ ...json, architectures: [arch] }, "config.json").architecture, arch);
 * }
 * const phi = { ...json, architectures: ["PhiForCausalLM"] };
 * assert.throws(() => hfModelConfig(phi, "config.json"), UnsupportedError);
 * ```
 */
export const SUPPORTED_ARCHITECTURES = [
  "LlamaForCausalLM",
  "MistralForCausalLM",
  "Qwen2ForCausalLM",
] as const;
/**
 * One of {@linkcode SUPPORTED_ARCHITECTURES} (a Hugging Face `architectures` entry).
 *
 * @example Qwen2 is the architecture with q/k/v biases
 * ```ts
 * import { type Architecture, hfConfigJson, hfModelConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const arch: Architecture = "Qwen2ForCausalLM";
 * const json = {
 *   architectures: [arch], hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2,
 *   num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100,
 * };
 * const config = hfModelConfig(json, "config.json");
 * assert.equal(config.qkvBias, true);
 * assert.equal(hfConfigJson(config, "f16").model_type, "qwen2");
 * ```
 */
export type Architecture = typeof SUPPORTED_ARCHITECTURES[number];

// One RopeLayout / RopeScaling for the model and the RoPE tables (kernels/rope.ts defines them).
export type { RopeLayout, RopeScaling };

/**
 * Storage dtypes of checkpoint tensors.
 *
 * @example A bf16 tensor in a safetensors file: 2 bytes a value, read back as f32
 * ```ts
 * import { type DType, encodeSafetensors, MemoryByteSource, SafetensorsFile } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dtype: DType = "bf16";
 * const data = new Uint8Array([0x80, 0x3f, 0x00, 0xc0]); // bf16 0x3f80 = 1, 0xc000 = -2 (little-endian)
 * const file = await SafetensorsFile.open(
 *   new MemoryByteSource(await encodeSafetensors([{ name: "w", dtype, shape: [2], data }])),
 * );
 * assert.deepEqual([file.entry("w").dtype, file.entry("w").byteLength], ["bf16", 4]);
 * assert.deepEqual(await file.readF32("w"), new Float32Array([1, -2]));
 * ```
 */
export type DType = "f32" | "f16" | "bf16";

/**
 * A model's hyperparameters in owlgpu's own field names, as every loader produces them.
 *
 * @example A small grouped-query-attention model described by hand
 * ```ts
 * import { expectedTensors, hfConfigJson, linearShape, type ModelConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const config: ModelConfig = {
 *   architecture: "LlamaForCausalLM", dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2,
 *   headDim: 16, vocabSize: 1000, maxSeqLen: 512, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half",
 *   tiedEmbeddings: false, qkvBias: false, bosTokenId: 1, eosTokenId: 2,
 * };
 * assert.deepEqual(linearShape(config, "k"), [2 * 16, 64]); // 2 K/V heads of 16
 * assert.equal(expectedTensors(config).length, 1 + 2 * (2 + 7) + 2); // embedding, blocks, final norm, head
 * assert.equal(hfConfigJson(config, "f16").num_key_value_heads, 2);
 * ```
 */
export interface ModelConfig {
  /** The decoder architecture. */
  architecture: Architecture;
  /** Hidden size (d_model). */
  dim: number;
  /** MLP intermediate size. */
  hiddenDim: number;
  /** Decoder blocks. */
  nLayers: number;
  /** Attention (query) heads. */
  nHeads: number;
  /** Key/value heads (fewer than nHeads under grouped-query attention). */
  nKvHeads: number;
  /** dim / nHeads unless the checkpoint says otherwise. */
  headDim: number;
  /** Vocabulary size (rows of the embedding and of the LM head). */
  vocabSize: number;
  /**
   * Context owlgpu runs the model at: its max_position_embeddings, or a shorter sliding attention
   * window (Mistral), within which full causal attention equals the window's.
   */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /** RoPE frequency scaling of long-context checkpoints (absent: none). */
  ropeScaling?: RopeScaling;
  /** How RoPE pairs the dimensions of a head. */
  ropeLayout: RopeLayout;
  /** LM head shares the embedding matrix. */
  tiedEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2). */
  qkvBias: boolean;
  /** Special token ids where known. */
  bosTokenId: number;
  /** End-of-sequence token id (the first, where the checkpoint lists several). */
  eosTokenId: number;
  /**
   * Every end-of-sequence id, where config.json lists several (Llama 3 Instruct ends a turn with
   * <|eot_id|> as well as <|end_of_text|>): generation stops at any of them.
   */
  eosTokenIds?: number[];
}

/** The fields that give a LLaMA model its shape; `llamaConfig` fills in the rest. */
export type LlamaShape = Pick<ModelConfig, "dim" | "hiddenDim" | "nLayers" | "nHeads" | "vocabSize">;

/**
 * A `LlamaForCausalLM` config from its shape, with LLaMA-2's defaults for everything else: as many
 * K/V heads as query heads, head size dim / nHeads, context 2048, RMSNorm epsilon 1e-5, RoPE base
 * 10000 in the "half" layout, an untied LM head, no biases, BOS 1 and EOS 2. `overrides` replaces
 * any of them (synthetic models for tests and benchmarks, models described by hand).
 *
 * @example LLaMA-7B's shape, and a small grouped-query model
 * ```ts
 * import { linearShape, llamaConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const llama7b = llamaConfig({ dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, vocabSize: 32000 });
 * assert.deepEqual(linearShape(llama7b, "up"), [11008, 4096]);
 * assert.equal(llama7b.headDim, 128);
 * const small = llamaConfig({ dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, vocabSize: 97 }, { nKvHeads: 2 });
 * assert.deepEqual(linearShape(small, "v"), [2 * 16, 64]);
 * ```
 */
export function llamaConfig(shape: LlamaShape, overrides: Partial<ModelConfig> = {}): ModelConfig {
  if (shape.dim % shape.nHeads !== 0 && overrides.headDim === undefined) {
    throw new ArgumentError(
      `llamaConfig: dim ${shape.dim} is not a multiple of nHeads ${shape.nHeads}; pass headDim`,
    );
  }
  return {
    architecture: "LlamaForCausalLM",
    ...shape,
    nKvHeads: shape.nHeads,
    headDim: shape.dim / shape.nHeads,
    maxSeqLen: 2048,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeLayout: "half",
    tiedEmbeddings: false,
    qkvBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
    ...overrides,
  };
}

/**
 * The seven prunable linears of a decoder block, in the reference's order.
 *
 * @example Walk one block's linears: names, shapes and the parameter count of a stories15M block
 * ```ts
 * import { LINEARS, linearShape, linearWeight, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * assert.deepEqual([...LINEARS], ["q", "k", "v", "o", "gate", "up", "down"]);
 * let params = 0;
 * for (const lin of LINEARS) {
 *   const [rows, cols] = linearShape(source.config, lin);
 *   assert.deepEqual(source.info(linearWeight(0, lin)).shape, [rows, cols]);
 *   params += rows * cols;
 * }
 * assert.equal(params, 4 * 288 * 288 + 3 * 768 * 288); // q, k, v, o are 288 x 288; gate, up, down 768 x 288
 * source.close();
 * ```
 */
export const LINEARS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
/**
 * One of the seven block linears ({@linkcode LINEARS}).
 *
 * @example The canonical names of layer 2's MLP linears
 * ```ts
 * import { type LinearName, linearWeight } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const mlp: LinearName[] = ["gate", "up", "down"];
 * assert.deepEqual(mlp.map((lin) => linearWeight(2, lin)), [
 *   "model.layers.2.mlp.gate_proj.weight",
 *   "model.layers.2.mlp.up_proj.weight",
 *   "model.layers.2.mlp.down_proj.weight",
 * ]);
 * ```
 */
export type LinearName = typeof LINEARS[number];

/**
 * [C_out, C_in] of a block linear.
 *
 * @example Shapes under grouped-query attention: 8 query heads, 2 key/value heads, head size 8
 * ```ts
 * import { llama2cConfig, linearShape } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const header = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 2, vocabSize: 100, seqLen: 64 };
 * const c = llama2cConfig(header);
 * assert.deepEqual(linearShape(c, "q"), [64, 64]);
 * assert.deepEqual(linearShape(c, "k"), [2 * 8, 64]); // C_out = nKvHeads * headDim
 * assert.deepEqual(linearShape(c, "o"), [64, 64]);
 * assert.deepEqual(linearShape(c, "up"), [172, 64]);
 * assert.deepEqual(linearShape(c, "down"), [64, 172]);
 * ```
 */
export function linearShape(c: ModelConfig, lin: LinearName): [number, number] {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  switch (lin) {
    case "q":
      return [qDim, c.dim];
    case "k":
    case "v":
      return [kvDim, c.dim];
    case "o":
      return [c.dim, qDim];
    case "gate":
    case "up":
      return [c.hiddenDim, c.dim];
    case "down":
      return [c.dim, c.hiddenDim];
  }
}
