/**
 * Canonical tensor names: Hugging Face LLaMA names. Every WeightSource serves tensors under these
 * names whatever its file format, so the forward pass, the pruner and the exporter share one vocabulary.
 * @module
 */
import type { LinearName } from "./config.ts";

const LINEAR_PATH: Record<LinearName, string> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
};

/**
 * Canonical name of the token embedding table [vocabSize, dim].
 *
 * @example The embedding of one token is one row of the table
 * ```ts
 * import { EMBED, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * assert.equal(EMBED, "model.embed_tokens.weight");
 * assert.deepEqual(source.info(EMBED).shape, [32000, 288]); // [vocabSize, dim]
 * const table = await source.readF32(EMBED);
 * const once = table.subarray(9038 * 288, 9039 * 288); // token 9038, "▁Once"
 * assert.ok(once.some((x) => x !== 0) && once.length === source.config.dim);
 * source.close();
 * ```
 */
export const EMBED = "model.embed_tokens.weight";
/**
 * Canonical name of the final RMSNorm weight [dim].
 *
 * @example Every source serves it, whatever its file format
 * ```ts
 * import { FINAL_NORM, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M"); // a llama2.c checkpoint: rms_final_weight
 * assert.equal(FINAL_NORM, "model.norm.weight");
 * assert.deepEqual(source.info(FINAL_NORM), { name: FINAL_NORM, dtype: "f32", shape: [288] });
 * assert.equal((await source.readF32(FINAL_NORM)).length, source.config.dim);
 * source.close();
 * ```
 */
export const FINAL_NORM = "model.norm.weight";
/**
 * Canonical name of the LM head (classifier) weight [vocabSize, dim].
 *
 * @example With tied embeddings, the LM head is served and is the embedding table
 * ```ts
 * import { EMBED, LM_HEAD, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * assert.equal(LM_HEAD, "lm_head.weight");
 * assert.equal(source.config.tiedEmbeddings, true);
 * assert.ok(source.has(LM_HEAD));
 * assert.deepEqual(await source.readF32(LM_HEAD), await source.readF32(EMBED));
 * source.close();
 * ```
 */
export const LM_HEAD = "lm_head.weight";

/**
 * Weight of a block linear, row-major [C_out, C_in].
 *
 * @example Name and shape of the last block's down projection in stories15M
 * ```ts
 * import { linearWeight, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = linearWeight(5, "down");
 * assert.equal(name, "model.layers.5.mlp.down_proj.weight");
 * assert.deepEqual(source.info(name).shape, [288, 768]); // [C_out = dim, C_in = hiddenDim]
 * source.close();
 * ```
 */
export function linearWeight(layer: number, lin: LinearName): string {
  return `model.layers.${layer}.${LINEAR_PATH[lin]}.weight`;
}

/**
 * Bias of q/k/v (Qwen2 only).
 *
 * @example A Qwen2 model expects q/k/v biases, a LLaMA model does not
 * ```ts
 * import { expectedTensors, hfModelConfig, linearBias } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const json = {
 *   hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 4,
 *   num_key_value_heads: 2, vocab_size: 100,
 * };
 * const name = linearBias(1, "k");
 * assert.equal(name, "model.layers.1.self_attn.k_proj.bias");
 * const tensorsOf = (arch: string) =>
 *   expectedTensors(hfModelConfig({ ...json, architectures: [arch] }, "config.json"));
 * assert.deepEqual(tensorsOf("Qwen2ForCausalLM").find((t) => t.name === name)?.shape, [2 * 16]); // kvDim
 * assert.ok(!tensorsOf("LlamaForCausalLM").some((t) => t.name === name));
 * ```
 */
export function linearBias(layer: number, lin: "q" | "k" | "v"): string {
  return `model.layers.${layer}.${LINEAR_PATH[lin]}.bias`;
}

/**
 * RMSNorm weight before the attention of block `layer`.
 *
 * @example The attention norm of block 0 in stories15M
 * ```ts
 * import { attnNorm, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * assert.equal(attnNorm(0), "model.layers.0.input_layernorm.weight");
 * assert.deepEqual(source.info(attnNorm(0)).shape, [288]);
 * assert.ok(!source.has(attnNorm(6))); // stories15M has blocks 0..5
 * source.close();
 * ```
 */
export function attnNorm(layer: number): string {
  return `model.layers.${layer}.input_layernorm.weight`;
}

/**
 * RMSNorm weight before the MLP of block `layer`.
 *
 * @example One MLP norm per block
 * ```ts
 * import { mlpNorm, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * assert.equal(mlpNorm(3), "model.layers.3.post_attention_layernorm.weight");
 * const norms = source.tensorNames().filter((n) => n.endsWith("post_attention_layernorm.weight"));
 * assert.deepEqual(norms, [0, 1, 2, 3, 4, 5].map(mlpNorm));
 * source.close();
 * ```
 */
export function mlpNorm(layer: number): string {
  return `model.layers.${layer}.post_attention_layernorm.weight`;
}
