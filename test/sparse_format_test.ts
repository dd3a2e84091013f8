/**
 * Sparse formats on the host: exact pack/unpack (unstructured and N:M, f32 and f16 values) on
 * uneven shapes, the sparse safetensors file (round trip, layout, atomic write, corruption
 * detection), the model directory round trip, and the size target: stories15M pruned to 70%
 * stores its linears in at most 45% of their dense f32 bytes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArgumentError, ModelFormatError } from "../src/errors.ts";
import { MemoryByteSource } from "../src/model/bytes.ts";
import { LINEARS } from "../src/model/config.ts";
import { interleavedToHalf } from "../src/model/export.ts";
import { linearWeight } from "../src/model/names.ts";
import { openWeights } from "../src/model/open.ts";
import {
  nmIndexBits,
  packNM,
  packUnstructured,
  sparseBytes,
  type SparseMatrix,
  unpackNM,
  unpackSparse,
  unpackUnstructured,
} from "../src/sparse/format.ts";
import {
  encodeSparseSafetensors,
  SPARSE_FORMAT_VERSION,
  SPARSE_META_TENSORS,
  SPARSE_META_VERSION,
  SparseSafetensorsFile,
  writeSparseSafetensors,
} from "../src/sparse/file.ts";
import { loadSparseModel, saveSparseModel, SPARSE_MODEL_FILE } from "../src/sparse/model.ts";
import { randomArray, rng } from "./ref/kernels_ref.ts";

function randomSparse(rows: number, cols: number, seed: number, sparsity: number): Float32Array {
  const W = randomArray(rows * cols, seed);
  const r = rng(seed + 1);
  for (let i = 0; i < rows; i++) {
    const s = i === 0 ? 1 : i === 1 ? 0 : sparsity;
    for (let c = 0; c < cols; c++) if (r() < s) W[i * cols + c] = 0;
  }
  return W;
}

function randomNM(rows: number, cols: number, keep: number, group: number, seed: number): Float32Array {
  const W = randomArray(rows * cols, seed);
  const r = rng(seed + 2);
  for (let i = 0; i < rows; i++) {
    for (let c0 = 0; c0 < cols; c0 += group) {
      const width = Math.min(group, cols - c0);
      const order = Array.from({ length: width }, (_, j) => j).sort(() => r() - 0.5);
      const kept = Math.floor(r() * (keep + 1)); // 0..keep nonzeros
      for (let q = kept; q < width; q++) W[i * cols + c0 + order[q]] = 0;
    }
  }
  return W;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i]) && !(a[i] === 0 && b[i] === 0)) {
      assert.fail(`${what}: element ${i}: ${a[i]} != ${b[i]}`);
    }
  }
}

const f16Round = (w: Float32Array) => Float32Array.from(Float16Array.from(w));

Deno.test("unstructured: exact pack/unpack, f32 and f16, uneven shapes, empty and dense rows", () => {
  for (
    const [rows, cols, s] of [[7, 45, 0.7], [3, 32, 0.5], [5, 1, 0.5], [9, 100, 0.95], [0, 10, 0.5], [
      4,
      0,
      0.5,
    ]]
  ) {
    const W = randomSparse(rows, cols, rows * 7 + cols, s);
    const p = packUnstructured(W, rows, cols);
    assert.equal(p.rowOffsets[rows], W.filter((v) => v !== 0).length);
    sameBits(unpackUnstructured(p), W, `f32 ${rows}x${cols}`);
    const h = packUnstructured(W, rows, cols, "f16");
    assert(h.values instanceof Float16Array);
    sameBits(unpackUnstructured(h), f16Round(W), `f16 ${rows}x${cols}`);
  }
  // A value below f16's range stays kept (its bit is set) and unpacks to the f16 rounding, 0.
  const tiny = packUnstructured(new Float32Array([1e-9, 0, 2, 0]), 2, 2, "f16");
  assert.equal(tiny.rowOffsets[2], 2);
  sameBits(unpackUnstructured(tiny), new Float32Array([0, 0, 2, 0]), "tiny");
  assert.throws(() => packUnstructured(new Float32Array(5), 2, 2), ArgumentError);
});

Deno.test("N:M: exact pack/unpack for 2:4, 1:3 (partial groups), 3:8, 5:20; violations refused", () => {
  for (
    const [keep, group, rows, cols] of [[2, 4, 6, 36], [1, 3, 5, 22], [3, 8, 4, 70], [5, 20, 3, 90], [
      4,
      4,
      2,
      8,
    ]]
  ) {
    const W = randomNM(rows, cols, keep, group, keep * 10 + group);
    for (const dtype of ["f32", "f16"] as const) {
      const p = packNM(W, rows, cols, keep, group, dtype);
      assert.equal(p.values.length, rows * Math.ceil(cols / group) * keep);
      assert.equal(
        p.indices.length,
        rows * Math.ceil(Math.ceil(cols / group) * keep * nmIndexBits(group) / 8),
      );
      sameBits(unpackNM(p), dtype === "f32" ? W : f16Round(W), `${keep}:${group} ${dtype}`);
    }
  }
  assert.equal(nmIndexBits(4), 2);
  assert.equal(nmIndexBits(16), 4);
  assert.equal(nmIndexBits(17), 8);
  // 3 nonzeros in a group of 4 is not 2:4.
  assert.throws(() => packNM(new Float32Array([1, 2, 3, 0]), 1, 4, 2, 4), /not 2:4 sparse/);
  assert.throws(() => packNM(new Float32Array(4), 1, 4, 5, 4), ArgumentError);
  assert.throws(() => packNM(new Float32Array(4), 1, 4, 1, 300), ArgumentError);
});

function sameMatrix(a: SparseMatrix, b: SparseMatrix, what: string): void {
  assert.equal(a.format, b.format, what);
  assert.equal(a.dtype, b.dtype, what);
  assert.deepEqual([a.rows, a.cols], [b.rows, b.cols], what);
  sameBits(Float32Array.from(a.values), Float32Array.from(b.values), `${what} values`);
  if (a.format === "unstructured" && b.format === "unstructured") {
    assert.deepEqual(a.bitmap, b.bitmap, what);
    assert.deepEqual(a.rowOffsets, b.rowOffsets, what);
  } else if (a.format === "nm" && b.format === "nm") {
    assert.deepEqual([a.keep, a.group], [b.keep, b.group], what);
    assert.deepEqual(a.indices, b.indices, what);
  }
}

function sampleEntries() {
  const u32 = packUnstructured(randomSparse(9, 70, 1, 0.7), 9, 70);
  const u16 = packUnstructured(randomSparse(5, 33, 2, 0.5), 5, 33, "f16");
  const nm = packNM(randomNM(4, 30, 2, 4, 3), 4, 30, 2, 4, "f16");
  const nm8 = packNM(randomNM(3, 41, 3, 7, 4), 3, 41, 3, 7);
  const dense = randomArray(6, 5);
  return {
    mats: { "a.weight": u32, "b.weight": u16, "c.weight": nm, "d.weight": nm8 } as Record<
      string,
      SparseMatrix
    >,
    dense,
    entries: [
      { name: "norm.weight", dtype: "f32" as const, shape: [6], data: new Uint8Array(dense.buffer) },
      { name: "a.weight", matrix: u32 },
      {
        name: "b.weight",
        matrix: () => u16,
        layout: {
          format: "unstructured" as const,
          rows: 5,
          cols: 33,
          dtype: "f16" as const,
          nnz: u16.values.length,
        },
      },
      { name: "c.weight", matrix: nm },
      { name: "d.weight", matrix: nm8 },
    ],
  };
}

Deno.test("unpack: malformed hand-built matrices are refused, not unpacked as NaN or shifted values", () => {
  const s = packUnstructured(Float32Array.of(1, 0, 0, 2, 0, 3, 0, 0), 2, 4);
  const bad = (m: SparseMatrix, re: RegExp) =>
    assert.throws(() => unpackSparse(m), (e: Error) => e instanceof ArgumentError && re.test(e.message));
  bad({ ...s, values: s.values.subarray(0, 2) }, /malformed sparse matrix: 2 values but the bitmap keeps 3/);
  bad({ ...s, bitmap: s.bitmap.subarray(0, 1) }, /bitmap has 1 words, want 2 x 1/);
  bad({ ...s, rowOffsets: Uint32Array.of(0, 9, 9) }, /rowOffsets\[1\] is 9 but row 0's bitmap has 2 bits/);
  bad({ ...s, bitmap: Uint32Array.of(s.bitmap[0] | 1 << 10, s.bitmap[1]) }, /bitmap bits past column 3/);
  bad({ ...s, format: "csr" } as unknown as SparseMatrix, /format must be "unstructured" or "nm"/);
  const n = packNM(Float32Array.of(1, 0, 0, 0, 0, 1, 0, 0), 2, 4, 1, 4);
  bad({ ...n, values: n.values.subarray(0, 1) }, /1 values, want 2 slots/);
  bad({ ...n, indices: n.indices.subarray(0, 1) }, /1 index bytes, want 2/);
  assert.throws(() => unpackNM({ ...n, keep: 5 }), /keep must be an integer in 1\.\.4/);
  assert.throws(() => unpackUnstructured({ ...s, values: s.values.subarray(0, 1) }), ArgumentError);
});

Deno.test("sparse file: round trip, safetensors layout (no holes, aligned arrays), metadata", async () => {
  const { mats, dense, entries } = sampleEntries();
  const bytes = await encodeSparseSafetensors(entries, { note: "hello" });
  const f = await SparseSafetensorsFile.open(new MemoryByteSource(bytes, "mem"));
  assert.deepEqual(f.sparseNames().sort(), Object.keys(mats).sort());
  assert.deepEqual(f.denseNames(), ["norm.weight"]);
  assert.equal(f.metadata.note, "hello");
  for (const [name, m] of Object.entries(mats)) sameMatrix(await f.readSparse(name), m, name);
  sameBits(await f.readF32("norm.weight"), dense, "dense");
  // Plain safetensors structure: header length, JSON, arrays tiling the data section in order.
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const arrays = Object.entries(header).filter(([k]) => k !== "__metadata__") as [
    string,
    { dtype: string; data_offsets: [number, number] },
  ][];
  arrays.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let at = 0;
  const size: Record<string, number> = { F32: 4, U32: 4, F16: 2, U8: 1 };
  for (const [name, a] of arrays) {
    assert.equal(a.data_offsets[0], at, `${name} follows the previous array`);
    assert.equal(a.data_offsets[0] % size[a.dtype], 0, `${name} is aligned`);
    at = a.data_offsets[1];
  }
  assert.equal(at, bytes.byteLength - 8 - n);
  assert.equal(header["c.weight.indices"].dtype, "U8");
  assert.equal(header["a.weight.bitmap"].dtype, "U32");
  assert.deepEqual(JSON.parse(header.__metadata__["owlgpu.sparse.tensors"])["c.weight"], {
    format: "nm",
    shape: [4, 30],
    dtype: "F16",
    keep: 2,
    group: 4,
  });
});

Deno.test("sparse file: atomic write, corrupt files refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { mats, entries } = sampleEntries();
    const path = join(dir, "m.sparse.safetensors");
    await writeSparseSafetensors(path, entries);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.sparse.safetensors"]);
    const bytes = await Deno.readFile(path);
    assert.deepEqual(bytes, await encodeSparseSafetensors(entries));
    // A failing lazy entry leaves nothing behind and the old file intact.
    await assert.rejects(
      writeSparseSafetensors(path, [{ ...entries[2], matrix: () => mats["a.weight"] }] as typeof entries),
      ArgumentError,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.sparse.safetensors"]);
    assert.deepEqual(await Deno.readFile(path), bytes);
    // Truncated.
    await assert.rejects(
      SparseSafetensorsFile.open(new MemoryByteSource(bytes.slice(0, bytes.length - 3), "t")),
      ModelFormatError,
    );
    // One bitmap bit flipped: row_offsets no longer agree.
    const f = await SparseSafetensorsFile.open(new MemoryByteSource(bytes, "ok"));
    const bm = f.array("a.weight.bitmap");
    const bad = bytes.slice();
    bad[bm.offset] ^= 1;
    const g = await SparseSafetensorsFile.open(new MemoryByteSource(bad, "bad"));
    await assert.rejects(g.readSparse("a.weight"), /row_offsets disagree/);
    // Not a sparse file (a plain safetensors header).
    const plain = new TextEncoder().encode('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    const buf = new Uint8Array(8 + plain.length + 4);
    new DataView(buf.buffer).setBigUint64(0, BigInt(plain.length), true);
    buf.set(plain, 8);
    await assert.rejects(
      SparseSafetensorsFile.open(new MemoryByteSource(buf, "plain")),
      /not an owlgpu sparse file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sparse file: a tensors description that is not a JSON object is a ModelFormatError", async () => {
  for (const described of ["null", "5", '"x"', "[]"]) {
    const header = new TextEncoder().encode(JSON.stringify({
      __metadata__: { [SPARSE_META_VERSION]: SPARSE_FORMAT_VERSION, [SPARSE_META_TENSORS]: described },
    }));
    const buf = new Uint8Array(8 + header.length);
    new DataView(buf.buffer).setBigUint64(0, BigInt(header.length), true);
    buf.set(header, 8);
    await assert.rejects(
      SparseSafetensorsFile.open(new MemoryByteSource(buf, "meta")),
      (e: Error) =>
        e instanceof ModelFormatError && /owlgpu\.sparse\.tensors must be a JSON object/.test(e.message),
      described,
    );
  }
});

/** Zero the `s` smallest-magnitude fraction of each row (Wanda without activations). */
function pruneRows(w: Float32Array, rows: number, cols: number, s: number): Float32Array {
  const out = w.slice();
  const k = Math.round(s * cols);
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * cols, (r + 1) * cols);
    const order = Array.from(row.keys()).sort((a, b) => Math.abs(row[a]) - Math.abs(row[b]));
    for (let q = 0; q < k; q++) row[order[q]] = 0;
  }
  return out;
}

