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
 *
 * Texture decoding: with `gemvTextures` (GpuModelOptions) the dense matrices are also held as
 * textures and every T = 1 step runs the texture GEMV (src/ops/gemv_tex.ts), the fast dense GEMV
 * on lavapipe; prompts keep the storage kernels. The runner's linear inputs come from
 * `Gpu.gemvInput`, so on lavapipe those GEMVs read X in place as their uniform slot.
 *
 * Decoding without readbacks: `chooseGreedy` / `chooseSampled` write the next token id into the
 * runner's `ids` on the device and `forwardOnDevice` embeds it from there (src/generate/).
 * @module
 */
import type { GpuDType } from "../../kernels/common.ts";
import { ropeTables } from "../../kernels/rope.ts";
import type { Gpu } from "../gpu/device.ts";
import { type GpuMatrix, releaseMatrix, uploadMatrix } from "../gpu/matrix.ts";
import { argmaxToken, attention, elementwise, embedding, rmsnorm, rope, sampleToken } from "../ops/basic.ts";
import {
  gemvTex,
  gemvTexSupported,
  type GpuTexMatrix,
  releaseGemvTex,
  releaseGemvTexScratch,
  uploadGemvTex,
} from "../ops/gemv_tex.ts";
import { linear } from "../ops/linear.ts";
import { releaseSparseScratch, sparseLinear } from "../ops/sparse.ts";
import type { SparseMatrix } from "../sparse/format.ts";
import { type GpuSparseMatrix, releaseSparse, uploadSparse } from "../sparse/upload.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import { type LinearName, LINEARS, linearShape, type ModelConfig } from "./config.ts";
import { attnNorm, EMBED, FINAL_NORM, linearBias, linearWeight, LM_HEAD, mlpNorm } from "./names.ts";
import type { WeightSource } from "./weights.ts";

/**
 * One decoder block's weights on the GPU.
 *
 * @example Load block 2 of stories15M and read its down projection back
 * ```ts
 * import { Gpu, type GpuBlock, GpuModel, linearWeight, openWeights, readMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const source = await openWeights("stories15M");
 * const model = await GpuModel.load(gpu, source, { dtype: "f32", lazyBlocks: true });
 * const block: GpuBlock = await model.loadBlock(2);
 * assert.equal(model.blocks[2], block);
 * assert.deepEqual([block.linears.down.rows, block.linears.down.cols], [288, 768]);
 * assert.deepEqual(await readMatrix(gpu, block.linears.down), await source.readF32(linearWeight(2, "down")));
 * assert.equal(block.attnNorm.size, 288 * 4); // f32 [dim]
 * assert.equal(block.bias, undefined); // q/k/v biases are Qwen2's
 * model.release();
 * gpu.destroy();
 * ```
 */
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
  /** Texture copies of the dense linears (`gemvTextures`), which ForwardRunner decodes (T = 1) with. */
  tex?: Partial<Record<LinearName, GpuTexMatrix>>;
  /** q/k/v biases (Qwen2). */
  bias?: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer };
}

/**
 * Where a linear's input is observed: the inputs shared by q/k/v, o, gate/up and down.
 *
 * @example The width of each group's input is the C_in of every linear that reads it
 * ```ts
 * import { GROUP_LINEARS, type LinearInputGroup, linearShape, llama2cConfig } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const header = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 2, vocabSize: 100, seqLen: 64 };
 * const c = llama2cConfig(header);
 * const width: Record<LinearInputGroup, number> = { qkv: 64, o: 8 * 8, gateup: 64, down: 172 };
 * for (const group of Object.keys(width) as LinearInputGroup[]) {
 *   for (const lin of GROUP_LINEARS[group]) assert.equal(linearShape(c, lin)[1], width[group]);
 * }
 * ```
 */
export type LinearInputGroup = "qkv" | "o" | "gateup" | "down";
/**
 * The linears that read each observed input group.
 *
 * @example Each of the seven linears reads exactly one group, in the block's order
 * ```ts
 * import { GROUP_LINEARS, LINEARS } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(Object.values(GROUP_LINEARS).flat(), [...LINEARS]);
 * assert.deepEqual(GROUP_LINEARS.gateup, ["gate", "up"]); // both read the MLP's normalised input
 * ```
 */
