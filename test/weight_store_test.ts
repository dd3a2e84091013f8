/**
 * Stores of pruned weights (src/prune/store.ts, src/prune/file_store.ts): the zero-skipping codec is
 * exact to the bit on uneven lengths and refuses corrupt records; the file store reads back what it
 * was given, in any order and concurrently, and deletes its file; prune() puts each block's linears
 * into the store as the block finishes, so nothing but the store holds the model's pruned weights.
 * @module
 */
import assert from "node:assert/strict";
import { ArgumentError, ModelFormatError, OutputError } from "../src/errors.ts";
import { Gpu } from "../src/gpu/device.ts";
import { LINEARS } from "../src/model/config.ts";
import { llama2cConfig } from "../src/model/llama2c.ts";
import { FileWeightStore } from "../src/prune/file_store.ts";
import { prune } from "../src/prune/pipeline.ts";
import { decodeZeroSkipping, encodeZeroSkipping, MemoryWeightStore } from "../src/prune/store.ts";
import { memoryWeights, randomRefModel, refModelTensors } from "./ref/forward_ref.ts";
import { rng } from "./ref/kernels_ref.ts";

/** Random weights with about `zeros` of them +0, a few -0, and one of f32's smallest subnormals. */
function randomWeights(n: number, zeros: number, seed: number): Float32Array {
  const r = rng(seed);
  const w = Float32Array.from({ length: n }, () => (r() < zeros ? 0 : r() * 2 - 1));
  if (n > 3) [w[1], w[n - 2]] = [-0, 1e-45];
  return w;
}

function bits(w: Float32Array): Uint32Array {
  return new Uint32Array(w.buffer, w.byteOffset, w.length);
}

Deno.test("zero-skipping codec: exact to the bit on uneven lengths; size is bitmap + kept words", () => {
  for (
    const [n, zeros, seed] of [
      [0, 0.5, 1],
      [1, 0, 2],
      [1, 1, 3],
      [31, 0.5, 4],
      [32, 0.7, 5],
      [33, 0.9, 6],
      [
        1007,
        0.5,
        7,
      ],
      [4099, 0, 8],
      [4099, 1, 9],
    ]
  ) {
    const w = randomWeights(n, zeros, seed);
    const bytes = encodeZeroSkipping(w);
    let kept = 0;
    for (const b of bits(w)) if (b !== 0) kept++;
    assert.equal(bytes.length, 4 * (Math.ceil(n / 32) + kept), `n ${n}: size`);
    const back = decodeZeroSkipping(bytes, n);
    assert.deepEqual(bits(back), bits(w), `n ${n}: bits differ`);
    if (n > 3) assert(Object.is(back[1], -0), "-0 kept");
    // An unaligned view of the same bytes decodes the same.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual(bits(decodeZeroSkipping(shifted.subarray(1), n)), bits(w), `n ${n}: unaligned`);
  }
});

Deno.test("zero-skipping codec: truncated, padded or mislabelled records are ArgumentErrors", () => {
  const w = randomWeights(100, 0.5, 11);
  const bytes = encodeZeroSkipping(w);
  const bad: [Uint8Array, number][] = [
    [bytes.subarray(0, bytes.length - 4), 100], // one value short
    [bytes.subarray(0, 8), 100], // bitmap only, and short of it
    [new Uint8Array([...bytes, 0, 0, 0, 0]), 100], // a value too many
    [bytes.subarray(0, bytes.length - 1), 100], // not whole words
    [bytes, 90], // bits set past weight 89
  ];
  for (const [b, n] of bad) {
    assert.throws(() => decodeZeroSkipping(b, n), ArgumentError, `${b.length} bytes, n ${n}`);
  }
  for (const n of [-5, 1.5, NaN]) {
    assert.throws(() => decodeZeroSkipping(new Uint8Array(4), n), /n must be an integer/);
  }
});

Deno.test("FileWeightStore: reads back every weight, in any order and concurrently; close deletes the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await FileWeightStore.create(dir);
    const weights = new Map<string, Float32Array>();
    for (let i = 0; i < 12; i++) weights.set(`w${i}`, randomWeights(37 * i + 5, i / 12, 100 + i));
    // Puts are not awaited one by one: the store queues them.
    await Promise.all([...weights].map(([name, w]) => store.put(name, w)));
    assert.deepEqual(store.names(), [...weights.keys()]);
    let expectedBytes = 0;
    for (const w of weights.values()) expectedBytes += encodeZeroSkipping(w).length;
    assert.equal(store.fileBytes, expectedBytes);
    assert.equal((await Deno.stat(store.path)).size, expectedBytes);
    const names = [...weights.keys()].reverse();
    const back = await Promise.all(names.map((n) => store.read(n)));
    names.forEach((n, i) => assert.deepEqual(bits(back[i]), bits(weights.get(n)!), n));
    // A read is a copy: changing it changes nothing stored.
    back[0].fill(7);
    assert.deepEqual(bits(await store.read(names[0])), bits(weights.get(names[0])!));

    await assert.rejects(() => store.put("w3", new Float32Array(4)), /already stored/);
    await assert.rejects(() => store.read("nope"), ArgumentError);
    assert.equal(store.has("w3"), true);
    assert.equal(store.has("nope"), false);
    store.close();
    store.close(); // idempotent
    assert.deepEqual([...Deno.readDirSync(dir)], [], "the file is gone");
    await assert.rejects(() => store.read("w1"), /closed/);
    await assert.rejects(() => store.put("x", new Float32Array(1)), /closed/);
    assert.throws(() => store.names(), /closed/);
    assert.throws(() => store.has("w1"), /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileWeightStore: operations still queued when it closes reject as closed, not with a file error", async () => {
  const store = await FileWeightStore.create();
  const w = randomWeights(100_000, 0.5, 3);
  await store.put("a", w);
  const pending = [store.read("a"), store.read("a"), store.put("b", w), store.read("a")];
  store.close();
  for (const p of pending) {
    await assert.rejects(() => p, (e: unknown) => e instanceof ArgumentError && /closed/.test(`${e}`));
  }
});

