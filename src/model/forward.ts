/**
 * The LLaMA-family forward pass on the GPU, built from kernels/ through src/ops/.
 *
 * GpuModel holds weights on the GPU (all blocks, or one block at a time for the memory-bounded
 * pruning walk: see `loadBlock`/`releaseBlock`). ForwardRunner holds the activation buffers for
 * up to `maxTokens` tokens and a K/V cache, and exposes the pass in steps (embed, block, head)
 * so the pruner can observe linear inputs and swap weights between blocks. The model does not
 * know it is being pruned.
 *
 * Sparse linears: loaded with `sparse` (GpuModelOptions) or by {@linkcode GpuModel.loadSparse},
 * the linears a sparse model stores sparse are uploaded in the sparse kernels' layout
 * (src/sparse/upload.ts) and run with `sparseLinear` for every T: the GEMV for decoding (T = 1),
 * the sparse GEMM for a prompt. No dense copy is kept, so a prompt runs sparse too (measured on
 * lavapipe, bench/decode.ts: ARCHITECTURE.md, "Sparse linears in the forward pass").
 * @module
 */
import type { GpuDType } from "../../kernels/common.ts";
import { ropeTables } from "../../kernels/rope.ts";
import type { Gpu } from "../gpu/device.ts";
import { type GpuMatrix, releaseMatrix, uploadMatrix } from "../gpu/matrix.ts";
import { attention, elementwise, embedding, rmsnorm, rope } from "../ops/basic.ts";
import { linear } from "../ops/linear.ts";
import { releaseSparseScratch, sparseLinear } from "../ops/sparse.ts";
import type { SparseMatrix } from "../sparse/format.ts";
import { type GpuSparseMatrix, releaseSparse, uploadSparse } from "../sparse/upload.ts";
import { ArgumentError } from "../errors.ts";
import { type LinearName, LINEARS, linearShape, type ModelConfig } from "./config.ts";
import { attnNorm, EMBED, FINAL_NORM, linearBias, linearWeight, LM_HEAD, mlpNorm } from "./names.ts";
import type { WeightSource } from "./weights.ts";

/** One decoder block's weights on the GPU. */
export interface GpuBlock {
  /** RMSNorm weight before the attention, f32 [dim]. */
  attnNorm: GPUBuffer;
  /** RMSNorm weight before the MLP, f32 [dim]. */
  mlpNorm: GPUBuffer;
  /**
   * The dense linears. A linear held sparse (in `sparse`) has an empty entry here (no chunks:
   * nothing dense is resident, and the dense launcher refuses it).
   */
  linears: Record<LinearName, GpuMatrix>;
  /** Linears held in the sparse kernels' layout; ForwardRunner runs these with `sparseLinear`. */
  sparse?: Partial<Record<LinearName, GpuSparseMatrix>>;
  /** q/k/v biases (Qwen2). */
  bias?: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer };
}

/** Where a linear's input is observed: the inputs shared by q/k/v, o, gate/up and down. */
export type LinearInputGroup = "qkv" | "o" | "gateup" | "down";
/** The linears that read each observed input group. */
export const GROUP_LINEARS: Record<LinearInputGroup, LinearName[]> = {
  qkv: ["q", "k", "v"],
  o: ["o"],
  gateup: ["gate", "up"],
  down: ["down"],
};

/** Called with each linear input of a block as it is computed: x is f32 [T, C_in]. */
export type LinearInputObserver = (group: LinearInputGroup, x: GPUBuffer, T: number, cIn: number) => void;

/**
 * Pruned linears stored sparse, by canonical tensor name, in the row order of the model's source
 * (a SparseModel from `loadSparseModel` is one, and its own source).
 */
export interface SparseWeights {
  /** The sparse weights' model (checked against the source: shapes and RoPE layout). */
  readonly config: ModelConfig;
  /** Whether the tensor named `name` is stored sparse. */
  isSparse(name: string): boolean;
  /** The sparse matrix of the tensor named `name`. */
  readSparse(name: string): Promise<SparseMatrix>;
}

/** Options of {@linkcode GpuModel.load}. */
export interface GpuModelOptions {
  /** Weight dtype on the GPU (sparse values too). Default: f16 when the device has it and the source is 16-bit. */
  dtype?: GpuDType;
  /** Load only embeddings/head/norms; blocks are loaded on demand with loadBlock. */
  lazyBlocks?: boolean;
  /** Hold the linears these store sparse in the sparse layout and run them with the sparse kernels. */
  sparse?: SparseWeights;
}

