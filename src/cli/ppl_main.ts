/**
 * `deno task ppl`: perplexity of a model on an evaluation corpus under protocol P
 * (docs/PROTOCOL.md): non-overlapping windows of seqlen tokens from the start of the corpus,
 * ppl = exp(mean over windows of the window's mean next-token NLL).
 * @module
 */
import { parseArgs } from "node:util";
import { ArgumentError } from "../errors.ts";
import { BUILTIN_CORPORA, tokenizeCorpus } from "../data/corpora.ts";
import { checkTokenizerFits, openTokenizer } from "../data/open_tokenizer.ts";
import { evalWindows, namingCorpus } from "../data/windows.ts";
import { evaluatePerplexity } from "../eval/perplexity.ts";
import { Gpu } from "../gpu/device.ts";
import { EMBEDDED_MODEL_NAME } from "../model/embedded.ts";
import { ForwardRunner, GpuModel } from "../model/forward.ts";
import { openModelWeights } from "../sparse/model.ts";
import { checkWritableParent, writeTextAtomic } from "../util/files.ts";
import { CLI_MODEL_FORMS, intFlag, wrapHelp } from "./args.ts";
import { Progress } from "./progress.ts";
import { runCli } from "./run.ts";

const DEFAULT_EVAL = "moby-dick";
const DEFAULT_WINDOWS = 128;
const DEFAULT_SEQLEN = 256;

const HELP = `Perplexity of a model on an evaluation text (protocol P: non-overlapping windows of
seqlen tokens from the start; ppl = exp(mean over windows of each window's mean next-token NLL)).

Usage: deno task ppl [--model SPEC] [--eval CORPUS] [--eval-windows N] [--seqlen N] [--json FILE]

  --model SPEC        ${wrapHelp(`${CLI_MODEL_FORMS}. Default: ${EMBEDDED_MODEL_NAME}.`, 22)}
  --eval CORPUS       ${
  BUILTIN_CORPORA.map((c) => `"${c}"`).join(" or ")
} (built in), or the path of a UTF-8 text
                      file. Default: ${DEFAULT_EVAL}.
  --eval-windows N    Evaluate at most the first N windows. Default: ${DEFAULT_WINDOWS}.
  --seqlen N          Tokens per window (2 .. the model's context). Default: ${DEFAULT_SEQLEN}.
  --json FILE         Also write {"model","ppl","windows","tokens","seconds","adapter"} to FILE
                      (tokens: scored predictions, windows x (seqlen - 1); seconds: the evaluation).
  -h, --help          This text.

Set OWLGPU_FORCE_F32=1 to keep f32 kernels on adapters with shader-f16.`;

/** Parsed and validated command line. */
export interface PplArgs {
  model: string;
  eval: string;
  evalWindows: number;
  seqlen: number;
  json?: string;
}

/** The result written by --json. */
export interface PplReport {
  model: string;
  ppl: number;
  windows: number;
  /** Scored next-token predictions: windows * (seqlen - 1). */
  tokens: number;
  /** Wall time of the evaluation (forward passes and losses), in seconds. */
  seconds: number;
  adapter: string;
}

/** Parse and validate the command line (ArgumentError on anything wrong); undefined for --help. */
export function parsePplArgs(args: string[]): PplArgs | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: "string", default: EMBEDDED_MODEL_NAME },
        eval: { type: "string", default: DEFAULT_EVAL },
        "eval-windows": { type: "string" },
        seqlen: { type: "string" },
        json: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    // node's messages may span lines and end in a period: make them one clause.
    const why = (e as Error).message.replace(/\s*\n\s*/g, " ").replace(/\.$/, "");
    throw new ArgumentError(`${why}; see --help`);
  }
  if (values.help) return undefined;
  for (const flag of ["model", "eval", "json"] as const) {
    if (values[flag] !== undefined && values[flag] === "") {
      throw new ArgumentError(`--${flag} needs a value; see --help`);
    }
  }
  return {
    model: values.model,
    eval: values.eval,
    evalWindows: intFlag("eval-windows", values["eval-windows"], DEFAULT_WINDOWS, 1),
    seqlen: intFlag("seqlen", values.seqlen, DEFAULT_SEQLEN, 2),
    json: values.json,
  };
}

/** Evaluate; prints the result and returns it (the tests call this in-process). */
export async function runPpl(a: PplArgs): Promise<PplReport> {
  if (a.json) await checkWritableParent(a.json, "JSON file");
  const source = await openModelWeights(a.model);
  let gpu: Gpu | undefined;
  let model: GpuModel | undefined;
  let runner: ForwardRunner | undefined;
  try {
    if (a.seqlen > source.config.maxSeqLen) {
      throw new ArgumentError(
        `--seqlen ${a.seqlen} exceeds the model's context of ${source.config.maxSeqLen} tokens`,
      );
    }
    const tokenizer = await openTokenizer(a.model);
    const tokProgress = new Progress(`tokenize ${a.eval}`, 1, " corpus");
    tokProgress.update(0);
    const tokens = await tokenizeCorpus(a.eval, tokenizer);
    tokProgress.update(1);
    checkTokenizerFits(a.model, tokens, source.config.vocabSize);
    const windows = namingCorpus(a.eval, () => evalWindows(tokens, a.seqlen, a.evalWindows));

    gpu = await Gpu.create();
    model = await GpuModel.load(gpu, source);
    runner = new ForwardRunner(model, a.seqlen);
    const progress = new Progress("eval", windows.length, " windows");
    progress.update(0);
    const t0 = performance.now();
    const r = await evaluatePerplexity(runner, windows, { onProgress: (done) => progress.update(done) });
    const seconds = (performance.now() - t0) / 1000;

    const report: PplReport = {
      model: a.model,
      ppl: r.ppl,
      windows: r.windows,
      tokens: r.tokens,
      seconds: Math.round(seconds * 1000) / 1000,
      adapter: gpu.adapterName,
    };
    const ppl = r.ppl.toFixed(2);
    const what =
      `model ${a.model}, eval ${a.eval}: ${r.windows} windows x ${a.seqlen} tokens, ${r.tokens} scored`;
    console.log(
      `perplexity ${ppl}  (${what}; ${seconds.toFixed(1)}s on ${gpu.adapterName}, ${model.dtype} weights)`,
    );
    if (a.json) {
      await writeTextAtomic(a.json, JSON.stringify(report, null, 2) + "\n");
      console.log(`wrote ${a.json}`);
    }
    return report;
  } finally {
    runner?.release();
    model?.release();
    gpu?.destroy();
    source.close();
  }
}

/** The command: parse, evaluate, report. */
export async function main(args: string[]): Promise<void> {
  const a = parsePplArgs(args);
  if (!a) {
    console.log(HELP);
    return;
  }
  await runPpl(a);
}

if (import.meta.main) await runCli(main);
