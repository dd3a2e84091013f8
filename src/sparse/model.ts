/**
 * Sparse model directories: `config.json` (Hugging Face fields, as exportHuggingFace writes them)
 * plus `model.sparse.safetensors` (file.ts), the pruned linears stored sparse and every other
 * tensor dense. Like exportHuggingFace, llama2.c sources (interleaved RoPE) have their q/k rows
 * permuted to rotate-half order, so the directory describes a Hugging Face-layout model.
 *
 * The directory is written under a temporary name and renamed into place when complete.
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { ArgumentError, ModelFormatError, OutputError } from "../errors.ts";
import type { ModelConfig } from "../model/config.ts";
import { f32ToBytes } from "../model/dtype.ts";
import { hfConfigJson, interleavedToHalf } from "../model/export.ts";
import { expectedTensors, hfModelConfig } from "../model/hf.ts";
import { FileByteSource } from "../model/bytes.ts";
import { linearBias, linearWeight, LM_HEAD } from "../model/names.ts";
import { tmpSuffix } from "../model/safetensors.ts";
import type { WeightSource } from "../model/weights.ts";
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
  type SparseFileEntry,
  type SparseLayout,
  SparseSafetensorsFile,
  writeSparseSafetensors,
} from "./file.ts";

export const SPARSE_MODEL_FILE = "model.sparse.safetensors";

export interface SaveSparseOptions {
  /** Dtype of the sparse values and of the dense tensors (default f32). */
  dtype?: SparseValueDType;
  /** Store a weight as N:M (`keep` of every `group` columns) instead of unstructured. */
  nm?: (name: string) => { keep: number; group: number } | undefined;
  /** More files for the directory (a tokenizer), by plain file name. */
  extraFiles?: Record<string, Uint8Array>;
}

