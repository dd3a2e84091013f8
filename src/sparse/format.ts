/**
 * Host-side sparse weight formats: what the sparse file stores and what {@linkcode uploadSparse}
 * turns into the GPU layouts of kernels/sparse_linear.ts. Everything here is plain TypeScript (no
 * GPU); packing is exact (`unpack(pack(W))` equals `W`, with f16 values equal to `W` rounded to
 * f16) and throws ArgumentError when a matrix does not fit the format.
 *
 * Two formats, both over a row-major `[rows, cols]` matrix whose zeros are the pruned weights:
 *
 * - **unstructured** (`UnstructuredSparse`): per row, a bitmap of the kept columns (u32 words,
 *   `ceil(cols / 32)` per row; bit `j` of word `w` is column `32 w + j`) and the kept values in
 *   column order, all rows concatenated; `rowOffsets[r]` is the index of row r's first value
 *   (`rows + 1` entries, the last one the total count). A kept value may be zero (an f32 value that
 *   rounds to an f16 zero stays kept), so the bitmap, not the value, says which weights are kept.
 * - **nm** (`NMSparse`): in every group of `group` consecutive columns (starting at column 0; a
 *   last group narrower than `group` when `cols % group != 0`), at most `keep` weights are nonzero.
 *   Each group stores exactly `keep` slots: a value and its position within the group (0 ..
 *   group-1). Slots of the nonzeros come first, in column order; unused slots hold the value 0
 *   and the lowest positions the nonzeros do not use (meaningless: readers skip zero slots). Positions are packed
 *   little-endian into bytes with `nmIndexBits(group)` bits each (2 for group <= 4, 4 for <= 16,
 *   else 8), each row's indices starting on a fresh byte: `indices` is `[rows, nmIndexBytesPerRow]`.
 *   Note the naming: `keep:group` counts the weights KEPT per group (2:4 keeps 2 of 4), the
 *   hardware convention; owlgpu's pruning pattern `{kind: "nm", n, m}` counts the PRUNED ones
 *   (`keep = m - n`), see {@linkcode nmFromPrunePattern}.
 *
 * Values are f32 or f16 (`Float16Array`, round-to-nearest-even from f32).
 * @module
 */
import { ArgumentError } from "../errors.ts";

/** Dtype of a sparse matrix's values. */
export type SparseValueDType = "f32" | "f16";
/** The values array of a sparse matrix (f32 or f16). */
export type SparseValues = Float32Array | Float16Array;

/**
 * A matrix with any pattern of zeros on the host: a bitmap of kept entries, row offsets and the kept values
 * in row-major order.
 */
export interface UnstructuredSparse {
  /** Discriminant. */
  format: "unstructured";
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Dtype of `values`. */
  dtype: SparseValueDType;
  /** `rows + 1` offsets into `values`. */
  rowOffsets: Uint32Array;
  /** `rows * bitmapWords(cols)` words, row-major. */
  bitmap: Uint32Array;
  /** The kept values, row-major, in column order within a row. */
  values: SparseValues;
}

/** An N:M matrix on the host: `keep` values and their packed positions for every group of `group` columns. */
export interface NMSparse {
  /** Discriminant. */
  format: "nm";
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Dtype of `values`. */
  dtype: SparseValueDType;
  /** Weights kept per group (the N of N:M). */
  keep: number;
  /** Group length (the M of N:M), 1..256. */
  group: number;
  /** `[rows, nmGroups(cols, group) * keep]` kept values (zeros in unused slots). */
  values: SparseValues;
  /** `[rows, nmIndexBytesPerRow(...)]` packed positions within each group. */
  indices: Uint8Array;
}

/** A packed sparse matrix on the host, unstructured or N:M. */
export type SparseMatrix = UnstructuredSparse | NMSparse;

/** u32 bitmap words per row. */
export function bitmapWords(cols: number): number {
  return Math.ceil(cols / 32);
}

/** Groups per row of an N:M matrix (the last one may be narrower). */
export function nmGroups(cols: number, group: number): number {
  return Math.ceil(cols / group);
}

