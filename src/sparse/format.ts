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

/**
 * Dtype of a sparse matrix's values.
 *
 * @example f16 values take half the bytes and are rounded to f16
 * ```ts
 * import { packUnstructured, sparseBytes, type SparseValueDType } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = new Float32Array([0, 0.1, 2, 0]);
 * const dtypes: SparseValueDType[] = ["f32", "f16"];
 * const [f32, f16] = dtypes.map((dtype) => packUnstructured(dense, 2, 2, dtype));
 * assert(f32.values instanceof Float32Array && f16.values instanceof Float16Array);
 * assert.equal(f32.values[0], Math.fround(0.1));
 * assert.equal(f16.values[0], Math.f16round(0.1));
 * assert.equal(sparseBytes(f32) - sparseBytes(f16), 2 * 2); // 2 kept values, 2 bytes saved on each
 * ```
 */
export type SparseValueDType = "f32" | "f16";
/**
 * The values array of a sparse matrix (f32 or f16).
 *
 * @example The kept values of an f16 matrix, in row-major order
 * ```ts
 * import { packUnstructured, type SparseValues } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const values: SparseValues = packUnstructured(new Float32Array([0.1, 0, 0, 3]), 2, 2, "f16").values;
 * assert.equal(values.BYTES_PER_ELEMENT, 2);
 * assert.deepEqual(Array.from(values), [Math.f16round(0.1), 3]);
 * ```
 */
export type SparseValues = Float32Array | Float16Array;

/**
 * A matrix with any pattern of zeros on the host: a bitmap of kept entries, row offsets and the kept values
 * in row-major order.
 *
 * @example The matrix [[0, 1, 0], [2, 0, 3]] written out by hand
 * ```ts
 * import { packUnstructured, unpackUnstructured, type UnstructuredSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const s: UnstructuredSparse = {
 *   format: "unstructured", rows: 2, cols: 3, dtype: "f32",
 *   rowOffsets: Uint32Array.of(0, 1, 3), // row r's values are values[rowOffsets[r], rowOffsets[r + 1])
 *   bitmap: Uint32Array.of(0b010, 0b101), // bit j of a row's word: column j kept
 *   values: Float32Array.of(1, 2, 3),
 * };
 * assert.deepEqual(unpackUnstructured(s), Float32Array.of(0, 1, 0, 2, 0, 3));
 * assert.deepEqual(packUnstructured(unpackUnstructured(s), 2, 3), s);
 * ```
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

/**
 * An N:M matrix on the host: `keep` values and their packed positions for every group of `group` columns.
 *
 * @example The 2:4 row [1, 0, 0, 2 | 0, 3, 4, 0]: two values and two 2-bit positions per group
 * ```ts
 * import { type NMSparse, packNM, unpackNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(1, 0, 0, 2, 0, 3, 4, 0);
 * const s: NMSparse = packNM(dense, 1, 8, 2, 4);
 * assert.deepEqual([s.keep, s.group], [2, 4]);
 * assert.deepEqual([...s.values], [1, 2, 3, 4]);
 * // Positions 0, 3 | 1, 2, two bits each, packed little-endian into one byte.
 * assert.deepEqual([...s.indices], [0 | (3 << 2) | (1 << 4) | (2 << 6)]);
 * assert.deepEqual(unpackNM(s), dense);
 * ```
 */
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

/**
 * A packed sparse matrix on the host, unstructured or N:M.
 *
 * @example One function over both formats, told apart by `format`
 * ```ts
 * import { packNM, packUnstructured, type SparseMatrix, sparsityOf, unpackSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 1, 2, 0, 3, 0, 0, 4); // 2 x 4, and 2:4 sparse
 * const mats: SparseMatrix[] = [packUnstructured(dense, 2, 4), packNM(dense, 2, 4, 2, 4)];
 * const describe = (s: SparseMatrix) =>
 *   s.format === "nm" ? `${s.keep}:${s.group}` : `${s.values.length} kept`; // s narrowed by format
 * assert.deepEqual(mats.map(describe), ["4 kept", "2:4"]);
 * assert.deepEqual(mats.map(sparsityOf), [0.5, 0.5]);
 * for (const s of mats) assert.deepEqual(unpackSparse(s), dense);
 * ```
 */
export type SparseMatrix = UnstructuredSparse | NMSparse;

