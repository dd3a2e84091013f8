/**
 * prune.ts end to end on stories15M with small settings (8 calibration windows, 4 evaluation
 * windows), the saved directory read back by our Hugging Face loader, and the bad-input paths:
 * each a clear message, exit status 1, and nothing left in the output's parent directory.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePruneArgs, type PruneCliOptions, runPrune } from "../src/cli/prune_main.ts";
import { tokenizeCorpus } from "../src/data/corpora.ts";
import { openTokenizer } from "../src/data/open_tokenizer.ts";
import { evalWindows } from "../src/data/windows.ts";
import { evaluatePerplexity } from "../src/eval/perplexity.ts";
import { Gpu } from "../src/gpu/device.ts";
import { LINEARS } from "../src/model/config.ts";
import { ForwardRunner, GpuModel } from "../src/model/forward.ts";
import { linearWeight } from "../src/model/names.ts";
import { openWeights } from "../src/model/open.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { loadEmbeddedFiles } from "../src/model/embedded.ts";
import { exportHuggingFace } from "../src/model/export.ts";
import { llama2cConfig } from "../src/model/llama2c.ts";
import { memoryWeights, randomRefModel, refModelTensors } from "./ref/forward_ref.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("prune.ts: owl-wanda end to end (nsamples 8, 4 eval windows), saved model loads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "pruned");
    const o = parsePruneArgs([
      "--nsamples",
      "8",
      "--eval-windows",
      "4",
      "--out",
      out,
      "--report",
      join(dir, "r.json"),
    ]);
    assert(o !== "help");
    const lines: string[] = [];
    const r = await runPrune(o as PruneCliOptions, (s) => lines.push(s));

    // Report contents.
    assert.equal(r.method, "owl-wanda");
    assert.equal(r.allocation, "owl");
    assert.equal(r.blocks.length, 6);
    const s = r.blocks.map((b) => b.sparsity);
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    assert(Math.abs(mean - 0.7) < 1e-12, `OWL keeps the mean at S: ${mean}`);
    assert(Math.abs(Math.max(...s) - Math.min(...s) - 0.16) < 1e-12, "OWL spans 2 lambda");
    // More outliers, less pruning: sparsity order is the reverse of D's.
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 6; j++) {
        if (r.blocks[i].outlier_ratio! > r.blocks[j].outlier_ratio!) assert(s[i] < s[j]);
      }
    }
    assertEqualsFloorRule(r.linears);
    assert(r.ppl > r.ppl_dense && r.kl! > 0 && Number.isFinite(r.ppl));
    assert(lines.join("\n").includes("perplexity         dense"));
    const json = JSON.parse(await Deno.readTextFile(join(out, "report.json")));
    for (
      const k of [
        "model",
        "method",
        "allocation",
        "pattern",
        "sparsity_target",
        "sparsity_realised",
        "ppl_dense",
        "ppl",
        "kl",
        "seconds",
        "adapter",
      ]
    ) {
      assert(k in json, `report.json has ${k}`);
    }
    assert.deepEqual(Object.keys(json.blocks[0]).sort(), ["index", "outlier_ratio", "sparsity"]);
    assert.equal(json.settings.calib_dtype, "f32");
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(dir, "r.json"))).blocks, json.blocks);
    // The pruned weights went through a temporary file beside the output; it is gone.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["pruned", "r.json"]);
    assert((await Deno.readTextFile(join(out, "report.md"))).includes("| 5 |"));
    assert((await Deno.readTextFile(join(out, "report.svg"))).startsWith("<svg"));

    // The directory loads through the Hugging Face path; its zeros are the masks, and its
    // perplexity is the one reported.
    const hf = await openWeights(out);
    for (const c of r.linears) {
      const w = await hf.readF32(c.name);
      let z = 0;
      for (let i = 0; i < w.length; i++) z += w[i] === 0 ? 1 : 0;
      assert(z >= c.pruned && z <= c.pruned + w.length * 1e-4, `${c.name}: ${z} zeros, mask ${c.pruned}`);
    }
    const gpu = await Gpu.create();
    try {
      const tok = await openTokenizer(out);
      const windows = evalWindows(await tokenizeCorpus("moby-dick", tok), 256, 4);
      const model = await GpuModel.load(gpu, hf);
      const runner = new ForwardRunner(model, 256);
      const e = await evaluatePerplexity(runner, windows);
      runner.release();
      model.release();
      assert(Math.abs(e.ppl / r.ppl - 1) < 1e-4, `reloaded ppl ${e.ppl} vs reported ${r.ppl}`);
    } finally {
      gpu.destroy();
      hf.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prune.ts: owl-sparsegpt end to end (nsamples 8, 4 eval windows), saved model loads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "pruned");
    const args = ["--method", "owl-sparsegpt", "--nsamples", "8", "--eval-windows", "4", "--out", out];
    const o = parsePruneArgs([...args, "--percdamp", "0.02", "--blocksize", "64"]);
    assert(o !== "help");
    const r = await runPrune(o as PruneCliOptions, () => {});
    assert.equal(r.method, "owl-sparsegpt");
    assert.equal(r.allocation, "owl");
    assertEqualsFloorRule(r.linears);
    assert.equal(r.settings.percdamp, 0.02);
    assert.equal(r.settings.blocksize, 64);
    assert.deepEqual(r.settings.damping_retries, []);
    assert(r.ppl > r.ppl_dense && r.kl! > 0 && Number.isFinite(r.ppl));
    const json = JSON.parse(await Deno.readTextFile(join(out, "report.json")));
    assert.deepEqual(json.settings.damping_retries, []);
    // Zeros where the masks say, and SparseGPT's updates elsewhere: kept weights moved.
    const hf = await openWeights(out);
    const dense = await openWeights("stories15M");
    try {
      for (const c of r.linears) {
        const w = await hf.readF32(c.name), d = await dense.readF32(c.name);
        let z = 0, moved = 0;
        for (let i = 0; i < w.length; i++) {
          assert(Number.isFinite(w[i]), `${c.name}[${i}] = ${w[i]}`);
          if (w[i] === 0) z++;
          else if (w[i] !== d[i]) moved++;
        }
        assert(z >= c.pruned && z <= c.pruned + w.length * 1e-4, `${c.name}: ${z} zeros, mask ${c.pruned}`);
        assert(moved > (w.length - z) / 2, `${c.name}: only ${moved} kept weights were updated`);
      }
      const gpu = await Gpu.create();
      try {
        const windows = evalWindows(await tokenizeCorpus("moby-dick", await openTokenizer(out)), 256, 4);
        const model = await GpuModel.load(gpu, hf);
        const runner = new ForwardRunner(model, 256);
        const e = await evaluatePerplexity(runner, windows);
        runner.release();
        model.release();
        assert(Math.abs(e.ppl / r.ppl - 1) < 1e-4, `reloaded ppl ${e.ppl} vs reported ${r.ppl}`);
      } finally {
        gpu.destroy();
      }
    } finally {
      hf.close();
      dense.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function assertEqualsFloorRule(
  linears: { name: string; pruned: number; expected: number; numel: number }[],
): void {
  assert.equal(linears.length, 6 * LINEARS.length);
  for (const c of linears) {
    assert.equal(c.pruned, c.expected, `${c.name}: pruned ${c.pruned}, floor rule ${c.expected}`);
  }
  assert.equal(linears[0].name, linearWeight(0, "q"));
}

Deno.test("prune.ts: a bf16 checkpoint is saved as bf16, every kept weight bit for bit as read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A random Llama in bf16 with stories15M's tokenizer (vocabulary 32000).
    // (negative vocabSize: an untied head; a Hugging Face directory, so rotate-half RoPE)
    const config: ModelConfig = {
      ...llama2cConfig({
        dim: 16,
        hiddenDim: 40,
        nLayers: 2,
        nHeads: 2,
        nKvHeads: 1,
        vocabSize: -32000,
        seqLen: 32,
      }),
      ropeLayout: "half",
    };
    const model = join(dir, "model");
    await exportHuggingFace(memoryWeights(config, refModelTensors(randomRefModel(config, 21))), model, {
      dtype: "bf16",
      extraFiles: { "tokenizer.bin": (await loadEmbeddedFiles()).tokenizer },
    });
    const out = join(dir, "pruned");
    const o = parsePruneArgs([
      ...["--model", model, "--method", "wanda", "--sparsity", "0.5", "--seqlen", "16"],
      ...["--nsamples", "4", "--eval-windows", "2", "--out", out],
    ]);
    const r = await runPrune(o as PruneCliOptions, () => {});
    assert.equal(r.linears.length, 2 * LINEARS.length);
    for (const c of r.linears) assert.equal(c.pruned, c.expected, c.name);
    assert.equal(JSON.parse(await Deno.readTextFile(join(out, "config.json"))).torch_dtype, "bfloat16");
    const [src, saved] = [await openWeights(model), await openWeights(out)];
    try {
      assert.equal(saved.dtype, "bf16");
      for (const c of r.linears) {
        const a = new Uint16Array((await src.readRaw(c.name)).slice().buffer);
        const b = new Uint16Array((await saved.readRaw(c.name)).slice().buffer);
        let zeros = 0;
        for (let i = 0; i < a.length; i++) {
          if (b[i] === 0) zeros++;
          else assert.equal(b[i], a[i], `${c.name}[${i}] kept but changed`);
        }
        assert(zeros >= c.pruned, `${c.name}: ${zeros} zeros, ${c.pruned} pruned`);
      }
    } finally {
      src.close();
      saved.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** prune.ts as a child process (its stdout discarded when `quiet`). */
