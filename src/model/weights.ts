/**
 * The interface between checkpoint files and everything else. A WeightSource serves one tensor at
 * a time under canonical names (names.ts), so a model larger than memory can be walked block by
 * block. Byte access goes through ByteSource so browsers can pass a File or an ArrayBuffer.
 * @module
 */
import type { DType, ModelConfig } from "./config.ts";

/**
 * Random access to the bytes of one file (Deno file, browser File, or an in-memory buffer).
 *
 * @example Your own ByteSource, counting what is read: opening a safetensors file reads its header only
 * ```ts
 * import { type ByteSource, encodeSafetensors, ModelFormatError, SafetensorsFile } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const file = await encodeSafetensors([
 *   { name: "big", dtype: "f32", shape: [1000], data: new Uint8Array(4000) },
 *   { name: "small", dtype: "f32", shape: [2], data: new Uint8Array(new Float32Array([1.5, -2]).buffer) },
 * ]);
 * class CountingSource implements ByteSource {
 *   readonly size = file.byteLength;
 *   readonly name = "counted.safetensors";
 *   bytesRead = 0;
 *   read(offset: number, length: number): Promise<Uint8Array> {
 *     if (offset + length > this.size) return Promise.reject(new ModelFormatError(`${this.name}: short`));
 *     this.bytesRead += length;
 *     return Promise.resolve(file.subarray(offset, offset + length));
 *   }
 *   close(): void {}
 * }
 * const src = new CountingSource();
 * const st = await SafetensorsFile.open(src);
 * assert.equal(src.bytesRead, file.byteLength - 4008); // the header: no tensor data yet
 * assert.deepEqual(await st.readF32("small"), new Float32Array([1.5, -2]));
 * assert.equal(src.bytesRead, file.byteLength - 4000); // plus small's 8 bytes; big's 4000 never read
 * ```
 */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Human-readable origin for error messages (a path or a file name). */
  readonly name: string;
  /** Read exactly `length` bytes at `offset`; rejects with ModelFormatError past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Release the underlying file or buffer. */
  close(): void;
}

/**
 * Name, storage dtype and shape of one tensor.
 *
 * @example Count stories15M's parameters from its tensors' shapes
 * ```ts
 * import { LM_HEAD, openWeights, type TensorInfo } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const infos: TensorInfo[] = source.tensorNames().map((name) => source.info(name));
 * const stored = infos.filter((t) => t.name !== LM_HEAD); // tied: the LM head is the embedding table
 * const params = stored.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
 * // embedding 32000 x 288, 6 blocks of (2 norms of 288, 4 x 288 x 288, 3 x 768 x 288), final norm 288
 * assert.equal(params, 32000 * 288 + 6 * (2 * 288 + 4 * 288 * 288 + 3 * 768 * 288) + 288); // 15,191,712
 * assert.ok(infos.every((t) => t.dtype === "f32"));
 * source.close();
 * ```
 */
export interface TensorInfo {
  /** Canonical tensor name. */
  name: string;
  /** Storage dtype. */
  dtype: DType;
  /** Row-major shape, outermost first. */
  shape: number[];
}

/**
 * A checkpoint as the rest of owlgpu sees it: its config and its tensors, served one at a time under
 * canonical names (see `openWeights`).
 *
 * @example Your own WeightSource: stories15M with block 0's q projection replaced, loaded on the GPU
 * ```ts
 * import { Gpu, GpuModel, linearWeight, openWeights, readMatrix, type WeightSource } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const base = await openWeights("stories15M");
 * const q0 = linearWeight(0, "q"), zeros = new Float32Array(288 * 288);
 * const patched: WeightSource = {
 *   config: base.config, dtype: base.dtype, description: `${base.description}, q0 zeroed`,
 *   tensorNames: () => base.tensorNames(), has: (name) => base.has(name), info: (name) => base.info(name),
 *   readRaw: (name) => name === q0 ? Promise.resolve(new Uint8Array(zeros.buffer)) : base.readRaw(name),
 *   readF32: (name) => name === q0 ? Promise.resolve(zeros) : base.readF32(name),
 *   close: () => base.close(),
 * };
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, patched, { dtype: "f32" });
 * assert.ok((await readMatrix(gpu, model.blocks[0]!.linears.q)).every((x) => x === 0));
 * const k0 = await base.readF32(linearWeight(0, "k"));
 * assert.deepEqual(await readMatrix(gpu, model.blocks[0]!.linears.k), k0); // the rest comes from base
 * model.release();
 * patched.close();
 * gpu.destroy();
 * ```
 */
export interface WeightSource {
  /** The model's hyperparameters. */
  readonly config: ModelConfig;
  /** Storage dtype of the block linears (what an exporter writes by default). */
  readonly dtype: DType;
  /** Where it came from, for reports ("stories15M", a path). */
  readonly description: string;
  /** Canonical names of every tensor this source serves. */
  tensorNames(): string[];
  /** Whether this source serves a tensor named `name`. */
  has(name: string): boolean;
  /** Name, storage dtype and shape of a tensor this source serves. */
  info(name: string): TensorInfo;
  /** Raw little-endian bytes as stored (f16/bf16 stay 2 bytes per value). */
  readRaw(name: string): Promise<Uint8Array>;
  /** Values converted to f32. */
  readF32(name: string): Promise<Float32Array>;
  /** Release the underlying files. */
  close(): void;
}
