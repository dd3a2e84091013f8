/**
 * Decode suite: a whole LLaMA-7B-shaped decoder (dim 4096, hidden 11008, 32 heads, vocab 32000)
 * generating tokens end to end with `generate()` (K/V cache, logits read back, greedy sampling),
 * once with every block linear dense and once with them sparse at 70% (`GpuModel` with sparse
 * weights: the sparse GEMV per token, the sparse GEMM for the prompt). 32 blocks on GPUs; on CPU
 * adapters fewer (default 4: one block's linears take ~0.25 s a token there), said in the row.
 *
 * Weights are seeded random values, actually written (never-written buffers read as zero pages
 * on lavapipe), with a random mask of exactly 70% per row; the dense model runs the same masked
 * weights (so its time is what a pruned model costs without sparse kernels), in the model's dtype
 * (f16 where the device has shader-f16). Embeddings, norms and the LM head are dense in both. On
 * lavapipe both models decode their dense matrices (the dense model's linears, both LM heads)
 * with the texture GEMV (`gemvTextures`), as `generate` does there (`gpu.cpu.weightTextures`): the
 * dense side is our fastest dense GEMV there, the one the sparse GEMV rows are measured against.
 * Before timing, the prompt's logits of the two models are compared (they share the weights).
 *
 * Timing is wall time of `generate` (prefill of the prompt, then `tokens` decode steps), after a
 * warm-up of each model (pipeline compiles); dense and sparse rounds alternate and each side's
 * median over the rounds is reported: tokens/s and the prompt's seconds.
 * @module
 */
import { generate } from "../src/generate/generate.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { LINEARS, llamaConfig, type ModelConfig } from "../src/model/config.ts";
import { ForwardRunner, GpuModel, type SparseWeights } from "../src/model/forward.ts";
import { expectedTensors } from "../src/model/hf.ts";
import type { TensorInfo, WeightSource } from "../src/model/weights.ts";
import { f32ToBytes } from "../src/model/dtype.ts";
import { packUnstructured, type SparseMatrix } from "../src/sparse/format.ts";
import { lcg, median, randomWeights } from "./sparse.ts";

export interface DecodeBenchRow {
  kind: "decode";
  /** What ran: "LLaMA-7B shape, 4 of 32 blocks" etc. */
  model: string;
  blocks: number;
  dim: number;
  hidden: number;
  vocab: number;
  dtype: string;
  sparsity: number;
  prompt_tokens: number;
  decode_tokens: number;
  rounds: number;
  tokens_per_s_dense: number;
  tokens_per_s_sparse: number;
  speedup: number;
  prefill_s_dense: number;
  prefill_s_sparse: number;
  /** GPU bytes of the block linears (sparse: groups, offsets, padding). */
  linear_bytes_dense: number;
  linear_bytes_sparse: number;
  /** GPU bytes of the texture copies the texture GEMV decodes from (`gemvTextures`; 0 without). */
  gemv_texture_bytes_dense: number;
  gemv_texture_bytes_sparse: number;
  /** Prompt logits, sparse against dense: max |diff| / max |dense logit|. */
  logits_rel_diff: number;
  /** Wall seconds of the whole row (weight generation, packing, uploads, warm-ups, rounds). */
  seconds: number;
  timing: "wall";
  note?: string;
}

export interface DecodeBenchOptions {
  /**
   * Decode dense linears and the LM head with the texture GEMV (default: where `generate` does,
   * `gpu.cpu.weightTextures`).
   */
  gemvTextures?: boolean;
  /** Decoder dimensions (default LLaMA-7B's; tests shrink them). */
  shape?: DecoderShape;
  /** Decoder blocks (default 32 on GPUs, 4 on CPU adapters). */
  blocks?: number;
  sparsity?: number;
  promptTokens?: number;
  /** Decode steps per round (default 16; 8 on CPU adapters). */
  tokens?: number;
  /** Timed rounds per model (default 3). */
  rounds?: number;
  log?: (line: string) => void;
}

/** The dimensions of a synthetic decoder (head dim = dim / nHeads). */
export interface DecoderShape {
  dim: number;
  hiddenDim: number;
  nHeads: number;
  vocabSize: number;
}

const LLAMA7B = { dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, vocabSize: 32000 };

