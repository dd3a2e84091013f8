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

/** Canonical name of the token embedding table [vocabSize, dim]. */
export const EMBED = "model.embed_tokens.weight";
/** Canonical name of the final RMSNorm weight [dim]. */
export const FINAL_NORM = "model.norm.weight";
/** Canonical name of the LM head (classifier) weight [vocabSize, dim]. */
export const LM_HEAD = "lm_head.weight";

/** Weight of a block linear, row-major [C_out, C_in]. */
export function linearWeight(layer: number, lin: LinearName): string {
  return `model.layers.${layer}.${LINEAR_PATH[lin]}.weight`;
}

/** Bias of q/k/v (Qwen2 only). */
export function linearBias(layer: number, lin: "q" | "k" | "v"): string {
  return `model.layers.${layer}.${LINEAR_PATH[lin]}.bias`;
}

/** RMSNorm weight before the attention of block `layer`. */
export function attnNorm(layer: number): string {
  return `model.layers.${layer}.input_layernorm.weight`;
}

/** RMSNorm weight before the MLP of block `layer`. */
export function mlpNorm(layer: number): string {
  return `model.layers.${layer}.post_attention_layernorm.weight`;
}