/** The fields of two configs that must agree for one's weights to run in the other's model. */
function sameShape(a: ModelConfig, b: ModelConfig): boolean {
  return a.dim === b.dim && a.hiddenDim === b.hiddenDim && a.nLayers === b.nLayers &&
    a.nHeads === b.nHeads && a.nKvHeads === b.nKvHeads && a.headDim === b.headDim &&
    a.ropeLayout === b.ropeLayout;
}

/**
 * A model's weights on the GPU: embeddings, LM head, final norm and RoPE tables, plus every block (or, with
 * `lazyBlocks`, the blocks loaded on demand). Run it with a {@linkcode ForwardRunner}.
 */
export class GpuModel {
  /** Each block's weights, `undefined` while the block is not loaded. */
  readonly blocks: (GpuBlock | undefined)[];
  private constructor(
    readonly gpu: Gpu,
    readonly source: WeightSource,
    readonly config: ModelConfig,
    readonly dtype: GpuDType,
    readonly embed: GpuMatrix,
    readonly lmHead: GpuMatrix,
    readonly finalNorm: GPUBuffer,
    readonly ropeCos: GPUBuffer,
    readonly ropeSin: GPUBuffer,
    readonly sparse?: SparseWeights,
  ) {
    this.blocks = new Array(config.nLayers).fill(undefined);
  }

  /**
   * Upload a model from `source`; with `opts.sparse`, the linears it stores sparse are held in the
   * sparse layout (everything else still comes from `source`).
   * @example
   * ```ts
   * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
   * ```
   */
  static async load(gpu: Gpu, source: WeightSource, opts: GpuModelOptions = {}): Promise<GpuModel> {
    const c = source.config;
    if (opts.sparse && !sameShape(c, opts.sparse.config)) {
      throw new ArgumentError(
        `the sparse weights do not belong to this model (shapes or RoPE layout differ: ${opts.sparse.config.ropeLayout} ` +
          `against ${c.ropeLayout}); load a sparse model directory with GpuModel.loadSparse, which takes ` +
          `every tensor from it`,
      );
    }
    const dtype: GpuDType = opts.dtype ?? (gpu.f16 && source.dtype !== "f32" ? "f16" : "f32");
    const embed = uploadMatrix(gpu, await source.readF32(EMBED), c.vocabSize, c.dim, "embed", dtype);
    const lmHead = c.tiedEmbeddings
      ? embed
      : uploadMatrix(gpu, await source.readF32(LM_HEAD), c.vocabSize, c.dim, "lm_head", dtype);
    const finalNorm = gpu.upload(await source.readF32(FINAL_NORM), "final_norm");
    const maxPos = Math.max(c.maxSeqLen, 1);
    const t = ropeTables(maxPos, c.headDim, c.ropeTheta);
    const model = new GpuModel(
      gpu,
      source,
      c,
      dtype,
      embed,
      lmHead,
      finalNorm,
      gpu.upload(t.cos, "rope_cos"),
      gpu.upload(t.sin, "rope_sin"),
      opts.sparse,
    );
    try {
      if (!opts.lazyBlocks) { for (let l = 0; l < c.nLayers; l++) await model.loadBlock(l); }
    } catch (e) {
      model.release();
      throw e;
    }
    return model;
  }

  /**
   * A sparse model directory's model (`loadSparseModel`): every tensor from it, the linears it
   * stores sparse run with the sparse kernels (values as f16 when the model's dtype is f16, i.e.
   * the directory's weights are 16-bit and the device has shader-f16; else f32).
   * @example
   * ```ts
   * const sm = await loadSparseModel("pruned/stories15M-owl-wanda-70");
   * const model = await GpuModel.loadSparse(gpu, sm);
   * await generate(model, prompt, { maxTokens: 64 });
   * ```
   */
  static loadSparse(
    gpu: Gpu,
    model: WeightSource & SparseWeights,
    opts: Omit<GpuModelOptions, "sparse"> = {},
  ): Promise<GpuModel> {
    return GpuModel.load(gpu, model, { ...opts, sparse: model });
  }

  /** Linears held sparse, over all loaded blocks. */
  get sparseLinearCount(): number {
    return this.blocks.reduce((n, b) => n + Object.keys(b?.sparse ?? {}).length, 0);
  }

