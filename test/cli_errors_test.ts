/**
 * Every input a user can get wrong gives a clear message and a non-zero exit, through the real
 * command line: `deno run -A src/cli/ppl_main.ts ...` (and export_main.ts) as a subprocess, exit
 * status 1, the message on stderr, and no stack trace. The broken model directories are built in a
 * temporary directory from a tiny synthetic LLaMA (zero tensors) and then damaged: a truncated
 * safetensors file, a header length past the end of the file, tensor offsets past the end of the
 * data, an unknown dtype, an unknown architecture, a missing config.json. A couple of checks that
 * need no process of their own run in-process (openWeights throwing ModelFormatError).
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ModelFormatError, OutputError, UnsupportedError } from "../src/errors.ts";
import { parsePplArgs } from "../src/cli/ppl_main.ts";
import { generateMain } from "../src/cli/generate_main.ts";
import { parsePruneArgs, type PruneCliOptions, runPrune } from "../src/cli/prune_main.ts";
import { ArgumentError } from "../src/errors.ts";
import { Gpu } from "../src/gpu/device.ts";
import { GpuModel } from "../src/model/forward.ts";
import { expectedTensors, hfModelConfig } from "../src/model/hf.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";
import { openWeights } from "../src/model/open.ts";
import { encodeSafetensors } from "../src/model/safetensors.ts";
import { checkJobFits } from "../src/prune/job.ts";
import { saveSparseModel } from "../src/sparse/model.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** config.json of a tiny LLaMA (untied, so every tensor is stored). */
const CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 16,
  rms_norm_eps: 1e-5,
  vocab_size: 10,
  tie_word_embeddings: false,
  torch_dtype: "float32",
};

/** A complete, valid model.safetensors for CONFIG, or another config.json (all zeros). */
async function validSafetensors(config: Record<string, unknown> = CONFIG): Promise<Uint8Array> {
  const c = hfModelConfig(config, "config.json");
  return await encodeSafetensors(
    expectedTensors(c).map((t) => ({
      name: t.name,
      dtype: "f32" as const,
      shape: t.shape,
      data: new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * 4),
    })),
  );
}

/** Split a safetensors file into its header object and data section. */
function splitSafetensors(
  bytes: Uint8Array,
): { header: Record<string, Record<string, unknown>>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n),
  };
}

/** Assemble a safetensors file from a (possibly corrupt) header object and a data section. */
function joinSafetensors(header: object, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

/** Write a model directory `name` under `root` with the given config.json (none if null) and weights. */
async function modelDir(
  root: string,
  name: string,
  config: object | null,
  weights: Uint8Array,
): Promise<string> {
  const dir = join(root, name);
  await Deno.mkdir(dir);
  if (config) await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config));
  await Deno.writeFile(join(dir, "model.safetensors"), weights);
  return dir;
}

type Script = "ppl_main.ts" | "export_main.ts" | "generate_main.ts" | "bench" | "build";

/** The file of each CLI, from the repository root. */
function scriptPath(script: Script): string {
  return script === "bench" ? "bench/main.ts" : script === "build" ? "scripts/build.ts" : `src/cli/${script}`;
}

/** Run a CLI as a subprocess; returns its exit code and output. */
async function cli(script: Script, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", scriptPath(script), ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The CLI exits 1 with one "error: ..." message matching `pattern` and no stack trace. */
async function assertCliError(script: Script, args: string[], pattern: RegExp) {
  const r = await cli(script, args);
  const context = `${script} ${args.join(" ")}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.code, 1, `exit code ${r.code}, want 1: ${context}`);
  assert.match(r.stderr, /^error: /m, context);
  assert.match(r.stderr, pattern, context);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace was printed: ${context}`);
}

// Fixtures, built once.
const root = await Deno.makeTempDir({ prefix: "owlgpu-cli-errors-" });
const valid = await validSafetensors();
const { header, data } = splitSafetensors(valid);
const firstTensor = Object.keys(header)[0];
const lastTensor = Object.keys(header).at(-1)!;

