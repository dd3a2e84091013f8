/**
 * Export any WeightSource (optionally with pruned weights substituted) as a Hugging Face model
 * directory that transformers loads: `config.json` + `model.safetensors`.
 *
 * llama2.c checkpoints rotate interleaved pairs in RoPE while transformers rotates halves, so for
 * an interleaved source the rows of q_proj and k_proj are permuted per head, (2i, 2i+1) → (i,
 * i + headDim/2): q·k is unchanged because both sides move the same way.
 *
 * The directory is built under `outDir + ".tmp-<random>"` and renamed into place only when
 * complete; an existing `outDir` is replaced only then. Tensors are converted one at a time.
 * @module
 */
import { join, resolve } from "node:path";
import { ArgumentError, OutputError } from "../errors.ts";
import type { Architecture, ModelConfig } from "./config.ts";
import { f32ToBytes } from "./dtype.ts";
import { expectedTensors } from "./hf.ts";
import { linearBias, linearWeight, LM_HEAD } from "./names.ts";
import { type SafetensorsTensor, writeSafetensors } from "./safetensors.ts";
import type { WeightSource } from "./weights.ts";
import { checkPlainFileName, writeDirectoryAtomic } from "../util/files.ts";

/** Options of exportHuggingFace. */
export interface ExportOptions {
  /** Storage dtype of every tensor in model.safetensors. */
  dtype: "f32" | "f16";
  /** Substitute values for a tensor (e.g. a pruned linear), in the source's own row order. */
  override?: (name: string) => Float32Array | undefined;
  /** Called after each tensor is converted. */
  onProgress?: (done: number, total: number) => void;
  /** More files for the directory (e.g. a tokenizer), by file name. */
  extraFiles?: Record<string, Uint8Array>;
  /**
   * Write more files into the temporary directory (its path is given) after the others and before
   * it is renamed into place, e.g. a streamed model.sparse.safetensors (`prune --save-sparse`).
   */
  writeExtra?: (tmpDir: string) => Promise<void>;
}

const MODEL_TYPE: Record<Architecture, string> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
};

/** Fields transformers reads for one architecture beyond the common ones. */
const ARCH_EXTRAS: Record<Architecture, Record<string, unknown>> = {
  LlamaForCausalLM: { attention_bias: false, mlp_bias: false },
  // Our forward pass has no sliding window; say so rather than inherit transformers' default.
  MistralForCausalLM: { sliding_window: null },
  Qwen2ForCausalLM: { use_sliding_window: false },
};

/** The config.json of an exported model. */
export function hfConfigJson(c: ModelConfig, dtype: "f32" | "f16"): Record<string, unknown> {
  return {
    architectures: [c.architecture],
    model_type: MODEL_TYPE[c.architecture],
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    hidden_act: "silu",
    torch_dtype: dtype === "f32" ? "float32" : "float16",
    ...ARCH_EXTRAS[c.architecture],
  };
}

/**
 * Reorder the rows of a q or k projection [rows, cols] (or a bias, cols = 1) from llama2.c's
 * interleaved RoPE pairs to rotate-half pairs: within each head, row 2i → i, row 2i+1 → i + headDim/2.
 */
export function interleavedToHalf(
  w: Float32Array,
  rows: number,
  cols: number,
  headDim: number,
): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < rows / headDim; h++) {
    const base = h * headDim;
    for (let i = 0; i < half; i++) {
      out.set(w.subarray((base + 2 * i) * cols, (base + 2 * i + 1) * cols), (base + i) * cols);
      out.set(w.subarray((base + 2 * i + 1) * cols, (base + 2 * i + 2) * cols), (base + half + i) * cols);
    }
  }
  return out;
}

/** Names of the tensors whose rows carry RoPE pairs (q/k weights and biases). */
function ropeRowNames(c: ModelConfig): Set<string> {
  const names = new Set<string>();
  for (let l = 0; l < c.nLayers; l++) {
    for (const lin of ["q", "k"] as const) names.add(linearWeight(l, lin)).add(linearBias(l, lin));
  }
  return names;
}

/**
 * The tensors of an exported model.safetensors (Hugging Face names and row order, `opts.dtype`),
 * each converted only when the writer asks for it. No file API: a browser passes them to
 * `encodeSafetensors(tensors, { format: "pt" })` for the same bytes `exportHuggingFace` writes.
 */
export function exportTensors(source: WeightSource, opts: ExportOptions): SafetensorsTensor[] {
  const c = source.config;
  const permute = c.ropeLayout === "interleaved" ? ropeRowNames(c) : new Set<string>();
  const list = expectedTensors(c).filter((t) => !(t.name === LM_HEAD && c.tiedEmbeddings));
  let done = 0;
  return list.map(({ name, shape }) => ({
    name,
    dtype: opts.dtype,
    shape,
    data: async () => {
      let w = opts.override?.(name) ?? await source.readF32(name);
      const n = shape.reduce((a, b) => a * b, 1);
      if (w.length !== n) {
        throw new ArgumentError(`export: ${name} has ${w.length} values, its shape [${shape}] needs ${n}`);
      }
      if (permute.has(name)) w = interleavedToHalf(w, shape[0], shape[1] ?? 1, c.headDim);
      const bytes = f32ToBytes(w, opts.dtype);
      opts.onProgress?.(++done, list.length);
      return bytes;
    },
  }));
}

/**
 * Write `source` (with `opts.override` substituted) as a Hugging Face directory at `outDir`.
 * @example
 * ```ts
 * await exportHuggingFace(await openWeights("stories15M"), "out/stories15M-hf", { dtype: "f16" });
 * ```
 */
export async function exportHuggingFace(
  source: WeightSource,
  outDir: string,
  opts: ExportOptions,
): Promise<void> {
  for (const name of Object.keys(opts.extraFiles ?? {})) {
    checkPlainFileName(name, ["config.json", "model.safetensors"], "export");
  }
  try {
    await writeDirectoryAtomic(outDir, async (tmp) => {
      const config = JSON.stringify(hfConfigJson(source.config, opts.dtype), null, 2) + "\n";
      await Deno.writeTextFile(join(tmp, "config.json"), config);
      await writeSafetensors(join(tmp, "model.safetensors"), exportTensors(source, opts), { format: "pt" });
      for (const [name, bytes] of Object.entries(opts.extraFiles ?? {})) {
        await Deno.writeFile(join(tmp, name), bytes);
      }
      await opts.writeExtra?.(tmp);
    });
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotFound) {
      throw new OutputError(`cannot write ${resolve(outDir)}: ${e.message}`, { cause: e });
    }
    throw e;
  }
}
