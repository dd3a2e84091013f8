/**
 * The sparse model file (`model.sparse.safetensors`): a valid safetensors file (any safetensors
 * reader lists and loads every array in it) whose sparse weights are stored as component arrays
 * and described in the metadata. ARCHITECTURE.md, "Sparse formats and kernels", is the full
 * specification; in short:
 *
 * - 8 bytes: header length H (u64 little-endian); H bytes: JSON header, padded with spaces so the
 *   data section starts on an 8-byte boundary; then the data section. As in safetensors, every
 *   tensor entry is `{dtype, shape, data_offsets: [begin, end]}` relative to the data section,
 *   and the entries tile the data section without holes.
 * - Arrays are laid out 4-byte dtypes first (F32, U32), then 2-byte (F16, BF16), then bytes
 *   (U8), each group in name order of its weights, so every array is aligned to its element size.
 * - `__metadata__["owlgpu.sparse"]` = `"1"` (format version) and `__metadata__["owlgpu.sparse.tensors"]`
 *   = a JSON object string mapping each sparse weight name to `{"format": "unstructured" | "nm",
 *   "shape": [rows, cols], "dtype": "F32" | "F16"}` plus `"keep"` and `"group"` for nm.
 * - Unstructured weight `W`: `W.bitmap` U32 [rows, ceil(cols / 32)] (bit j of word w of a row =
 *   column 32 w + j kept), `W.row_offsets` U32 [rows + 1], `W.values` F32/F16 [nnz] (kept values,
 *   row-major, column order).
 * - N:M weight `W`: `W.values` F32/F16 [rows, ceil(cols / group) * keep], `W.indices` U8 [rows,
 *   ceil(ceil(cols / group) * keep * bits / 8)], positions in the group packed little-endian,
 *   `bits` = 2 (group <= 4), 4 (<= 16) or 8.
 * - Every other tensor (embeddings, norms, dense linears) is stored as itself (F32/F16/BF16).
 *
 * The writer streams to a temporary name and renames it into place when complete.
 * @module
 */
import { ArgumentError, ModelFormatError } from "../errors.ts";
import type { ByteSource } from "../model/weights.ts";
import { writeFileAtomic } from "../util/files.ts";
import {
  bitmapRowError,
  bitmapWords,
  nmGroups,
  nmIndexBits,
  nmIndexBytesPerRow,
  type NMSparse,
  type SparseMatrix,
  type SparseValueDType,
  type UnstructuredSparse,
} from "./format.ts";

/**
 * Dtypes this file holds (safetensors spelling).
 *
 * @example The stored dtype of each array: f16 N:M values, u8 positions, a bf16 dense tensor
 * ```ts
 * import {
 *   encodeSparseSafetensors, type FileDType, MemoryByteSource, packNM, SparseSafetensorsFile,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = await encodeSparseSafetensors([
 *   { name: "w", matrix: packNM(Float32Array.of(1, 0, 0, 2), 1, 4, 2, 4, "f16") },
 *   { name: "b", dtype: "bf16", shape: [1], data: new Uint8Array(2) },
 * ]);
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes));
 * const dtypes: FileDType[] = ["w.values", "w.indices", "b"].map((name) => file.array(name).dtype);
 * assert.deepEqual(dtypes, ["F16", "U8", "BF16"]);
 * ```
 */
export type FileDType = "F32" | "F16" | "BF16" | "U32" | "U8";
const ELEM: Record<FileDType, number> = { F32: 4, U32: 4, F16: 2, BF16: 2, U8: 1 };

export const SPARSE_FORMAT_VERSION = "1";
export const SPARSE_META_VERSION = "owlgpu.sparse";
export const SPARSE_META_TENSORS = "owlgpu.sparse.tensors";
const METADATA_KEY = "__metadata__";
const MAX_HEADER_BYTES = 100_000_000;

