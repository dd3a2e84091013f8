/**
 * `deno task prune` / `deno run -A prune.ts`: prune a model, evaluate it against the dense one,
 * save it as a Hugging Face directory with report.json, report.md and report.svg.
 * With no flags: stories15M, OWL + Wanda at 70%, M 5, lambda 0.08, protocol P.
 * @module
 */
import { basename, dirname, extname, join, resolve } from "node:path";
import { tokenizeCorpus } from "../data/corpora.ts";
import { openTokenizer } from "../data/open_tokenizer.ts";
import { ArgumentError } from "../errors.ts";
import { Gpu } from "../gpu/device.ts";
import { tokenizerFiles } from "../model/companions.ts";
import { EMBEDDED_MODEL_NAME } from "../model/embedded.ts";
import { exportHuggingFace } from "../model/export.ts";
import {
  type Allocation,
  ALLOCATIONS,
  type DampingRetry,
  defaultAllocation,
  type Method,
  METHODS,
} from "../prune/pipeline.ts";
import {
  checkJobFits,
  parsePattern,
  patternName,
  pruneAndEvaluate,
  type PruneJobSettings,
} from "../prune/job.ts";
import { FileWeightStore } from "../prune/file_store.ts";
import { CheckpointDir } from "../prune/checkpoint_dir.ts";
import { noteOnStop } from "./run.ts";
import { type PruneReport, reportJson, reportMarkdown, reportSvg } from "../prune/report.ts";
import {
  openModelWeights,
  planSparseModel,
  pruneSparseOptions,
  SPARSE_MODEL_FILE,
  writeSparseModelFile,
} from "../sparse/model.ts";
import { checkWritableParent, writeTextAtomic } from "../util/files.ts";
import { checkReplaceableDir, CLI_MODEL_FORMS, intFlag, numberFlag, parseFlags, wrapHelp } from "./args.ts";
import { Progress } from "./progress.ts";

export const HELP = `Prune a LLaMA-family model with OWL / Wanda / SparseGPT / magnitude on the GPU (WebGPU).

Usage: deno task prune [flags]        (no flags: stories15M, owl-wanda, 70%, protocol P)

Model and method
  --model SPEC          ${wrapHelp(`${CLI_MODEL_FORMS}. Default: stories15M`, 24)}
  --method NAME         dense | magnitude | wanda | owl-magnitude | owl-wanda | sparsegpt |
                        owl-sparsegpt (default owl-wanda)
  --allocation NAME     uniform | owl | depth | dlp: per-block sparsities (default: owl for owl-*,
                        uniform otherwise)
  --sparsity S          target sparsity in [0, 1) (default 0.7; ignored by N:M patterns)
  --pattern P           unstructured | 2:4 | 4:8 | N:M (default unstructured)
  --owl-m M             outlier threshold: scores above M x mean count (default 5)
  --owl-lambda L        OWL's sparsity range is S +- L (default 0.08)
  --depth-beta B        depth schedule step per block (allocation depth, default 0.02)
  --dlp-alpha A         DLP's range (allocation dlp, default 0.15)
  --nm-rounding R       reference | mass-preserving: rounding of OWL's mixed N:M (default reference)
  --percdamp P          SparseGPT damping: P x mean(diag H) added to H's diagonal (default 0.01);
                        raised x10 (up to 3 times, reported) where H is not positive definite
  --blocksize B         SparseGPT columns per block of the lazy batch update, 1..256 (default 128)

Data
  --calib SPEC          calibration text: sotu (built in) or a text file (default sotu)
  --nsamples N          calibration windows (default 128)
  --calib-dtype D       f32 | f16: how the calibration activations wait between blocks on the GPU
                        (default f32; f16 halves that memory and rounds block inputs to f16, as
                        the reference code does in fp16)
  --offload-activations keep the calibration activations in host memory, a few windows on the GPU at
                        a time: for GPUs too small for them (same result, slower)
  --seqlen N            tokens per window (default: the model's context)
  --eval SPEC           evaluation text: moby-dick (built in) or a text file (default moby-dick)
  --eval-windows N      evaluation windows (default 128)
  --no-kl               evaluate the dense and pruned models one after the other, one on the GPU at a
                        time (half the evaluation's GPU memory), without KL(dense||pruned)

Output
  --out DIR             pruned model directory (default ./pruned/<model>-<method>-<sparsity>),
                        replaced when complete; an existing one must be empty or a model directory
  --report FILE.json    also write report.json here
  --no-save             do not write the model directory
  --save-sparse         also write model.sparse.safetensors (pruned linears stored sparse) into it,
                        to run with: deno task generate --model DIR --sparse
  --sparse-dtype D      f32 | f16: its values' dtype (default f16 for 16-bit models, f32 otherwise;
                        f32 for a bf16 model holding values past f16's 65504)
  --tmp-dir DIR         where the pruned weights wait until they are saved, in a file deleted at the
                        end (default: beside --out; the system's temporary directory with --no-save).
                        It needs about (1 - sparsity + 1/32) x 4 bytes per block-linear weight.
  --checkpoint DIR      keep the pruned weights and the walk's state in DIR after every block; if the
                        job stops (Ctrl-C, crash), the same command resumes after the last finished
                        block, with the same result. DIR is removed when the job succeeds.
  -h, --help            this text

Exit status: 0 on success, 1 on bad input (the message says what to change), 2 on a bug.`;