export const GROUP_LINEARS: Record<LinearInputGroup, LinearName[]> = {
  qkv: ["q", "k", "v"],
  o: ["o"],
  gateup: ["gate", "up"],
  down: ["down"],
};

/**
 * Called with each linear input of a block as it is computed: x is f32 [T, C_in].
 *
 * @example Observe block 0's linear inputs; q_proj multiplies exactly the observed q/k/v input
 * ```ts
 * import {
 *   ForwardRunner, Gpu, GpuModel, type LinearInputObserver, linearWeight, openWeights,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const source = await openWeights("stories15M");
 * const model = await GpuModel.load(gpu, source, { dtype: "f32" });
 * const runner = new ForwardRunner(model, 1);
 * const seen: string[] = [];
 * const qkvInput = gpu.buffer(288 * 4, "qkv-input");
 * const observe: LinearInputObserver = (group, x, T, cIn) => {
 *   seen.push(`${group} ${T}x${cIn}`);
 *   if (group === "qkv") gpu.copy(x, 0, qkvInput, 0, T * cIn * 4); // x is reused later in the block
 * };
 * runner.embed([9038]);
 * runner.block(0, 1, 0, observe);
 * assert.deepEqual(seen, ["qkv 1x288", "o 1x288", "gateup 1x288", "down 1x768"]);
 * const x = await gpu.readF32(qkvInput), q = await gpu.readF32(runner.q, 0, 288); // RoPE at position 0: none
 * const wq = await source.readF32(linearWeight(0, "q"));
 * for (const j of [0, 100, 287]) {
 *   const dot = x.reduce((s, v, k) => s + v * wq[j * 288 + k], 0);
 *   assert.ok(Math.abs(q[j] - dot) < 1e-4 * (1 + Math.abs(dot)));
 * }
 * gpu.release(qkvInput);
 * runner.release();
 * model.release();
 * gpu.destroy();
 * ```
 */
export type LinearInputObserver = (group: LinearInputGroup, x: GPUBuffer, T: number, cIn: number) => void;

/**
 * Pruned linears stored sparse, by canonical tensor name, in the row order of the model's source
 * (a SparseModel from `loadSparseModel` is one, and its own source).
 *
 * @example Your own SparseWeights: block 0's q_proj pruned and run sparse gives the dense logits
 * ```ts
 * import {
 *   ForwardRunner, Gpu, GpuModel, linearWeight, openWeights, packUnstructured, type SparseWeights,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const source = await openWeights("stories15M");
 * const q0 = linearWeight(0, "q");
 * const pruned = (await source.readF32(q0)).map((w) => Math.abs(w) < 0.05 ? 0 : w);
 * const sparse: SparseWeights = {
 *   config: source.config,
 *   isSparse: (name) => name === q0,
 *   readSparse: (name) => Promise.resolve(packUnstructured(pruned, 288, 288)),
 * };
 * const sparseModel = await GpuModel.load(gpu, source, { dtype: "f32", sparse });
 * assert.equal(sparseModel.sparseLinearCount, 1);
 * const denseModel = await GpuModel.load(gpu, source, { dtype: "f32" });
 * denseModel.replaceLinear(0, "q", pruned);
 * const logits = async (model: GpuModel) => {
 *   const runner = new ForwardRunner(model, 2);
 *   runner.forward([1, 9038]);
 *   const out = await gpu.readF32(runner.logits);
 *   runner.release();
 *   return out;
 * };
 * const [a, b] = [await logits(sparseModel), await logits(denseModel)];
 * assert.ok(a.every((x, i) => Math.abs(x - b[i]) < 1e-3));
 * sparseModel.release();
 * denseModel.release();
 * gpu.destroy();
 * ```
 */
export interface SparseWeights {
  /** The sparse weights' model (checked against the source: shapes and RoPE layout). */
  readonly config: ModelConfig;
  /** Whether the tensor named `name` is stored sparse. */
  isSparse(name: string): boolean;
  /** The sparse matrix of the tensor named `name`. */
  readSparse(name: string): Promise<SparseMatrix>;
}

