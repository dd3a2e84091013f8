/**
 * The interface between checkpoint files and everything else. A WeightSource serves one tensor at
 * a time under canonical names (names.ts), so a model larger than memory can be walked block by
 * block. Byte access goes through ByteSource so browsers can pass a File or an ArrayBuffer.
 * @module
 */
import type { DType, ModelConfig } from "./config.ts";

/** Random access to the bytes of one file (Deno file, browser File, or an in-memory buffer). */
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

/** Name, storage dtype and shape of one tensor. */
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
