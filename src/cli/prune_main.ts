/**
 * `deno task prune` / `deno run -A prune.ts`: prune a model, evaluate it against the dense one,
 * save it as a Hugging Face directory with report.json, report.md and report.svg.
 * With no flags: stories15M, OWL + Wanda at 70%, M 5, lambda 0.08, protocol P.
 * @module
 */
import { basename, extname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { tokenizeCorpus } from "../data/corpora.ts";
import { openTokenizer } from "../data/open_tokenizer.ts";
import { calibrationWindows, evalWindows } from "../data/windows.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import { evaluatePerplexity } from "../eval/perplexity.ts";
import { Gpu } from "../gpu/device.ts";
import { LINEARS, linearShape } from "../model/config.ts";
import { EMBEDDED_MODEL_NAME, loadEmbeddedFiles } from "../model/embedded.ts";
import { exportHuggingFace } from "../model/export.ts";
import { ForwardRunner, GpuModel } from "../model/forward.ts";
import { linearWeight } from "../model/names.ts";
import { MODEL_SPEC_FORMS, openWeights } from "../model/open.ts";
import type { WeightSource } from "../model/weights.ts";
import {
  ALLOCATIONS,
  defaultAllocation,
  type Method,
  METHODS,
  type Pattern,
  prune,
  type PruneOptions,
  validatePruneOptions,
} from "../prune/pipeline.ts";
import { type PruneReport, reportJson, reportMarkdown, reportSvg } from "../prune/report.ts";
import { checkWritableParent, writeTextAtomic } from "../util/files.ts";
import { Progress } from "./progress.ts";

/** Method names kept for the SparseGPT pruners (not implemented yet). */
const RESERVED_METHODS = ["sparsegpt", "owl-sparsegpt"];

export const HELP = `Prune a LLaMA-family model with OWL / Wanda / magnitude on the GPU (WebGPU).

Usage: deno task prune [flags]        (no flags: stories15M, owl-wanda, 70%, protocol P)

Model and method
  --model SPEC          ${MODEL_SPEC_FORMS}. Default: stories15M
  --method NAME         dense | magnitude | wanda | owl-magnitude | owl-wanda (default owl-wanda)
  --allocation NAME     uniform | owl | depth | dlp: per-block sparsities (default: owl for owl-*,
                        uniform otherwise)
  --sparsity S          target sparsity in [0, 1) (default 0.7; ignored by N:M patterns)
  --pattern P           unstructured | 2:4 | 4:8 | N:M (default unstructured)
  --owl-m M             outlier threshold: scores above M x mean count (default 5)
  --owl-lambda L        OWL's sparsity range is S +- L (default 0.08)
  --depth-beta B        depth schedule step per block (allocation depth, default 0.02)
  --dlp-alpha A         DLP's range (allocation dlp, default 0.15)
  --nm-rounding R       reference | mass-preserving: rounding of OWL's mixed N:M (default reference)

Data
  --calib SPEC          calibration text: sotu (built in) or a text file (default sotu)
  --nsamples N          calibration windows (default 128)
  --seqlen N            tokens per window (default: the model's context)
  --eval SPEC           evaluation text: moby-dick (built in) or a text file (default moby-dick)
  --eval-windows N      evaluation windows (default 128)

Output
  --out DIR             pruned model directory (default ./pruned/<model>-<method>-<sparsity>)
  --report FILE.json    also write report.json here
  --no-save             do not write the model directory
  -h, --help            this text

Exit status: 0 on success, 1 on bad input (the message says what to change), 2 on a bug.`;

export interface PruneCliOptions {
  model: string;
  method: Method;
  allocation: string;
  sparsity: number;
  pattern: Pattern;
  owlM: number;
  owlLambda: number;
  beta: number;
  alpha: number;
  nmRounding: "reference" | "mass-preserving";
  calib: string;
  nsamples: number;
  seqlen?: number;
  eval: string;
  evalWindows: number;
  out?: string;
  report?: string;
  save: boolean;
}

function num(flag: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x)) {
    throw new ArgumentError(`--${flag} must be a number, got ${JSON.stringify(v)}`);
  }
  return x;
}

function int(flag: string, v: string | undefined, def: number, min: number): number {
  const x = num(flag, v, def);
  if (!Number.isInteger(x) || x < min) {
    throw new ArgumentError(`--${flag} must be an integer >= ${min}, got ${v}`);
  }
  return x;
}

export function parsePattern(p: string): Pattern {
  if (p === "unstructured") return { kind: "unstructured" };
  const m = /^(\d+):(\d+)$/.exec(p);
  if (!m) {
    throw new ArgumentError(`--pattern must be unstructured or N:M (e.g. 2:4), got ${JSON.stringify(p)}`);
  }
  const n = Number(m[1]), mm = Number(m[2]);
  if (mm < 1 || n > mm) throw new ArgumentError(`--pattern ${p}: need 0 <= N <= M and M >= 1`);
  return { kind: "nm", n, m: mm };
}