/**
 * Options of {@linkcode GpuModel.load}.
 *
 * @example Lazy blocks: only embeddings, head and norms are uploaded; blocks come and go on demand
 * ```ts
 * import { Gpu, GpuModel, type GpuModelOptions, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const options: GpuModelOptions = { dtype: "f32", lazyBlocks: true };
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"), options);
 * assert.ok(model.blocks.every((b) => b === undefined));
 * assert.equal(model.linearBytes(), 0);
 * await model.loadBlock(0);
 * assert.equal(model.linearBytes(), (4 * 288 * 288 + 3 * 768 * 288) * 4); // one block's linears, f32
 * model.releaseBlock(0);
 * assert.equal(model.blocks[0], undefined);
 * model.release();
 * gpu.destroy();
 * ```
 */
export interface GpuModelOptions {
  /** Weight dtype on the GPU (sparse values too). Default: f16 when the device has it and the source is 16-bit. */
  dtype?: GpuDType;
  /** Load only embeddings/head/norms; blocks are loaded on demand with loadBlock. */
  lazyBlocks?: boolean;
  /** Hold the linears these store sparse in the sparse layout and run them with the sparse kernels. */
  sparse?: SparseWeights;
  /**
   * Also hold every dense block linear and the LM head as textures for the texture GEMV
   * (src/ops/gemv_tex.ts) and decode (T = 1) with it; prompts keep the storage kernels. On
   * lavapipe that GEMV is 2-3x faster than the storage one (on SwiftShader 1.7x slower); the cost is
   * a second copy of those weights ({@linkcode GpuModel.gemvTextureBytes}; `linearBytes` counts the
   * storage copies only). Linears wider than the GEMV's X slot (16384 columns) stay on the storage
   * GEMV. Default false; `generate` (the CLI) turns it on where `gpu.cpu.weightTextures`.
   */
  gemvTextures?: boolean;
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
 *
 * @example Load stories15M, predict the token after "Once", and free every buffer
 * ```ts
 * import { argmax, ForwardRunner, Gpu, GpuModel, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * assert.equal(model.blocks.length, 6);
 * assert.equal(model.linearBytes(), 6 * (4 * 288 * 288 + 3 * 768 * 288) * 4);
 * const runner = new ForwardRunner(model, 2);
 * runner.forward([1, 9038]); // BOS "Once"
 * const V = model.config.vocabSize;
 * assert.equal(argmax(await gpu.readF32(runner.logits, V, V)), 2501); // row 1: "▁upon"
 * runner.release();
 * model.release();
 * model.source.close();
 * assert.equal(gpu.liveBuffers, 0);
 * gpu.destroy();
 * ```
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
    readonly gemvTextures = false,
  ) {
    this.blocks = new Array(config.nLayers).fill(undefined);
  }

  /** The LM head as a texture (`gemvTextures`), for decoding. */
  lmHeadTex?: GpuTexMatrix;

  /**
   * Upload a model from `source`; with `opts.sparse`, the linears it stores sparse are held in the
   * sparse layout (everything else still comes from `source`).
   * @example The default dtype, and f16 weights (half the bytes) where the device has shader-f16
   * ```ts
   * import { Gpu, GpuModel, openWeights } from "@owlgpu/owlgpu";
   * import assert from "node:assert/strict";
   *
   * const gpu = await Gpu.create();
   * const source = await openWeights("stories15M");
   * const model = await GpuModel.load(gpu, source);
   * assert.equal(model.dtype, "f32"); // by default, f16 only for a 16-bit source on an f16 device
   * assert.ok(model.blocks.every((b) => b !== undefined));
   * if (gpu.f16) {
   *   const half = await GpuModel.load(gpu, source, { dtype: "f16" });
   *   assert.equal(half.linearBytes(), model.linearBytes() / 2);
   *   half.release();
   * }
   * model.release();
   * gpu.destroy();
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
    // The RoPE tables are one binding each: past the adapter's limit every kernel that reads them
    // would be invalid (WebGPU only logs that), and the logits garbage.
    const ropeBytes = Math.max(c.maxSeqLen, 1) * (c.headDim / 2) * 4;
    if (ropeBytes > gpu.maxBinding) {
      throw new UnsupportedError(
        `${source.description}: a context of ${c.maxSeqLen} positions (max_position_embeddings) needs RoPE ` +
          `tables of ${ropeBytes} bytes, over this adapter's ${gpu.maxBinding}-byte storage binding limit; ` +
          `lower max_position_embeddings in config.json to the context you need`,
      );
    }
    const dtype: GpuDType = opts.dtype ?? (gpu.f16 && source.dtype !== "f32" ? "f16" : "f32");
    const embed = uploadMatrix(gpu, await source.readF32(EMBED), c.vocabSize, c.dim, "embed", dtype);
    const lmHead = c.tiedEmbeddings
      ? embed
      : uploadMatrix(gpu, await source.readF32(LM_HEAD), c.vocabSize, c.dim, "lm_head", dtype);
    const finalNorm = gpu.upload(await source.readF32(FINAL_NORM), "final_norm");
    const maxPos = Math.max(c.maxSeqLen, 1);
    const t = ropeTables(maxPos, c.headDim, c.ropeTheta, c.ropeScaling);
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
      opts.gemvTextures ?? false,
    );
    try {
      if (model.gemvTextures && gemvTexSupported(c.dim)) {
        // Read again rather than kept from the upload above: no host copy of the vocabulary
        // matrix is held while the blocks load, with or without textures.
        const head = await source.readF32(c.tiedEmbeddings ? EMBED : LM_HEAD);
        model.lmHeadTex = uploadGemvTex(gpu, head, c.vocabSize, c.dim, { dtype, label: "lm_head.tex" });
      }
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
   * @example A source that is its own sparse weights: every linear of stories15M at 50% sparsity
   * ```ts
   * import { generate, Gpu, GpuModel, LINEARS, openWeights, packUnstructured } from "@owlgpu/owlgpu";
   * import assert from "node:assert/strict";
   *
   * const gpu = await Gpu.create();
   * const source = await openWeights("stories15M");
   * const halve = (w: Float32Array) => { // zero the smaller half of the magnitudes
   *   const t = Float32Array.from(w, Math.abs).sort()[w.length >> 1];
   *   return w.map((x) => Math.abs(x) < t ? 0 : x);
   * };
   * const model = await GpuModel.loadSparse(gpu, Object.assign(source, {
   *   isSparse: (name: string) => name.endsWith("_proj.weight"), // the block linears
   *   readSparse: async (name: string) => {
   *     const [rows, cols] = source.info(name).shape;
   *     return packUnstructured(halve(await source.readF32(name)), rows, cols);
   *   },
   * }));
   * assert.equal(model.sparseLinearCount, 6 * LINEARS.length);
   * const denseBytes = 6 * (4 * 288 * 288 + 3 * 768 * 288) * 4; // all linears as dense f32
   * // Half the values, plus the layout's indexing (50% f32: 2.25 bytes a weight in column deltas,
   * // 3 in the CSR groups SwiftShader uploads; dense: 4).
   * assert.ok(model.linearBytes() < 0.8 * denseBytes);
   * const { ids } = await generate(model, [1, 9038, 2501, 263, 931], { maxTokens: 3, temperature: 0 });
   * assert.equal(ids.length, 3);
   * model.release();
   * gpu.destroy();
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

  /** GPU bytes of the texture copies `gemvTextures` adds (loaded blocks' linears and the LM head). */
  gemvTextureBytes(): number {
    let bytes = this.lmHeadTex?.bytes ?? 0;
    for (const b of this.blocks) for (const lin of LINEARS) bytes += b?.tex?.[lin]?.bytes ?? 0;
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
      this.uploadTex(block, l, lin, data);
    }
    block.attnNorm = gpu.upload(await s.readF32(attnNorm(l)), `L${l}.attn_norm`);
    block.mlpNorm = gpu.upload(await s.readF32(mlpNorm(l)), `L${l}.mlp_norm`);
    if (Object.keys(sparse).length === 0) delete block.sparse;
    if (block.tex && Object.keys(block.tex).length === 0) delete block.tex;
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
    releaseGemvTex(this.gpu, b.tex?.[lin]);
    delete b.tex?.[lin];
    this.uploadTex(b, l, lin, data);
  }

  /** With `gemvTextures`, the texture copy of block b's dense linear `lin` (when its width fits). */
  private uploadTex(b: GpuBlock, l: number, lin: LinearName, data: Float32Array): void {
    const [rows, cols] = linearShape(this.config, lin);
    if (!this.gemvTextures || !gemvTexSupported(cols)) return;
    b.tex ??= {};
    b.tex[lin] = uploadGemvTex(this.gpu, data, rows, cols, { dtype: this.dtype, label: `L${l}.${lin}.tex` });
  }

  /** Free block `l`'s buffers (dense and sparse) and mark it unloaded; a no-op when it is not loaded. */
  releaseBlock(l: number): void {
    const b = this.blocks[l];
    if (!b) return;
    for (const lin of LINEARS) {
      releaseMatrix(this.gpu, b.linears[lin]);
      releaseSparse(this.gpu, b.sparse?.[lin]);
      releaseGemvTex(this.gpu, b.tex?.[lin]);
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
    releaseGemvTex(this.gpu, this.lmHeadTex);
    this.lmHeadTex = undefined;
    if (this.sparse) releaseSparseScratch(this.gpu); // regrown on demand by any later sparse launch
    if (this.gemvTextures) releaseGemvTexScratch(this.gpu); // likewise the texture GEMV's X slot
  }
}