/**
 * u32 bitmap words per row.
 *
 * @example 33 columns take two words per row: column 32 is bit 0 of the second
 * ```ts
 * import { bitmapWords, packUnstructured } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([bitmapWords(32), bitmapWords(33)], [1, 2]);
 * const dense = new Float32Array(2 * 33);
 * dense[32] = 5; // row 0, column 32
 * const s = packUnstructured(dense, 2, 33);
 * assert.equal(s.bitmap.length, 2 * bitmapWords(33));
 * assert.deepEqual([...s.bitmap], [0, 1, 0, 0]);
 * ```
 */
export function bitmapWords(cols: number): number {
  return Math.ceil(cols / 32);
}

/**
 * Groups per row of an N:M matrix (the last one may be narrower).
 *
 * @example 10 columns in groups of 4: columns 0..3, 4..7 and a narrower 8..9
 * ```ts
 * import { nmGroups, packNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(nmGroups(10, 4), 3);
 * const s = packNM(Float32Array.of(1, 0, 0, 2, 0, 3, 0, 0, 4, 0), 1, 10, 2, 4);
 * assert.equal(s.values.length, nmGroups(10, 4) * 2); // 2 slots per group
 * assert.deepEqual([...s.values], [1, 2, 3, 0, 4, 0]); // unused slots hold 0
 * ```
 */
export function nmGroups(cols: number, group: number): number {
  return Math.ceil(cols / group);
}

/**
 * Bits per stored position: 2 for groups of up to 4, 4 up to 16, else 8.
 *
 * @example Enough bits for every position 0..group-1
 * ```ts
 * import { ArgumentError, nmIndexBits } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([4, 8, 16, 17, 256].map(nmIndexBits), [2, 4, 4, 8, 8]);
 * for (let group = 1; group <= 256; group++) assert(2 ** nmIndexBits(group) >= group);
 * assert.throws(() => nmIndexBits(257), ArgumentError);
 * ```
 */
export function nmIndexBits(group: number): 2 | 4 | 8 {
  if (!Number.isInteger(group) || group < 1 || group > 256) {
    throw new ArgumentError(`N:M group length must be an integer in 1..256, got ${group}`);
  }
  return group <= 4 ? 2 : group <= 16 ? 4 : 8;
}

/**
 * Bytes of packed positions per row.
 *
 * @example 10 columns at 2:4: 3 groups x 2 slots x 2 bits = 12 bits, so 2 bytes per row
 * ```ts
 * import { nmIndexBytesPerRow, packNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(nmIndexBytesPerRow(10, 2, 4), 2);
 * const s = packNM(new Float32Array(3 * 10), 3, 10, 2, 4);
 * assert.equal(s.indices.length, 3 * nmIndexBytesPerRow(10, 2, 4));
 * ```
 */
export function nmIndexBytesPerRow(cols: number, keep: number, group: number): number {
  return Math.ceil(nmGroups(cols, group) * keep * nmIndexBits(group) / 8);
}

/**
 * The format's `keep` from owlgpu's pruning pattern `{n, m}` (n pruned per m).
 *
 * @example Pruning 1 of every 4 keeps 3 of 4
 * ```ts
 * import { nmFromPrunePattern, packNM, unpackNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const { keep, group } = nmFromPrunePattern({ n: 1, m: 4 });
 * assert.deepEqual([keep, group], [3, 4]);
 * const dense = Float32Array.of(1, 2, 0, 3, 0, 4, 5, 6); // one zero in each group of 4
 * assert.deepEqual(unpackNM(packNM(dense, 1, 8, keep, group)), dense);
 * ```
 */
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
 *
 * @example Pack [[0, 1, 0], [2, 0, 3]]
 * ```ts
 * import { packUnstructured } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const s = packUnstructured(Float32Array.of(0, 1, 0, 2, 0, 3), 2, 3);
 * assert.deepEqual([...s.rowOffsets], [0, 1, 3]); // row 0 has 1 value, row 1 has 2
 * assert.deepEqual([...s.bitmap], [0b010, 0b101]); // bit j: column j kept
 * assert.deepEqual([...s.values], [1, 2, 3]);
 * ```
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

/**
 * The first row of an unstructured bitmap [rows, bitmapWords(cols)] that sets bits past the last
 * column (`stray`), or whose bit count disagrees with `rowOffsets[r + 1] - rowOffsets[r]` (`count`:
 * the bits it has); undefined when every row agrees. Both the matrix check and the sparse file
 * reader rely on it.
 */
