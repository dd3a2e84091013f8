/**
 * Reader of llama2.c legacy checkpoints (the `model.bin` of karpathy/llama2.c, written by
 * `export.py`'s legacy export and read by `run.c`'s `memory_map_weights`):
 *
 * ```
 * int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: untied classifier), seq_len
 * f32 token_embedding_table [vocab, dim]
 * f32 rms_att_weight [L, dim]
 * f32 wq [L, dim, dim]   wk [L, kv_dim, dim]   wv [L, kv_dim, dim]   wo [L, dim, dim]
 * f32 rms_ffn_weight [L, dim]
 * f32 w1 [L, hidden, dim] (gate)   w2 [L, dim, hidden] (down)   w3 [L, hidden, dim] (up)
 * f32 rms_final_weight [dim]
 * f32 freq_cis_real [seq_len, head_size/2]   freq_cis_imag [seq_len, head_size/2]  (unused)
 * f32 wcls [vocab, dim]  (only when vocab_size < 0)
 * ```
 *
 * The stacked per-layer arrays are served as one canonical tensor per layer (a slice). q/k rows
 * stay in llama2.c's order, so the config says `ropeLayout: "interleaved"`.
 * @module
 */
import { ModelFormatError } from "../errors.ts";
import { type LinearName, LINEARS, linearShape, llamaConfig, type ModelConfig } from "./config.ts";
import { bytesToF32 } from "./dtype.ts";
import { attnNorm, EMBED, FINAL_NORM, linearWeight, LM_HEAD, mlpNorm } from "./names.ts";
import type { ByteSource, TensorInfo, WeightSource } from "./weights.ts";

const HEADER_BYTES = 7 * 4;
const F32 = 4;

/**
 * The seven header fields, as stored.
 *
 * @example A negative vocab_size: the file carries its own classifier (an untied LM head)
 * ```ts
 * import { llama2cConfig, type Llama2cHeader } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const header: Llama2cHeader = {
 *   dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: -100, seqLen: 128,
 * };
 * const c = llama2cConfig(header);
 * assert.deepEqual([c.vocabSize, c.tiedEmbeddings, c.headDim, c.maxSeqLen], [100, false, 8, 128]);
 * ```
 */
export interface Llama2cHeader {
  /** Hidden size. */
  dim: number;
  /** MLP intermediate size. */
  hiddenDim: number;
  /** Decoder blocks. */
  nLayers: number;
  /** Attention (query) heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** Negative when the file carries its own classifier (untied LM head). */
  vocabSize: number;
  /** Maximum sequence length. */
  seqLen: number;
}

interface Placed {
  info: TensorInfo;
  /** Absolute byte offset in the file. */
  offset: number;
}

/**
 * Decode and sanity-check the 28-byte header; `file` names the source in error messages.
 *
 * @example stories15M's header, and one that cannot be a llama2.c checkpoint
 * ```ts
 * import { ModelFormatError, parseLlama2cHeader } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = new Uint8Array(new Int32Array([288, 768, 6, 6, 6, 32000, 256]).buffer); // 7 x int32
 * assert.deepEqual(parseLlama2cHeader(bytes, "model.bin"), {
 *   dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256,
 * });
 * const bad = new Uint8Array(new Int32Array([288, 768, 6, 5, 5, 32000, 256]).buffer); // 288 / 5 heads
 * assert.throws(
 *   () => parseLlama2cHeader(bad, "bad.bin"),
 *   (e) => e instanceof ModelFormatError && e.message.startsWith("bad.bin: dim 288 is not a multiple"),
 * );
 * ```
 */
