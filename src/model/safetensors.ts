/**
 * safetensors reader and writers. Format (huggingface/safetensors): an unsigned 64-bit little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {string: string}}`, then the data section; offsets are relative to the data section.
 *
 * The reader parses the header only and reads each tensor on demand through a ByteSource, so a
 * multi-gigabyte shard is never read whole. Every offset is validated before any data is read.
 * The file writer streams tensor by tensor into a temporary name and renames it into place when
 * complete, so `path` never holds a half-written file.
 * @module
 */
import { ArgumentError, ModelFormatError } from "../errors.ts";
import type { DType } from "./config.ts";
import { bytesToF32, dtypeBytes, parseSafetensorsDtype, safetensorsDtypeName } from "./dtype.ts";
import type { ByteSource, TensorInfo } from "./weights.ts";
import { cannotWrite, FileSink, tmpSuffix, trackTemporary, writeFileAtomic } from "../util/files.ts";

/** safetensors refuses headers above 100 MB; so do we, before allocating one. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

/**
 * One tensor of a safetensors file.
 *
 * @example Where a tensor's bytes lie in the file: right after the header and the tensors before it
 * ```ts
 * import {
 *   encodeSafetensors, MemoryByteSource, type SafetensorsEntry, SafetensorsFile,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const bytes = await encodeSafetensors([
 *   { name: "a", dtype: "f16", shape: [3], data: new Uint8Array(new Float16Array([1, 2, 3]).buffer) },
 *   { name: "b", dtype: "f32", shape: [2, 2], data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) },
 * ]);
 * const file = await SafetensorsFile.open(new MemoryByteSource(bytes));
 * const dataStart = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true)); // after the header
 * const b: SafetensorsEntry = file.entry("b");
 * assert.deepEqual(b, { name: "b", dtype: "f32", shape: [2, 2], offset: dataStart + 3 * 2, byteLength: 16 });
 * const raw = bytes.slice(b.offset, b.offset + b.byteLength);
 * assert.deepEqual(new Float32Array(raw.buffer), new Float32Array([1, 2, 3, 4]));
 * ```
 */
export interface SafetensorsEntry extends TensorInfo {
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Byte length of the data. */
  byteLength: number;
}

/**
 * A tensor to write: `data` is raw little-endian bytes, or a function that produces them when needed.
 *
 * @example Bytes given now, and bytes produced only when the writer reaches the tensor
 * ```ts
 * import {
 *   ArgumentError, encodeSafetensors, MemoryByteSource, SafetensorsFile, type SafetensorsTensor,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const produced: string[] = [];
 * const bias: SafetensorsTensor = {
 *   name: "bias", dtype: "f32", shape: [2], data: new Uint8Array(new Float32Array([0.5, -1]).buffer),
 * };
 * const weight: SafetensorsTensor = {
 *   name: "weight", dtype: "f16", shape: [2, 2],
 *   data: () => (produced.push("weight"), new Uint8Array(new Float16Array([1, 2, 3, 4]).buffer)),
 * };
 * const bytes = await encodeSafetensors([bias, weight]);
 * assert.deepEqual(produced, ["weight"]);
 * const file = await SafetensorsFile.open(new MemoryByteSource(bytes));
 * assert.deepEqual(await file.readF32("weight"), new Float32Array([1, 2, 3, 4]));
 * // Bytes that do not match the dtype and shape are refused:
 * await assert.rejects(encodeSafetensors([{ ...bias, shape: [3] }]), ArgumentError);
 * ```
 */
export interface SafetensorsTensor {
  /** Tensor name. */
  name: string;
  /** Storage dtype. */
  dtype: DType;
  /** Row-major shape, outermost first. */
  shape: number[];
  /** The raw bytes, or a function called when the writer reaches this tensor. */
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Validate one raw header entry and place it in the file. */
function parseEntry(
  file: string,
  name: string,
  raw: unknown,
  dataStart: number,
  dataBytes: number,
): SafetensorsEntry {
  const bad = (what: string) =>
    new ModelFormatError(`${file}: tensor ${name}: ${what}; the header is corrupt`);
  if (typeof raw !== "object" || raw === null) throw bad("entry is not an object");
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== "string") throw bad("missing dtype");
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
    throw bad(`shape ${JSON.stringify(shape)} is invalid`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
    throw bad(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
  }
  const dt = parseSafetensorsDtype(dtype, name, file);
  const [begin, end] = offsets as number[];
  if (begin > end) throw bad(`data_offsets [${begin}, ${end}] has begin after end`);
  if (end > dataBytes) {
    throw new ModelFormatError(
      `${file}: tensor ${name} ends at data offset ${end} but the data section has only ${dataBytes} bytes; ` +
        `the file is truncated`,
    );
  }
  const want = numel(shape) * dtypeBytes(dt);
  if (end - begin !== want) {
    throw bad(`data_offsets span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${want}`);
  }
  return { name, dtype: dt, shape, offset: dataStart + begin, byteLength: want };
}

/** Reject tensors whose byte ranges overlap (a corrupt or malicious header). */
function checkNoOverlap(file: string, entries: SafetensorsEntry[]): void {
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].offset < prev.offset + prev.byteLength) {
      throw new ModelFormatError(
        `${file}: tensors ${prev.name} and ${sorted[i].name} overlap; the header is corrupt`,
      );
    }
  }
}

