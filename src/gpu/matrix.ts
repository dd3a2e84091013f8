/**
 * A weight matrix on the GPU, split transparently into row chunks so that no binding exceeds
 * the adapter's maxStorageBufferBindingSize (128 MiB on lavapipe; one LLaMA-7B embedding table
 * in f32 is 500 MiB). Kernels run once per chunk.
 * @module
 */
import type { GpuDType } from "../../kernels/common.ts";
import type { Gpu } from "./device.ts";

/** One row chunk of a {@linkcode GpuMatrix}: rows `rowStart .. rowStart + rows - 1` in their own buffer. */
export interface MatrixChunk {
  /** The chunk's values, row-major [rows, cols] in the matrix's dtype. */
  buffer: GPUBuffer;
  /** First row of the matrix held by this chunk. */
  rowStart: number;
  /** Rows in this chunk. */
  rows: number;
}

/**
 * A row-major weight matrix on the GPU, split into row chunks that each fit one binding (see {@linkcode
 * uploadMatrix}).
 */
export interface GpuMatrix {
  /** Total rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Storage dtype of the values. */
  dtype: GpuDType;
  /** The row chunks, in row order. */
  chunks: MatrixChunk[];
}

/** Rows per chunk so that a chunk fits one binding (and stays a multiple of 4 bytes). */
export function rowsPerChunk(gpu: Gpu, cols: number, bytesPerValue: number): number {
  return Math.max(1, Math.floor(gpu.maxBinding / (cols * bytesPerValue)));
}

/**
 * Upload a row-major [rows, cols] f32 matrix as `dtype` (f16 only where the device has it).
 * @param maxRowsPerChunk override for tests (forces chunking on small matrices).
 */
export function uploadMatrix(
  gpu: Gpu,
  data: Float32Array,
  rows: number,
  cols: number,
  label: string,
  dtype: GpuDType = "f32",
  maxRowsPerChunk?: number,
): GpuMatrix {
  const bpv = dtype === "f16" ? 2 : 4;
  const per = Math.min(maxRowsPerChunk ?? Infinity, rowsPerChunk(gpu, cols, bpv));
  const chunks: MatrixChunk[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    const slice = data.subarray(r0 * cols, (r0 + n) * cols);
    const view = dtype === "f16" ? new Float16Array(slice) : slice; // round-to-nearest-even
    chunks.push({ buffer: gpu.upload(view, `${label}[${r0}:${r0 + n}]`), rowStart: r0, rows: n });
  }
  return { rows, cols, dtype, chunks };
}

/** Release every chunk's buffer and empty `chunks`; `undefined` is a no-op. */
export function releaseMatrix(gpu: Gpu, m: GpuMatrix | undefined): void {
  if (!m) return;
  for (const c of m.chunks) gpu.release(c.buffer);
  m.chunks = [];
}

/** Read a matrix back as f32 (tests, exporters). */
export async function readMatrix(gpu: Gpu, m: GpuMatrix): Promise<Float32Array> {
  const out = new Float32Array(m.rows * m.cols);
  for (const c of m.chunks) {
    const bytes = await gpu.read(c.buffer, 0, c.rows * m.cols * (m.dtype === "f16" ? 2 : 4));
    const values = m.dtype === "f32" ? new Float32Array(bytes) : new Float16Array(bytes);
    out.set(values, c.rowStart * m.cols);
  }
  return out;
}