export function parseLlama2cHeader(bytes: Uint8Array, file: string): Llama2cHeader {
  if (bytes.byteLength < HEADER_BYTES) {
    throw new ModelFormatError(
      `${file}: ${bytes.byteLength} bytes is too short for a llama2.c checkpoint header (${HEADER_BYTES} bytes)`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const f = (i: number) => v.getInt32(i * 4, true);
  const h: Llama2cHeader = {
    dim: f(0),
    hiddenDim: f(1),
    nLayers: f(2),
    nHeads: f(3),
    nKvHeads: f(4),
    vocabSize: f(5),
    seqLen: f(6),
  };
  const notLlama2c = "; this is not a llama2.c legacy checkpoint";
  for (const k of ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "seqLen"] as const) {
    if (h[k] <= 0) {
      throw new ModelFormatError(`${file}: header field ${k} = ${h[k]} must be positive${notLlama2c}`);
    }
  }
  if (h.vocabSize === 0) throw new ModelFormatError(`${file}: header field vocab_size is 0${notLlama2c}`);
  if (h.dim % h.nHeads !== 0) {
    throw new ModelFormatError(`${file}: dim ${h.dim} is not a multiple of n_heads ${h.nHeads}${notLlama2c}`);
  }
  if (h.nHeads % h.nKvHeads !== 0) {
    throw new ModelFormatError(
      `${file}: n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}${notLlama2c}`,
    );
  }
  if ((h.dim / h.nHeads) % 2 !== 0) {
    throw new ModelFormatError(`${file}: head size ${h.dim / h.nHeads} is odd; RoPE needs an even head size`);
  }
  return h;
}

/**
 * The ModelConfig a llama2.c header implies.
 *
 * @example stories15M's config: what the header says, plus llama2.c's fixed choices
 * ```ts
 * import { llama2cConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const c = llama2cConfig({
 *   dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256,
 * });
 * assert.deepEqual([c.architecture, c.headDim, c.vocabSize], ["LlamaForCausalLM", 48, 32000]);
 * assert.equal(c.tiedEmbeddings, true); // vocab_size > 0: the classifier is the embedding table
 * assert.deepEqual([c.ropeLayout, c.normEps, c.ropeTheta], ["interleaved", 1e-5, 10000]);
 * assert.deepEqual([c.bosTokenId, c.eosTokenId], [1, 2]);
 * ```
 */
export function llama2cConfig(h: Llama2cHeader): ModelConfig {
  const { dim, hiddenDim, nLayers, nHeads } = h;
  // headDim given, so that the header's checks (parseLlama2cHeader) stay the only ones here.
  return llamaConfig({ dim, hiddenDim, nLayers, nHeads, vocabSize: Math.abs(h.vocabSize) }, {
    nKvHeads: h.nKvHeads,
    headDim: dim / nHeads,
    maxSeqLen: h.seqLen,
    ropeLayout: "interleaved",
    tiedEmbeddings: h.vocabSize > 0,
  });
}

/**
 * Place every tensor in file order. The file size this implies is `impliedBytes`, by arithmetic, so
 * that a nonsense header is refused before anything is placed (the two must describe one layout).
 */
function layout(c: ModelConfig): Map<string, Placed> {
  const tensors = new Map<string, Placed>();
  let offset = HEADER_BYTES;
  const place = (name: string, shape: number[]) => {
    tensors.set(name, { info: { name, dtype: "f32", shape }, offset });
    offset += shape.reduce((a, b) => a * b, 1) * F32;
  };
  /** A stacked [L, ...shape] array: layer l is the l-th slice. */
  const stacked = (nameOf: (l: number) => string, shape: number[]) => {
    for (let l = 0; l < c.nLayers; l++) place(nameOf(l), shape);
  };
  const linear = (lin: LinearName) => stacked((l) => linearWeight(l, lin), linearShape(c, lin));
  place(EMBED, [c.vocabSize, c.dim]);
  stacked(attnNorm, [c.dim]);
  for (const lin of ["q", "k", "v", "o"] as const) linear(lin);
  stacked(mlpNorm, [c.dim]);
  for (const lin of ["gate", "down", "up"] as const) linear(lin); // w1, w2, w3
  place(FINAL_NORM, [c.dim]);
  offset += 2 * c.maxSeqLen * (c.headDim / 2) * F32; // freq_cis_real/imag: RoPE is recomputed
  if (!c.tiedEmbeddings) place(LM_HEAD, [c.vocabSize, c.dim]);
  return tensors;
}

/** The file size `layout` implies, computed without placing the tensors. */
function impliedBytes(c: ModelConfig): number {
  const linears = LINEARS.reduce((a, lin) => a + linearShape(c, lin)[0] * linearShape(c, lin)[1], 0);
  const floats = c.vocabSize * c.dim * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * (2 * c.dim + linears) +
    c.dim +
    2 * c.maxSeqLen * (c.headDim / 2);
  return HEADER_BYTES + floats * F32;
}

class Llama2cWeights implements WeightSource {
  readonly dtype = "f32";
  constructor(
    private readonly src: ByteSource,
    readonly config: ModelConfig,
    readonly description: string,
    private readonly tensors: Map<string, Placed>,
  ) {}

  tensorNames(): string[] {
    return this.config.tiedEmbeddings ? [...this.tensors.keys(), LM_HEAD] : [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name) || (name === LM_HEAD && this.config.tiedEmbeddings);
  }

  info(name: string): TensorInfo {
    const { info } = this.placed(name);
    return { ...info, name, shape: [...info.shape] };
  }

  /** Raw f32 bytes; over an in-memory source this is a view of the checkpoint: do not mutate it. */
  readRaw(name: string): Promise<Uint8Array> {
    const p = this.placed(name);
    return this.src.read(p.offset, p.info.shape.reduce((a, b) => a * b, 1) * F32);
  }

  async readF32(name: string): Promise<Float32Array> {
    return bytesToF32(await this.readRaw(name), "f32");
  }

  close(): void {
    this.src.close();
  }

  /** A tied LM head is the embedding table. */
  private placed(name: string): Placed {
    const p = this.tensors.get(name === LM_HEAD && this.config.tiedEmbeddings ? EMBED : name);
    if (!p) {
      throw new ModelFormatError(`${this.description}: no tensor named ${name} in a llama2.c checkpoint`);
    }
    return p;
  }
}

/**
 * Open a llama2.c legacy checkpoint. The file size must be exactly what the header implies.
 * @example A tiny checkpoint whose float i holds the value i: each tensor is read from its place
 * ```ts
 * import {
 *   EMBED, FINAL_NORM, linearWeight, MemoryByteSource, ModelFormatError, openLlama2c,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // Header: dim 4, hidden 8, 1 layer, 2 heads, 2 KV heads, vocab 3, context 2. Then 188 floats:
 * // embedding 12, attention norm 4, q/k/v/o 4 x 16, MLP norm 4, w1/w2/w3 (gate/down/up) 3 x 32,
 * // final norm 4, RoPE tables 4.
 * const file = Float32Array.from({ length: 7 + 188 }, (_, i) => i - 7);
 * new Int32Array(file.buffer, 0, 7).set([4, 8, 1, 2, 2, 3, 2]);
 * const bytes = new Uint8Array(file.buffer);
 * const w = await openLlama2c(new MemoryByteSource(bytes, "tiny.bin"));
 * assert.deepEqual([w.config.dim, w.config.headDim, w.config.ropeLayout], [4, 2, "interleaved"]);
 * assert.deepEqual(await w.readF32(EMBED), Float32Array.from({ length: 12 }, (_, i) => i));
 * assert.equal((await w.readF32(linearWeight(0, "q")))[0], 16);
 * assert.equal((await w.readF32(linearWeight(0, "up")))[0], 12 + 4 + 64 + 4 + 2 * 32);
 * assert.equal((await w.readF32(FINAL_NORM))[0], 180);
 * const cut = new MemoryByteSource(bytes.subarray(0, 400), "cut.bin"); // shorter than the header implies
 * await assert.rejects(openLlama2c(cut), ModelFormatError);
 * ```
 */
export async function openLlama2c(src: ByteSource, description: string = src.name): Promise<WeightSource> {
  if (src.size < HEADER_BYTES) {
    throw new ModelFormatError(
      `${src.name}: ${src.size} bytes is too short for a llama2.c checkpoint header (${HEADER_BYTES} bytes)`,
    );
  }
  const config = llama2cConfig(parseLlama2cHeader(await src.read(0, HEADER_BYTES), src.name));
  // The size first, by arithmetic: a header with billions of layers must not place billions of tensors.
  const fileBytes = impliedBytes(config);
  if (fileBytes !== src.size) {
    throw new ModelFormatError(
      `${src.name}: the header (dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nLayers} layers, ` +
        `vocab ${config.vocabSize}) implies ${fileBytes} bytes but the file has ${src.size}; ` +
        `it is truncated or not a llama2.c legacy checkpoint`,
    );
  }
  return new Llama2cWeights(src, config, description, layout(config));
}
