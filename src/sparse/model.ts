/**
 * Sparse model directories: `config.json` (Hugging Face fields, as exportHuggingFace writes them)
 * plus `model.sparse.safetensors` (file.ts), the pruned linears stored sparse and every other
 * tensor dense. Like exportHuggingFace, llama2.c sources (interleaved RoPE) have their q/k rows
 * permuted to rotate-half order, so the directory describes a Hugging Face-layout model.
 *
 * The directory is written under a temporary name and renamed into place when complete.
 * @module
 */
import { join, resolve } from "node:path";
import { ArgumentError, ModelFormatError, OutputError } from "../errors.ts";
import type { DType, ModelConfig } from "../model/config.ts";
import { f32ToBytes, f32ToBytesInRange } from "../model/dtype.ts";
import { hfConfigJson, interleavedToHalf } from "../model/export.ts";
import { expectedTensors, hasHfWeights, hfModelConfig } from "../model/hf.ts";
import { FileByteSource } from "../model/bytes.ts";
import { openWeights } from "../model/open.ts";
import { EMBED, linearBias, linearWeight, LM_HEAD } from "../model/names.ts";
import type { TensorInfo, WeightSource } from "../model/weights.ts";
import type { Pattern } from "../prune/pipeline.ts";
import type { PrunedWeights } from "../prune/store.ts";
import { checkPlainFileName, isDirectory, pathInfo, writeDirectoryAtomic } from "../util/files.ts";
import {
  bitmapWords,
  nmIndexBytesPerRow,
  packNM,
  packUnstructured,
  type SparseMatrix,
  type SparseValueDType,
  unpackSparse,
} from "./format.ts";
import {
  encodeSparseSafetensors,
  type SparseFileEntry,
  type SparseLayout,
  SparseSafetensorsFile,
  writeSparseSafetensors,
} from "./file.ts";

/**
 * File name of the sparse weights in a directory written by {@linkcode saveSparseModel} (beside
 * config.json; `prune --save-sparse` writes it beside model.safetensors).
 *
 * @example The file a sparse model directory holds
 * ```ts
 * import { SPARSE_MODEL_FILE } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SPARSE_MODEL_FILE, "model.sparse.safetensors");
 * assert.ok(SPARSE_MODEL_FILE.endsWith(".safetensors")); // any safetensors reader lists its arrays
 * ```
 */
export const SPARSE_MODEL_FILE = "model.sparse.safetensors";

/**
 * Options of {@linkcode saveSparseModel}.
 *
 * @example Save 2:4-pruned weights as N:M (values + 2-bit positions) in f16
 * ```ts
 * import { loadSparseModel, openWeights, type SaveSparseOptions, saveSparseModel } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = "model.layers.0.mlp.down_proj.weight";
 * const w = await source.readF32(name);
 * for (let i = 0; i < w.length; i += 4) w[i] = w[i + 1] = 0; // 2 of every 4 pruned
 * const opts: SaveSparseOptions = { dtype: "f16", nmGroup: 4 };
 * const dir = await Deno.makeTempDir();
 * await saveSparseModel(dir, source, { [name]: w }, opts);
 * const model = await loadSparseModel(dir);
 * const s = await model.readSparse(name);
 * assert.equal(s.format, "nm");
 * assert.equal(s.dtype, "f16");
 * model.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface SaveSparseOptions {
  /** Dtype of the sparse values and of the dense tensors (default f32). */
  dtype?: SparseValueDType;
  /** Store a weight as N:M (`keep` of every `group` columns) instead of unstructured. */
  nm?: (name: string) => { keep: number; group: number } | undefined;
  /**
   * Store every weight as N:M with groups of this many columns (when `nm` gives nothing for it),
   * keeping as many slots per group as the weight's fullest group has nonzeros (a 2:4-pruned
   * weight: 2). For weights pruned with an N:M pattern; the GPU kernels run N:M faster.
   */
  nmGroup?: number;
  /** More files for the directory (a tokenizer), by plain file name. */
  extraFiles?: Record<string, Uint8Array>;
  /**
   * Called as each given weight is counted ("plan": before anything is written), then as each
   * tensor of the file is written ("write").
   */
  onProgress?: (phase: "plan" | "write", done: number, total: number) => void;
}

