/**
 * Tests of the Hugging Face exporter (src/model/export.ts) and its CLI (src/cli/export_main.ts).
 * The exported stories15M, read back through the Hugging Face reader (rotate-half RoPE), must give
 * the logits of the llama2.c original (interleaved RoPE) under the float64 reference forward: to
 * rounding in f32, within f16 rounding in f16. Also: greedy decoding, untied GQA llama2.c
 * checkpoints, Qwen2 biases, overrides, replacing an existing directory, and output errors.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArgumentError, OutputError, UnsupportedError } from "../src/errors.ts";
import { FileByteSource, MemoryByteSource } from "../src/model/bytes.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";
import { exportHuggingFace, interleavedToHalf } from "../src/model/export.ts";
import { openHuggingFace } from "../src/model/hf.ts";
import { openLlama2c } from "../src/model/llama2c.ts";
import { linearWeight, LM_HEAD } from "../src/model/names.ts";
import { openWeights } from "../src/model/open.ts";
import { SafetensorsFile } from "../src/model/safetensors.ts";
import type { WeightSource } from "../src/model/weights.ts";
import {
  loadRefModel,
  memoryWeights,
  randomRefModel,
  refGreedy,
  refLogits,
  type RefModel,
  refModelTensors,
} from "./ref/forward_ref.ts";
import { randomArray } from "./ref/kernels_ref.ts";

/** BOS + "Once upon a time". */
const PROMPT = [1, 9038, 2501, 263, 931];
/** refGreedy(stories15M, PROMPT, 10), recorded from a run: ", there was a little girl named Lily." */
const GREEDY_10 = [29892, 727, 471, 263, 2217, 7826, 4257, 365, 2354, 29889];

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Piece strings of a llama2.c tokenizer.bin (int32 max_len; per token: f32 score, int32 len, bytes). */
function tokenizerPieces(bytes: Uint8Array): string[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const pieces: string[] = [];
  for (let at = 4; at < bytes.byteLength;) {
    const len = v.getInt32(at + 4, true);
    pieces.push(dec.decode(bytes.subarray(at + 8, at + 8 + len)));
    at += 8 + len;
  }
  return pieces;
}