/**
 * What the header says about a sparse weight; enough to size its arrays.
 *
 * @example The layout of an f16 2:4 weight, given up front for a lazily packed matrix
 * ```ts
 * import {
 *   encodeSparseSafetensors, MemoryByteSource, packNM, SparseSafetensorsFile, type SparseLayout,
 *   sparseLayoutOf,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const layout: SparseLayout = { format: "nm", rows: 2, cols: 8, dtype: "f16", keep: 2, group: 4 };
 * const dense = Float32Array.of(1, 0, 0, 2, 0, 3, 4, 0, 5, 6, 0, 0, 0, 0, 7, 8);
 * const pack = () => packNM(dense, 2, 8, 2, 4, "f16");
 * assert.deepEqual(sparseLayoutOf(pack()), layout);
 * const bytes = await encodeSparseSafetensors([{ name: "w", matrix: pack, layout }]);
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes));
 * assert.deepEqual(file.layout("w"), layout);
 * ```
 */
export interface SparseLayout {
  /** Storage format of the weight. */
  format: "unstructured" | "nm";
  /** Weight rows. */
  rows: number;
  /** Weight columns. */
  cols: number;
  /** Dtype of the stored values. */
  dtype: SparseValueDType;
  /** unstructured: stored values. */
  nnz?: number;
  /** nm: kept per group, group length. */
  keep?: number;
  /** nm: group length. */
  group?: number;
}

/**
 * A dense tensor to store as itself.
 *
 * @example An f32 tensor from bytes, an f16 one produced when the writer reaches it
 * ```ts
 * import {
 *   type DenseFileTensor, encodeSparseSafetensors, MemoryByteSource, SparseSafetensorsFile,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const norm: DenseFileTensor = {
 *   name: "norm.weight", dtype: "f32", shape: [3], data: new Uint8Array(Float32Array.of(1, 2, 3).buffer),
 * };
 * const emb: DenseFileTensor = {
 *   name: "emb", dtype: "f16", shape: [2], data: () => new Uint8Array(Float16Array.of(0.5, -4).buffer),
 * };
 * const file = await SparseSafetensorsFile.open(
 *   new MemoryByteSource(await encodeSparseSafetensors([norm, emb])),
 * );
 * assert.deepEqual(file.denseNames().sort(), ["emb", "norm.weight"]);
 * assert.deepEqual(await file.readF32("norm.weight"), Float32Array.of(1, 2, 3));
 * assert.deepEqual(await file.readF32("emb"), Float32Array.of(0.5, -4)); // f16 read back as f32
 * ```
 */