/**
 * Options of a {@linkcode ForwardRunner}.
 *
 * @example A per-layer K/V cache: decoding one token after a prefill matches one pass over all tokens
 * ```ts
 * import { argmax, ForwardRunner, Gpu, GpuModel, openWeights, type RunnerOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const V = model.config.vocabSize, ids = [1, 9038, 2501, 263]; // BOS "Once upon a"
 * const whole = new ForwardRunner(model, 4);
 * whole.forward(ids);
 * const expected = await gpu.readF32(whole.logits, 3 * V, V);
 * const options: RunnerOptions = { perLayerCache: true, maxSeq: 4 };
 * const step = new ForwardRunner(model, 3, options);
 * step.forward(ids.slice(0, 3), 0); // prefill: positions 0..2 go into every layer's cache
 * step.forward([ids[3]], 3); // position 3 attends to the cached positions
 * const got = await gpu.readF32(step.logits, 0, V);
 * assert.ok(got.every((x, i) => Math.abs(x - expected[i]) < 1e-3));
 * assert.equal(argmax(got), 931); // "▁time"
 * whole.release();
 * step.release();
 * model.release();
 * gpu.destroy();
 * ```
 */
export interface RunnerOptions {
  /** Keep a K/V cache per layer (generation). Default: one shared K/V scratch (prefill only). */
  perLayerCache?: boolean;
  /** Longest sequence the cache holds (default: maxTokens). */
  maxSeq?: number;
}

