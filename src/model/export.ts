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
import type { Architecture, DType, ModelConfig, RopeScaling } from "./config.ts";
import { f32ToBytesInRange } from "./dtype.ts";
import { expectedTensors } from "./hf.ts";
import { linearBias, linearWeight, LM_HEAD } from "./names.ts";
import { type SafetensorsTensor, writeSafetensors } from "./safetensors.ts";
import type { WeightSource } from "./weights.ts";
import { checkPlainFileName, writeDirectoryAtomic } from "../util/files.ts";

/**
 * Options of exportHuggingFace.
 *
 * @example Export in f16 with one linear replaced (as a pruner would) and a README added
 * ```ts
 * import {
 *   exportHuggingFace, type ExportOptions, linearWeight, openHuggingFace, openWeights,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const dir = await Deno.makeTempDir();
 * const down5 = linearWeight(5, "down");
 * let progress = "";
 * const options: ExportOptions = {
 *   dtype: "f16",
 *   override: (name) => name === down5 ? new Float32Array(288 * 768) : undefined, // others: the source's
 *   extraFiles: { "README.md": new TextEncoder().encode("stories15M, last MLP zeroed\n") },
 *   onProgress: (done, total) => (progress = `${done}/${total}`),
 * };
 * await exportHuggingFace(source, dir, options);
 * assert.equal(progress, "56/56"); // every tensor once; the tied LM head is not stored
 * const exported = await openHuggingFace(dir);
 * assert.equal(exported.dtype, "f16");
 * assert.ok((await exported.readF32(down5)).every((x) => x === 0));
 * assert.equal(await Deno.readTextFile(`${dir}/README.md`), "stories15M, last MLP zeroed\n");
 * exported.close();
 * source.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface ExportOptions {
  /**
   * Storage dtype of every tensor in model.safetensors; the CLIs use the source's, so kept weights are
   * stored bit for bit as read. f16 refuses values past its range (UnsupportedError), never storing Inf.
   */
  dtype: DType;
  /**
   * Substitute values for a tensor (e.g. a pruned linear), in the source's own row order; undefined
   * keeps the source's. May return a promise (a store on disk reads when the writer gets there).
   */
  override?: (name: string) => Float32Array | undefined | Promise<Float32Array | undefined>;
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

/** config.json's torch_dtype for a storage dtype. */
const TORCH_DTYPE: Record<DType, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };

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

/**
 * The config.json of an exported model.
 *
 * @example stories15M's config.json, and what openHuggingFace reads back from it
 * ```ts
 * import { hfConfigJson, hfModelConfig, llama2cConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const config = llama2cConfig({
 *   dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256,
 * });
 * const json = hfConfigJson(config, "f16");
 * assert.deepEqual([json.model_type, json.hidden_size, json.num_hidden_layers], ["llama", 288, 6]);
 * assert.deepEqual([json.tie_word_embeddings, json.torch_dtype], [true, "float16"]);
 * // The same model; exported q/k rows follow transformers' RoPE layout:
 * assert.deepEqual(hfModelConfig(json, "config.json"), { ...config, ropeLayout: "half" });
 * ```
 */
export function hfConfigJson(c: ModelConfig, dtype: DType): Record<string, unknown> {
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
    rope_scaling: hfRopeScaling(c.ropeScaling),
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenIds ?? c.eosTokenId,
    hidden_act: "silu",
    torch_dtype: TORCH_DTYPE[dtype],
    ...ARCH_EXTRAS[c.architecture],
  };
}

/** config.json's `rope_scaling` for a model's RoPE scaling (null: none), as transformers writes it. */
function hfRopeScaling(s: RopeScaling | undefined): Record<string, unknown> | null {
  if (s === undefined) return null;
  if (s.type === "linear") return { rope_type: "linear", factor: s.factor };
  return {
    rope_type: "llama3",
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositions,
  };
}

/**
 * Reorder the rows of a q or k projection [rows, cols] (or a bias, cols = 1) from llama2.c's
 * interleaved RoPE pairs to rotate-half pairs: within each head, row 2i → i, row 2i+1 → i + headDim/2.
 *
 * @example Heads of 4 rows: llama2.c pairs rows (0, 1) and (2, 3), transformers (0, 2) and (1, 3)
 * ```ts
 * import { interleavedToHalf } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const w = new Float32Array([0, 0, 1, 1, 2, 2, 3, 3]); // 4 rows x 2 columns, row r holds r
 * assert.deepEqual([...interleavedToHalf(w, 4, 2, 4)], [0, 0, 2, 2, 1, 1, 3, 3]);
 * const bias = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]); // two heads: each is permuted on its own
 * assert.deepEqual([...interleavedToHalf(bias, 8, 1, 4)], [0, 2, 1, 3, 4, 6, 5, 7]);
 * ```
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
 *
 * @example The tensor list of stories15M, and its layer-0 q_proj permuted to transformers' row order
 * ```ts
 * import { exportTensors, interleavedToHalf, linearWeight, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const tensors = exportTensors(source, { dtype: "f32" });
 * assert.equal(tensors.length, 1 + 6 * 9 + 1); // embedding, 6 blocks of 9, final norm; the LM head is tied
 * const q = tensors.find((t) => t.name === linearWeight(0, "q"))!;
 * const bytes = typeof q.data === "function" ? await q.data() : q.data; // converted now, not before
 * const expected = interleavedToHalf(await source.readF32(q.name), 288, 288, 48);
 * assert.deepEqual(new Float32Array(bytes.slice().buffer), expected);
 * source.close();
 * ```
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
      let w = (await opts.override?.(name)) ?? await source.readF32(name);
      const n = shape.reduce((a, b) => a * b, 1);
      if (w.length !== n) {
        throw new ArgumentError(`export: ${name} has ${w.length} values, its shape [${shape}] needs ${n}`);
      }
      if (permute.has(name)) w = interleavedToHalf(w, shape[0], shape[1] ?? 1, c.headDim);
      const bytes = f32ToBytesInRange(w, opts.dtype, `export: ${name}`);
      opts.onProgress?.(++done, list.length);
      return bytes;
    },
  }));
}

/**
 * Write `source` (with `opts.override` substituted) as a Hugging Face directory at `outDir`.
 * @example Export stories15M: the exported model gives the same logits as the original
 * ```ts
 * import {
 *   exportHuggingFace, ForwardRunner, Gpu, GpuModel, openHuggingFace, openWeights, type WeightSource,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const dir = await Deno.makeTempDir();
 * await exportHuggingFace(source, dir, { dtype: "f32" });
 * const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
 * assert.deepEqual(files, ["config.json", "model.safetensors"]);
 * const gpu = await Gpu.create();
 * const logits = async (weights: WeightSource) => {
 *   const model = await GpuModel.load(gpu, weights);
 *   const runner = new ForwardRunner(model, 3);
 *   runner.forward([1, 9038, 2501]); // BOS "Once upon"
 *   const out = await gpu.readF32(runner.logits);
 *   runner.release();
 *   model.release();
 *   return out;
 * };
 * const exported = await openHuggingFace(dir);
 * const [a, b] = [await logits(source), await logits(exported)];
 * assert.ok(a.every((x, i) => Math.abs(x - b[i]) < 1e-3)); // q/k rows permuted, q·k unchanged
 * exported.close();
 * source.close();
 * gpu.destroy();
 * await Deno.remove(dir, { recursive: true });
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