/**
 * A parsed safetensors file whose tensors are read on demand.
 *
 * @example Names, metadata, raw bytes and f32 values of an f16 tensor
 * ```ts
 * import { encodeSafetensors, MemoryByteSource, ModelFormatError, SafetensorsFile } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const raw = new Uint8Array(new Float16Array([0.5, 1.5, -2, 4]).buffer);
 * const w = { name: "w", dtype: "f16" as const, shape: [2, 2], data: raw };
 * const bytes = await encodeSafetensors([w], { by: "me" });
 * const file = await SafetensorsFile.open(new MemoryByteSource(bytes, "w.safetensors"));
 * assert.deepEqual([file.names(), file.has("w"), file.has("v")], [["w"], true, false]);
 * assert.deepEqual(file.metadata, { by: "me" });
 * assert.deepEqual(await file.readRaw("w"), raw);
 * assert.deepEqual(await file.readF32("w"), new Float32Array([0.5, 1.5, -2, 4]));
 * assert.throws(
 *   () => file.entry("v"),
 *   (e) => e instanceof ModelFormatError && e.message === "w.safetensors: no tensor named v",
 * );
 * file.close();
 * ```
 */
export class SafetensorsFile {
  private constructor(
    private readonly src: ByteSource,
    /** The `__metadata__` map (empty when absent). */
    readonly metadata: Record<string, string>,
    private readonly entries: Map<string, SafetensorsEntry>,
  ) {}

  /**
   * Parse and validate the header of a safetensors file.
   * @example A complete file opens; the same file cut short is refused before any tensor is read
   * ```ts
   * import { encodeSafetensors, MemoryByteSource, ModelFormatError, SafetensorsFile } from "@owlgpu/owlgpu";
   * import assert from "node:assert/strict";
   *
   * const x = { name: "x", dtype: "f32" as const, shape: [4], data: new Uint8Array(16) };
   * const bytes = await encodeSafetensors([x]);
   * const file = await SafetensorsFile.open(new MemoryByteSource(bytes, "x.safetensors"));
   * assert.deepEqual(file.entry("x").shape, [4]);
   * await assert.rejects(
   *   SafetensorsFile.open(new MemoryByteSource(bytes.subarray(0, bytes.length - 4), "cut.safetensors")),
   *   (e) => e instanceof ModelFormatError && /cut.safetensors: tensor x ends .* truncated/.test(e.message),
   * );
   * ```
   */
  static async open(src: ByteSource): Promise<SafetensorsFile> {
    const file = src.name;
    if (src.size < 8) {
      throw new ModelFormatError(`${file}: ${src.size} bytes is too short for a safetensors file`);
    }
    const n = new DataView((await src.read(0, 8)).slice().buffer).getBigUint64(0, true);
    if (n > BigInt(src.size - 8)) {
      throw new ModelFormatError(
        `${file}: header length ${n} goes past the end of the file (${src.size} bytes); ` +
          `the file is truncated or not a safetensors file`,
      );
    }
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw new ModelFormatError(
        `${file}: header length ${n} is over the 100 MB limit; not a safetensors file`,
      );
    }
    const headerBytes = Number(n);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await src.read(8, headerBytes)));
    } catch (e) {
      throw new ModelFormatError(`${file}: the header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      throw new ModelFormatError(`${file}: the header is not a JSON object`);
    }
    const dataStart = 8 + headerBytes;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === METADATA_KEY) metadata = parseMetadata(file, raw);
      else entries.set(name, parseEntry(file, name, raw, dataStart, src.size - dataStart));
    }
    checkNoOverlap(file, [...entries.values()]);
    return new SafetensorsFile(src, metadata, entries);
  }

  /** Where the bytes come from (a path), for messages. */
  get name(): string {
    return this.src.name;
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether the file holds a tensor named `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Entry of a tensor; ModelFormatError naming the file when it is absent. */
  entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new ModelFormatError(`${this.src.name}: no tensor named ${name}`);
    return e;
  }

  /** Raw little-endian bytes as stored. */
  readRaw(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    return this.src.read(e.offset, e.byteLength);
  }

  /** Values converted to f32 (a new array). */
  async readF32(name: string): Promise<Float32Array> {
    return bytesToF32(await this.readRaw(name), this.entry(name).dtype);
  }

  /** Close the underlying byte source. */
  close(): void {
    this.src.close();
  }
}

function parseMetadata(file: string, raw: unknown): Record<string, string> {
  const ok = typeof raw === "object" && raw !== null && !Array.isArray(raw) &&
    Object.values(raw).every((v) => typeof v === "string");
  if (!ok) throw new ModelFormatError(`${file}: ${METADATA_KEY} must map strings to strings`);
  return raw as Record<string, string>;
}