/** max |a - b| and max |b| (the logit scale). */
function maxDiff(a: Float64Array, b: Float64Array): { diff: number; scale: number } {
  assert.equal(a.length, b.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

async function refOf(source: WeightSource): Promise<RefModel> {
  try {
    return await loadRefModel(source);
  } finally {
    source.close();
  }
}

Deno.test("export: interleavedToHalf moves rows (2i, 2i+1) to (i, i + headDim/2) per head", () => {
  // 2 heads of headDim 4, 1 column: row r holds r.
  const w = Float32Array.from({ length: 8 }, (_, r) => r);
  assert.deepEqual(Array.from(interleavedToHalf(w, 8, 1, 4)), [0, 2, 1, 3, 4, 6, 5, 7]);
  const m = Float32Array.from({ length: 8 }, (_, i) => i); // 4 rows × 2 columns, headDim 4
  assert.deepEqual(Array.from(interleavedToHalf(m, 4, 2, 4)), [0, 1, 4, 5, 2, 3, 6, 7]);
});

Deno.test("export: stories15M to f32 and f16 gives the llama2.c logits through the HF reader", async () => {
  const src = await openWeights("stories15M");
  const want = refLogits(await loadRefModel(src), PROMPT);
  await withTempDir(async (dir) => {
    for (const dtype of ["f32", "f16"] as const) {
      const out = join(dir, dtype);
      await exportHuggingFace(src, out, { dtype });
      const json = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
      assert.equal(json.model_type, "llama");
      assert.equal(json.torch_dtype, dtype === "f32" ? "float32" : "float16");
      const st = await SafetensorsFile.open(await FileByteSource.open(join(out, "model.safetensors")));
      assert.equal(st.has(LM_HEAD), false); // tied: only the embedding is stored
      assert.deepEqual(st.metadata, { format: "pt" });
      st.close();
      const hf = await openWeights(out);
      assert.deepEqual(hf.config, { ...src.config, ropeLayout: "half" });
      assert.equal(hf.dtype, dtype);
      const got = refLogits(await refOf(hf), PROMPT);
      const { diff, scale } = maxDiff(got, want);
      // Measured: f32 4.3e-14 (1.7e-15 of the scale 25.4); f16 0.0156 (6.1e-4 of the scale).
      const tol = dtype === "f32" ? 1e-9 : 0.05;
      assert.ok(diff <= tol * scale, `${dtype}: max |Δlogit| ${diff} vs scale ${scale}`);
    }
  });
  src.close();
});

Deno.test("export: greedy decoding of stories15M, original and exported, says the story", async () => {
  const { tokenizer } = await loadEmbeddedFiles();
  const pieces = tokenizerPieces(tokenizer);
  const ids = refGreedy(await refOf(await openWeights("stories15M")), PROMPT, 10);
  assert.deepEqual(ids, GREEDY_10);
  assert.equal(ids.map((i) => pieces[i]).join(""), ", there was a little girl named Lily.");
  await withTempDir(async (dir) => {
    const src = await openWeights("stories15M");
    await exportHuggingFace(src, dir, { dtype: "f32" });
    src.close();
    assert.deepEqual(refGreedy(await refOf(await openHuggingFace(dir)), PROMPT, 10), GREEDY_10);
  });
});

/** A random untied llama2.c checkpoint with GQA (header then random floats). */
async function randomLlama2c(): Promise<WeightSource> {
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = [16, 24, 2, 4, 2, 13, 8];
  const kvDim = (dim / heads) * kvHeads;
  const floats = vocab * dim * 2 + layers * (2 * dim + 2 * dim * dim + 2 * kvDim * dim + 3 * dim * hidden) +
    dim +
    seq * (dim / heads);
  const bytes = new Uint8Array(28 + floats * 4);
  new Int32Array(bytes.buffer, 0, 7).set([dim, hidden, layers, heads, kvHeads, -vocab, seq]);
  new Float32Array(bytes.buffer, 28).set(randomArray(floats, 9, 0.3));
  return await openLlama2c(new MemoryByteSource(bytes, "random.bin"));
}

Deno.test("export: an untied GQA llama2.c checkpoint keeps its logits and its own LM head", async () => {
  await withTempDir(async (dir) => {
    const src = await randomLlama2c();
    await exportHuggingFace(src, dir, { dtype: "f32" });
    const hf = await openHuggingFace(dir);
    assert.equal(hf.config.tiedEmbeddings, false);
    assert.deepEqual(await hf.readF32(LM_HEAD), await src.readF32(LM_HEAD));
    const tokens = [1, 12, 0, 5, 7, 3];
    const { diff, scale } = maxDiff(refLogits(await refOf(hf), tokens), refLogits(await refOf(src), tokens));
    assert.ok(diff <= 1e-12 * scale, `max |Δlogit| ${diff}`);
  });
});

const QWEN2: ModelConfig = {
  architecture: "Qwen2ForCausalLM",
  dim: 16,
  hiddenDim: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 4,
  vocabSize: 20,
  maxSeqLen: 64,
  normEps: 1e-6,
  ropeTheta: 1e6,
  ropeLayout: "half",
  tiedEmbeddings: false,
  qkvBias: true,
  bosTokenId: 1,
  eosTokenId: 2,
};

// Export from an in-memory source, load, export again: the two files must be identical.
Deno.test("export: a Qwen2 source (biases, GQA, untied) re-exports bit for bit", async () => {
  await withTempDir(async (dir) => {
    const tensors = refModelTensors(randomRefModel(QWEN2, 4));
    const first = join(dir, "a"), second = join(dir, "b");
    await exportHuggingFace(memoryWeights(QWEN2, tensors), first, { dtype: "f32" });
    const a = await openHuggingFace(first);
    assert.deepEqual(a.config, QWEN2);
    for (const [name, x] of tensors) assert.deepEqual(await a.readF32(name), x, name);
    await exportHuggingFace(a, second, { dtype: "f32" });
    a.close();
    assert.deepEqual(
      await Deno.readFile(join(second, "model.safetensors")),
      await Deno.readFile(join(first, "model.safetensors")),
    );
    const json = JSON.parse(await Deno.readTextFile(join(second, "config.json")));
    assert.equal(json.model_type, "qwen2");
    assert.equal(json.use_sliding_window, false);
  });
});

Deno.test("export: override substitutes tensors (in source row order) and checks their size", async () => {
  await withTempDir(async (dir) => {
    const src = await randomLlama2c();
    const q0 = linearWeight(0, "q"), down1 = linearWeight(1, "down");
    const q = Float32Array.from({ length: 16 * 16 }, (_, i) => i);
    const down = randomArray(16 * 24, 3);
    const progress: number[] = [];
    await exportHuggingFace(src, dir, {
      dtype: "f32",
      override: (name) => name === q0 ? q : name === down1 ? down : undefined,
      onProgress: (done, total) => progress.push(done / total),
    });
    const hf = await openHuggingFace(dir);
    assert.deepEqual(await hf.readF32(q0), interleavedToHalf(q, 16, 16, 4));
    assert.deepEqual(await hf.readF32(down1), down);
    assert.equal(progress.at(-1), 1);
    hf.close();
    await assert.rejects(
      () =>
        exportHuggingFace(src, join(dir, "bad"), {
          dtype: "f32",
          override: (n) => n === q0 ? new Float32Array(3) : undefined,
        }),
      ArgumentError,
    );
  });
});

Deno.test("export: a bf16 source stays bf16 bit for bit by default; f16 refuses values past its range", async () => {
  await withTempDir(async (dir) => {
    const tensors = refModelTensors(randomRefModel(QWEN2, 9));
    const big = linearWeight(1, "down");
    tensors.get(big)![5] = 1e5; // fine in bf16 and f32, past f16's 65504
    const bf16Dir = join(dir, "bf16");
    await exportHuggingFace(memoryWeights(QWEN2, tensors), bf16Dir, { dtype: "bf16" });
    const src = await openHuggingFace(bf16Dir);
    assert.equal(src.dtype, "bf16");
    assert.equal(JSON.parse(await Deno.readTextFile(join(bf16Dir, "config.json"))).torch_dtype, "bfloat16");
    src.close();

    // The CLI's default is the source's dtype: the same bytes again.
    const again = join(dir, "again");
    const r = await runExportCli("--model", bf16Dir, "--out", again);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(bf16\)/);
    assert.deepEqual(
      await Deno.readFile(join(again, "model.safetensors")),
      await Deno.readFile(join(bf16Dir, "model.safetensors")),
    );

    // f16 cannot hold 1e5: refused, naming the tensor and the index, and nothing is left behind.
    await assert.rejects(
      () => exportHuggingFace(memoryWeights(QWEN2, tensors), join(dir, "f16"), { dtype: "f16" }),
      UnsupportedError,
    );
    const f16 = await runExportCli("--model", bf16Dir, "--out", join(dir, "f16"), "--dtype", "f16");
    assert.equal(f16.code, 1);
    assert.match(
      f16.stderr,
      /^error: export: model\.layers\.1\.mlp\.down_proj\.weight\[5\] = 99840 is beyond f16's range \(65504\)/m,
    );
    assert.deepEqual(siblings(dir), ["again", "bf16"]);
  });
});

/** Sibling names other than the output itself (temporaries left behind would show here). */
const siblings = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("export: an existing directory is replaced only by a complete new one", async () => {
  await withTempDir(async (dir) => {
    const src = await randomLlama2c();
    const out = join(dir, "out");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "old.txt"), "previous run");
    const failing = () => {
      throw new Error("pruner crashed");
    };
    await assert.rejects(
      () => exportHuggingFace(src, out, { dtype: "f16", override: failing }),
      /pruner crashed/,
    );
    assert.deepEqual(siblings(dir), ["out"]);
    assert.deepEqual(siblings(out), ["old.txt"]); // untouched
    const tokenizer = new Uint8Array([1, 2, 3]);
    await exportHuggingFace(src, out, { dtype: "f16", extraFiles: { "tokenizer.bin": tokenizer } });
    assert.deepEqual(siblings(dir), ["out"]);
    assert.deepEqual(siblings(out), ["config.json", "model.safetensors", "tokenizer.bin"]);
    assert.deepEqual(await Deno.readFile(join(out, "tokenizer.bin")), tokenizer);
    await assert.rejects(
      () => exportHuggingFace(src, out, { dtype: "f16", extraFiles: { "../evil": tokenizer } }),
      ArgumentError,
    );
  });
});