/** Bits per stored position: 2 for groups of up to 4, 4 up to 16, else 8. */
export function nmIndexBits(group: number): 2 | 4 | 8 {
  if (!Number.isInteger(group) || group < 1 || group > 256) {
    throw new ArgumentError(`N:M group length must be an integer in 1..256, got ${group}`);
  }
  return group <= 4 ? 2 : group <= 16 ? 4 : 8;
}

/** Bytes of packed positions per row. */
export function nmIndexBytesPerRow(cols: number, keep: number, group: number): number {
  return Math.ceil(nmGroups(cols, group) * keep * nmIndexBits(group) / 8);
}

/** The format's `keep` from owlgpu's pruning pattern `{n, m}` (n pruned per m). */
export function nmFromPrunePattern(pattern: { n: number; m: number }): { keep: number; group: number } {
  return { keep: pattern.m - pattern.n, group: pattern.m };
}

function checkShape(data: ArrayLike<number>, rows: number, cols: number, what: string): void {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0) {
    throw new ArgumentError(`${what}: bad shape [${rows}, ${cols}]`);
  }
  if (data.length !== rows * cols) {
    throw new ArgumentError(`${what}: ${data.length} values for shape [${rows}, ${cols}]`);
  }
}

function newValues(dtype: SparseValueDType, n: number): SparseValues {
  if (dtype === "f32") return new Float32Array(n);
  if (dtype === "f16") return new Float16Array(n);
  throw new ArgumentError(`sparse values must be f32 or f16, got ${JSON.stringify(dtype)}`);
}

/**
 * Pack a dense `[rows, cols]` f32 matrix (zeros = pruned) into the unstructured format. Every
 * nonzero is kept (NaN too); with `dtype` f16 values are rounded to f16.
 */
export function packUnstructured(
  dense: Float32Array,
  rows: number,
  cols: number,
  dtype: SparseValueDType = "f32",
): UnstructuredSparse {
  checkShape(dense, rows, cols, "packUnstructured");
  const words = bitmapWords(cols);
  const bitmap = new Uint32Array(rows * words);
  const rowOffsets = new Uint32Array(rows + 1);
  let nnz = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      if (dense[base + c] !== 0) {
        bitmap[r * words + (c >>> 5)] |= 1 << (c & 31);
        nnz++;
      }
    }
    rowOffsets[r + 1] = nnz;
  }
  const values = newValues(dtype, nnz);
  let at = 0;
  for (let i = 0; i < dense.length; i++) if (dense[i] !== 0) values[at++] = dense[i];
  return { format: "unstructured", rows, cols, dtype, rowOffsets, bitmap, values };
}

/** Dense `[rows, cols]` f32 from the unstructured format (exact). */
export function unpackUnstructured(s: UnstructuredSparse): Float32Array {
  const { rows, cols, bitmap, values } = s;
  const words = bitmapWords(cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let v = s.rowOffsets[r];
    for (let w = 0; w < words; w++) {
      let b = bitmap[r * words + w];
      while (b !== 0) {
        const j = 31 - Math.clz32(b & -b);
        b &= b - 1;
        out[r * cols + w * 32 + j] = values[v++];
      }
    }
  }
  return out;
}

/** Columns of row r's kept values, in order (the GPU upload walks these). */
export function unstructuredRowColumns(s: UnstructuredSparse, r: number, out: Uint32Array): number {
  const words = bitmapWords(s.cols);
  let n = 0;
  for (let w = 0; w < words; w++) {
    let b = s.bitmap[r * words + w];
    while (b !== 0) {
      out[n++] = w * 32 + 31 - Math.clz32(b & -b);
      b &= b - 1;
    }
  }
  return n;
}

/**
 * Pack a dense `[rows, cols]` f32 matrix into `keep:group` N:M (at most `keep` nonzeros in every
 * group of `group` columns; ArgumentError naming the first group with more).
 */