/** A random decoder (LLaMA-7B-shaped by default): linears masked to `sparsity` per row, norms 1 + noise. */
class SyntheticSource implements WeightSource, SparseWeights {
  readonly dtype = "f16" as const;
  readonly description = "synthetic decoder";
  private readonly shapes = new Map<string, number[]>();
  private readonly seeds = new Map<string, number>();
  /** The current block's masked linears (read by both models, generated once). */
  private cache = new Map<string, Float32Array>();

  constructor(
    readonly config: ModelConfig,
    private readonly sparsity: number,
    private readonly valueDtype: "f32" | "f16",
  ) {
    expectedTensors(config).forEach((t, i) => {
      this.shapes.set(t.name, t.shape);
      this.seeds.set(t.name, 1000 + i);
    });
  }

  tensorNames(): string[] {
    return [...this.shapes.keys()];
  }
  has(name: string): boolean {
    return this.shapes.has(name);
  }
  info(name: string): TensorInfo {
    return { name, dtype: this.dtype, shape: this.shapes.get(name)! };
  }
  async readRaw(name: string): Promise<Uint8Array> {
    return f32ToBytes(await this.readF32(name), this.dtype);
  }
  isLinear(name: string): boolean {
    return /\.(q|k|v|o)_proj\.weight$|\.(gate|up|down)_proj\.weight$/.test(name);
  }

  readF32(name: string): Promise<Float32Array> {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`synthetic model: no tensor ${name}`);
    const seed = this.seeds.get(name)!;
    if (this.isLinear(name)) {
      let w = this.cache.get(name);
      if (!w) this.cache.set(name, w = randomWeights(shape[0], shape[1], this.sparsity, seed));
      return Promise.resolve(w);
    }
    const r = lcg(seed), n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    if (shape.length === 1) { for (let i = 0; i < n; i++) out[i] = 1 + 0.1 * r(); }
    else for (let i = 0; i < n; i++) out[i] = 0.05 * r();
    return Promise.resolve(out);
  }

  isSparse(name: string): boolean {
    return this.isLinear(name);
  }
  async readSparse(name: string): Promise<SparseMatrix> {
    const [rows, cols] = this.shapes.get(name)!;
    return packUnstructured(await this.readF32(name), rows, cols, this.valueDtype);
  }

  /** Drop the cached linears (after both models have loaded a block). */
  forget(): void {
    this.cache = new Map();
  }

  close(): void {}
}

function config(shape: DecoderShape, blocks: number, maxSeqLen: number): ModelConfig {
  const { dim, hiddenDim, nHeads, vocabSize } = shape;
  return llamaConfig({ dim, hiddenDim, nLayers: blocks, nHeads, vocabSize }, { maxSeqLen });
}

export function decodeTableHead(): string {
  return "model                                 dtype  sparsity  prompt  tokens  tok/s dense  tok/s sparse  speedup  prefill s dense/sparse";
}

export function decodeRowLine(r: DecodeBenchRow): string {
  return [
    r.model.padEnd(37),
    r.dtype.padEnd(6),
    r.sparsity.toFixed(2).padStart(8),
    String(r.prompt_tokens).padStart(7),
    String(r.decode_tokens).padStart(7),
    r.tokens_per_s_dense.toFixed(2).padStart(12),
    r.tokens_per_s_sparse.toFixed(2).padStart(13),
    (r.speedup.toFixed(2) + "x").padStart(8),
    `${r.prefill_s_dense.toFixed(2)} / ${r.prefill_s_sparse.toFixed(2)}`.padStart(23),
  ].join(" ");
}