Deno.test("stories15M at 70%: sparse linears <= 45% of dense f32; model directory round trip", async () => {
  const source = await openWeights("stories15M");
  const dir = await Deno.makeTempDir();
  try {
    const c = source.config;
    const weights = new Map<string, Float32Array>();
    for (let l = 0; l < c.nLayers; l++) {
      for (const lin of LINEARS) {
        const name = linearWeight(l, lin);
        const [rows, cols] = source.info(name).shape;
        weights.set(name, pruneRows(await source.readF32(name), rows, cols, 0.7));
      }
    }
    const out = join(dir, "stories15M-70");
    const summary = await saveSparseModel(out, source, weights, {
      extraFiles: { "tokenizer.bin": new Uint8Array([1, 2]) },
    });
    assert(summary.ratio <= 0.45, `sparse linears take ${(100 * summary.ratio).toFixed(1)}% of dense f32`);
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "config.json",
      SPARSE_MODEL_FILE,
      "tokenizer.bin",
    ]);
    const model = await loadSparseModel(out);
    try {
      assert.equal(model.sparseNames().length, c.nLayers * LINEARS.length);
      assert.equal(model.config.dim, c.dim);
      assert.equal(model.config.ropeLayout, "half");
      let bytes = 0;
      for (const name of model.sparseNames()) bytes += sparseBytes(await model.readSparse(name));
      assert.equal(bytes, summary.sparseBytes);
      // Rows other than q/k are stored in the source's order; q/k rows are permuted to rotate-half.
      const down = linearWeight(3, "down");
      sameBits(await model.readF32(down), weights.get(down)!, down);
      const qName = linearWeight(0, "q");
      const [qRows, qCols] = source.info(qName).shape;
      sameBits(
        await model.readF32(qName),
        interleavedToHalf(weights.get(qName)!, qRows, qCols, c.headDim),
        qName,
      );
      sameBits(await model.readF32("model.norm.weight"), await source.readF32("model.norm.weight"), "norm");
    } finally {
      model.close();
    }
    console.log(
      `stories15M 70%: sparse linears ${
        (100 * summary.ratio).toFixed(1)
      }% of dense f32 (${summary.sparseBytes} B)`,
    );
  } finally {
    source.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sparse model: f16 values past 65504 are refused naming the fix; f32 keeps them", async () => {
  const source = await openWeights("stories15M");
  const dir = await Deno.makeTempDir();
  try {
    const name = linearWeight(0, "down");
    const w = (await source.readF32(name)).map((v, i) => (i % 2 ? 0 : v));
    w[4] = 1e5;
    await assert.rejects(
      () => saveSparseModel(join(dir, "f16"), source, { [name]: w }, { dtype: "f16" }),
      /saveSparseModel: model\.layers\.0\.mlp\.down_proj\.weight\[4\] = 100000 is beyond f16's range .*--sparse-dtype f32/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
    await saveSparseModel(join(dir, "f32"), source, { [name]: w }, { dtype: "f32" });
    const model = await loadSparseModel(join(dir, "f32"));
    assert.equal((await model.readF32(name))[4], 1e5);
    model.close();
  } finally {
    source.close();
    await Deno.remove(dir, { recursive: true });
  }
});