/**
 * What {@linkcode saveSparseModel} wrote: sizes of the sparse weights against dense f32.
 *
 * @example Compare the sparse bytes with dense f32
 * ```ts
 * import { openWeights, saveSparseModel, type SparseModelSummary } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = "model.layers.1.self_attn.o_proj.weight";
 * const w = (await source.readF32(name)).map((v, i) => (i % 10 < 7 ? 0 : v)); // 70% zeros
 * const dir = await Deno.makeTempDir();
 * const summary: SparseModelSummary = await saveSparseModel(dir, source, { [name]: w });
 * assert.deepEqual(summary.sparseNames, [name]);
 * assert.equal(summary.denseF32Bytes, w.length * 4);
 * assert.ok(summary.ratio < 0.45); // bitmap (1/32 of f32) + 30% of the values
 * assert.ok(summary.fileBytes > summary.sparseBytes); // the file also holds the dense tensors
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface SparseModelSummary {
  /** Bytes of the sparse weights' arrays in the file. */
  sparseBytes: number;
  /** Bytes the same weights take dense in f32. */
  denseF32Bytes: number;
  /** sparseBytes / denseF32Bytes. */
  ratio: number;
  /** Size of model.sparse.safetensors. */
  fileBytes: number;
  /** Names of the weights stored sparse. */
  sparseNames: string[];
}

function ropeRowNames(c: ModelConfig): Set<string> {
  const s = new Set<string>();
  if (c.ropeLayout !== "interleaved") return s;
  for (let l = 0; l < c.nLayers; l++) {
    for (const lin of ["q", "k"] as const) s.add(linearWeight(l, lin)).add(linearBias(l, lin));
  }
  return s;
}

function layoutFor(
  dense: Float32Array,
  rows: number,
  cols: number,
  dtype: SparseValueDType,
  nm?: { keep: number; group: number },
): SparseLayout {
  if (nm) return { format: "nm", rows, cols, dtype, keep: nm.keep, group: nm.group };
  let nnz = 0;
  for (let i = 0; i < dense.length; i++) if (dense[i] !== 0) nnz++;
  return { format: "unstructured", rows, cols, dtype, nnz };
}

/**
 * What {@linkcode planSparseModel} prepares: the file's entries (packed lazily) and their sizes.
 *
 * @example A plan lists every tensor of the model; only the given weights are stored sparse
 * ```ts
 * import { linearWeight, openWeights, planSparseModel, type SparseModelPlan } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = linearWeight(0, "up");
 * const w = (await source.readF32(name)).map((v) => (Math.abs(v) < 0.04 ? 0 : v));
 * const plan: SparseModelPlan = await planSparseModel(source, { [name]: w }, { dtype: "f16" });
 * assert.deepEqual(plan.sparseNames, [name]);
 * assert.equal(plan.dtype, "f16");
 * // the dense tensors too: 6 blocks of 9, the embedding and the final norm (the LM head is tied)
 * assert.equal(plan.entries.length, 6 * 9 + 2);
 * assert.ok(plan.entries.some((e) => e.name === "model.norm.weight"));
 * assert.equal(plan.denseF32Bytes, w.length * 4);
 * ```
 */
export interface SparseModelPlan {
  config: ModelConfig;
  dtype: SparseValueDType;
  entries: SparseFileEntry[];
  /** Bytes of the sparse weights' arrays in the file. */
  sparseBytes: number;
  /** Bytes the same weights take dense in f32. */
  denseF32Bytes: number;
  sparseNames: string[];
}

/** Most nonzeros in any group of `group` columns of a row-major [rows, cols] matrix (at least 1). */
export function maxNonzerosPerGroup(w: Float32Array, rows: number, cols: number, group: number): number {
  let most = 1;
  for (let r = 0; r < rows; r++) {
    for (let g0 = 0; g0 < cols; g0 += group) {
      let n = 0;
      const end = r * cols + Math.min(cols, g0 + group);
      for (let i = r * cols + g0; i < end; i++) if (w[i] !== 0) n++;
      if (n > most) most = n;
    }
  }
  return most;
}