export function bitmapRowError(
  bitmap: Uint32Array,
  rowOffsets: Uint32Array,
  rows: number,
  cols: number,
): { row: number; stray: boolean; count: number } | undefined {
  const words = bitmapWords(cols);
  for (let r = 0; r < rows; r++) {
    let count = 0;
    for (let w = 0; w < words; w++) {
      let b = bitmap[r * words + w];
      if (w === words - 1 && cols % 32 !== 0 && b >>> (cols % 32) !== 0) {
        return { row: r, stray: true, count };
      }
      b = b - ((b >>> 1) & 0x55555555); // popcount
      b = (b & 0x33333333) + ((b >>> 2) & 0x33333333);
      count += Math.imul((b + (b >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
    }
    if (rowOffsets[r + 1] !== rowOffsets[r] + count) return { row: r, stray: false, count };
  }
  return undefined;
}

/**
 * Throw {@linkcode ArgumentError} unless `s` is a well-formed sparse matrix: a known format and
 * dtype, an integer shape, and arrays whose lengths and contents agree with it (unstructured: row
 * offsets that start at 0 and follow the bitmap's counts up to the number of values, no bitmap bits
 * past the last column; N:M: a valid `keep:group` and one slot and position a kept value). Without
 * it a hand-built or truncated matrix would unpack or upload as NaN or shifted values.
 */
export function checkSparseMatrix(s: SparseMatrix, fn: string): void {
  const bad = (what: string) => new ArgumentError(`${fn}: malformed sparse matrix: ${what}`);
  const format: string | undefined = (s as { format?: string } | undefined)?.format;
  if (format !== "unstructured" && format !== "nm") {
    throw bad(`format must be "unstructured" or "nm", got ${JSON.stringify(format)}`);
  }
  const { rows, cols } = s;
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0) {
    throw bad(`shape [${rows}, ${cols}] is not two integers >= 0`);
  }
  if (s.dtype !== "f32" && s.dtype !== "f16") {
    throw bad(`dtype must be "f32" or "f16", got ${JSON.stringify(s.dtype)}`);
  }
  if (s.format === "unstructured") {
    const words = bitmapWords(cols);
    if (s.rowOffsets?.length !== rows + 1) {
      throw bad(`rowOffsets has ${s.rowOffsets?.length} entries, want rows + 1 = ${rows + 1}`);
    }
    if (s.bitmap?.length !== rows * words) {
      throw bad(`bitmap has ${s.bitmap?.length} words, want ${rows} x ${words}`);
    }
    if (s.rowOffsets[0] !== 0) throw bad(`rowOffsets[0] is ${s.rowOffsets[0]}, not 0`);
    const e = bitmapRowError(s.bitmap, s.rowOffsets, rows, cols);
    if (e?.stray) throw bad(`row ${e.row} has bitmap bits past column ${cols - 1}`);
    if (e) {
      throw bad(
        `rowOffsets[${e.row + 1}] is ${
          s.rowOffsets[e.row + 1]
        } but row ${e.row}'s bitmap has ${e.count} bits`,
      );
    }
    if (s.values?.length !== s.rowOffsets[rows]) {
      throw bad(`${s.values?.length} values but the bitmap keeps ${s.rowOffsets[rows]}`);
    }
    return;
  }
  nmIndexBits(s.group);
  if (!Number.isInteger(s.keep) || s.keep < 1 || s.keep > s.group) {
    throw bad(`keep must be an integer in 1..${s.group}, got ${s.keep}`);
  }
  const slots = rows * nmGroups(cols, s.group) * s.keep,
    idx = rows * nmIndexBytesPerRow(cols, s.keep, s.group);
  if (s.values?.length !== slots) throw bad(`${s.values?.length} values, want ${slots} slots`);
  if (s.indices?.length !== idx) throw bad(`${s.indices?.length} index bytes, want ${idx}`);
}

/**
 * Dense `[rows, cols]` f32 from the unstructured format (exact).
 *
 * @example Round trips: exact in f32, values rounded to f16 in f16
 * ```ts
 * import { packUnstructured, unpackUnstructured } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0.1, 0, 0, -2);
 * assert.deepEqual(unpackUnstructured(packUnstructured(dense, 2, 2)), dense);
 * const half = unpackUnstructured(packUnstructured(dense, 2, 2, "f16"));
 * assert.deepEqual([...half], [Math.f16round(0.1), 0, 0, -2]);
 * ```
 */
export function unpackUnstructured(s: UnstructuredSparse): Float32Array {
  checkSparseMatrix(s, "unpackUnstructured");
  return unstructuredToDense(s);
}

/** unpackUnstructured's work, on a matrix already checked. */
function unstructuredToDense(s: UnstructuredSparse): Float32Array {
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
 *
 * @example Pack a 2 x 4 matrix as 2:4, and refuse one that is not 2:4
 * ```ts
 * import { ArgumentError, packNM, unpackNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 5, 0, 6, 7, 0, 0, 8);
 * const s = packNM(dense, 2, 4, 2, 4);
 * assert.deepEqual([...s.values], [5, 6, 7, 8]);
 * assert.deepEqual(unpackNM(s), dense);
 * // Three nonzeros in a group of 4:
 * assert.throws(() => packNM(Float32Array.of(1, 2, 3, 0), 1, 4, 2, 4), ArgumentError);
 * ```
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

/**
 * Dense `[rows, cols]` f32 from N:M (exact: nonzero slots are written, zero slots are padding).
 *
 * @example 9 columns at 2:4, the last group one column wide
 * ```ts
 * import { packNM, unpackNM } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(1, 0, 0, 2, 0, 0, 3, 0, 4);
 * const s = packNM(dense, 1, 9, 2, 4);
 * assert.deepEqual([...s.values], [1, 2, 3, 0, 4, 0]);
 * assert.deepEqual(unpackNM(s), dense);
 * ```
 */
export function unpackNM(s: NMSparse): Float32Array {
  checkSparseMatrix(s, "unpackNM");
  return nmToDense(s);
}

/** unpackNM's work, on a matrix already checked. */
function nmToDense(s: NMSparse): Float32Array {
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

/**
 * Dense f32 from either format.
 *
 * @example The same matrix, packed both ways, unpacks to the same dense array
 * ```ts
 * import { packNM, packUnstructured, unpackSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 1, 2, 0, 3, 0, 0, 4);
 * assert.deepEqual(unpackSparse(packUnstructured(dense, 2, 4)), dense);
 * assert.deepEqual(unpackSparse(packNM(dense, 2, 4, 2, 4)), dense);
 * ```
 */
export function unpackSparse(s: SparseMatrix): Float32Array {
  checkSparseMatrix(s, "unpackSparse");
  return s.format === "unstructured" ? unstructuredToDense(s) : nmToDense(s);
}

/** Kept values (nonzero or not) of a sparse matrix; N:M counts every slot. */
export function storedValues(s: SparseMatrix): number {
  return s.values.length;
}

/**
 * Bytes the file stores for this matrix (all components, no alignment padding).
 *
 * @example [[0, 1, 0], [2, 0, 3]]: row offsets, bitmap and values
 * ```ts
 * import { packNM, packUnstructured, sparseBytes } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(0, 1, 0, 2, 0, 3);
 * assert.equal(sparseBytes(packUnstructured(dense, 2, 3)), 3 * 4 + 2 * 4 + 3 * 4);
 * assert.equal(sparseBytes(packUnstructured(dense, 2, 3, "f16")), 3 * 4 + 2 * 4 + 3 * 2);
 * // 2:4 over 1 x 8: 4 slots of f32 and one byte of positions
 * assert.equal(sparseBytes(packNM(Float32Array.of(1, 0, 0, 2, 0, 3, 4, 0), 1, 8, 2, 4)), 4 * 4 + 1);
 * ```
 */
export function sparseBytes(s: SparseMatrix): number {
  const vb = s.dtype === "f16" ? 2 : 4;
  if (s.format === "unstructured") {
    return s.rowOffsets.byteLength + s.bitmap.byteLength + s.values.length * vb;
  }
  return s.values.length * vb + s.indices.byteLength;
}

/**
 * Fraction of zero weights the matrix represents (1 - kept nonzeros / rows*cols).
 *
 * @example 3 of 8 weights kept; N:M counts only its nonzero slots
 * ```ts
 * import { packNM, packUnstructured, sparsityOf } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dense = Float32Array.of(1, 0, 0, 0, 2, 3, 0, 0);
 * assert.equal(sparsityOf(packUnstructured(dense, 2, 4)), 1 - 3 / 8);
 * assert.equal(sparsityOf(packNM(dense, 1, 8, 2, 4)), 1 - 3 / 8); // 4 slots, one of them padding
 * ```
 */
export function sparsityOf(s: SparseMatrix): number {
  const total = s.rows * s.cols;
  if (total === 0) return 0;
  let nz = 0;
  for (let i = 0; i < s.values.length; i++) if (s.values[i] !== 0) nz++;
  return 1 - nz / total;
}