export interface SparseModelSummary {
  /** Bytes of the sparse weights' arrays in the file. */
  sparseBytes: number;
  /** Bytes the same weights take dense in f32. */
  denseF32Bytes: number;
  /** sparseBytes / denseF32Bytes. */
  ratio: number;
  /** Size of model.sparse.safetensors. */
  fileBytes: number;
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

async function isDirectory(path: string): Promise<boolean | undefined> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Write a sparse model directory at `dir`: the tensors of `source`, with the weights in
 * `weightsByName` (pruned, zeros = pruned, in the source's row order) stored sparse.
 * @example
 * ```ts
 * const result = await prune(gpu, source, opts);
 * await saveSparseModel("out/stories15M-70-sparse", source, result.weights);
 * const model = await loadSparseModel("out/stories15M-70-sparse");
 * ```
 */
export async function saveSparseModel(
  dir: string,
  source: WeightSource,
  weightsByName: Map<string, Float32Array> | Record<string, Float32Array>,
  opts: SaveSparseOptions = {},
): Promise<SparseModelSummary> {
  const weights = weightsByName instanceof Map ? weightsByName : new Map(Object.entries(weightsByName));
  const c = source.config;
  const dtype = opts.dtype ?? "f32";
  const permute = ropeRowNames(c);
  const tensors = expectedTensors(c).filter((t) => !(t.name === LM_HEAD && c.tiedEmbeddings));
  const known = new Set(tensors.map((t) => t.name));
  for (const name of weights.keys()) {
    if (!known.has(name)) throw new ArgumentError(`saveSparseModel: ${name} is not a tensor of this model`);
  }
  for (const name of Object.keys(opts.extraFiles ?? {})) {
    if (
      name.includes("/") || name.includes("\\") || name === "." || name === ".." || name === "config.json" ||
      name === SPARSE_MODEL_FILE
    ) {
      throw new ArgumentError(
        `saveSparseModel: extra file name ${JSON.stringify(name)} is not a plain, free file name`,
      );
    }
  }
  const read = async (name: string, shape: number[]): Promise<Float32Array> => {
    let w = weights.get(name) ?? await source.readF32(name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (w.length !== n) {
      throw new ArgumentError(`saveSparseModel: ${name} has ${w.length} values, [${shape}] needs ${n}`);
    }
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
  let sparseBytes = 0, denseF32Bytes = 0;
  for (const { name, shape } of tensors) {
    if (weights.has(name)) {
      const [rows, cols] = shape;
      const nm = opts.nm?.(name);
      const layout = layoutFor(weights.get(name)!, rows, cols, dtype, nm); // a row permutation keeps the count
      const vb = dtype === "f16" ? 2 : 4;
      sparseBytes += layout.format === "unstructured"
        ? (rows + 1) * 4 + rows * bitmapWords(cols) * 4 + layout.nnz! * vb
        : nmIndexBytesPerRow(cols, nm!.keep, nm!.group) * rows +
          rows * Math.ceil(cols / nm!.group) * nm!.keep * vb;
      denseF32Bytes += rows * cols * 4;
      entries.push({ name, layout, matrix: async () => pack(await read(name, shape), rows, cols, nm) });
    } else {
      entries.push({ name, dtype, shape, data: async () => f32ToBytes(await read(name, shape), dtype) });
    }
  }
  const out = resolve(dir);
  if (await isDirectory(out) === false) {
    throw new OutputError(
      `${out} exists and is not a directory; choose another output directory or remove it`,
    );
  }
  const tmp = out + tmpSuffix();
  try {
    await Deno.mkdir(tmp);
  } catch (e) {
    throw new OutputError(
      `cannot create the output directory in ${dirname(out)}: ${
        (e as Error).message
      }; the parent must exist and be writable`,
      { cause: e },
    );
  }
  try {
    const cfg = { ...hfConfigJson(c, dtype), owlgpu_sparse: SPARSE_MODEL_FILE };
    await Deno.writeTextFile(join(tmp, "config.json"), JSON.stringify(cfg, null, 2) + "\n");
    await writeSparseSafetensors(join(tmp, SPARSE_MODEL_FILE), entries, { format: "pt" });
    for (const [name, bytes] of Object.entries(opts.extraFiles ?? {})) {
      await Deno.writeFile(join(tmp, name), bytes);
    }
    const fileBytes = (await Deno.stat(join(tmp, SPARSE_MODEL_FILE))).size;
    if (await isDirectory(out) === undefined) await Deno.rename(tmp, out);
    else {
      const old = out + ".old" + tmpSuffix();
      await Deno.rename(out, old);
      try {
        await Deno.rename(tmp, out);
      } catch (e) {
        await Deno.rename(old, out);
        throw e;
      }
      await Deno.remove(old, { recursive: true });
    }
    return {
      sparseBytes,
      denseF32Bytes,
      ratio: denseF32Bytes ? sparseBytes / denseF32Bytes : 0,
      fileBytes,
      sparseNames: [...weights.keys()],
    };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    if (e instanceof OutputError || e instanceof ArgumentError) throw e;
    throw new OutputError(`cannot write ${out}: ${(e as Error).message}`, { cause: e });
  }
}

/** A loaded sparse model directory; tensors are read on demand. */
export interface SparseModel {
  /** From config.json (rotate-half RoPE). */
  config: ModelConfig;
  file: SparseSafetensorsFile;
  /** Weights stored sparse. */
  sparseNames(): string[];
  isSparse(name: string): boolean;
  readSparse(name: string): Promise<SparseMatrix>;
  /** Any tensor as dense f32 (sparse ones unpacked). */
  readF32(name: string): Promise<Float32Array>;
  close(): void;
}

/** Open a directory written by {@linkcode saveSparseModel}. */
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
  return {
    config,
    file,
    sparseNames: () => file.sparseNames(),
    isSparse: (name) => file.isSparse(name),
    readSparse: (name) => file.readSparse(name),
    readF32: async (name) =>
      file.isSparse(name) ? unpackSparse(await file.readSparse(name)) : file.readF32(name),
    close: () => file.close(),
  };
}