export interface DenseFileTensor {
  /** Tensor name. */
  name: string;
  /** Storage dtype. */
  dtype: "f32" | "f16" | "bf16";
  /** Row-major shape, outermost first. */
  shape: number[];
  /** Little-endian bytes, or a function producing them when the writer reaches this tensor. */
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

/**
 * A sparse weight; give `layout` when `matrix` is a function (called when the writer reaches the
 * weight's arrays, possibly more than once: it must return the same matrix each time).
 *
 * @example A lazily packed weight needs its layout; without one it is refused
 * ```ts
 * import {
 *   ArgumentError, encodeSparseSafetensors, MemoryByteSource, packUnstructured, type SparseFileTensor,
 *   SparseSafetensorsFile, unpackSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 1, 2, 0, 0, 3);
 * const tensor: SparseFileTensor = {
 *   name: "w",
 *   matrix: () => packUnstructured(dense, 2, 3),
 *   layout: { format: "unstructured", rows: 2, cols: 3, dtype: "f32", nnz: 3 },
 * };
 * const bytes = await encodeSparseSafetensors([tensor]);
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes));
 * assert.deepEqual(unpackSparse(await file.readSparse("w")), dense);
 * await assert.rejects(encodeSparseSafetensors([{ name: "w", matrix: tensor.matrix }]), ArgumentError);
 * ```
 */
export interface SparseFileTensor {
  /** Weight name; its arrays are named after it (`name.values`, ...). */
  name: string;
  /** The packed matrix, or a function producing it. */
  matrix: SparseMatrix | (() => SparseMatrix | Promise<SparseMatrix>);
  /** The matrix's layout (required when `matrix` is a function). */
  layout?: SparseLayout;
}

/**
 * A tensor to write to a sparse model file: dense or sparse.
 *
 * @example A sparse linear and a dense norm in one file
 * ```ts
 * import {
 *   encodeSparseSafetensors, MemoryByteSource, packNM, type SparseFileEntry, SparseSafetensorsFile,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const entries: SparseFileEntry[] = [
 *   { name: "q.weight", matrix: packNM(Float32Array.of(1, 0, 0, 2, 0, 3, 4, 0), 2, 4, 2, 4) },
 *   { name: "norm.weight", dtype: "f32", shape: [2], data: new Uint8Array(Float32Array.of(1, 1).buffer) },
 * ];
 * const bytes = await encodeSparseSafetensors(entries);
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes));
 * assert.deepEqual(file.sparseNames(), ["q.weight"]);
 * assert.deepEqual(file.denseNames(), ["norm.weight"]);
 * assert(file.isSparse("q.weight") && !file.isSparse("norm.weight"));
 * ```
 */
export type SparseFileEntry = DenseFileTensor | SparseFileTensor;

/**
 * The layout of a packed matrix.
 *
 * @example Unstructured layouts count the stored values; N:M ones give keep and group
 * ```ts
 * import { packNM, packUnstructured, sparseLayoutOf } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const u = packUnstructured(Float32Array.of(0, 1, 2, 0, 0, 3), 2, 3);
 * assert.deepEqual(sparseLayoutOf(u), { format: "unstructured", rows: 2, cols: 3, dtype: "f32", nnz: 3 });
 * const n = packNM(Float32Array.of(1, 0, 0, 2), 1, 4, 2, 4, "f16");
 * assert.deepEqual(sparseLayoutOf(n), { format: "nm", rows: 1, cols: 4, dtype: "f16", keep: 2, group: 4 });
 * ```
 */
export function sparseLayoutOf(s: SparseMatrix): SparseLayout {
  return s.format === "unstructured"
    ? { format: "unstructured", rows: s.rows, cols: s.cols, dtype: s.dtype, nnz: s.values.length }
    : { format: "nm", rows: s.rows, cols: s.cols, dtype: s.dtype, keep: s.keep, group: s.group };
}

interface ArraySpec {
  name: string;
  dtype: FileDType;
  shape: number[];
}

const valueDtype = (d: SparseValueDType): FileDType => d === "f16" ? "F16" : "F32";

/** The arrays of one sparse weight. */
export function sparseArrays(name: string, l: SparseLayout): ArraySpec[] {
  const vd = valueDtype(l.dtype);
  if (l.format === "unstructured") {
    return [
      { name: `${name}.bitmap`, dtype: "U32", shape: [l.rows, bitmapWords(l.cols)] },
      { name: `${name}.row_offsets`, dtype: "U32", shape: [l.rows + 1] },
      { name: `${name}.values`, dtype: vd, shape: [l.nnz ?? 0] },
    ];
  }
  return [
    { name: `${name}.values`, dtype: vd, shape: [l.rows, nmGroups(l.cols, l.group!) * l.keep!] },
    { name: `${name}.indices`, dtype: "U8", shape: [l.rows, nmIndexBytesPerRow(l.cols, l.keep!, l.group!)] },
  ];
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function arrayData(s: SparseMatrix, spec: ArraySpec): Uint8Array {
  const part = spec.name.slice(spec.name.lastIndexOf(".") + 1);
  if (s.format === "unstructured") {
    if (part === "bitmap") return bytesOf(s.bitmap);
    if (part === "row_offsets") return bytesOf(s.rowOffsets);
    return bytesOf(s.values);
  }
  return part === "indices" ? s.indices : bytesOf(s.values);
}

function isSparse(e: SparseFileEntry): e is SparseFileTensor {
  return "matrix" in e;
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

interface Planned {
  spec: ArraySpec;
  /** Index of the entry that produces it. */
  entry: number;
  bytes: number;
}

/** Arrays of every entry in file order (4-byte dtypes, then 2-byte, then bytes) and the header. */
function plan(
  entries: SparseFileEntry[],
  layouts: (SparseLayout | undefined)[],
  metadata: Record<string, string> | undefined,
): { arrays: Planned[]; header: Uint8Array } {
  const all: Planned[] = [];
  const sparseMeta: Record<string, unknown> = {};
  const names = new Set<string>();
  entries.forEach((e, i) => {
    const specs = isSparse(e)
      ? sparseArrays(e.name, layouts[i]!)
      : [{ name: e.name, dtype: e.dtype.toUpperCase() as FileDType, shape: e.shape }];
    if (isSparse(e)) {
      const l = layouts[i]!;
      sparseMeta[e.name] = {
        format: l.format,
        shape: [l.rows, l.cols],
        dtype: valueDtype(l.dtype),
        ...(l.format === "nm" ? { keep: l.keep, group: l.group } : {}),
      };
    }
    for (const spec of specs) {
      if (names.has(spec.name) || spec.name === METADATA_KEY) {
        throw new ArgumentError(
          `sparse file: array name ${JSON.stringify(spec.name)} is repeated or reserved`,
        );
      }
      names.add(spec.name);
      all.push({ spec, entry: i, bytes: numel(spec.shape) * ELEM[spec.dtype] });
    }
  });
  const order = (p: Planned) => -ELEM[p.spec.dtype];
  const arrays = all.map((p, i) => ({ p, i })).sort((a, b) => order(a.p) - order(b.p) || a.i - b.i).map((x) =>
    x.p
  );
  const header: Record<string, unknown> = {
    [METADATA_KEY]: {
      ...(metadata ?? {}),
      [SPARSE_META_VERSION]: SPARSE_FORMAT_VERSION,
      [SPARSE_META_TENSORS]: JSON.stringify(sparseMeta),
    },
  };
  let offset = 0;
  for (const a of arrays) {
    header[a.spec.name] = {
      dtype: a.spec.dtype,
      shape: a.spec.shape,
      data_offsets: [offset, offset + a.bytes],
    };
    offset += a.bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return { arrays, header: out };
}

function sameLayout(a: SparseLayout, b: SparseLayout): boolean {
  return a.format === b.format && a.rows === b.rows && a.cols === b.cols && a.dtype === b.dtype &&
    (a.format === "unstructured" ? a.nnz === b.nnz : a.keep === b.keep && a.group === b.group);
}

/**
 * Produce each entry's arrays in file order. An entry whose arrays fall in different dtype groups
 * (f16 values after u32 bitmaps) is produced again when the writer returns to it, so only one
 * lazy entry is in memory at a time.
 */
async function* arrayBytes(
  entries: SparseFileEntry[],
  layouts: (SparseLayout | undefined)[],
  arrays: Planned[],
) {
  let current = -1;
  let made: SparseMatrix | Uint8Array | undefined;
  for (const a of arrays) {
    const e = entries[a.entry];
    if (a.entry !== current) {
      current = a.entry;
      if (isSparse(e)) {
        const m = typeof e.matrix === "function" ? await e.matrix() : e.matrix;
        if (!sameLayout(sparseLayoutOf(m), layouts[a.entry]!)) {
          throw new ArgumentError(`sparse file: ${e.name} does not match the layout given for it`);
        }
        made = m;
      } else {
        made = typeof e.data === "function" ? await e.data() : e.data;
      }
    }
    const bytes = made instanceof Uint8Array ? made : arrayData(made!, a.spec);
    if (bytes.byteLength !== a.bytes) {
      throw new ArgumentError(
        `sparse file: ${a.spec.name} has ${bytes.byteLength} bytes, its header says ${a.bytes}`,
      );
    }
    yield bytes;
  }
}

function layoutsOf(entries: SparseFileEntry[]): (SparseLayout | undefined)[] {
  return entries.map((e) => {
    if (!isSparse(e)) return undefined;
    if (e.layout) return e.layout;
    if (typeof e.matrix === "function") {
      throw new ArgumentError(`sparse file: ${e.name} is produced lazily, so its layout must be given`);
    }
    return sparseLayoutOf(e.matrix);
  });
}

/**
 * The whole file in memory (browsers, tests).
 *
 * @example Encode one weight with metadata; any safetensors reader sees its three arrays
 * ```ts
 * import {
 *   encodeSparseSafetensors, MemoryByteSource, packUnstructured, SparseSafetensorsFile, unpackSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 1, 2, 0, 0, 3);
 * const bytes = await encodeSparseSafetensors([{ name: "w", matrix: packUnstructured(dense, 2, 3) }], {
 *   model: "tiny",
 * });
 * // u64 header length, a JSON header padded to 8 bytes, then bitmap (8 B), row offsets (12 B), values (12 B)
 * const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
 * assert.equal(n % 8, 0);
 * assert.equal(bytes.length, 8 + n + 8 + 12 + 12);
 * const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
 * assert.deepEqual(Object.keys(header).sort(), ["__metadata__", "w.bitmap", "w.row_offsets", "w.values"]);
 * assert.equal(header.__metadata__.model, "tiny");
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes));
 * assert.deepEqual(unpackSparse(await file.readSparse("w")), dense);
 * ```
 */
export async function encodeSparseSafetensors(
  entries: SparseFileEntry[],
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const layouts = layoutsOf(entries);
  const { arrays, header } = plan(entries, layouts, metadata);
  const out = new Uint8Array(header.byteLength + arrays.reduce((a, p) => a + p.bytes, 0));
  out.set(header);
  let at = header.byteLength;
  for await (const b of arrayBytes(entries, layouts, arrays)) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

/**
 * Write the file at `path`: streamed into `path + ".tmp-<random>"`, renamed into place when
 * complete (removed on failure). Lazy entries are produced one at a time. Needs Deno's file APIs
 * (in a browser use {@linkcode encodeSparseSafetensors}).
 *
 * @example Write a sparse weight and a dense one, read both back
 * ```ts
 * import {
 *   FileByteSource, packNM, SparseSafetensorsFile, unpackSparse, writeSparseSafetensors,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const w = Float32Array.of(0, 1, 0, 2, 3, 0, 4, 0); // 2:4 sparse [2, 4]
 * const norm = Float32Array.of(1, 1, 1, 1);
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSparseSafetensors(path, [
 *   { name: "w", matrix: packNM(w, 2, 4, 2, 4) },
 *   { name: "norm", dtype: "f32", shape: [4], data: new Uint8Array(norm.buffer) },
 * ]);
 * const file = await SparseSafetensorsFile.open(await FileByteSource.open(path));
 * assert.deepEqual(unpackSparse(await file.readSparse("w")), w);
 * assert.deepEqual(await file.readF32("norm"), norm);
 * file.close();
 * await Deno.remove(path);
 * ```
 */
export async function writeSparseSafetensors(
  path: string,
  entries: SparseFileEntry[],
  metadata?: Record<string, string>,
): Promise<void> {
  const layouts = layoutsOf(entries);
  const { arrays, header } = plan(entries, layouts, metadata);
  await writeFileAtomic(path, async (sink) => {
    await sink.write(header);
    for await (const b of arrayBytes(entries, layouts, arrays)) await sink.write(b);
  });
}

/**
 * One array of the file.
 *
 * @example Where a weight's values sit in the file
 * ```ts
 * import {
 *   encodeSparseSafetensors, type FileArray, MemoryByteSource, packUnstructured, SparseSafetensorsFile,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = await encodeSparseSafetensors([
 *   { name: "w", matrix: packUnstructured(Float32Array.of(0, 7, 8, 0), 2, 2) },
 * ]);
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes));
 * const a: FileArray = file.array("w.values");
 * assert.deepEqual([a.dtype, a.shape, a.byteLength], ["F32", [2], 8]);
 * const raw = bytes.slice(a.offset, a.offset + a.byteLength); // offset is absolute in the file
 * assert.deepEqual(new Float32Array(raw.buffer), Float32Array.of(7, 8));
 * ```
 */
export interface FileArray {
  /** Array name. */
  name: string;
  /** Stored dtype. */
  dtype: FileDType;
  /** Shape, outermost first. */
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  /** Byte length of the data. */
  byteLength: number;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * A parsed sparse model file; arrays are read on demand.
 *
 * @example Open a file from memory, read a sparse weight back; reject bytes that are no such file
 * ```ts
 * import {
 *   encodeSparseSafetensors, MemoryByteSource, ModelFormatError, packUnstructured, SparseSafetensorsFile,
 *   unpackSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 1, 2, 0, 0, 3);
 * const bytes = await encodeSparseSafetensors([{ name: "w", matrix: packUnstructured(dense, 2, 3) }], {
 *   note: "hi",
 * });
 * const file = await SparseSafetensorsFile.open(new MemoryByteSource(bytes, "model.sparse.safetensors"));
 * assert.deepEqual(file.metadata, { note: "hi" }); // owlgpu's own keys are taken out
 * assert.deepEqual(file.sparseNames(), ["w"]);
 * assert.deepEqual(unpackSparse(await file.readSparse("w")), dense);
 * file.close();
 * const junk = new MemoryByteSource(new Uint8Array(16));
 * await assert.rejects(SparseSafetensorsFile.open(junk), ModelFormatError);
 * ```
 */
export class SparseSafetensorsFile {
  private constructor(
    private readonly src: ByteSource,
    /** `__metadata__` without the sparse keys. */
    readonly metadata: Record<string, string>,
    private readonly arrays: Map<string, FileArray>,
    private readonly sparse: Map<string, SparseLayout>,
  ) {}

  /** Parse and validate the header (every offset, dtype, shape and sparse description). */
  static async open(src: ByteSource): Promise<SparseSafetensorsFile> {
    const file = src.name;
    const bad = (what: string) => new ModelFormatError(`${file}: ${what}`);
    if (src.size < 8) throw bad(`${src.size} bytes is too short for a sparse safetensors file`);
    const n = new DataView((await src.read(0, 8)).slice().buffer).getBigUint64(0, true);
    if (n > BigInt(src.size - 8) || n > BigInt(MAX_HEADER_BYTES)) {
      throw bad(
        `header length ${n} is past the end of the file or over 100 MB; truncated or not safetensors`,
      );
    }
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await src.read(8, Number(n))));
    } catch (e) {
      throw bad(`the header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      throw bad("the header is not an object");
    }
    const dataStart = 8 + Number(n), dataBytes = src.size - dataStart;
    const arrays = new Map<string, FileArray>();
    let meta: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === METADATA_KEY) {
        const ok = typeof raw === "object" && raw !== null &&
          Object.values(raw).every((v) => typeof v === "string");
        if (!ok) throw bad(`${METADATA_KEY} must map strings to strings`);
        meta = raw as Record<string, string>;
        continue;
      }
      const { dtype, shape, data_offsets: off } = (raw ?? {}) as Record<string, unknown>;
      if (typeof dtype !== "string" || !(dtype in ELEM)) {
        throw bad(`array ${name}: unsupported dtype ${JSON.stringify(dtype)}`);
      }
      if (!Array.isArray(shape) || !shape.every(isNonNegInt)) throw bad(`array ${name}: bad shape`);
      if (
        !Array.isArray(off) || off.length !== 2 || !off.every(isNonNegInt) || off[0] > off[1] ||
        off[1] > dataBytes
      ) {
        throw bad(
          `array ${name}: data_offsets ${JSON.stringify(off)} outside the ${dataBytes}-byte data section`,
        );
      }
      const byteLength = numel(shape) * ELEM[dtype as FileDType];
      if (off[1] - off[0] !== byteLength) {
        throw bad(`array ${name}: ${off[1] - off[0]} bytes for ${dtype} ${JSON.stringify(shape)}`);
      }
      arrays.set(name, { name, dtype: dtype as FileDType, shape, offset: dataStart + off[0], byteLength });
    }
    const sorted = [...arrays.values()].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].byteLength) {
        throw bad(`arrays ${sorted[i - 1].name} and ${sorted[i].name} overlap`);
      }
    }
    if (meta[SPARSE_META_VERSION] !== SPARSE_FORMAT_VERSION) {
      throw bad(
        `not an owlgpu sparse file (metadata ${SPARSE_META_VERSION} = ${
          JSON.stringify(meta[SPARSE_META_VERSION])
        }, want "1")`,
      );
    }
    let described: unknown;
    try {
      described = JSON.parse(meta[SPARSE_META_TENSORS] ?? "{}");
    } catch {
      throw bad(`metadata ${SPARSE_META_TENSORS} is not JSON`);
    }
    if (typeof described !== "object" || described === null || Array.isArray(described)) {
      throw bad(`metadata ${SPARSE_META_TENSORS} must be a JSON object mapping weight names to layouts`);
    }
    const sparse = new Map<string, SparseLayout>();
    for (const [name, d] of Object.entries(described as Record<string, Record<string, unknown>>)) {
      const { format, shape, dtype, keep, group } = d ?? {};
      if (!Array.isArray(shape) || shape.length !== 2 || !shape.every(isNonNegInt)) {
        throw bad(`sparse ${name}: bad shape`);
      }
      if (dtype !== "F32" && dtype !== "F16") {
        throw bad(`sparse ${name}: values must be F32 or F16, got ${dtype}`);
      }
      const [rows, cols] = shape as number[];
      const vd: SparseValueDType = dtype === "F16" ? "f16" : "f32";
      let l: SparseLayout;
      if (format === "unstructured") {
        const vals = arrays.get(`${name}.values`);
        if (!vals || vals.shape.length !== 1) {
          throw bad(`sparse ${name}: missing or malformed ${name}.values`);
        }
        l = { format, rows, cols, dtype: vd, nnz: vals.shape[0] };
      } else if (format === "nm") {
        if (
          !isNonNegInt(group) || group < 1 || group > 256 || !isNonNegInt(keep) || keep < 1 || keep > group
        ) {
          throw bad(`sparse ${name}: bad keep/group ${keep}/${group}`);
        }
        l = { format, rows, cols, dtype: vd, keep, group };
      } else throw bad(`sparse ${name}: unknown format ${JSON.stringify(format)}`);
      for (const spec of sparseArrays(name, l)) {
        const a = arrays.get(spec.name);
        if (!a || a.dtype !== spec.dtype || JSON.stringify(a.shape) !== JSON.stringify(spec.shape)) {
          throw bad(
            `sparse ${name}: array ${spec.name} is missing or not ${spec.dtype} ${
              JSON.stringify(spec.shape)
            }`,
          );
        }
      }
      sparse.set(name, l);
    }
    const rest = { ...meta };
    delete rest[SPARSE_META_VERSION];
    delete rest[SPARSE_META_TENSORS];
    return new SparseSafetensorsFile(src, rest, arrays, sparse);
  }

  /** The byte source's name (a path or a file name), used in error messages. */
  get name(): string {
    return this.src.name;
  }

  /** Names of the sparse weights. */
  sparseNames(): string[] {
    return [...this.sparse.keys()];
  }

  /** Names of the dense tensors (every array that is no sparse weight's component). */
  denseNames(): string[] {
    const parts = new Set(
      [...this.sparse.entries()].flatMap(([n, l]) => sparseArrays(n, l).map((a) => a.name)),
    );
    return [...this.arrays.keys()].filter((n) => !parts.has(n));
  }

  /** Whether `name` is a sparse weight of this file. */
  isSparse(name: string): boolean {
    return this.sparse.has(name);
  }

  /** The header's layout of sparse weight `name`; {@linkcode ModelFormatError} when there is none. */
  layout(name: string): SparseLayout {
    const l = this.sparse.get(name);
    if (!l) throw new ModelFormatError(`${this.name}: no sparse weight named ${name}`);
    return l;
  }

  /** Offset, dtype and shape of the array `name`; {@linkcode ModelFormatError} when there is none. */
  array(name: string): FileArray {
    const a = this.arrays.get(name);
    if (!a) throw new ModelFormatError(`${this.name}: no array named ${name}`);
    return a;
  }

  /** Raw little-endian bytes of one array (a copy, aligned for typed-array views). */
  async readRaw(name: string): Promise<Uint8Array> {
    const a = this.array(name);
    return (await this.src.read(a.offset, a.byteLength)).slice();
  }

  /** A sparse weight, checked for consistency (bitmap counts, offsets, positions). */
  async readSparse(name: string): Promise<SparseMatrix> {
    const l = this.layout(name);
    const bad = (what: string) =>
      new ModelFormatError(`${this.name}: sparse ${name}: ${what}; the file is corrupt`);
    const values = async (): Promise<Float32Array | Float16Array> => {
      const b = await this.readRaw(`${name}.values`);
      return l.dtype === "f16" ? new Float16Array(b.buffer) : new Float32Array(b.buffer);
    };
    if (l.format === "unstructured") {
      const bitmap = new Uint32Array((await this.readRaw(`${name}.bitmap`)).buffer);
      const rowOffsets = new Uint32Array((await this.readRaw(`${name}.row_offsets`)).buffer);
      if (rowOffsets[0] !== 0) throw bad("row_offsets[0] is not 0");
      const e = bitmapRowError(bitmap, rowOffsets, l.rows, l.cols);
      if (e?.stray) throw bad(`row ${e.row} has bitmap bits past column ${l.cols - 1}`);
      if (e) throw bad(`row ${e.row}: row_offsets disagree with the bitmap`);
      if (rowOffsets[l.rows] !== l.nnz) {
        throw bad(`row_offsets end at ${rowOffsets[l.rows]}, values has ${l.nnz}`);
      }
      const m: UnstructuredSparse = {
        format: "unstructured",
        rows: l.rows,
        cols: l.cols,
        dtype: l.dtype,
        rowOffsets,
        bitmap,
        values: await values(),
      };
      return m;
    }
    const m: NMSparse = {
      format: "nm",
      rows: l.rows,
      cols: l.cols,
      dtype: l.dtype,
      keep: l.keep!,
      group: l.group!,
      values: await values(),
      indices: await this.readRaw(`${name}.indices`),
    };
    const bits = nmIndexBits(m.group), idxBytes = nmIndexBytesPerRow(m.cols, m.keep, m.group);
    const perRow = nmGroups(m.cols, m.group) * m.keep;
    for (let r = 0; r < m.rows; r++) {
      for (let e = 0; e < perRow; e++) {
        const bit = e * bits;
        const p = (m.indices[r * idxBytes + (bit >>> 3)] >>> (bit & 7)) & ((1 << bits) - 1);
        const col = Math.floor(e / m.keep) * m.group + p;
        if (m.values[r * perRow + e] !== 0 && (p >= m.group || col >= m.cols)) {
          throw bad(`row ${r} slot ${e} has position ${p}, outside its group`);
        }
      }
    }
    return m;
  }

  /** A dense tensor as f32. */
  async readF32(name: string): Promise<Float32Array> {
    const a = this.array(name);
    const b = await this.readRaw(name);
    if (a.dtype === "F32") return new Float32Array(b.buffer);
    if (a.dtype === "F16") return Float32Array.from(new Float16Array(b.buffer));
    if (a.dtype === "BF16") {
      const h = new Uint16Array(b.buffer), out = new Float32Array(h.length), o = new Uint32Array(out.buffer);
      for (let i = 0; i < h.length; i++) o[i] = h[i] << 16;
      return out;
    }
    throw new ModelFormatError(`${this.name}: ${name} is ${a.dtype}, not a float tensor`);
  }

  /** Close the underlying byte source. */
  close(): void {
    this.src.close();
  }
}