/** Run the decode benchmark (see the module doc). */
export async function benchDecode(gpu: Gpu, opts: DecodeBenchOptions = {}): Promise<DecodeBenchRow> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const blocks = opts.blocks ?? (gpu.isCpu ? 4 : LLAMA7B.nLayers);
  const sparsity = opts.sparsity ?? 0.7;
  const P = opts.promptTokens ?? 16;
  const tokens = opts.tokens ?? (gpu.isCpu ? 8 : 16);
  const rounds = opts.rounds ?? 3;
  const shape = opts.shape ?? LLAMA7B;
  const cfg = config(shape, blocks, P + tokens + 8);
  const dtype = gpu.f16 ? "f16" : "f32";
  const src = new SyntheticSource(cfg, sparsity, dtype);
  const gemvTextures = opts.gemvTextures ?? gpu.cpu?.weightTextures ?? false;
  const dense = await GpuModel.load(gpu, src, { lazyBlocks: true, gemvTextures });
  let sparse: GpuModel | undefined;
  try {
    sparse = await GpuModel.load(gpu, src, { lazyBlocks: true, sparse: src, gemvTextures });
    for (let l = 0; l < blocks; l++) {
      await dense.loadBlock(l);
      await sparse.loadBlock(l);
      src.forget();
      log(
        `  decode bench: block ${l + 1}/${blocks} loaded (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      );
    }
    if (sparse.sparseLinearCount !== blocks * LINEARS.length) throw new Error("sparse linears missing");
    const r = lcg(5);
    const prompt = Array.from({ length: P }, () => 3 + Math.floor((r() + 1) / 2 * (cfg.vocabSize - 3)));

    // Warm-up (pipeline compiles for T = P and T = 1) and the check: the prompt's last logits.
    const last: Float32Array[] = [];
    for (const m of [dense, sparse]) {
      const run = new ForwardRunner(m, P);
      try {
        run.forward(prompt);
        last.push(await gpu.readF32(run.logits, (P - 1) * cfg.vocabSize, cfg.vocabSize));
      } finally {
        run.release();
      }
      await generate(m, prompt.slice(0, 1), { maxTokens: 2, temperature: 0 });
    }
    let diff = 0, scale = 0;
    for (let i = 0; i < cfg.vocabSize; i++) {
      diff = Math.max(diff, Math.abs(last[0][i] - last[1][i]));
      scale = Math.max(scale, Math.abs(last[0][i]));
    }
    const rel = diff / scale;
    if (!(scale > 0) || !(rel < 1e-2)) {
      throw new Error(`decode bench: sparse logits differ from dense by ${rel} (scale ${scale}); not timed`);
    }

    const tps: [number[], number[]] = [[], []], pre: [number[], number[]] = [[], []];
    for (let i = 0; i < rounds; i++) {
      for (const [j, m] of [dense, sparse].entries()) {
        const g = await generate(m, prompt, { maxTokens: tokens + 1, temperature: 0 });
        tps[j].push(g.tokensPerSecond);
        pre[j].push(g.prefillSeconds);
        log(
          `  decode bench: round ${i + 1}/${rounds} ${j ? "sparse" : "dense "} ${
            g.tokensPerSecond.toFixed(2)
          } tokens/s, prompt ${g.prefillSeconds.toFixed(2)} s`,
        );
      }
    }
    const lin = (m: GpuModel) => m.linearBytes();
    const row: DecodeBenchRow = {
      kind: "decode",
      model: opts.shape
        ? `dim ${shape.dim}, hidden ${shape.hiddenDim}, ${blocks} blocks`
        : blocks === LLAMA7B.nLayers
        ? "LLaMA-7B shape (32 blocks)"
        : `LLaMA-7B shape, ${blocks} of 32 blocks`,
      blocks,
      dim: cfg.dim,
      hidden: cfg.hiddenDim,
      vocab: cfg.vocabSize,
      dtype,
      sparsity,
      prompt_tokens: P,
      decode_tokens: tokens,
      rounds,
      tokens_per_s_dense: median(tps[0]),
      tokens_per_s_sparse: median(tps[1]),
      speedup: median(tps[1].map((x, i) => x / tps[0][i])),
      prefill_s_dense: median(pre[0]),
      prefill_s_sparse: median(pre[1]),
      linear_bytes_dense: lin(dense),
      linear_bytes_sparse: lin(sparse),
      gemv_texture_bytes_dense: dense.gemvTextureBytes(),
      gemv_texture_bytes_sparse: sparse.gemvTextureBytes(),
      logits_rel_diff: rel,
      seconds: 0,
      timing: "wall",
    };
    if (gpu.isCpu && !opts.shape && blocks < LLAMA7B.nLayers) {
      row.note =
        `CPU adapter: ${blocks} of LLaMA-7B's 32 blocks (full vocab and LM head), ${tokens} tokens x ${rounds} rounds`;
    }
    row.seconds = (performance.now() - t0) / 1000;
    return row;
  } finally {
    dense.release();
    sparse?.release();
  }
}
