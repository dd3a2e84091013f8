/**
 * The one model description every loader produces and every consumer reads. Loaders translate their
 * format's own field names into this; nothing downstream reads a raw config.json.
 * @module
 */

/** Architectures we load. All are LLaMA-style decoders; Qwen2 adds q/k/v biases. */
export const SUPPORTED_ARCHITECTURES = [
  "LlamaForCausalLM",
  "MistralForCausalLM",
  "Qwen2ForCausalLM",
] as const;
export type Architecture = typeof SUPPORTED_ARCHITECTURES[number];

/**
 * How RoPE pairs the dimensions of a head.
 * - `interleaved`: llama2.c / Meta original, rotates (x[2i], x[2i+1]).
 * - `half`: Hugging Face "rotate_half", rotates (x[i], x[i + headDim/2]).
 */
export type RopeLayout = "interleaved" | "half";

/** Storage dtypes of checkpoint tensors. */
export type DType = "f32" | "f16" | "bf16";

export interface ModelConfig {
  architecture: Architecture;
  /** Hidden size (d_model). */
  dim: number;
  /** MLP intermediate size. */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** dim / nHeads unless the checkpoint says otherwise. */
  headDim: number;
  vocabSize: number;
  /** Context length the model was trained for. */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  ropeTheta: number;
  ropeLayout: RopeLayout;
  /** LM head shares the embedding matrix. */
  tiedEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2). */
  qkvBias: boolean;
  /** Special token ids where known. */
  bosTokenId: number;
  eosTokenId: number;
}

/** The seven prunable linears of a decoder block, in the reference's order. */
export const LINEARS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
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
