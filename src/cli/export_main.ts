/**
 * `deno task export`: write a model (the embedded stories15M, a llama2.c checkpoint or a Hugging
 * Face directory) as a Hugging Face directory that transformers loads. Tokenizer files travel
 * along: llama2.c's tokenizer.bin (so owlgpu's own tools can use the output) or the source
 * directory's Hugging Face tokenizer files.
 * @module
 */
import { parseArgs } from "node:util";
import { ArgumentError } from "../errors.ts";
import { tokenizerFiles } from "../model/companions.ts";
import { EMBEDDED_MODEL_NAME } from "../model/embedded.ts";
import { exportHuggingFace } from "../model/export.ts";
import { openModelWeights } from "../sparse/model.ts";
import type { WeightSource } from "../model/weights.ts";
import type { DType } from "../model/config.ts";
import { checkReplaceableDir, CLI_MODEL_FORMS, wrapHelp } from "./args.ts";
import { Progress } from "./progress.ts";
import { runCli } from "./run.ts";

const HELP = `Export a model as a Hugging Face directory (config.json + model.safetensors).

Usage: deno task export [--model SPEC] --out DIR [--dtype f32|f16|bf16]

  --model SPEC   ${wrapHelp(`${CLI_MODEL_FORMS}. Default: ${EMBEDDED_MODEL_NAME}.`, 17)}
  --out DIR      Output directory; replaced only once the new one is complete (an existing one
                 must be empty or a model directory, with a config.json).
  --dtype D      f32, f16 or bf16. Default: the source's. f16 refuses values past its range.
  -h, --help     This text.

llama2.c checkpoints get their q/k rows permuted for transformers' rotate-half RoPE, and their
tokenizer.bin (embedded, or found beside FILE.bin) is copied into DIR.`;

interface ExportArgs {
  model: string;
  out: string;
  dtype?: DType;
}

/** Parse and validate the command line (ArgumentError on anything wrong); undefined for --help. */
export function parseExportArgs(args: string[]): ExportArgs | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        model: { type: "string", default: EMBEDDED_MODEL_NAME },
        out: { type: "string" },
        dtype: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new ArgumentError(`${(e as Error).message}; see --help`);
  }
  if (values.help) return undefined;
  if (!values.out) {
    throw new ArgumentError("--out DIR is required: where to write the Hugging Face directory");
  }
  const dtype = values.dtype;
  if (dtype !== undefined && dtype !== "f32" && dtype !== "f16" && dtype !== "bf16") {
    throw new ArgumentError(`--dtype ${JSON.stringify(dtype)} is not supported: use f32, f16 or bf16`);
  }
  return { model: values.model, out: values.out, dtype };
}

async function exportModel(a: ExportArgs, source: WeightSource): Promise<void> {
  const dtype = a.dtype ?? source.dtype;
  const extraFiles = await tokenizerFiles(a.model);
  let progress: Progress | undefined;
  const t0 = performance.now();
  await exportHuggingFace(source, a.out, {
    dtype,
    extraFiles,
    onProgress: (done, total) => (progress ??= new Progress("export", total, " tensors")).update(done),
  });
  const extras = Object.keys(extraFiles);
  console.log(
    `wrote ${a.out} (${dtype}${extras.length ? `, with ${extras.join(", ")}` : ""}) ` +
      `in ${((performance.now() - t0) / 1000).toFixed(1)}s`,
  );
}

/** The command: parse, open, export. */
export async function main(args: string[]): Promise<void> {
  const a = parseExportArgs(args);
  if (!a) {
    console.log(HELP);
    return;
  }
  await checkReplaceableDir(a.out, "--out");
  const source = await openModelWeights(a.model);
  try {
    await exportModel(a, source);
  } finally {
    source.close();
  }
}

if (import.meta.main) await runCli(main);
