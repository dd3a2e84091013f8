/**
 * `deno task generate`: stream text from a model and print tokens/s at the end. With `--sparse`,
 * the model directory's model.sparse.safetensors (`deno task prune --save-sparse`) supplies every
 * tensor and its pruned linears run with the sparse kernels (values f32 when the directory's
 * weights are f32, else f16 where the device has shader-f16); a model without that file (pruned
 * elsewhere, zeros where pruned) runs sparse the linears that are at least ZEROS_MIN_SPARSITY
 * zeros, packed at load. Without `--sparse`, everything is dense.
 * @module
 */
import { checkTokenizerFits, openTokenizer } from "../data/open_tokenizer.ts";
import { ArgumentError } from "../errors.ts";
import { generate } from "../generate/generate.ts";
import { Sampler } from "../generate/sampler.ts";
import { Gpu } from "../gpu/device.ts";
import { EMBEDDED_MODEL_NAME } from "../model/embedded.ts";
import { LINEARS } from "../model/config.ts";
import { GpuModel } from "../model/forward.ts";
import type { WeightSource } from "../model/weights.ts";
import { openModelWeights, openSparseModelDir, SPARSE_MODEL_FILE } from "../sparse/model.ts";
import { sparseWeightsFromZeros, ZEROS_MIN_SPARSITY } from "../sparse/zeros.ts";
import { CLI_MODEL_FORMS, intFlag, numberFlag, parseFlags, wrapHelp } from "./args.ts";
import { runCli } from "./run.ts";

export const HELP = `Generate text with a model on the GPU (WebGPU), with a K/V cache.

Usage: deno task generate [flags]

  --model SPEC        ${wrapHelp(`${CLI_MODEL_FORMS}. Default: stories15M`, 22)}
  --prompt TEXT       the prompt (default "Once upon a time"); BOS is prepended
  --max-tokens N      new tokens at most (default 256; stops at EOS or the model's context)
  --temperature T     0 = greedy; default 1
  --top-p P           nucleus sampling mass in (0, 1] (default 0.9)
  --seed N            sampling seed, an integer in [0, 2^32) (default 42)
  --sparse            run the pruned linears with the sparse kernels: from ${SPARSE_MODEL_FILE} when
                      the model directory has one (deno task prune --save-sparse), else the linears
                      with at least ${100 * ZEROS_MIN_SPARSITY}% zeros, packed when loaded
  -h, --help          this text`;

export async function generateMain(args: string[]): Promise<void> {
  const v = parseFlags(args, {
    model: { type: "string" },
    prompt: { type: "string" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    sparse: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  const maxTokens = intFlag("max-tokens", v["max-tokens"], 256, 1);
  const sampling = {
    temperature: numberFlag("temperature", v.temperature, 1),
    topP: numberFlag("top-p", v["top-p"], 0.9),
    seed: intFlag("seed", v.seed, 42, 0),
  };
  if (sampling.seed > 0xffffffff) {
    throw new ArgumentError(`--seed must be an integer in [0, 2^32), got ${JSON.stringify(v.seed)}`);
  }
  new Sampler(sampling); // refuses a bad temperature or top-p before anything loads or prints
  const spec = v.model ?? EMBEDDED_MODEL_NAME;
  const sparse = v.sparse ? await openSparseModelDir(spec) : undefined;
  const source: WeightSource = sparse ?? await openModelWeights(spec);
  const tok = await openTokenizer(spec);
  const prompt = tok.encode(v.prompt ?? "Once upon a time", { bos: tok.bosId >= 0 });
  try {
    checkTokenizerFits(spec, prompt, source.config.vocabSize);
  } catch (e) {
    source.close();
    throw e;
  }
  const gpu = await Gpu.create();
  try {
    let model: GpuModel;
    // lavapipe decodes dense linears with the texture GEMV (2-3x the storage one there; SwiftShader: slower).
    const gemvTextures = gpu.cpu?.weightTextures ?? false;
    if (sparse) model = await GpuModel.loadSparse(gpu, sparse, { gemvTextures });
    else if (v.sparse) {
      model = await GpuModel.load(gpu, source, { sparse: await zerosOf(source, spec), gemvTextures });
    } else model = await GpuModel.load(gpu, source, { gemvTextures });
    const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));
    out(tok.decode(prompt));
    const stream = tok.decodeStream();
    const r = await generate(model, prompt, {
      maxTokens,
      ...sampling,
      // The tokenizer's EOS and every one config.json lists (Llama 3 Instruct: <|eot_id|> too).
      stopIds: [...new Set([...(tok.eosId >= 0 ? [tok.eosId] : []), ...(source.config.eosTokenIds ?? [])])],
      onToken: (id) => out(stream.push(id)),
    });
    out(stream.flush() + "\n");
    const why = {
      stop: "an end-of-text token",
      "max-tokens": "--max-tokens",
      context: `the model's context of ${source.config.maxSeqLen} tokens`,
    }[r.stoppedBy];
    console.error(
      `${r.ids.length} tokens (stopped by ${why}); prompt ${prompt.length} tokens in ` +
        `${r.prefillSeconds.toFixed(3)} s; ` +
        `decode ${r.tokensPerSecond.toFixed(1)} tokens/s on ${gpu.adapterName}; ${kernels(model)}`,
    );
    model.release();
  } finally {
    source.close();
    gpu.destroy();
  }
}

/** The linears of `source` pruned enough to run sparse, or an ArgumentError when none is. */
async function zerosOf(source: WeightSource, spec: string) {
  const z = await sparseWeightsFromZeros(source);
  if (z.names.length === 0) {
    const most = Math.max(...z.sparsity.values());
    throw new ArgumentError(
      `--sparse: ${JSON.stringify(spec)} has no ${SPARSE_MODEL_FILE} and none of its linears is pruned ` +
        `(at most ${(100 * most).toFixed(1)}% zeros, ${100 * ZEROS_MIN_SPARSITY}% needed). Prune it with ` +
        `deno task prune, or drop --sparse to run dense`,
    );
  }
  return z;
}

/** Which kernels ran the linears, for the closing line. */
function kernels(model: GpuModel): string {
  const n = model.sparseLinearCount;
  const tex = model.gemvTextures
    ? ` (decoding dense matrices with the texture GEMV, +${mb(model.gemvTextureBytes())} MB)`
    : "";
  if (n === 0) return `dense kernels${tex}`;
  const total = model.config.nLayers * LINEARS.length;
  return `sparse kernels for ${n} of ${total} linears (${model.dtype} values, ` +
    `${mb(model.linearBytes())} MB on the GPU)${tex}`;
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

if (import.meta.main) await runCli(generateMain);