const dirs = {
  valid: await modelDir(root, "valid", CONFIG, valid),
  truncated: await modelDir(root, "truncated", CONFIG, valid.subarray(0, valid.byteLength - 100)),
  headerLength: await modelDir(
    root,
    "header-length",
    CONFIG,
    (() => {
      const b = valid.slice();
      new DataView(b.buffer).setBigUint64(0, BigInt(b.byteLength + 1000), true);
      return b;
    })(),
  ),
  offsets: await modelDir(
    root,
    "offsets",
    CONFIG,
    joinSafetensors({
      ...header,
      [lastTensor]: {
        ...header[lastTensor],
        data_offsets: [data.byteLength + 64, data.byteLength + 64 + 320],
      },
    }, data),
  ),
  dtype: await modelDir(
    root,
    "dtype",
    CONFIG,
    joinSafetensors({ ...header, [firstTensor]: { ...header[firstTensor], dtype: "Q4_K" } }, data),
  ),
  arch: await modelDir(root, "arch", { ...CONFIG, architectures: ["GPT2LMHeadModel"] }, valid),
  noConfig: await modelDir(root, "no-config", null, valid),
};
// The tiny model (vocabulary 10) with stories15M's tokenizer (32000 ids) beside it.
const mismatched = await modelDir(root, "tokenizer-mismatch", CONFIG, valid);
await Deno.writeFile(join(mismatched, "tokenizer.bin"), (await loadEmbeddedFiles()).tokenizer);
const shortCorpus = join(root, "short.txt");
await Deno.writeTextFile(shortCorpus, "Once upon a time there was a cat.\n");

Deno.test("cli errors: the valid fixture opens (so each failure below is the damage, not the fixture)", async () => {
  const w = await openWeights(dirs.valid);
  assert.equal(w.config.dim, 8);
  w.close();
});

Deno.test("cli errors: truncated safetensors file", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--model", dirs.truncated],
    /model\.safetensors.*the file is truncated/,
  );
});

Deno.test("cli errors: header length past the end of the file", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--model", dirs.headerLength],
    /header length \d+ goes past the end of the file/,
  );
});

Deno.test("cli errors: tensor offsets past the end of the data (in-process)", async () => {
  await assert.rejects(
    () => openWeights(dirs.offsets),
    (e: Error) =>
      e instanceof ModelFormatError && new RegExp(`tensor ${lastTensor} ends at data offset`).test(e.message),
  );
});

Deno.test("cli errors: unknown dtype", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--model", dirs.dtype],
    new RegExp(
      `tensor ${firstTensor.replaceAll(".", "\\.")} has dtype "Q4_K"; owlgpu reads only F32, F16 and BF16`,
    ),
  );
});

Deno.test("cli errors: unknown architecture", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--model", dirs.arch],
    /architecture "GPT2LMHeadModel" is not supported; supported: LlamaForCausalLM/,
  );
  // The same through export (the other CLI that opens models).
  await assert.rejects(() => openWeights(dirs.arch), UnsupportedError);
});

Deno.test("cli errors: missing config.json", async () => {
  await assertCliError(
    "export_main.ts",
    ["--model", dirs.noConfig, "--out", join(root, "out")],
    /no config\.json/,
  );
});

Deno.test("cli errors: a corpus shorter than one window", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--eval", shortCorpus, "--eval-windows", "1"],
    /short\.txt: the corpus has \d+ tokens, but one window needs 256/,
  );
});

Deno.test("cli errors: a tokenizer whose ids exceed the model's vocabulary", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--model", mismatched, "--eval", shortCorpus, "--seqlen", "4"],
    /tokenizer produced id \d+ but the model's vocabulary has 10 entries/,
  );
});