/** What to do about a value f16 cannot hold in the sparse file. */
const F16_FIX = `write the sparse file in f32 (SaveSparseOptions.dtype "f32"; prune --sparse-dtype f32)`;

/**
 * Pruned weights as {@linkcode saveSparseModel} and {@linkcode planSparseModel} take them: a map or
 * record by canonical name, or a {@linkcode PrunedWeights} store (what `prune()` returns).
 */
export type SparseWeightsInput = Map<string, Float32Array> | Record<string, Float32Array> | PrunedWeights;

/** The input as a store: names, and an async read. */
function asPrunedWeights(input: SparseWeightsInput): PrunedWeights {
  if (!(input instanceof Map) && typeof (input as PrunedWeights).read === "function") {
    return input as PrunedWeights;
  }
  const map = input instanceof Map ? input : new Map(Object.entries(input as Record<string, Float32Array>));
  return {
    names: () => [...map.keys()],
    has: (name) => map.has(name),
    read: (name) => Promise.resolve(map.get(name)!),
  };
}

/**
 * Check the weights and the options and size the file of {@linkcode saveSparseModel} without
 * writing anything (the weights are counted, not packed: packing happens when the file is
 * written, one weight at a time, read again from `weightsByName`). Throws ArgumentError on a weight
 * that is not a tensor of the model or has the wrong size.
 *
 * @example Size a sparse file before writing it: a bitmap bit and the kept values per weight
 * ```ts
 * import { linearWeight, openWeights, planSparseModel } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = linearWeight(1, "o"); // 288 x 288
 * const w = (await source.readF32(name)).map((v, i) => (i % 2 ? 0 : v)); // half of it zero
 * const plan = await planSparseModel(source, { [name]: w });
 * const kept = w.filter((v) => v !== 0).length;
 * // f32 values, row offsets, and a u32 bitmap word per 32 columns of each row:
 * assert.equal(plan.sparseBytes, kept * 4 + 289 * 4 + 288 * 9 * 4);
 * await assert.rejects(planSparseModel(source, { "no.such.weight": w }), /not a tensor of this model/);
 * ```
 */
export async function planSparseModel(
  source: WeightSource,
  weightsByName: SparseWeightsInput,
  opts: SaveSparseOptions = {},
): Promise<SparseModelPlan> {
  const weights = asPrunedWeights(weightsByName);
  const c = source.config;
  const dtype = opts.dtype ?? "f32";
  const permute = ropeRowNames(c);
  const tensors = expectedTensors(c).filter((t) => !(t.name === LM_HEAD && c.tiedEmbeddings));
  const known = new Set(tensors.map((t) => t.name));
  for (const name of weights.names()) {
    if (!known.has(name)) throw new ArgumentError(`saveSparseModel: ${name} is not a tensor of this model`);
  }
  const read = async (name: string, shape: number[]): Promise<Float32Array> => {
    let w = weights.has(name) ? await weights.read(name) : await source.readF32(name);
    if (permute.has(name)) w = interleavedToHalf(w, shape[0], shape[1] ?? 1, c.headDim);
    return w;
  };
  const pack = (
    w: Float32Array,
    rows: number,
    cols: number,
    nm?: { keep: number; group: number },
  ): SparseMatrix =>
    nm ? packNM(w, rows, cols, nm.keep, nm.group, dtype) : packUnstructured(w, rows, cols, dtype);
  const entries: SparseFileEntry[] = [];
  let sparseBytes = 0, denseF32Bytes = 0, planned = 0, written = 0;
  const givenCount = tensors.filter((t) => weights.has(t.name)).length;
  const wrote = () => opts.onProgress?.("write", ++written, tensors.length);
  for (const { name, shape } of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (weights.has(name)) {
      const given = await weights.read(name); // counted now, packed when the file is written
      opts.onProgress?.("plan", ++planned, givenCount);
      if (given.length !== n) {
        throw new ArgumentError(`saveSparseModel: ${name} has ${given.length} values, [${shape}] needs ${n}`);
      }
      if (dtype === "f16") f32ToBytesInRange(given, "f16", `saveSparseModel: ${name}`, F16_FIX); // now, not mid-write
      const [rows, cols] = shape;
      const nm = opts.nm?.(name) ??
        (opts.nmGroup
          ? { keep: maxNonzerosPerGroup(given, rows, cols, opts.nmGroup), group: opts.nmGroup }
          : undefined);
      const layout = layoutFor(given, rows, cols, dtype, nm); // a row permutation keeps the count
      const vb = dtype === "f16" ? 2 : 4;
      sparseBytes += layout.format === "unstructured"
        ? (rows + 1) * 4 + rows * bitmapWords(cols) * 4 + layout.nnz! * vb
        : nmIndexBytesPerRow(cols, nm!.keep, nm!.group) * rows +
          rows * Math.ceil(cols / nm!.group) * nm!.keep * vb;
      denseF32Bytes += rows * cols * 4;
      entries.push({
        name,
        layout,
        matrix: async () => {
          const m = pack(await read(name, shape), rows, cols, nm);
          wrote();
          return m;
        },
      });
    } else {
      entries.push({
        name,
        dtype,
        shape,
        data: async () => {
          const w = await read(name, shape);
          if (w.length !== n) {
            throw new ArgumentError(`saveSparseModel: ${name} has ${w.length} values, [${shape}] needs ${n}`);
          }
          const bytes = f32ToBytesInRange(w, dtype, `saveSparseModel: ${name}`, F16_FIX);
          wrote();
          return bytes;
        },
      });
    }
  }
  return { config: c, dtype, entries, sparseBytes, denseF32Bytes, sparseNames: weights.names() };
}