  /** GPU bytes of the loaded blocks' linears (sparse ones as uploaded: groups, offsets, padding). */
  linearBytes(): number {
    let bytes = 0;
    for (const b of this.blocks) {
      if (!b) continue;
      for (const lin of LINEARS) {
        const s = b.sparse?.[lin], d = b.linears[lin];
        bytes += s ? s.bytes : d.rows * d.cols * (d.dtype === "f16" ? 2 : 4);
      }
    }
    return bytes;
  }

  /**
   * Upload block l from the source, or from `weights` (f32 [C_out, C_in] per linear) if given; a
   * linear not in `weights` that the model's sparse weights store sparse is held sparse.
   */
  async loadBlock(l: number, weights?: Partial<Record<LinearName, Float32Array>>): Promise<GpuBlock> {
    this.releaseBlock(l);
    const { gpu, source: s, config: c } = this;
    const linears = {} as Record<LinearName, GpuMatrix>;
    const sparse: Partial<Record<LinearName, GpuSparseMatrix>> = {};
    // Registered before the uploads, so releaseBlock frees a partly loaded block.
    const block = { linears, sparse } as GpuBlock;
    this.blocks[l] = block;
    for (const lin of LINEARS) {
      const [rows, cols] = linearShape(c, lin);
      const name = linearWeight(l, lin);
      if (!weights?.[lin] && this.sparse?.isSparse(name)) {
        const m = await this.sparse.readSparse(name);
        if (m.rows !== rows || m.cols !== cols) {
          throw new ArgumentError(`sparse ${name} is ${m.rows}x${m.cols}, the model needs ${rows}x${cols}`);
        }
        sparse[lin] = uploadSparse(gpu, m, { dtype: this.dtype, label: `L${l}.${lin}.sparse` });
        linears[lin] = { rows, cols, dtype: this.dtype, chunks: [] };
        continue;
      }
      const data = weights?.[lin] ?? await s.readF32(name);
      linears[lin] = uploadMatrix(gpu, data, rows, cols, `L${l}.${lin}`, this.dtype);
    }
    block.attnNorm = gpu.upload(await s.readF32(attnNorm(l)), `L${l}.attn_norm`);
    block.mlpNorm = gpu.upload(await s.readF32(mlpNorm(l)), `L${l}.mlp_norm`);
    if (Object.keys(sparse).length === 0) delete block.sparse;
    if (c.qkvBias) {
      block.bias = {
        q: gpu.upload(await s.readF32(linearBias(l, "q")), `L${l}.q_bias`),
        k: gpu.upload(await s.readF32(linearBias(l, "k")), `L${l}.k_bias`),
        v: gpu.upload(await s.readF32(linearBias(l, "v")), `L${l}.v_bias`),
      };
    }
    return block;
  }

  /** Replace one linear of a loaded block (the pruner writes pruned weights back this way). */
  replaceLinear(l: number, lin: LinearName, data: Float32Array): void {
    const b = this.blocks[l]!;
    const [rows, cols] = linearShape(this.config, lin);
    releaseMatrix(this.gpu, b.linears[lin]);
    if (b.sparse?.[lin]) {
      releaseSparse(this.gpu, b.sparse[lin]);
      delete b.sparse[lin];
    }
    b.linears[lin] = uploadMatrix(this.gpu, data, rows, cols, `L${l}.${lin}`, this.dtype);
  }

  /** Free block `l`'s buffers (dense and sparse) and mark it unloaded; a no-op when it is not loaded. */
  releaseBlock(l: number): void {
    const b = this.blocks[l];
    if (!b) return;
    for (const lin of LINEARS) {
      releaseMatrix(this.gpu, b.linears[lin]);
      releaseSparse(this.gpu, b.sparse?.[lin]);
    }
    this.gpu.release(b.attnNorm, b.mlpNorm, b.bias?.q, b.bias?.k, b.bias?.v);
    this.blocks[l] = undefined;
  }

  /** Free every buffer (and, for a model with sparse weights, the sparse kernels' X slots). */
  release(): void {
    for (let l = 0; l < this.blocks.length; l++) this.releaseBlock(l);
    if (this.lmHead !== this.embed) releaseMatrix(this.gpu, this.lmHead);
    releaseMatrix(this.gpu, this.embed);
    this.gpu.release(this.finalNorm, this.ropeCos, this.ropeSin);
    if (this.sparse) releaseSparseScratch(this.gpu); // regrown on demand by any later sparse launch
  }
}

