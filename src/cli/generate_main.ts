/**
 * `deno task generate`: stream text from a model (dense, or pruned with --sparse kernels) and
 * print tokens/s at the end.
 * @module
 */
import { openTokenizer } from "../data/open_tokenizer.ts";
import { UnsupportedError } from "../errors.ts";
import { generate } from "../generate/generate.ts";
import { Gpu } from "../gpu/device.ts";
import { EMBEDDED_MODEL_NAME } from "../model/embedded.ts";
import { GpuModel } from "../model/forward.ts";
import { MODEL_SPEC_FORMS, openWeights } from "../model/open.ts";
import { intFlag, numberFlag, parseFlags } from "./args.ts";
import { runCli } from "./run.ts";

export const HELP = `Generate text with a model on the GPU (WebGPU), with a K/V cache.

Usage: deno task generate [flags]

  --model SPEC        ${MODEL_SPEC_FORMS}. Default: stories15M
  --prompt TEXT       the prompt (default "Once upon a time"); BOS is prepended
  --max-tokens N      new tokens at most (default 256; stops at EOS or the model's context)
  --temperature T     0 = greedy; default 1
  --top-p P           nucleus sampling mass in (0, 1] (default 0.9)
  --seed N            sampling seed (default 42)
  --sparse            run the linears with the sparse kernels (a model saved with --save-sparse)
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
  const spec = v.model ?? EMBEDDED_MODEL_NAME;
  if (v.sparse) {
    throw new UnsupportedError("--sparse needs the sparse kernels, which are not wired into generation yet");
  }
  const source = await openWeights(spec);
  const tok = await openTokenizer(spec);
  const gpu = await Gpu.create();
  try {
    const model = await GpuModel.load(gpu, source);
    const prompt = tok.encode(v.prompt ?? "Once upon a time", { bos: tok.bosId >= 0 });
    const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));
    out(tok.decode(prompt));
    const stream = tok.decodeStream();
    const r = await generate(model, prompt, {
      maxTokens,
      temperature: numberFlag("temperature", v.temperature, 1),
      topP: numberFlag("top-p", v["top-p"], 0.9),
      seed: numberFlag("seed", v.seed, 42),
      stopIds: tok.eosId >= 0 ? [tok.eosId] : [],
      onToken: (id) => out(stream.push(id)),
    });
    out(stream.flush() + "\n");
    console.error(
      `${r.ids.length} tokens; prompt ${prompt.length} tokens in ${r.prefillSeconds.toFixed(3)} s; ` +
        `decode ${r.tokensPerSecond.toFixed(1)} tokens/s on ${gpu.adapterName}`,
    );
    model.release();
  } finally {
    source.close();
    gpu.destroy();
  }
}

if (import.meta.main) await runCli(generateMain);