function pruneProcess(args: string[], quiet = false): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "prune.ts"), ...args],
    cwd: ROOT,
    stdout: quiet ? "null" : "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  });
}

async function runCli(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const p = await pruneProcess(args).output();
  const text = new TextDecoder();
  return { code: p.code, stderr: text.decode(p.stderr), stdout: text.decode(p.stdout) };
}

Deno.test("prune.ts: bad input is a clear error, exit 1, and no output left behind", async () => {
  const dir = await Deno.makeTempDir();
  const scratch = await Deno.makeTempDir();
  try {
    const short = join(scratch, "short.txt");
    await Deno.writeTextFile(short, "Call me Ishmael. Some years ago.");
    const aFile = join(scratch, "a-file");
    await Deno.writeTextFile(aFile, "");
    const out = join(dir, "out");
    const badCheckpoint = join(scratch, "bad-checkpoint");
    await Deno.mkdir(badCheckpoint);
    await Deno.writeTextFile(join(badCheckpoint, "checkpoint.json"), "{half a file");
    const cases: [string[], RegExp][] = [
      [["--sparsity", "1"], /--sparsity must be in \[0, 1\)/],
      [["--sparsity=-0.1"], /--sparsity must be in \[0, 1\)/],
      [["--sparsity", "abc"], /--sparsity must be a number/],
      [["--pattern", "5:7"], /M = 7 does not divide C_in = 288/],
      [["--pattern", "5:4"], /need 0 <= N <= M/],
      [["--nsamples", "0"], /--nsamples must be an integer >= 1/],
      [["--calib-dtype", "bf16"], /--calib-dtype must be f32 or f16/],
      [["--save-sparse", "--sparse-dtype", "bf16"], /--sparse-dtype must be f32 or f16/],
      [
        ["--sparse-dtype", "f32"],
        /--sparse-dtype sets the dtype of the --save-sparse file; add --save-sparse/,
      ],
      [
        ["--calib", short],
        /calibration text .*short\.txt: the corpus has \d+ tokens, but one window needs 256/,
      ],
      [
        ["--eval", short, "--nsamples", "1"],
        /evaluation text .*short\.txt: the corpus has \d+ tokens, but one window needs 256/,
      ],
      [["--out", join(aFile, "out")], /cannot write the output directory/],
      [["--method", "sparsegpt", "--percdamp=-1"], /--percdamp must be >= 0/],
      [["--method", "sparsegpt", "--blocksize", "0"], /--blocksize must be an integer >= 1/],
      [["--method", "sparsegpt", "--blocksize", "300"], /--blocksize must be an integer in \[1, 256\]/],
      [
        ["--method", "owl-sparsegpt", "--pattern", "2:4", "--blocksize", "126"],
        /--blocksize \(126\) to be a multiple of M \(4\)/,
      ],
      [["--method", "foo"], /--method must be one of/],
      [["--model", join(scratch, "missing")], /not found/],
      [
        ["--tmp-dir", join(scratch, "missing")],
        /cannot create a temporary file for the pruned weights in .*missing/,
      ],
      [["--bogus"], /Unknown option '--bogus'/],
      [["--checkpoint", aFile], /--checkpoint .*a-file is a file; give a directory/],
      [["--checkpoint", scratch], /--checkpoint .* holds 3 file\(s\) that are not a checkpoint's \(a-file\)/],
      [
        ["--checkpoint", join(scratch, "ck"), "--tmp-dir", scratch],
        /--checkpoint DIR keeps the pruned weights in DIR; drop --tmp-dir/,
      ],
      [
        ["--checkpoint", badCheckpoint],
        /checkpoint\.json cannot be read .*; remove the directory to start the job over/,
      ],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli(["--out", out, ...args]);
      assert.equal(r.code, 1, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
      assertMatchText(r.stderr, msg, args);
      assert.deepEqual([...Deno.readDirSync(dir)], [], `${args.join(" ")} left output behind`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("prune.ts: Ctrl-C removes the pruned-weights file (in --tmp-dir), leaves no output, exits 130", async () => {
  const dir = await Deno.makeTempDir(), outParent = await Deno.makeTempDir();
  try {
    const child = pruneProcess(
      ["--nsamples", "8", "--eval-windows", "4", "--tmp-dir", dir, "--out", join(outParent, "out")],
      true,
    ).spawn();
    // Wait until the job's weights file holds a pruned block, then interrupt it mid-job.
    const weightsBytes = () => {
      const e = [...Deno.readDirSync(dir)].find((e) => e.name.startsWith(".owlgpu-pruned-"));
      return e ? Deno.statSync(join(dir, e.name)).size : 0;
    };
    const t0 = performance.now();
    while (weightsBytes() === 0 && performance.now() - t0 < 120_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert(weightsBytes() > 0, "the job never wrote its weights file");
    child.kill("SIGINT");
    const r = await child.output();
    const stderr = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 130, stderr);
    assert.match(stderr, /interrupted \(SIGINT\); removed 1 unfinished output\(s\): .*\.owlgpu-pruned-/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "left behind");
    assert.deepEqual([...Deno.readDirSync(outParent)], [], "output left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outParent, { recursive: true });
  }
});

Deno.test("prune.ts --checkpoint: stopped by Ctrl-C, the same command resumes to the same model, then removes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const common = ["--nsamples", "8", "--eval-windows", "4"];
    const whole = parsePruneArgs([...common, "--out", join(dir, "whole")]) as PruneCliOptions;
    const wholeReport = await runPrune(whole, () => {}); // uninterrupted, for comparison

    const ckpt = join(dir, "ckpt");
    const args = [...common, "--out", join(dir, "resumed"), "--checkpoint", ckpt];
    const child = pruneProcess(args, true).spawn();
    // Interrupt the job once its checkpoint says 2 blocks are done (the file is replaced atomically).
    const blocksDone = () => {
      try {
        return JSON.parse(Deno.readTextFileSync(join(ckpt, "checkpoint.json"))).walk.blocksDone as number;
      } catch {
        return -1;
      }
    };
    const t0 = performance.now();
    while (blocksDone() < 2 && performance.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
    assert(blocksDone() >= 2, "the job never checkpointed 2 blocks");
    child.kill("SIGINT");
    const stopped = await child.output();
    const stderr = new TextDecoder().decode(stopped.stderr);
    assert.equal(stopped.code, 130, stderr);
    assert.match(
      stderr,
      /progress kept in .*ckpt \([2-6] of 6 blocks pruned\): run the same command to resume/,
    );
    assert.deepEqual([...Deno.readDirSync(ckpt)].map((e) => e.name).sort(), [
      "checkpoint.json",
      "weights.bin",
    ]);
    const kept = blocksDone();

    // Another job's flags are refused, and the checkpoint stays.
    const other = await runCli([...args, "--sparsity", "0.5"]);
    assert.equal(other.code, 1, other.stderr);
    assertMatchText(other.stderr, /another job \(sparsity: 0\.5 here, 0\.7 in the checkpoint\)/, args);
    assert.ok(other.stderr.includes(`--checkpoint ${ckpt} cannot be resumed: `), other.stderr);
    assert.equal(blocksDone(), kept);

    // The same command resumes after the last finished block and gives the uninterrupted model. (The
    // checkpoint is made to name another adapter, which only adds a note: the blocks ran on this one.)
    const file = JSON.parse(Deno.readTextFileSync(join(ckpt, "checkpoint.json")));
    file.walk.adapter = "Another GPU";
    Deno.writeTextFileSync(join(ckpt, "checkpoint.json"), JSON.stringify(file));
    const resumed = await runCli(args);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`checkpoint .*ckpt: resuming after block ${kept} of 6`));
    assert.match(resumed.stdout, new RegExp(`time .* \\(this run; resumed after block ${kept} of 6\\)`));
    assert.match(resumed.stdout, /note: the checkpoint's blocks were pruned on Another GPU, this run uses /);
    assert.throws(() => Deno.statSync(ckpt), Deno.errors.NotFound, "the checkpoint is removed when done");
    const bytes = (d: string) => Deno.readFileSync(join(dir, d, "model.safetensors"));
    assert.deepEqual(
      bytes("resumed"),
      bytes("whole"),
      "model.safetensors differs from the uninterrupted run's",
    );
    const report = JSON.parse(Deno.readTextFileSync(join(dir, "resumed", "report.json")));
    for (const k of ["ppl", "ppl_dense", "kl", "sparsity_realised"] as const) {
      assert.equal(report[k], wholeReport[k], k);
    }
    assert.deepEqual(report.blocks, wholeReport.blocks);
    assert.equal(report.settings.resumed_after_block, kept);
    assert(!("resumed_after_block" in wholeReport.settings));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function assertMatchText(text: string, re: RegExp, args: string[]): void {
  assert(re.test(text), `${args.join(" ")}: expected ${re} in\n${text}`);
  assert(text.startsWith("error: "), `${args.join(" ")}: one clear line, no stack:\n${text}`);
}

Deno.test("prune.ts --help lists every flag", async () => {
  const p = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "prune.ts"), "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(p.code, 0);
  const help = new TextDecoder().decode(p.stdout);
  for (
    const f of [
      "--model",
      "--method",
      "--allocation",
      "--sparsity",
      "--pattern",
      "--owl-m",
      "--owl-lambda",
      "--calib",
      "--nsamples",
      "--seqlen",
      "--eval",
      "--eval-windows",
      "--out",
      "--report",
      "--no-save",
      "--no-kl",
      "--save-sparse",
      "--tmp-dir",
      "--calib-dtype",
      "--offload-activations",
      "--sparse-dtype",
      "--percdamp",
      "--blocksize",
      "owl-sparsegpt",
    ]
  ) {
    assert(help.includes(f), f);
  }
});