/** The parsed flags: a job's settings (seqlen optional: the model's context) plus the outputs. */
export interface PruneCliOptions extends Omit<PruneJobSettings, "seqlen"> {
  model: string;
  seqlen?: number;
  out?: string;
  report?: string;
  save: boolean;
  /** Also write model.sparse.safetensors into the output directory. */
  saveSparse?: boolean;
  /** Its values' dtype (default: f16 for 16-bit sources, f32 otherwise). */
  sparseDtype?: "f32" | "f16";
  /** Directory of the pruned weights' temporary file (default: the output's parent, or the system's). */
  tmpDir?: string;
  /** Keep the walk's progress in this directory, and resume from it (`--checkpoint`). */
  checkpoint?: string;
}

/** Parse and check the flags (no I/O). Throws ArgumentError/UnsupportedError on bad values. */
export function parsePruneArgs(args: string[]): PruneCliOptions | "help" {
  const v = parseFlags(args, {
    model: { type: "string" },
    method: { type: "string" },
    allocation: { type: "string" },
    sparsity: { type: "string" },
    pattern: { type: "string" },
    "owl-m": { type: "string" },
    "owl-lambda": { type: "string" },
    "depth-beta": { type: "string" },
    "dlp-alpha": { type: "string" },
    "nm-rounding": { type: "string" },
    percdamp: { type: "string" },
    blocksize: { type: "string" },
    calib: { type: "string" },
    nsamples: { type: "string" },
    "calib-dtype": { type: "string" },
    "offload-activations": { type: "boolean" },
    seqlen: { type: "string" },
    eval: { type: "string" },
    "eval-windows": { type: "string" },
    out: { type: "string" },
    report: { type: "string" },
    "no-save": { type: "boolean" },
    "no-kl": { type: "boolean" },
    "save-sparse": { type: "boolean" },
    "sparse-dtype": { type: "string" },
    "tmp-dir": { type: "string" },
    checkpoint: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return "help";
  for (const flag of ["model", "calib", "eval", "out", "report", "tmp-dir", "checkpoint"] as const) {
    if (v[flag] === "") throw new ArgumentError(`--${flag} needs a value; see --help`);
  }
  if (v["save-sparse"] && v["no-save"]) {
    throw new ArgumentError("--save-sparse writes into the model directory, which --no-save turns off");
  }
  const sparseDtype = v["sparse-dtype"];
  if (sparseDtype !== undefined && sparseDtype !== "f32" && sparseDtype !== "f16") {
    throw new ArgumentError(`--sparse-dtype must be f32 or f16, got ${JSON.stringify(sparseDtype)}`);
  }
  if (sparseDtype !== undefined && !v["save-sparse"]) {
    throw new ArgumentError("--sparse-dtype sets the dtype of the --save-sparse file; add --save-sparse");
  }
  if (v.checkpoint !== undefined && v["tmp-dir"] !== undefined) {
    throw new ArgumentError("--checkpoint DIR keeps the pruned weights in DIR; drop --tmp-dir");
  }
  if (v.out !== undefined && v["no-save"]) {
    throw new ArgumentError("--out names the model directory, which --no-save turns off; drop one of them");
  }
  const method = v.method ?? "owl-wanda";
  if (!(METHODS as readonly string[]).includes(method)) {
    throw new ArgumentError(`--method must be one of ${METHODS.join(", ")}; got ${JSON.stringify(method)}`);
  }
  const allocation = v.allocation ?? defaultAllocation(method as Method);
  if (!(ALLOCATIONS as readonly string[]).includes(allocation)) {
    throw new ArgumentError(
      `--allocation must be one of ${ALLOCATIONS.join(", ")}; got ${JSON.stringify(allocation)}`,
    );
  }
  const sparsity = numberFlag("sparsity", v.sparsity, 0.7);
  if (!(sparsity >= 0 && sparsity < 1)) {
    throw new ArgumentError(`--sparsity must be in [0, 1), got ${v.sparsity}`);
  }
  const nmRounding = v["nm-rounding"] ?? "reference";
  if (nmRounding !== "reference" && nmRounding !== "mass-preserving") {
    throw new ArgumentError(
      `--nm-rounding must be reference or mass-preserving, got ${JSON.stringify(nmRounding)}`,
    );
  }
  const percdamp = numberFlag("percdamp", v.percdamp, 0.01);
  if (!(percdamp >= 0)) throw new ArgumentError(`--percdamp must be >= 0, got ${v.percdamp}`);
  const blocksize = intFlag("blocksize", v.blocksize, 128, 1);
  if (blocksize > 256) {
    throw new ArgumentError(`--blocksize must be an integer in [1, 256], got ${v.blocksize}`);
  }
  const owlM = numberFlag("owl-m", v["owl-m"], 5);
  if (!(owlM > 0)) throw new ArgumentError(`--owl-m must be > 0, got ${v["owl-m"]}`);
  const owlLambda = numberFlag("owl-lambda", v["owl-lambda"], 0.08);
  if (!(owlLambda >= 0 && owlLambda < 1)) {
    throw new ArgumentError(`--owl-lambda must be in [0, 1), got ${v["owl-lambda"]}`);
  }
  const dlpAlpha = numberFlag("dlp-alpha", v["dlp-alpha"], 0.15);
  if (!(dlpAlpha >= 0 && dlpAlpha < 1)) {
    throw new ArgumentError(`--dlp-alpha must be in [0, 1), got ${v["dlp-alpha"]}`);
  }
  const activationDtype = v["calib-dtype"] ?? "f32";
  if (activationDtype !== "f32" && activationDtype !== "f16") {
    throw new ArgumentError(`--calib-dtype must be f32 or f16, got ${JSON.stringify(activationDtype)}`);
  }
  const pattern = parsePattern(v.pattern ?? "unstructured");
  if (pattern.kind === "nm" && pattern.n === pattern.m) {
    throw new ArgumentError(
      `--pattern ${v.pattern} prunes N = ${pattern.n} of every M = ${pattern.m} weights, all of them ` +
        `(sparsity 1); use N < M, e.g. 2:4`,
    );
  }
  return {
    model: v.model ?? EMBEDDED_MODEL_NAME,
    method: method as Method,
    allocation: allocation as Allocation,
    sparsity,
    pattern,
    owlM,
    owlLambda,
    beta: numberFlag("depth-beta", v["depth-beta"], 0.02),
    alpha: dlpAlpha,
    nmRounding,
    percdamp,
    blocksize,
    calib: v.calib ?? "sotu",
    nsamples: intFlag("nsamples", v.nsamples, 128, 1),
    activationDtype,
    offloadActivations: !!v["offload-activations"],
    seqlen: v.seqlen === undefined ? undefined : intFlag("seqlen", v.seqlen, 0, 2),
    eval: v.eval ?? "moby-dick",
    evalWindows: intFlag("eval-windows", v["eval-windows"], 128, 1),
    out: v.out,
    report: v.report,
    save: !v["no-save"],
    kl: !v["no-kl"],
    saveSparse: !!v["save-sparse"],
    sparseDtype,
    tmpDir: v["tmp-dir"],
    checkpoint: v.checkpoint,
  };
}

/** "stories15M", a directory's name, or a checkpoint's file name without extension. */
export function modelName(spec: string): string {
  if (spec === EMBEDDED_MODEL_NAME) return spec;
  const b = basename(resolve(spec));
  return extname(b) ? b.slice(0, -extname(b).length) : b;
}

function patternTag(o: PruneCliOptions): string {
  return o.pattern.kind === "nm" ? `${o.pattern.n}of${o.pattern.m}` : `${Math.round(o.sparsity * 100)}`;
}

class PhaseProgress {
  private bars = new Map<string, Progress>();
  update(phase: string, done: number, total: number): void {
    let p = this.bars.get(phase);
    if (!p) this.bars.set(phase, p = new Progress(phase.padEnd(9), total));
    p.update(done);
  }
}

/** The whole job; returns the report (also used by tests and examples). */
export async function runPrune(
  o: PruneCliOptions,
  log: (s: string) => void = console.log,
): Promise<PruneReport> {
  const t0 = performance.now();
  const name = modelName(o.model);
  const outDir = o.save ? (o.out ?? join("pruned", `${name}-${o.method}-${patternTag(o)}`)) : undefined;
  if (o.save && o.out === undefined) await Deno.mkdir("pruned", { recursive: true }).catch(() => {});
  // Fail on unwritable outputs now, not after the work.
  if (outDir) {
    await checkWritableParent(outDir, "output directory");
    await checkReplaceableDir(outDir, "--out");
  }
  if (o.report) await checkWritableParent(o.report, "report file");

  const source = await openModelWeights(o.model);
  const gpu = await Gpu.create();
  const progress = new PhaseProgress();
  let store: FileWeightStore | undefined;
  let checkpoint: CheckpointDir | undefined;
  let forgetNote = () => {};
  try {
    const seqlen = o.seqlen ?? source.config.maxSeqLen;
    checkJobFits(source.config, { ...o, seqlen }); // before any file: cheap errors first
    // The pruned linears go to disk as each block finishes (by default beside the output, which needs
    // the room anyway), so host memory holds one linear at a time, not the model's.
    if (o.checkpoint) {
      checkpoint = await CheckpointDir.open(o.checkpoint);
      store = checkpoint.store;
      const { blocksDone: done, adapter } = checkpoint.resume ?? {};
      log(
        `checkpoint ${o.checkpoint}: ` +
          (done === undefined ? "new" : `resuming after block ${done} of ${source.config.nLayers}`),
      );
      if (adapter !== undefined && adapter !== gpu.adapterName) {
        log(
          `note: the checkpoint's blocks were pruned on ${adapter}, this run uses ${gpu.adapterName}: ` +
            "a valid prune, but not bit-identical to an uninterrupted run on either",
        );
      }
    } else {
      store = await FileWeightStore.create(o.tmpDir ?? (outDir ? dirname(resolve(outDir)) : undefined));
    }
    const cp = checkpoint;
    const settings: PruneJobSettings = {
      ...o,
      seqlen,
      store,
      resume: cp?.resume,
      resumeName: `--checkpoint ${o.checkpoint}`,
      onCheckpoint: cp && (async (walk) => {
        await cp.save(walk);
        // From the first save on, a stopped job has something to resume from.
        forgetNote();
        forgetNote = noteOnStop(
          `progress kept in ${cp.dir} (${walk.blocksDone} of ${walk.nBlocks} blocks pruned): ` +
            "run the same command to resume",
        );
      }),
    };
    const tok = await openTokenizer(o.model);
    const calibIds = await tokenizeCorpus(o.calib, tok);
    const evalIds = await tokenizeCorpus(o.eval, tok);
    log(
      `owlgpu: ${name}, ${o.method} (${o.allocation}, ${patternName(o.pattern)}), adapter ${gpu.adapterName}`,
    );
    const modelLabel = o.model === EMBEDDED_MODEL_NAME ? EMBEDDED_MODEL_NAME : resolve(o.model);
    const job = await pruneAndEvaluate(
      gpu,
      source,
      modelLabel,
      calibIds,
      evalIds,
      settings,
      (phase, done, total) => progress.update(phase, done, total),
    );
    job.release();
    const { report, weights } = job;
    // --save-sparse: sized now (for the report), packed and streamed into the export's temp dir. Its
    // values are f32 or f16, the sparse kernels' types; model.safetensors keeps the source's dtype.
    const sparsePlan = outDir && o.saveSparse
      ? await planSparseModel(source, weights, {
        ...pruneSparseOptions(source.dtype, o.pattern, o.sparseDtype),
        onProgress: (phase, done, total) =>
          progress.update(phase === "plan" ? "sizing" : "sparse", done, total),
      })
      : undefined;
    if (sparsePlan) {
      report.sparse_file = SPARSE_MODEL_FILE;
      report.sparse_bytes = sparsePlan.sparseBytes;
      report.dense_linear_bytes = sparsePlan.denseF32Bytes;
    }
    report.seconds = (performance.now() - t0) / 1000;

    if (outDir) {
      await exportHuggingFace(source, outDir, {
        dtype: source.dtype, // kept weights are stored bit for bit as they were read
        onProgress: (done, total) => progress.update("save", done, total),
        override: (n) => weights.has(n) ? weights.read(n) : undefined,
        writeExtra: sparsePlan
          ? async (tmp) => void await writeSparseModelFile(join(tmp, SPARSE_MODEL_FILE), sparsePlan)
          : undefined,
        extraFiles: {
          ...(await tokenizerFiles(o.model)),
          "report.json": new TextEncoder().encode(reportJson(report)),
          "report.md": new TextEncoder().encode(reportMarkdown(report)),
          "report.svg": new TextEncoder().encode(reportSvg(report)),
        },
      });
    }
    if (o.report) await writeTextAtomic(o.report, reportJson(report));
    forgetNote();
    await checkpoint?.remove(); // the job is done: nothing to resume
    log(summary(report, outDir));
    return report;
  } finally {
    forgetNote();
    store?.close(); // a checkpoint's store keeps its file
    source.close();
    gpu.destroy();
  }
}

function summary(r: PruneReport, outDir: string | undefined): string {
  const d = r.blocks.map((b) => b.outlier_ratio === null ? "-" : b.outlier_ratio.toFixed(2));
  const s = r.blocks.map((b) => b.sparsity.toFixed(3));
  return [
    "",
    `model              ${r.model}`,
    `method             ${r.method}  allocation ${r.allocation}  pattern ${r.pattern}`,
    `sparsity           target ${r.sparsity_target.toFixed(4)}  realised ${r.sparsity_realised.toFixed(6)}` +
    (r.mean_n !== undefined ? `  mean N ${r.mean_n.toFixed(4)}` : ""),
    `outlier ratio D %  ${d.join(" ")}`,
    `block sparsity     ${s.join(" ")}`,
    `perplexity         dense ${r.ppl_dense.toFixed(3)}  pruned ${
      r.ppl.toFixed(3)
    }  (${r.settings.eval}, ${r.settings.eval_windows} x ${r.settings.seqlen} tokens)`,
    `KL(dense||pruned)  ${r.kl === null ? "not computed (--no-kl)" : `${r.kl.toFixed(5)} nats/token`}`,
    ...dampingLine(r),
    `time               ${r.seconds.toFixed(1)} s on ${r.adapter}` +
    (r.settings.resumed_after_block !== undefined
      ? ` (this run; resumed after block ${r.settings.resumed_after_block} of ${r.blocks.length})`
      : ""),
    ...(r.sparse_bytes !== undefined && r.dense_linear_bytes
      ? [
        `sparse linears     ${(r.sparse_bytes / 1e6).toFixed(2)} MB = ${
          (100 * r.sparse_bytes / r.dense_linear_bytes).toFixed(1)
        }% of ${(r.dense_linear_bytes / 1e6).toFixed(2)} MB dense f32 (${r.sparse_file})`,
      ]
      : []),
    outDir
      ? `saved              ${resolve(outDir)}/ (model.safetensors, ${
        r.sparse_file ? r.sparse_file + ", " : ""
      }config.json, report.json, report.md, report.svg)`
      : "saved              (--no-save)",
  ].join("\n");
}

/** SparseGPT: a line when some Hessian needed more damping than asked for. */
function dampingLine(r: PruneReport): string[] {
  const retries = r.settings.damping_retries as DampingRetry[] | undefined;
  if (!retries?.length) return [];
  const worst = Math.max(...retries.map((d) => d.percdamp));
  return [
    `damping            ${retries.length} Hessian(s) not positive definite at percdamp ${r.settings.percdamp}; ` +
    `raised x10 up to ${worst} (report.json settings.damping_retries)`,
  ];
}

export async function pruneMain(args: string[]): Promise<void> {
  const o = parsePruneArgs(args);
  if (o === "help") {
    console.log(HELP);
    return;
  }
  await runPrune(o);
}