/** Parse and check the flags (no I/O). Throws ArgumentError/UnsupportedError on bad values. */
export function parsePruneArgs(args: string[]): PruneCliOptions | "help" {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
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
        calib: { type: "string" },
        nsamples: { type: "string" },
        seqlen: { type: "string" },
        eval: { type: "string" },
        "eval-windows": { type: "string" },
        out: { type: "string" },
        report: { type: "string" },
        "no-save": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    throw new ArgumentError(`${(e as Error).message}; see --help`);
  }
  if (v.help) return "help";
  const method = v.method ?? "owl-wanda";
  if (RESERVED_METHODS.includes(method)) {
    throw new UnsupportedError(`--method ${method} is reserved for SparseGPT, which is not implemented yet`);
  }
  if (!(METHODS as readonly string[]).includes(method)) {
    throw new ArgumentError(`--method must be one of ${METHODS.join(", ")}; got ${JSON.stringify(method)}`);
  }
  const allocation = v.allocation ?? defaultAllocation(method as Method);
  if (!(ALLOCATIONS as readonly string[]).includes(allocation)) {
    throw new ArgumentError(
      `--allocation must be one of ${ALLOCATIONS.join(", ")}; got ${JSON.stringify(allocation)}`,
    );
  }
  const sparsity = num("sparsity", v.sparsity, 0.7);
  if (!(sparsity >= 0 && sparsity < 1)) {
    throw new ArgumentError(`--sparsity must be in [0, 1), got ${v.sparsity}`);
  }
  const nmRounding = v["nm-rounding"] ?? "reference";
  if (nmRounding !== "reference" && nmRounding !== "mass-preserving") {
    throw new ArgumentError(
      `--nm-rounding must be reference or mass-preserving, got ${JSON.stringify(nmRounding)}`,
    );
  }
  const owlM = num("owl-m", v["owl-m"], 5);
  if (!(owlM > 0)) throw new ArgumentError(`--owl-m must be > 0, got ${v["owl-m"]}`);
  const owlLambda = num("owl-lambda", v["owl-lambda"], 0.08);
  if (!(owlLambda >= 0 && owlLambda < 1)) {
    throw new ArgumentError(`--owl-lambda must be in [0, 1), got ${v["owl-lambda"]}`);
  }
  return {
    model: v.model ?? EMBEDDED_MODEL_NAME,
    method: method as Method,
    allocation,
    sparsity,
    pattern: parsePattern(v.pattern ?? "unstructured"),
    owlM,
    owlLambda,
    beta: num("depth-beta", v["depth-beta"], 0.02),
    alpha: num("dlp-alpha", v["dlp-alpha"], 0.15),
    nmRounding,
    calib: v.calib ?? "sotu",
    nsamples: int("nsamples", v.nsamples, 128, 1),
    seqlen: v.seqlen === undefined ? undefined : int("seqlen", v.seqlen, 0, 2),
    eval: v.eval ?? "moby-dick",
    evalWindows: int("eval-windows", v["eval-windows"], 128, 1),
    out: v.out,
    report: v.report,
    save: !v["no-save"],
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

function patternName(p: Pattern): string {
  return p.kind === "nm" ? `${p.n}:${p.m}` : "unstructured";
}

/** Files that make the output directory usable on its own: the model's tokenizer and friends. */
async function companionFiles(spec: string): Promise<Record<string, Uint8Array>> {
  if (spec === EMBEDDED_MODEL_NAME) return { "tokenizer.bin": (await loadEmbeddedFiles()).tokenizer };
  const dir = (await Deno.stat(spec)).isDirectory ? spec : join(spec, "..");
  const names = (await Deno.stat(spec)).isDirectory
    ? [
      "tokenizer.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "generation_config.json",
      "tokenizer.model",
    ]
    : ["tokenizer.bin"];
  const out: Record<string, Uint8Array> = {};
  for (const n of names) {
    try {
      out[n] = await Deno.readFile(join(dir, n));
    } catch {
      // optional
    }
  }
  return out;
}

function checkPatternFits(source: WeightSource, p: Pattern): void {
  if (p.kind !== "nm") return;
  for (const lin of LINEARS) {
    const cIn = linearShape(source.config, lin)[1];
    if (cIn % p.m !== 0) {
      throw new ArgumentError(
        `--pattern ${p.n}:${p.m}: M = ${p.m} does not divide C_in = ${cIn} of the ${lin} projection`,
      );
    }
  }
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
  if (outDir) await checkWritableParent(outDir, "output directory");
  if (o.report) await checkWritableParent(o.report, "report file");

  const source = await openWeights(o.model);
  const gpu = await Gpu.create();
  const progress = new PhaseProgress();
  try {
    checkPatternFits(source, o.pattern);
    const seqlen = o.seqlen ?? source.config.maxSeqLen;
    if (seqlen > source.config.maxSeqLen) {
      throw new ArgumentError(
        `--seqlen ${seqlen} exceeds the model's context of ${source.config.maxSeqLen} tokens`,
      );
    }
    const tok = await openTokenizer(o.model);
    const calib = calibrationWindows(await tokenizeCorpus(o.calib, tok), o.nsamples, seqlen);
    const evalW = evalWindows(await tokenizeCorpus(o.eval, tok), seqlen, o.evalWindows);
    const popts: PruneOptions = {
      method: o.method,
      allocation: o.allocation as PruneOptions["allocation"],
      sparsity: o.sparsity,
      pattern: o.pattern,
      owlM: o.owlM,
      owlLambda: o.owlLambda,
      beta: o.beta,
      alpha: o.alpha,
      nmRounding: o.nmRounding,
      calibration: calib,
      onProgress: (phase, done, total) => progress.update(phase, done, total),
    };
    validatePruneOptions(popts);
    log(
      `owlgpu: ${name}, ${o.method} (${o.allocation}, ${patternName(o.pattern)}), adapter ${gpu.adapterName}`,
    );

    const pruned = await prune(gpu, source, popts);

    // Evaluate: one pass computes the dense perplexity, the pruned perplexity and the KL.
    const dense = await GpuModel.load(gpu, source);
    const denseRunner = new ForwardRunner(dense, seqlen);
    let ppl: number, pplDense: number, kl: number;
    const onProgress = (d: number, t: number) => progress.update("evaluate", d, t);
    onProgress(0, evalW.length);
    try {
      if (o.method === "dense") {
        const r = await evaluatePerplexity(denseRunner, evalW, { onProgress });
        ppl = pplDense = r.ppl;
        kl = 0;
      } else {
        const model = await GpuModel.load(gpu, source, { lazyBlocks: true });
        const runner = new ForwardRunner(model, seqlen);
        try {
          for (let l = 0; l < source.config.nLayers; l++) {
            await model.loadBlock(
              l,
              Object.fromEntries(LINEARS.map((lin) => [lin, pruned.weights.get(linearWeight(l, lin))!])),
            );
          }
          const r = await evaluatePerplexity(runner, evalW, { reference: denseRunner, onProgress });
          ppl = r.ppl;
          pplDense = r.referencePpl!;
          kl = r.kl!;
        } finally {
          runner.release();
          model.release();
        }
      }
    } finally {
      denseRunner.release();
      dense.release();
    }

    const report: PruneReport = {
      model: o.model === EMBEDDED_MODEL_NAME ? EMBEDDED_MODEL_NAME : resolve(o.model),
      method: o.method,
      allocation: o.allocation,
      pattern: patternName(o.pattern),
      sparsity_target: o.pattern.kind === "nm" ? o.pattern.n / o.pattern.m : o.sparsity,
      sparsity_realised: maskSparsity(pruned.counts),
      ppl_dense: pplDense,
      ppl,
      kl,
      seconds: 0,
      adapter: gpu.adapterName,
      blocks: pruned.blocks,
      linears: pruned.counts,
      settings: {
        owl_m: o.owlM,
        owl_lambda: o.owlLambda,
        depth_beta: o.beta,
        dlp_alpha: o.alpha,
        nm_rounding: o.nmRounding,
        calib: o.calib,
        nsamples: o.nsamples,
        seqlen,
        eval: o.eval,
        eval_windows: evalW.length,
        eval_tokens: evalW.length * (seqlen - 1),
      },
      ...(pruned.meanN !== undefined ? { mean_n: pruned.meanN } : {}),
    };
    report.seconds = (performance.now() - t0) / 1000;

    if (outDir) {
      await exportHuggingFace(source, outDir, {
        dtype: source.dtype === "f32" ? "f32" : "f16",
        override: (n) => pruned.weights.get(n),
        extraFiles: {
          ...(await companionFiles(o.model)),
          "report.json": new TextEncoder().encode(reportJson(report)),
          "report.md": new TextEncoder().encode(reportMarkdown(report)),
          "report.svg": new TextEncoder().encode(reportSvg(report)),
        },
      });
    }
    if (o.report) await writeTextAtomic(o.report, reportJson(report));
    log(summary(report, outDir));
    return report;
  } finally {
    source.close();
    gpu.destroy();
  }
}

/** Pruned / total over the pruned linears, from the masks. */
function maskSparsity(counts: { pruned: number; numel: number }[]): number {
  let p = 0, t = 0;
  for (const c of counts) [p, t] = [p + c.pruned, t + c.numel];
  return t ? p / t : 0;
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
    `KL(dense||pruned)  ${r.kl.toFixed(5)} nats/token`,
    `time               ${r.seconds.toFixed(1)} s on ${r.adapter}`,
    outDir
      ? `saved              ${
        resolve(outDir)
      }/ (model.safetensors, config.json, report.json, report.md, report.svg)`
      : "saved              (--no-save)",
  ].join("\n");
}

export async function pruneMain(args: string[]): Promise<void> {
  const o = parsePruneArgs(args);
  if (o === "help") {
    console.log(HELP);
    return;
  }
  await runPrune(o);
}