Deno.test("cli errors: bad flag values and unknown flags", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--eval-windows", "0"],
    /--eval-windows must be an integer >= 1, got "0"/,
  );
  await assertCliError("ppl_main.ts", ["--seqlen", "abc"], /--seqlen must be an integer >= 2, got "abc"/);
  await assertCliError("ppl_main.ts", ["--windows", "3"], /Unknown option '--windows'.*see --help/);
  await assertCliError(
    "export_main.ts",
    ["--out", join(root, "x"), "--dtype", "q4"],
    /--dtype "q4" is not supported/,
  );
  // The benchmark CLI checks its flags before it opens the GPU.
  await assertCliError("bench", ["--help-me"], /Unknown option '--help-me'.*see --help/);
  await assertCliError("bench", ["--suite", "gemv"], /--suite takes dense, prune, sparse or all, got "gemv"/);
  await assertCliError(
    "bench",
    ["--sparse", "--decode-blocks", "0"],
    /--decode-blocks must be an integer >= 1/,
  );
  await assertCliError("bench", ["--decode-only"], /belong to the sparse suite/);
  await assertCliError("build", ["--out", "x"], /Unknown option '--out'.*see --help/);
  const help = await cli("bench", ["--help"]);
  assert.equal(help.code, 0, help.stderr);
  for (
    const flag of ["--suite", "--quick", "--sparse", "--decode-blocks", "--decode-only", "--styles", "--json"]
  ) {
    assert(help.stdout.includes(`  ${flag}`), `bench --help lacks ${flag}: ${help.stdout}`);
  }
});

Deno.test("cli errors: argument checks in-process (no subprocess needed)", () => {
  const bad: [string[], RegExp][] = [
    [["--seqlen", "1"], /--seqlen must be an integer >= 2/],
    [["--seqlen", "2.5"], /--seqlen must be an integer >= 2, got "2.5"/],
    [["--eval-windows=-3"], /--eval-windows must be an integer >= 1, got "-3"/],
    [
      ["--eval-windows", "-3"],
      /Option '--eval-windows' argument is ambiguous\. Did you forget .*; see --help$/,
    ],
    [["--seqlen", " 5"], /--seqlen must be an integer >= 2/],
    [["--eval-windows"], /argument missing|--eval-windows/],
    [["extra"], /positional argument/i],
    [["--model", ""], /--model needs a value/],
  ];
  for (const [args, re] of bad) {
    assert.throws(
      () => parsePplArgs(args),
      (e: Error) => e instanceof ArgumentError && re.test(e.message),
      args.join(" "),
    );
  }
  assert.deepEqual(parsePplArgs([]), {
    model: "stories15M",
    eval: "moby-dick",
    evalWindows: 128,
    seqlen: 256,
    json: undefined,
  });
  assert.equal(parsePplArgs(["--help"]), undefined);
});

Deno.test("cli errors: --seqlen beyond the model's context, and an unwritable --json", async () => {
  await assertCliError(
    "ppl_main.ts",
    ["--seqlen", "512"],
    /--seqlen 512 exceeds the model's context of 256 tokens/,
  );
  await assertCliError(
    "ppl_main.ts",
    ["--json", join(root, "missing-dir", "ppl.json")],
    /cannot write .*missing-dir.*does not exist/,
  );
});

// Nonsense sizes that once built billions of tensor names (an out-of-memory abort) or tables.
const hugeLayersHf = await modelDir(
  root,
  "huge-layers",
  { ...CONFIG, num_hidden_layers: 1_000_000_000 },
  valid,
);
const hugeLayersBin = join(root, "huge-layers.bin");
{
  const bin = new Int32Array(7 + 40); // dim 2, hidden 2, 2^31 - 1 layers, 1 head, 1 KV head, vocab 2, context 1
  bin.set([2, 2, 2147483647, 1, 1, 2, 1]);
  await Deno.writeFile(hugeLayersBin, new Uint8Array(bin.buffer));
}
const hugeContext = await modelDir(
  root,
  "huge-context",
  { ...CONFIG, max_position_embeddings: 2147483647 },
  valid,
);
// model.safetensors that is a directory.
const weightsDir = join(root, "weights-dir");
await Deno.mkdir(join(weightsDir, "model.safetensors"), { recursive: true });
await Deno.writeTextFile(join(weightsDir, "config.json"), JSON.stringify(CONFIG));