/**
 * Write `model.sparse.safetensors` of a plan at `path` (streamed, one weight packed at a time,
 * renamed into place when complete); returns the file's size in bytes. With this, a caller that
 * writes its own directory (the prune CLI's Hugging Face export) adds the sparse file to it.
 */
export async function writeSparseModelFile(path: string, plan: SparseModelPlan): Promise<number> {
  await writeSparseSafetensors(path, plan.entries, SPARSE_FILE_METADATA);
  return (await Deno.stat(path)).size;
}

/** `__metadata__` of every model.sparse.safetensors this package writes (beside the format's own keys). */
const SPARSE_FILE_METADATA = { format: "pt" };

/**
 * The bytes of a plan's model.sparse.safetensors, exactly what {@linkcode writeSparseModelFile}
 * writes, in memory and without Deno's file APIs (for browsers).
 *
 * @example The sparse file of a pruned model, in memory, read back
 * ```ts
 * import {
 *   encodeSparseModelFile, linearWeight, MemoryByteSource, openWeights, planSparseModel, SparseSafetensorsFile,
 *   unpackSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = linearWeight(3, "down");
 * const w = (await source.readF32(name)).map((v, i) => (i % 4 < 3 ? 0 : v)); // 75% zeros
 * const plan = await planSparseModel(source, { [name]: w });
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(await encodeSparseModelFile(plan)));
 * assert.deepEqual(file.sparseNames(), [name]);
 * assert.deepEqual(unpackSparse(await file.readSparse(name)), w); // not a q/k weight: no RoPE reordering
 * ```
 */
export function encodeSparseModelFile(plan: SparseModelPlan): Promise<Uint8Array> {
  return encodeSparseSafetensors(plan.entries, SPARSE_FILE_METADATA);
}

/**
 * The options `deno task prune --save-sparse` plans its file with (the demo page uses them too, so
 * its file is the CLI's): values f32 for an f32 model and f16 otherwise, unless `dtype` is given
 * (`--sparse-dtype`), and weights pruned with an N:M pattern stored N:M with the pattern's group.
 *
 * @example A 2:4-pruned f16 model's file: f16 values, N:M storage in groups of 4
 * ```ts
 * import { pruneSparseOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(pruneSparseOptions("f16", { kind: "nm", n: 2, m: 4 }), { dtype: "f16", nmGroup: 4 });
 * assert.deepEqual(pruneSparseOptions("f32", { kind: "unstructured" }), { dtype: "f32", nmGroup: undefined });
 * assert.deepEqual(pruneSparseOptions("bf16", { kind: "unstructured" }, "f32").dtype, "f32");
 * ```
 */
