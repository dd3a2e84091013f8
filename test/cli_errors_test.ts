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
import { ModelFormatError, UnsupportedError } from "../src/errors.ts";
import { parsePplArgs } from "../src/cli/ppl_main.ts";
import { ArgumentError } from "../src/errors.ts";
import { expectedTensors, hfModelConfig } from "../src/model/hf.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";
import { openWeights } from "../src/model/open.ts";
import { encodeSafetensors } from "../src/model/safetensors.ts";

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

/** A complete, valid model.safetensors for CONFIG (all zeros). */
async function validSafetensors(): Promise<Uint8Array> {
  const c = hfModelConfig(CONFIG, "config.json");
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

/** Run a CLI as a subprocess; returns its exit code and output. */
async function cli(script: "ppl_main.ts" | "export_main.ts", args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `src/cli/${script}`, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The CLI exits 1 with one "error: ..." message matching `pattern` and no stack trace. */
async function assertCliError(script: "ppl_main.ts" | "export_main.ts", args: string[], pattern: RegExp) {
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

Deno.test("cli errors: cleanup", async () => {
  await Deno.remove(root, { recursive: true });
});