Deno.test("cli errors: a config.json with 10^9 layers fails at the first missing tensor (in-process)", async () => {
  await assert.rejects(
    () => openWeights(hugeLayersHf),
    (e: Error) =>
      e instanceof ModelFormatError &&
      /tensor model\.layers\.1\.input_layernorm\.weight \(shape \[8\]\) is missing/.test(e.message),
  );
});

Deno.test("cli errors: a llama2.c header with 2^31 - 1 layers is refused by its size (in-process)", async () => {
  await assert.rejects(
    () => openWeights(hugeLayersBin),
    (e: Error) =>
      e instanceof ModelFormatError &&
      /2147483647 layers.*implies \d+ bytes but the file has 188/.test(e.message),
  );
});

Deno.test("cli errors: model.safetensors that is a directory", async () => {
  await assertCliError(
    "export_main.ts",
    ["--model", weightsDir, "--out", join(root, "out")],
    /model\.safetensors: is a directory or a special file, not a regular file/,
  );
});

Deno.test("cli errors: a context whose RoPE tables exceed the adapter's binding limit (in-process)", async () => {
  const source = await openWeights(hugeContext);
  const gpu = await Gpu.create();
  try {
    await assert.rejects(
      () => GpuModel.load(gpu, source),
      (e: Error) =>
        e instanceof UnsupportedError &&
        /context of 2147483647 positions .* lower max_position_embeddings/.test(e.message),
    );
    assert.equal(gpu.liveBuffers, 0);
  } finally {
    gpu.destroy();
    source.close();
  }
});

Deno.test("cli errors: generate with a tokenizer whose ids exceed the model's vocabulary", async () => {
  await assertCliError(
    "generate_main.ts",
    ["--model", mismatched, "--max-tokens", "2"],
    /tokenizer produced id \d+ but the model's vocabulary has 10 entries/,
  );
});

Deno.test("cli errors: generate --seed must be an integer in [0, 2^32) (in-process)", async () => {
  for (const seed of ["1.5", "4294967296", "1e3"]) {
    await assert.rejects(() => generateMain(["--seed", seed]), ArgumentError, seed);
  }
});

Deno.test("cli errors: generate --sparse with a config.json that describes fewer layers than the file", async () => {
  const two = { ...CONFIG, num_hidden_layers: 2 };
  const src = await openWeights(await modelDir(root, "two-layers", two, await validSafetensors(two)));
  const dir = join(root, "sparse-two-layers");
  try {
    await saveSparseModel(dir, src, {});
  } finally {
    src.close();
  }
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(CONFIG)); // 1 layer
  await assert.rejects(
    () => generateMain(["--model", dir, "--sparse"]),
    (e: Error) =>
      e instanceof ModelFormatError &&
      /holds 9 tensor\(s\) that .*config\.json does not describe \(first: model\.layers\.1\./.test(e.message),
  );

  // More layers than the file could hold: refused by count, before 10^9 names are listed.
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ ...CONFIG, num_hidden_layers: 1e9 }));
  await assert.rejects(
    () => generateMain(["--model", dir, "--sparse"]),
    (e: Error) =>
      e instanceof ModelFormatError && /1000000000 layers need at least 9000000000 tensors/.test(e.message),
  );
});