/** Options of a {@linkcode ForwardRunner}. */
export interface RunnerOptions {
  /** Keep a K/V cache per layer (generation). Default: one shared K/V scratch (prefill only). */
  perLayerCache?: boolean;
  /** Longest sequence the cache holds (default: maxTokens). */
  maxSeq?: number;
}

/** Activation buffers for up to maxTokens tokens, plus the K/V cache. */
export class ForwardRunner {
  /** The residual stream, f32 [maxTokens, dim]. */
  readonly x: GPUBuffer;
  /** The normalised residual (input of q/k/v, gate/up and the LM head), f32 [maxTokens, dim]. */
  readonly xn: GPUBuffer;
  /** Queries, f32 [maxTokens, nHeads * headDim] (RoPE applied in place). */
  readonly q: GPUBuffer;
  /** Keys of the current tokens, f32 [maxTokens, nKvHeads * headDim], copied into the K cache. */
  readonly k: GPUBuffer;
  /** Values of the current tokens, f32 [maxTokens, nKvHeads * headDim], copied into the V cache. */
  readonly v: GPUBuffer;
  /** Attention output (input of o), f32 [maxTokens, nHeads * headDim]. */
  readonly att: GPUBuffer;
  /** Gate projection, then the SwiGLU product (input of down), f32 [maxTokens, hiddenDim]. */
  readonly gate: GPUBuffer;
  /** Up projection, f32 [maxTokens, hiddenDim]. */
  readonly up: GPUBuffer;
  /** Output of o and of down before the residual add, f32 [maxTokens, dim]. */
  readonly tmp: GPUBuffer;
  /** Token ids of the current pass, u32 [maxTokens]. */
  readonly ids: GPUBuffer;
  /** Logits of the last {@linkcode ForwardRunner.head}, f32 [maxTokens, vocabSize]. */
  readonly logits: GPUBuffer;
  private readonly kCache: GPUBuffer[];
  private readonly vCache: GPUBuffer[];
  /** Positions the K/V cache holds. */
  readonly maxSeq: number;

  /** Allocate the activation buffers for up to `maxTokens` tokens a pass, and the K/V cache. */
  constructor(readonly model: GpuModel, readonly maxTokens: number, opts: RunnerOptions = {}) {
    const { gpu, config: c } = model;
    const T = maxTokens;
    const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
    this.maxSeq = opts.maxSeq ?? T;
    this.x = gpu.buffer(T * c.dim * 4, "x");
    this.xn = gpu.buffer(T * c.dim * 4, "xn");
    this.q = gpu.buffer(T * qDim * 4, "q");
    this.k = gpu.buffer(T * kvDim * 4, "k");
    this.v = gpu.buffer(T * kvDim * 4, "v");
    this.att = gpu.buffer(T * qDim * 4, "att");
    this.gate = gpu.buffer(T * c.hiddenDim * 4, "gate");
    this.up = gpu.buffer(T * c.hiddenDim * 4, "up");
    this.tmp = gpu.buffer(T * c.dim * 4, "tmp");
    this.ids = gpu.buffer(T * 4, "ids");
    this.logits = gpu.buffer(T * c.vocabSize * 4, "logits");
    const nCaches = opts.perLayerCache ? c.nLayers : 1;
    this.kCache = Array.from(
      { length: nCaches },
      (_, l) => gpu.buffer(this.maxSeq * kvDim * 4, `kcache${l}`),
    );
    this.vCache = Array.from(
      { length: nCaches },
      (_, l) => gpu.buffer(this.maxSeq * kvDim * 4, `vcache${l}`),
    );
  }

  /** x = embedding(ids). */
  embed(ids: ArrayLike<number>): void {
    const { gpu } = this.model;
    gpu.write(this.ids, Uint32Array.from(ids));
    embedding(gpu, this.ids, this.model.embed, this.x, ids.length);
  }

  /**
   * Positions pos0..pos0+T-1 must fit the K/V cache and the RoPE table: past the cache, the K/V
   * copies fail validation (reported, not thrown); past the table, reads are clamped. Both would
   * give wrong logits silently.
   */
  private checkPositions(T: number, pos0: number): void {
    const c = this.model.config;
    if (pos0 + T > this.maxSeq) {
      throw new Error(`positions ${pos0}..${pos0 + T - 1} exceed the K/V cache of ${this.maxSeq} positions`);
    }
    if (pos0 + T > Math.max(c.maxSeqLen, 1)) {
      throw new Error(`positions ${pos0}..${pos0 + T - 1} exceed the model's context of ${c.maxSeqLen}`);
    }
  }