export function pruneSparseOptions(
  sourceDtype: DType,
  pattern: Pattern,
  dtype?: SparseValueDType,
): Pick<SaveSparseOptions, "dtype" | "nmGroup"> {
  return {
    dtype: dtype ?? (sourceDtype === "f32" ? "f32" : "f16"),
    nmGroup: pattern.kind === "nm" ? pattern.m : undefined,
  };
}

/**
 * Write a sparse model directory at `dir`: the tensors of `source`, with the weights in
 * `weightsByName` (pruned, zeros = pruned, in the source's row order) stored sparse.
 *
 * @example Store one hand-pruned weight of stories15M sparse, and load it back
 * ```ts
 * import { interleavedToHalf, linearWeight, openWeights } from "@owlgpu/owlgpu";
 * import { loadSparseModel, saveSparseModel } from "@owlgpu/owlgpu"; // Deno only (file APIs)
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * // Prune block 0's q projection by hand: keep the weights of magnitude over 0.05 (37%).
 * const name = linearWeight(0, "q"), dim = source.config.dim;
 * const q = (await source.readF32(name)).map((v) => (Math.abs(v) > 0.05 ? v : 0));
 * const dir = await Deno.makeTempDir();
 * const summary = await saveSparseModel(dir, source, { [name]: q });
 * assert.deepEqual(summary.sparseNames, [name]);
 * assert.ok(summary.sparseBytes < 0.5 * summary.denseF32Bytes);
 * const model = await loadSparseModel(dir);
 * assert.ok(model.isSparse(name) && !model.isSparse(linearWeight(0, "k")));
 * // stories15M is a llama2.c model: its q/k rows are stored in Hugging Face (rotate-half) order.
 * assert.deepEqual(await model.readF32(name), interleavedToHalf(q, dim, dim, source.config.headDim));
 * model.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveSparseModel(
  dir: string,
  source: WeightSource,
  weightsByName: SparseWeightsInput,
  opts: SaveSparseOptions = {},
): Promise<SparseModelSummary> {
  const plan = await planSparseModel(source, weightsByName, opts);
  const c = source.config, dtype = plan.dtype;
  for (const name of Object.keys(opts.extraFiles ?? {})) {
    checkPlainFileName(name, ["config.json", SPARSE_MODEL_FILE], "saveSparseModel");
  }
  const out = resolve(dir);
  try {
    const fileBytes = await writeDirectoryAtomic(out, async (tmp) => {
      const cfg = { ...hfConfigJson(c, dtype), owlgpu_sparse: SPARSE_MODEL_FILE };
      await Deno.writeTextFile(join(tmp, "config.json"), JSON.stringify(cfg, null, 2) + "\n");
      const bytes = await writeSparseModelFile(join(tmp, SPARSE_MODEL_FILE), plan);
      for (const [name, data] of Object.entries(opts.extraFiles ?? {})) {
        await Deno.writeFile(join(tmp, name), data);
      }
      return bytes;
    });
    const { sparseBytes, denseF32Bytes } = plan;
    return {
      sparseBytes,
      denseF32Bytes,
      ratio: denseF32Bytes ? sparseBytes / denseF32Bytes : 0,
      fileBytes,
      sparseNames: plan.sparseNames,
    };
  } catch (e) {
    if (e instanceof OutputError || e instanceof ArgumentError) throw e;
    throw new OutputError(`cannot write ${out}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A loaded sparse model directory; tensors are read on demand. It is a WeightSource (sparse
 * weights unpacked to dense f32 by `readF32`), so the same object gives the dense tensors and the
 * sparse linears: `GpuModel.loadSparse(gpu, model)` runs the linears with the sparse kernels,
 * `GpuModel.load(gpu, model)` runs the same weights dense.
 *
 * @example Read a weight back sparse and dense
 * ```ts
 * import { loadSparseModel, openWeights, saveSparseModel, type SparseModel, unpackSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = "model.layers.2.mlp.up_proj.weight";
 * const w = (await source.readF32(name)).map((v) => (Math.abs(v) > 0.03 ? v : 0));
 * const dir = await Deno.makeTempDir();
 * await saveSparseModel(dir, source, { [name]: w });
 * const model: SparseModel = await loadSparseModel(dir);
 * assert.deepEqual(model.sparseNames(), [name]);
 * assert.ok(model.isSparse(name) && !model.isSparse("model.norm.weight"));
 * assert.deepEqual(unpackSparse(await model.readSparse(name)), await model.readF32(name));
 * assert.deepEqual(await model.readF32(name), w); // not a q/k weight: no RoPE reordering
 * model.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface SparseModel extends WeightSource {
  /** From config.json (rotate-half RoPE). */
  readonly config: ModelConfig;
  /** The open model.sparse.safetensors. */
  readonly file: SparseSafetensorsFile;
  /** Weights stored sparse. */
  sparseNames(): string[];
  /** Whether `name` is stored sparse. */
  isSparse(name: string): boolean;
  /** A sparse weight in its host format (throws for a dense one). */
  readSparse(name: string): Promise<SparseMatrix>;
  /** Any tensor as dense f32 (sparse ones unpacked). */
  readF32(name: string): Promise<Float32Array>;
  /** Close the file. */
  close(): void;
}