Deno.test("cli errors: prune flags: N:M pruning every weight, empty values, --out with --no-save", () => {
  const bad: [string[], RegExp][] = [
    [["--pattern", "4:4"], /--pattern 4:4 prunes N = 4 of every M = 4 weights, all of them \(sparsity 1\)/],
    [["--out", ""], /--out needs a value/],
    [["--report", ""], /--report needs a value/],
    [["--model", ""], /--model needs a value/],
    [["--calib", ""], /--calib needs a value/],
    [["--no-save", "--out", "x"], /--out names the model directory, which --no-save turns off/],
    [["--dlp-alpha", "1"], /--dlp-alpha must be in \[0, 1\), got 1/],
    [["--dlp-alpha=-0.1"], /--dlp-alpha must be in \[0, 1\)/],
  ];
  for (const [args, re] of bad) {
    assert.throws(
      () => parsePruneArgs(args),
      (e: Error) => e instanceof ArgumentError && re.test(e.message),
      args.join(" "),
    );
  }
  assert.doesNotThrow(() => parsePruneArgs(["--pattern", "0:4"])); // keeps every weight: sparsity 0
});

Deno.test("cli errors: --out naming a directory of other files is refused, and the files survive", async () => {
  const other = join(root, "not-a-model");
  await Deno.mkdir(other);
  await Deno.writeTextFile(join(other, "notes.txt"), "precious");
  const refused = /not-a-model is a directory with other files in it \(no config\.json/;
  await assertCliError("export_main.ts", ["--out", other], refused);
  const o = parsePruneArgs(["--out", other]) as PruneCliOptions;
  await assert.rejects(
    () => runPrune(o, () => {}),
    (e: Error) => e instanceof OutputError && refused.test(e.message),
  );
  assert.deepEqual([...Deno.readDirSync(other)].map((e) => e.name), ["notes.txt"]);
  assert.equal(await Deno.readTextFile(join(other, "notes.txt")), "precious");
});

Deno.test("cli errors: exporting a model directory keeps its tokenizer.bin", async () => {
  const out = join(root, "re-exported");
  const r = await cli("export_main.ts", ["--model", mismatched, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    [...Deno.readDirSync(out)].map((e) => e.name).sort(),
    ["config.json", "model.safetensors", "tokenizer.bin"],
  );
});

Deno.test("cli errors: architectures as a string, and an index whose shards lie outside the directory", async () => {
  const archString = await modelDir(
    root,
    "arch-string",
    { ...CONFIG, architectures: "LlamaForCausalLM" },
    valid,
  );
  await assert.rejects(
    () => openWeights(archString),
    (e: Error) =>
      e instanceof ModelFormatError &&
      /architectures must be a list, such as \["LlamaForCausalLM"\]/.test(e.message),
  );
  for (const [name, shard] of [["escape-up", "../valid/model.safetensors"], ["escape-abs", "/etc/passwd"]]) {
    const dir = join(root, name);
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(CONFIG));
    const names = expectedTensors(hfModelConfig(CONFIG, "config.json")).map((t) => t.name);
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: Object.fromEntries(names.map((n) => [n, shard])) }),
    );
    await assert.rejects(
      () => openWeights(dir),
      (e: Error) =>
        e instanceof ModelFormatError && /is not a file name inside the model directory/.test(e.message),
      name,
    );
  }
});

Deno.test("cli errors: a context of one token, and a depth schedule past [0, 1), before any work (in-process)", () => {
  const config = hfModelConfig({ ...CONFIG, max_position_embeddings: 1 }, "config.json");
  const settings = { pattern: { kind: "unstructured" } as const, seqlen: 1 };
  assert.throws(
    () => checkJobFits(config, settings),
    (e: Error) => e instanceof ArgumentError && /windows of 1 token\(s\) cannot be evaluated/.test(e.message),
  );
  const deep = hfModelConfig({ ...CONFIG, num_hidden_layers: 8 }, "config.json");
  assert.throws(
    () => checkJobFits(deep, { ...settings, seqlen: 16, allocation: "depth", sparsity: 0.7, beta: 0.1 }),
    (e: Error) => e instanceof ArgumentError && /use \|beta\| below/.test(e.message),
  );
  checkJobFits(deep, { ...settings, seqlen: 16, allocation: "depth", sparsity: 0.7, beta: 0.05 });
});

Deno.test("cli errors: cleanup", async () => {
  await Deno.remove(root, { recursive: true });
});
