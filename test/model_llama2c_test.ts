/**
 * Tests of the llama2.c checkpoint reader (src/model/llama2c.ts) and of openWeights' dispatch: the
 * embedded stories15M, a tiny hand-laid untied GQA checkpoint whose every float holds its own
 * position (so a wrong offset shows), and malformed headers and sizes.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ModelFormatError } from "../src/errors.ts";
import { MemoryByteSource } from "../src/model/bytes.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";
import { openLlama2c } from "../src/model/llama2c.ts";
import { attnNorm, EMBED, FINAL_NORM, linearWeight, LM_HEAD, mlpNorm } from "../src/model/names.ts";
import { openWeights } from "../src/model/open.ts";

/** A checkpoint whose float i (counting after the header) has the value i. */
function sequentialCheckpoint(header: number[], floats: number): Uint8Array {
  const bytes = new Uint8Array(28 + floats * 4);
  const v = new DataView(bytes.buffer);
  header.forEach((x, i) => v.setInt32(i * 4, x, true));
  for (let i = 0; i < floats; i++) v.setFloat32(28 + i * 4, i, true);
  return bytes;
}

// dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 10 untied, seq 4: head size 4, kv_dim 4.
const TINY_HEADER = [8, 12, 2, 2, 1, -10, 4];
const TINY_FLOATS = 1176;
/** Float offset and shape of each tensor, in run.c's order (freq_cis at 1080..1096 skipped). */
const TINY_LAYOUT: [string, number, number[]][] = [
  [EMBED, 0, [10, 8]],
  ...[0, 1].flatMap((l): [string, number, number[]][] => [
    [attnNorm(l), 80 + 8 * l, [8]],
    [linearWeight(l, "q"), 96 + 64 * l, [8, 8]],
    [linearWeight(l, "k"), 224 + 32 * l, [4, 8]],
    [linearWeight(l, "v"), 288 + 32 * l, [4, 8]],
    [linearWeight(l, "o"), 352 + 64 * l, [8, 8]],
    [mlpNorm(l), 480 + 8 * l, [8]],
    [linearWeight(l, "gate"), 496 + 96 * l, [12, 8]],
    [linearWeight(l, "down"), 688 + 96 * l, [8, 12]],
    [linearWeight(l, "up"), 880 + 96 * l, [12, 8]],
  ]),
  [FINAL_NORM, 1072, [8]],
  [LM_HEAD, 1096, [10, 8]],
];

Deno.test("llama2c: embedded stories15M has the documented config", async () => {
  const w = await openWeights("stories15M");
  const c = w.config;
  assert.deepEqual(
    [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize, c.maxSeqLen],
    [288, 768, 6, 6, 6, 48, 32000, 256],
  );
  assert.equal(c.architecture, "LlamaForCausalLM");
  assert.equal(c.ropeLayout, "interleaved");
  assert.equal(c.tiedEmbeddings, true);
  assert.equal(c.qkvBias, false);
  assert.deepEqual([c.normEps, c.ropeTheta, c.bosTokenId, c.eosTokenId], [1e-5, 10000, 1, 2]);
  assert.equal(w.dtype, "f32");
  assert.equal(w.description, "stories15M");
  assert.equal(w.tensorNames().length, 1 + 6 * 9 + 1 + 1);
  assert.ok(w.has(LM_HEAD));
  assert.deepEqual(w.info(linearWeight(5, "down")).shape, [288, 768]);
  assert.deepEqual(await w.readF32(LM_HEAD), await w.readF32(EMBED));
  w.close();
});

Deno.test("llama2c: every tensor of an untied GQA checkpoint is read from its place", async () => {
  const w = await openLlama2c(
    new MemoryByteSource(sequentialCheckpoint(TINY_HEADER, TINY_FLOATS), "tiny.bin"),
  );
  assert.equal(w.config.tiedEmbeddings, false);
  assert.equal(w.config.vocabSize, 10);
  assert.equal(w.config.headDim, 4);
  assert.deepEqual(w.tensorNames().sort(), TINY_LAYOUT.map(([n]) => n).sort());
  for (const [name, offset, shape] of TINY_LAYOUT) {
    assert.deepEqual(w.info(name), { name, dtype: "f32", shape });
    const x = await w.readF32(name);
    const n = shape.reduce((a, b) => a * b, 1);
    assert.deepEqual(Array.from(x), Array.from({ length: n }, (_, i) => offset + i), name);
  }
  assert.equal(w.has("model.layers.2.input_layernorm.weight"), false);
  await assert.rejects(() => w.readF32("model.layers.2.input_layernorm.weight"), ModelFormatError);
});

Deno.test("llama2c: readF32 returns a copy, not a view of the checkpoint", async () => {
  const w = await openLlama2c(new MemoryByteSource(sequentialCheckpoint(TINY_HEADER, TINY_FLOATS)));
  (await w.readF32(EMBED)).fill(-1);
  assert.equal((await w.readF32(EMBED))[3], 3);
});

Deno.test("llama2c: a truncated stories15M says expected and actual sizes", async () => {
  const { checkpoint } = await loadEmbeddedFiles();
  const cut = checkpoint.subarray(0, checkpoint.byteLength - 1000);
  await assert.rejects(
    () => openLlama2c(new MemoryByteSource(cut, "cut.bin")),
    (e: Error) =>
      e instanceof ModelFormatError && e.message.includes("60816028") &&
      e.message.includes(String(cut.byteLength)) &&
      e.message.includes("truncated or not a llama2.c legacy checkpoint"),
  );
});

Deno.test("llama2c: bad headers are ModelFormatErrors", async () => {
  const cases: [number[], string][] = [
    [[8, 12, 0, 2, 1, 10, 4], "nLayers"],
    [[8, 12, 2, 3, 1, 10, 4], "not a multiple of n_heads"],
    [[8, 12, 2, 2, 3, 10, 4], "not a multiple of n_kv_heads"],
    [[-8, 12, 2, 2, 1, 10, 4], "dim"],
    [[8, 12, 2, 2, 1, 0, 4], "vocab_size"],
  ];
  for (const [header, words] of cases) {
    const src = new MemoryByteSource(sequentialCheckpoint(header, 16), "bad.bin");
    await assert.rejects(
      () => openLlama2c(src),
      (e: Error) => e instanceof ModelFormatError && e.message.includes(words),
      words,
    );
  }
  await assert.rejects(() => openLlama2c(new MemoryByteSource(new Uint8Array(10), "x")), ModelFormatError);
});

Deno.test("openWeights: a checkpoint file on disk, and a path that does not exist", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "tiny.bin");
    await Deno.writeFile(path, sequentialCheckpoint(TINY_HEADER, TINY_FLOATS));
    const w = await openWeights(path);
    assert.equal(w.config.dim, 8);
    assert.equal((await w.readF32(LM_HEAD))[0], 1096);
    w.close();
    await assert.rejects(
      () => openWeights(join(dir, "nope")),
      (e: Error) =>
        e instanceof ModelFormatError && e.message.includes("not found") &&
        e.message.includes("stories15M") &&
        e.message.includes("Hugging Face model directory") && e.message.includes("llama2.c checkpoint file"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