Deno.test("export: an unwritable destination is an OutputError", async () => {
  await withTempDir(async (dir) => {
    const src = await randomLlama2c();
    await assert.rejects(
      () => exportHuggingFace(src, join(dir, "no-such-parent", "out"), { dtype: "f32" }),
      (e: Error) => e instanceof OutputError && /parent directory must exist and be writable/.test(e.message),
    );
    await Deno.writeTextFile(join(dir, "file"), "x");
    await assert.rejects(
      () => exportHuggingFace(src, join(dir, "file"), { dtype: "f32" }),
      (e: Error) => e instanceof OutputError && /is not a directory/.test(e.message),
    );
    assert.deepEqual(siblings(dir), ["file"]);
  });
});

async function runExportCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../src/cli/export_main.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await cmd.output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

Deno.test("export CLI: bad --dtype and missing --out fail with a message", async () => {
  const bad = await runExportCli("--model", "stories15M", "--out", "/tmp/never-written", "--dtype", "q4");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /error: --dtype "q4" is not supported: use f32, f16 or bf16/);
  const noOut = await runExportCli("--model", "stories15M");
  assert.equal(noOut.code, 1);
  assert.match(noOut.stderr, /--out DIR is required/);
  const help = await runExportCli("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: deno task export/);
});

Deno.test("export CLI: stories15M in f16 with its tokenizer.bin", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "s15");
    const r = await runExportCli("--out", out, "--dtype", "f16");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote .*s15 \(f16, with tokenizer.bin\)/);
    assert.deepEqual(siblings(out), ["config.json", "model.safetensors", "tokenizer.bin"]);
    assert.deepEqual(await Deno.readFile(join(out, "tokenizer.bin")), (await loadEmbeddedFiles()).tokenizer);
  });
});