Deno.test("FileWeightStore: a directory that does not exist is an OutputError naming it", async () => {
  await assert.rejects(
    () => FileWeightStore.create("/nonexistent-owlgpu-dir/x"),
    /cannot create a temporary file for the pruned weights in \/nonexistent-owlgpu-dir\/x/,
  );
});

Deno.test("FileWeightStore.openKept: a snapshot reopens the store as it was, cutting off what came after", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/weights.bin`;
    const store = await FileWeightStore.openKept(path);
    const ws = [randomWeights(1031, 0.5, 1), randomWeights(7, 0, 2), randomWeights(4099, 0.9, 3)];
    for (const [i, w] of ws.entries()) await store.put(`w${i}`, w);
    await store.flush();
    const snap = JSON.parse(JSON.stringify(store.snapshot())); // as a checkpoint file holds it
    await store.put("late", randomWeights(500, 0.3, 4)); // written after the snapshot: a block cut short
    await store.flush();
    store.close();
    assert(Deno.statSync(path).size > snap.fileBytes, "close() keeps a kept store's file");

    const again = await FileWeightStore.openKept(path, snap);
    assert.equal(Deno.statSync(path).size, snap.fileBytes);
    assert.deepEqual(again.names(), ["w0", "w1", "w2"]);
    for (const [i, w] of ws.entries()) assert.deepEqual(bits(await again.read(`w${i}`)), bits(w));
    const next = randomWeights(300, 0.2, 5);
    await again.put("late", next); // appended where the cut-off record began
    assert.deepEqual(bits(await again.read("late")), bits(next));
    again.close();

    // Without a snapshot the file starts empty.
    const fresh = await FileWeightStore.openKept(path);
    assert.equal(Deno.statSync(path).size, 0);
    assert.deepEqual(fresh.names(), []);
    fresh.close();

    // A snapshot that the file cannot satisfy, or that is malformed, is refused.
    const refused = async (s: unknown, re: RegExp) =>
      await assert.rejects(
        () => FileWeightStore.openKept(path, s as Parameters<typeof FileWeightStore.openKept>[1]),
        (e: Error) => e instanceof ModelFormatError && re.test(e.message),
      );
    await refused(snap, /does not match its checkpoint: it has 0 bytes, the checkpoint \d+/);
    await refused({ fileBytes: 0, records: [["a", 4, 8, 1]] }, /record \["a",4,8,1\] is malformed/);
    await refused({ fileBytes: 8, records: [] }, /it has 0 bytes/);
    await refused({ fileBytes: 0, records: "x" }, /the snapshot is malformed/);
    await assert.rejects(() => FileWeightStore.openKept(`${dir}/missing/w.bin`), OutputError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MemoryWeightStore: keeps its own copy; reads are copies; closed is closed", async () => {
  const store = new MemoryWeightStore();
  const w = new Float32Array([1, 0, -2]);
  await store.put("a", w);
  w[0] = 9;
  const r = await store.read("a");
  assert.deepEqual(r, new Float32Array([1, 0, -2]));
  r[1] = 5;
  assert.deepEqual(store.get("a"), new Float32Array([1, 0, -2]));
  await assert.rejects(() => store.put("a", w), /already stored/);
  await assert.rejects(() => store.read("b"), ArgumentError);
  store.close();
  assert.throws(() => store.names(), /closed/);
  await assert.rejects(() => store.read("a"), /closed/);
});

Deno.test("prune: each block's linears reach the store as the block finishes, not at the end", async () => {
  const [L, V] = [3, 40];
  const config = llama2cConfig({
    dim: 16,
    hiddenDim: 24,
    nLayers: L,
    nHeads: 2,
    nKvHeads: 2,
    vocabSize: V,
    seqLen: 16,
  });
  const source = memoryWeights(config, refModelTensors(randomRefModel(config, 5)));
  const gpu = await Gpu.create();
  const store = await FileWeightStore.create();
  try {
    const seen: number[] = [];
    const calibration = [0, 1].map((w) => Array.from({ length: 16 }, (_, i) => (7 * i + w) % V));
    const result = await prune(gpu, source, {
      method: "wanda",
      sparsity: 0.5,
      pattern: { kind: "unstructured" },
      owlM: 5,
      owlLambda: 0.08,
      calibration,
      store,
      onProgress: (phase, done) => phase === "prune" && seen.push(store.names().length / done),
    });
    assert.equal(result.weights, store, "the result's weights are the given store");
    assert.deepEqual(seen, [NaN, ...Array(L).fill(LINEARS.length)], "7 linears stored per finished block");
    for (const c of result.counts) {
      const w = await store.read(c.name);
      assert.equal(w.filter((x) => x === 0).length, c.pruned, c.name);
    }
  } finally {
    store.close();
    gpu.destroy();
  }
});