/**
 * Activation buffers for up to maxTokens tokens, plus the K/V cache.
 *
 * @example One whole pass, then the same pass in steps (embed, blocks, head) as the pruner runs it
 * ```ts
 * import { argmax, ForwardRunner, Gpu, GpuModel, openWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
 * const runner = new ForwardRunner(model, 4);
 * const ids = [1, 9038, 2501, 263]; // BOS "Once upon a"
 * runner.forward(ids);
 * const whole = await gpu.readF32(runner.logits); // [4, vocabSize]
 * assert.equal(argmax(whole.subarray(3 * 32000)), 931); // "▁time"
 * runner.embed(ids);
 * for (let l = 0; l < model.config.nLayers; l++) runner.block(l, ids.length);
 * runner.head(ids.length);
 * assert.deepEqual(await gpu.readF32(runner.logits), whole);
 * runner.release();
 * model.release();
 * gpu.destroy();
 * ```
 */
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
    // The linears' inputs: read in place by lavapipe's GEMVs as their uniform X (no copy per linear).
    this.x = gpu.buffer(T * c.dim * 4, "x");
    this.xn = gpu.gemvInput(T * c.dim * 4, "xn");
    this.q = gpu.buffer(T * qDim * 4, "q");
    this.k = gpu.buffer(T * kvDim * 4, "k");
    this.v = gpu.buffer(T * kvDim * 4, "v");
    this.att = gpu.gemvInput(T * qDim * 4, "att");
    this.gate = gpu.gemvInput(T * c.hiddenDim * 4, "gate");
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
    if (ids.length > this.maxTokens) {
      throw new ArgumentError(`${ids.length} tokens exceed this runner's capacity of ${this.maxTokens}`);
    }
    const V = this.model.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      // Past the vocabulary the embedding reads no row: a silently wrong pass.
      if (!(Number.isInteger(ids[i]) && ids[i] >= 0 && ids[i] < V)) {
        throw new ArgumentError(`token ${i} is ${ids[i]}, not an id in [0, ${V}) for this model`);
      }
    }
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
      throw new ArgumentError(
        `positions ${pos0}..${pos0 + T - 1} exceed the K/V cache of ${this.maxSeq} positions`,
      );
    }
    if (pos0 + T > Math.max(c.maxSeqLen, 1)) {
      throw new ArgumentError(
        `positions ${pos0}..${pos0 + T - 1} exceed the model's context of ${c.maxSeqLen}`,
      );
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
    const s = b.sparse?.[lin];
    if (s) sparseLinear(this.model.gpu, x, s, y, T, bias);
    else this.dense(x, b.linears[lin], b.tex?.[lin], y, T, bias);
  }

  /** y = x W^T (+ bias) with a dense W: its texture copy (`gemvTextures`) when decoding, if it has one. */
  private dense(
    x: GPUBuffer,
    w: GpuMatrix,
    tex: GpuTexMatrix | undefined,
    y: GPUBuffer,
    T: number,
    bias?: GPUBuffer,
  ): void {
    if (tex && T === 1) gemvTex(this.model.gpu, x, tex, y, 1, bias);
    else linear(this.model.gpu, x, w, y, T, bias);
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
    this.dense(this.xn, this.model.lmHead, this.model.lmHeadTex, this.logits, T);
  }

  /** The whole pass: logits for ids at positions pos0.. (left in `logits`). */
  forward(ids: ArrayLike<number>, pos0 = 0): void {
    const T = ids.length;
    this.checkPositions(T, pos0); // before anything is recorded (embed checks the capacity)
    this.embed(ids);
    for (let l = 0; l < this.model.config.nLayers; l++) this.block(l, T, pos0);
    this.head(T);
  }

  /**
   * One decode step whose token id is already on the device, in `ids[0]` (written there by
   * {@linkcode ForwardRunner.chooseGreedy} or {@linkcode ForwardRunner.chooseSampled} of the step
   * before): logits for position pos0, with nothing written from the host, so steps can be
   * recorded back to back without a readback.
   */
  forwardOnDevice(pos0: number): void {
    this.checkPositions(1, pos0);
    embedding(this.model.gpu, this.ids, this.model.embed, this.x, 1);
    for (let l = 0; l < this.model.config.nLayers; l++) this.block(l, 1, pos0);
    this.head(1);
  }

  /**
   * Record the greedy choice from logits row `row` (argmax, ties to the lower id, as the host's
   * `argmax`) into `ids[0]`, the next {@linkcode ForwardRunner.forwardOnDevice}'s input, and into
   * `out[outIndex]` (u32).
   */
  chooseGreedy(row: number, out: GPUBuffer, outIndex: number): void {
    argmaxToken(this.model.gpu, this.logits, row, this.model.config.vocabSize, this.ids, out, outIndex);
  }

  /**
   * Record a token sampled from logits row `row` at `temperature` with nucleus mass `topP`, using
   * `randoms[rIndex]` (`sampleToken`, kernels/sample.ts), into `ids[0]` and `out[outIndex]`.
   */
  chooseSampled(
    row: number,
    randoms: GPUBuffer,
    rIndex: number,
    temperature: number,
    topP: number,
    out: GPUBuffer,
    outIndex: number,
  ): void {
    const V = this.model.config.vocabSize;
    sampleToken(
      this.model.gpu,
      this.logits,
      row,
      V,
      randoms,
      rIndex,
      temperature,
      topP,
      this.ids,
      out,
      outIndex,
    );
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