export function packNM(
  dense: Float32Array,
  rows: number,
  cols: number,
  keep: number,
  group: number,
  dtype: SparseValueDType = "f32",
): NMSparse {
  checkShape(dense, rows, cols, "packNM");
  const bits = nmIndexBits(group);
  if (!Number.isInteger(keep) || keep < 1 || keep > group) {
    throw new ArgumentError(`N:M: keep must be an integer in 1..${group}, got ${keep}`);
  }
  const G = nmGroups(cols, group);
  const perRow = G * keep;
  const idxBytes = nmIndexBytesPerRow(cols, keep, group);
  const values = newValues(dtype, rows * perRow);
  const indices = new Uint8Array(rows * idxBytes);
  const pos = new Uint8Array(keep);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const c0 = g * group, width = Math.min(group, cols - c0);
      let k = 0;
      for (let j = 0; j < width; j++) {
        if (dense[r * cols + c0 + j] === 0) continue;
        if (k === keep) {
          throw new ArgumentError(
            `packNM: row ${r}, columns ${c0}..${c0 + width - 1} have more than ${keep} nonzeros; ` +
              `the matrix is not ${keep}:${group} sparse`,
          );
        }
        pos[k++] = j;
      }
      const kept = k;
      for (let j = 0; k < keep && j < group; j++) {
        let used = false;
        for (let q = 0; q < kept; q++) used ||= pos[q] === j;
        if (!used) pos[k++] = j;
      }
      for (let q = 0; q < keep; q++) {
        const e = g * keep + q;
        if (q < kept) values[r * perRow + e] = dense[r * cols + c0 + pos[q]];
        const bit = e * bits;
        indices[r * idxBytes + (bit >>> 3)] |= pos[q] << (bit & 7);
      }
    }
  }
  return { format: "nm", rows, cols, dtype, keep, group, values, indices };
}

/** Position within its group of kept slot `e` of row `r`. */
export function nmPosition(s: NMSparse, r: number, e: number): number {
  const bits = nmIndexBits(s.group);
  const bit = e * bits;
  const byte = s.indices[r * nmIndexBytesPerRow(s.cols, s.keep, s.group) + (bit >>> 3)];
  return (byte >>> (bit & 7)) & ((1 << bits) - 1);
}

/** Dense `[rows, cols]` f32 from N:M (exact: nonzero slots are written, zero slots are padding). */
export function unpackNM(s: NMSparse): Float32Array {
  const { rows, cols, keep, group, values } = s;
  const perRow = nmGroups(cols, group) * keep;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let e = 0; e < perRow; e++) {
      const v = values[r * perRow + e];
      if (v === 0) continue;
      const col = Math.floor(e / keep) * group + nmPosition(s, r, e);
      if (col >= cols) throw new ArgumentError(`unpackNM: row ${r} slot ${e} points past column ${cols - 1}`);
      out[r * cols + col] = v;
    }
  }
  return out;
}

/** Dense f32 from either format. */
export function unpackSparse(s: SparseMatrix): Float32Array {
  return s.format === "unstructured" ? unpackUnstructured(s) : unpackNM(s);
}

/** Kept values (nonzero or not) of a sparse matrix; N:M counts every slot. */
export function storedValues(s: SparseMatrix): number {
  return s.values.length;
}

/** Bytes the file stores for this matrix (all components, no alignment padding). */
export function sparseBytes(s: SparseMatrix): number {
  const vb = s.dtype === "f16" ? 2 : 4;
  if (s.format === "unstructured") {
    return s.rowOffsets.byteLength + s.bitmap.byteLength + s.values.length * vb;
  }
  return s.values.length * vb + s.indices.byteLength;
}

/** Fraction of zero weights the matrix represents (1 - kept nonzeros / rows*cols). */
export function sparsityOf(s: SparseMatrix): number {
  const total = s.rows * s.cols;
  if (total === 0) return 0;
  let nz = 0;
  for (let i = 0; i < s.values.length; i++) if (s.values[i] !== 0) nz++;
  return 1 - nz / total;
}
