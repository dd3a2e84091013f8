/**
 * The main job: prune a LLaMA-family model with OWL on the GPU, evaluate it, save it.
 * `deno run -A prune.ts --help` lists the flags; with none it prunes the embedded stories15M.
 * @module
 */
import { pruneMain } from "./src/cli/prune_main.ts";
import { runCli } from "./src/cli/run.ts";

if (import.meta.main) await runCli(pruneMain);
