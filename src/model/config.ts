/**
 * The one model description every loader produces and every consumer reads. Loaders translate their
 * format's own field names into this; nothing downstream reads a raw config.json.
 * @module
 */
import type { RopeLayout } from "../../kernels/rope.ts";

/** Architectures we load. All are LLaMA-style decoders; Qwen2 adds q/k/v biases. */
export const SUPPORTED_ARCHITECTURES = [
  "LlamaForCausalLM",
  "MistralForCausalLM",
  "Qwen2ForCausalLM",
] as const;
/** One of {@linkcode SUPPORTED_ARCHITECTURES} (a Hugging Face `architectures` entry). */
export type Architecture = typeof SUPPORTED_ARCHITECTURES[number];

// One RopeLayout for the model and the RoPE kernel (kernels/rope.ts defines it, type-only here).
export type { RopeLayout };

/** Storage dtypes of checkpoint tensors. */
export type DType = "f32" | "f16" | "bf16";

/** A model's hyperparameters in owlgpu's own field names, as every loader produces them. */
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
  /** Context length the model was trained for. */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /** How RoPE pairs the dimensions of a head. */
  ropeLayout: RopeLayout;
  /** LM head shares the embedding matrix. */
  tiedEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2). */
  qkvBias: boolean;
  /** Special token ids where known. */
  bosTokenId: number;
  /** End-of-sequence token id. */
  eosTokenId: number;
}

/** The seven prunable linears of a decoder block, in the reference's order. */
export const LINEARS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
/** One of the seven block linears ({@linkcode LINEARS}). */
export type LinearName = typeof LINEARS[number];

/** [C_out, C_in] of a block linear. */
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