/** The header bytes (JSON padded with spaces to a multiple of 8, as the spec recommends). */
function encodeHeader(
  tensors: { name: string; dtype: DType; shape: number[] }[],
  metadata?: Record<string, string>,
) {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === METADATA_KEY || Object.hasOwn(header, t.name)) {
      throw new ArgumentError(`safetensors: tensor name ${JSON.stringify(t.name)} is reserved or repeated`);
    }
    if (!t.shape.every(isNonNegInt)) {
      throw new ArgumentError(`safetensors: tensor ${t.name} has shape ${t.shape}`);
    }
    const bytes = numel(t.shape) * dtypeBytes(t.dtype);
    header[t.name] = {
      dtype: safetensorsDtypeName(t.dtype),
      shape: t.shape,
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** A tensor's bytes, checked against its dtype and shape. */
async function tensorBytes(t: SafetensorsTensor): Promise<Uint8Array> {
  const data = typeof t.data === "function" ? await t.data() : t.data;
  const want = numel(t.shape) * dtypeBytes(t.dtype);
  if (data.byteLength !== want) {
    const shape = JSON.stringify(t.shape);
    throw new ArgumentError(
      `safetensors: tensor ${t.name} has ${data.byteLength} bytes, ${t.dtype} ${shape} needs ${want}`,
    );
  }
  return data;
}

/**
 * Serialize tensors into one in-memory safetensors file (browsers, tests). Tensors are laid out in
 * the given order.
 *
 * @example The bytes: an 8-byte header length, the JSON header padded to 8 bytes, then the data
 * ```ts
 * import { encodeSafetensors } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const x = new Uint8Array(new Float32Array([1, 2]).buffer);
 * const tensor = { name: "x", dtype: "f32" as const, shape: [2], data: x };
 * const bytes = await encodeSafetensors([tensor], { format: "pt" });
 * const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
 * assert.equal(n % 8, 0);
 * assert.deepEqual(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), {
 *   __metadata__: { format: "pt" },
 *   x: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
 * });
 * assert.deepEqual(bytes.subarray(8 + n), x);
 * ```
 */
export async function encodeSafetensors(
  tensors: SafetensorsTensor[],
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const header = encodeHeader(tensors, metadata);
  const parts: Uint8Array[] = [header];
  for (const t of tensors) parts.push(await tensorBytes(t));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Stream an async iterable's tensors into a spool file while collecting their descriptions (the
 * header must precede the data), then write the header and copy the spool after it.
 */
async function writeFromIterable(
  sink: FileSink,
  path: string,
  tensors: AsyncIterable<SafetensorsTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const spoolPath = path + tmpSuffix() + ".spool";
  let spoolFile: Deno.FsFile;
  try {
    spoolFile = await Deno.open(spoolPath, { write: true, read: true, createNew: true });
  } catch (e) {
    throw cannotWrite(spoolPath, e);
  }
  const untrack = trackTemporary(spoolPath);
  try {
    const spool = new FileSink(spoolFile, spoolPath);
    const specs: SafetensorsTensor[] = [];
    for await (const t of tensors) {
      specs.push({ ...t, data: new Uint8Array(0) });
      await spool.write(await tensorBytes(t));
    }
    await sink.write(encodeHeader(specs, metadata));
    await spoolFile.seek(0, Deno.SeekMode.Start);
    const buf = new Uint8Array(1 << 23);
    for (let n; (n = await spoolFile.read(buf)) !== null;) await sink.write(buf.subarray(0, n));
  } finally {
    spoolFile.close();
    await Deno.remove(spoolPath).catch(() => {});
    untrack();
  }
}

/**
 * Write a safetensors file at `path`, tensors laid out in the given order. An array is written in
 * one pass, one tensor in memory at a time (give `data` as a function to produce each tensor only
 * when it is written). An async iterable is spooled to a temporary file first, since the header,
 * which must come first, is known only at the end. `path` appears only once the file is complete.
 * @example Write an array of tensors, then tensors produced one by one by an async generator
 * ```ts
 * import { FileByteSource, SafetensorsFile, type SafetensorsTensor, writeSafetensors } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
 * await writeSafetensors(`${dir}/w.safetensors`, [{ name: "x", dtype: "f32", shape: [2], data: f32(1, 2) }]);
 * async function* layers(): AsyncGenerator<SafetensorsTensor> {
 *   for (let i = 0; i < 3; i++) yield { name: `layer${i}`, dtype: "f32", shape: [1], data: f32(10 * i) };
 * }
 * await writeSafetensors(`${dir}/layers.safetensors`, layers());
 * const file = await SafetensorsFile.open(await FileByteSource.open(`${dir}/layers.safetensors`));
 * assert.deepEqual(file.names(), ["layer0", "layer1", "layer2"]);
 * assert.deepEqual(await file.readF32("layer2"), new Float32Array([20]));
 * file.close();
 * const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
 * assert.deepEqual(names, ["layers.safetensors", "w.safetensors"]); // no temporary files left behind
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: SafetensorsTensor[] | AsyncIterable<SafetensorsTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, async (sink) => {
    if (!Array.isArray(tensors)) return writeFromIterable(sink, path, tensors, metadata);
    await sink.write(encodeHeader(tensors, metadata));
    for (const t of tensors) await sink.write(await tensorBytes(t));
  });
}