const FILE_DTYPE: Record<string, DType | undefined> = { F32: "f32", F16: "f16", BF16: "bf16" };

/**
 * Open a directory written by {@linkcode saveSparseModel} (or by `prune --save-sparse`).
 *
 * @example A missing directory is a clear ModelFormatError
 * ```ts
 * import { loadSparseModel, ModelFormatError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadSparseModel("/nonexistent/sparse-model"), ModelFormatError);
 * ```
 */
export async function loadSparseModel(dir: string): Promise<SparseModel> {
  const cfgPath = join(dir, "config.json");
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await Deno.readTextFile(cfgPath));
  } catch (e) {
    throw new ModelFormatError(`${cfgPath}: cannot read the model config (${(e as Error).message})`);
  }
  const config = hfModelConfig(json, cfgPath);
  const file = await SparseSafetensorsFile.open(await FileByteSource.open(join(dir, SPARSE_MODEL_FILE)));
  try {
    // Each block has 9 tensors (2 norms, 7 linears): a config.json with more blocks than the file can
    // hold is refused before its (possibly billions of) tensor names are listed.
    const held = file.sparseNames().length + file.denseNames().length;
    if (9 * config.nLayers > held) {
      throw new ModelFormatError(
        `${cfgPath}: ${config.nLayers} layers need at least ${9 * config.nLayers} tensors, but ` +
          `${file.name} holds ${held}; config.json does not belong to this sparse file`,
      );
    }
    const tensors = expectedTensors(config).filter((t) => !(t.name === LM_HEAD && config.tiedEmbeddings));
    const dense = new Set(file.denseNames());
    const infos = new Map<string, TensorInfo>();
    for (const t of tensors) {
      if (file.isSparse(t.name)) {
        const l = file.layout(t.name);
        if (l.rows !== t.shape[0] || l.cols !== t.shape[1]) {
          throw new ModelFormatError(
            `${file.name}: sparse ${t.name} is ${l.rows}x${l.cols}, config.json says [${t.shape}]`,
          );
        }
        infos.set(t.name, { name: t.name, dtype: l.dtype, shape: t.shape });
      } else if (dense.has(t.name)) {
        const a = file.array(t.name);
        const dtype = FILE_DTYPE[a.dtype];
        if (!dtype || JSON.stringify(a.shape) !== JSON.stringify(t.shape)) {
          throw new ModelFormatError(
            `${file.name}: ${t.name} is ${a.dtype} [${a.shape}], config.json says a float [${t.shape}]`,
          );
        }
        infos.set(t.name, { name: t.name, dtype, shape: t.shape });
      } else {
        throw new ModelFormatError(`${file.name}: tensor ${t.name} is missing`);
      }
    }
    // The storage dtype of the block linears: the sparse values' (what prune --save-sparse wrote).
    const first = tensors.find((t) => t.shape.length === 2 && t.name !== EMBED && t.name !== LM_HEAD);
    const dtype: DType = first ? infos.get(first.name)!.dtype : "f32";
    const info = (name: string): TensorInfo => {
      const i = infos.get(name);
      if (!i) throw new ModelFormatError(`${file.name}: no tensor named ${name}`);
      return i;
    };
    const readF32 = async (name: string) => {
      info(name);
      return file.isSparse(name) ? unpackSparse(await file.readSparse(name)) : file.readF32(name);
    };
    return {
      config,
      dtype,
      description: resolve(dir),
      file,
      tensorNames: () => [...infos.keys()],
      has: (name) => infos.has(name),
      info,
      readRaw: async (name) =>
        file.isSparse(name) ? f32ToBytes(await readF32(name), info(name).dtype) : file.readRaw(name),
      sparseNames: () => file.sparseNames(),
      isSparse: (name) => file.isSparse(name),
      readSparse: (name) => file.readSparse(name),
      readF32,
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * The sparse model of directory `spec` when it holds model.sparse.safetensors, else undefined
 * (also for the embedded model's name or a file). Unlike {@linkcode loadSparseModel} it refuses a
 * file holding tensors its config.json does not describe (more layers, say): config.json decides
 * which tensors are read, so such a file would run as a smaller model than the one pruned.
 *
 * @example A pruned directory written with --save-sparse, and the embedded model's name
 * ```ts
 * import { linearWeight, openSparseModelDir, openWeights, saveSparseModel } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = linearWeight(0, "v");
 * const dir = await Deno.makeTempDir();
 * await saveSparseModel(dir, source, { [name]: (await source.readF32(name)).map((v, i) => (i % 3 ? 0 : v)) });
 * const model = await openSparseModelDir(dir);
 * assert.deepEqual(model?.sparseNames(), [name]);
 * model?.close();
 * assert.equal(await openSparseModelDir("stories15M"), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openSparseModelDir(spec: string): Promise<SparseModel | undefined> {
  if (!(await isDirectory(spec)) || !(await pathInfo(join(spec, SPARSE_MODEL_FILE)))?.isFile) {
    return undefined;
  }
  const model = await loadSparseModel(spec);
  const used = new Set(model.tensorNames());
  const extra = [...model.file.sparseNames(), ...model.file.denseNames()].filter((n) => !used.has(n));
  if (extra.length > 0) {
    model.close();
    throw new ModelFormatError(
      `${model.file.name}: holds ${extra.length} tensor(s) that ${join(spec, "config.json")} does not ` +
        `describe (first: ${extra[0]}); config.json does not belong to this sparse file`,
    );
  }
  return model;
}

/**
 * What the CLIs open `--model` with: {@linkcode openWeights}'s forms, and a sparse model directory
 * (config.json and model.sparse.safetensors with no model.safetensors, as {@linkcode saveSparseModel}
 * writes it), whose sparse weights are then read unpacked to dense. A directory with both files
 * (`prune --save-sparse`) opens its model.safetensors, as before.
 *
 * @example A sparse-only directory opens as a WeightSource, as a Hugging Face directory does
 * ```ts
 * import { linearWeight, openModelWeights, openWeights, saveSparseModel } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const name = linearWeight(2, "gate");
 * const w = (await source.readF32(name)).map((v) => (Math.abs(v) < 0.05 ? 0 : v));
 * const dir = await Deno.makeTempDir();
 * await saveSparseModel(dir, source, { [name]: w });
 * const opened = await openModelWeights(dir); // openWeights(dir) would find no model.safetensors
 * assert.deepEqual(await opened.readF32(name), w); // unpacked; not a q/k weight, so no RoPE reordering
 * assert.equal(opened.config.nLayers, source.config.nLayers);
 * opened.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openModelWeights(spec: string): Promise<WeightSource> {
  const sparseOnly = await isDirectory(spec) && !(await hasHfWeights(spec));
  return (sparseOnly && await openSparseModelDir(spec)) || await openWeights(spec);
}