  /** y = x W^T (+ bias) with block b's linear `lin`: the sparse kernels when it is held sparse. */
  private linear(
    b: GpuBlock,
    lin: LinearName,
    x: GPUBuffer,
    y: GPUBuffer,
    T: number,
    bias?: GPUBuffer,
  ): void {
    const gpu = this.model.gpu;
    const s = b.sparse?.[lin];
    if (s) sparseLinear(gpu, x, s, y, T, bias);
    else linear(gpu, x, b.linears[lin], y, T, bias);
  }

  /** Run block l in place on x for T tokens at positions pos0.. (K/V appended to the cache). */
  block(l: number, T: number, pos0 = 0, observe?: LinearInputObserver): void {
    const { gpu, config: c } = this.model;
    const b = this.model.blocks[l];
    if (!b) throw new Error(`block ${l} is not loaded on the GPU`);
    this.checkPositions(T, pos0);
    const kvDim = c.nKvHeads * c.headDim;
    const cache = this.kCache.length > 1 ? l : 0;
    rmsnorm(gpu, this.x, b.attnNorm, this.xn, T, c.dim, c.normEps);
    observe?.("qkv", this.xn, T, c.dim);
    this.linear(b, "q", this.xn, this.q, T, b.bias?.q);
    this.linear(b, "k", this.xn, this.k, T, b.bias?.k);
    this.linear(b, "v", this.xn, this.v, T, b.bias?.v);
    rope(gpu, c.ropeLayout, this.q, this.model.ropeCos, this.model.ropeSin, T, c.nHeads, c.headDim, pos0);
    rope(gpu, c.ropeLayout, this.k, this.model.ropeCos, this.model.ropeSin, T, c.nKvHeads, c.headDim, pos0);
    gpu.copy(this.k, 0, this.kCache[cache], pos0 * kvDim * 4, T * kvDim * 4);
    gpu.copy(this.v, 0, this.vCache[cache], pos0 * kvDim * 4, T * kvDim * 4);
    attention(
      gpu,
      this.q,
      this.kCache[cache],
      this.vCache[cache],
      this.att,
      T,
      c.nHeads,
      c.nKvHeads,
      c.headDim,
      pos0,
    );
    observe?.("o", this.att, T, c.nHeads * c.headDim);
    this.linear(b, "o", this.att, this.tmp, T);
    elementwise(gpu, "add", this.x, this.tmp, T * c.dim);
    rmsnorm(gpu, this.x, b.mlpNorm, this.xn, T, c.dim, c.normEps);
    observe?.("gateup", this.xn, T, c.dim);
    this.linear(b, "gate", this.xn, this.gate, T);
    this.linear(b, "up", this.xn, this.up, T);
    elementwise(gpu, "swiglu", this.gate, this.up, T * c.hiddenDim);
    observe?.("down", this.gate, T, c.hiddenDim);
    this.linear(b, "down", this.gate, this.tmp, T);
    elementwise(gpu, "add", this.x, this.tmp, T * c.dim);
  }

  /** logits[T, vocab] = lm_head(final_norm(x)). */
  head(T: number): void {
    const { gpu, config: c } = this.model;
    rmsnorm(gpu, this.x, this.model.finalNorm, this.xn, T, c.dim, c.normEps);
    linear(gpu, this.xn, this.model.lmHead, this.logits, T);
  }

  /** The whole pass: logits for ids at positions pos0.. (left in `logits`). */
  forward(ids: ArrayLike<number>, pos0 = 0): void {
    const T = ids.length;
    if (T > this.maxTokens) {
      throw new Error(`forward of ${T} tokens exceeds runner capacity ${this.maxTokens}`);
    }
    this.checkPositions(T, pos0); // before anything is recorded
    this.embed(ids);
    for (let l = 0; l < this.model.config.nLayers; l++) this.block(l, T, pos0);
    this.head(T);
  }

  /** Free the activation buffers and the K/V cache (not the model). */
  release(): void {
    const g = this.model.gpu;
    g.release(
      this.x,
      this.xn,
      this.q,
      this.k,
      this.v,
      this.att,
      this.gate,
      this.up,
      this.tmp,
      this.ids,
      this.logits,
    );
    g.release(...this.kCache, ...this.vCache);
  }
}
