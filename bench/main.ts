/**
 * `deno task bench`: GPU benchmarks on this machine's adapter. Prints tables and writes one JSON
 * file per suite to bench/results/ (`dense-<adapter>.json`, `prune-<adapter>.json`).
 *
 * Suites:
 * - `dense`: copy bandwidth, GEMV and GEMM for stories15M's and LLaMA-7B's linear shapes.
 * - `prune`: OWL's outlier count and Wanda's 50% row masks over the 7 linears of one decoder
 *   block with random weights (bench/prune_kernels.ts): stories15M's block (dim 288, hidden 768)
 *   and LLaMA-7B's (dim 4096, hidden 11008, 202M weights, 0.8 GB in f32). On lavapipe (2 shared
 *   cores) the LLaMA-7B block takes 16-30 s, mostly generating and uploading its weights, with
 *   one timed run per kernel (5 on GPUs); the whole default run takes 45-90 s there.
 *
 * - `sparse` (bench/sparse.ts): sparse vs dense GEMV/GEMM on LLaMA-7B shapes at 50-90% and 2:4; in
 *   the default run one shape at 50/70/90% and 2:4 (fewer repetitions on CPU adapters, said in
 *   each row's `note`); `--sparse` runs only this suite, in full, and writes `--json FILE` as
 *   `{adapter, rows}` plus an SVG chart beside it.
 * - `decode` (bench/decode.ts), in the `--sparse` run only: a whole LLaMA-7B-shaped decoder
 *   generating tokens end to end, dense against sparse linears at 70% (32 blocks on GPUs, 4 on
 *   CPU adapters unless `--decode-blocks N`; there both models decode their dense matrices with
 *   the texture GEMV, as `generate` does); tokens/s of each and the speed-up, written to
 *   `bench/results/decode-<adapter>.json`. `--decode-only` skips the sparse kernel rows.
 *
 * Flags: `deno task bench --help`.
 * @module
 */
import { ArgumentError } from "../src/errors.ts";
import { Gpu } from "../src/gpu/device.ts";
import type { KernelStyle } from "../src/ops/prune_ops.ts";
import { runCli } from "../src/cli/run.ts";
import { intFlag, parseFlags } from "../src/cli/args.ts";
import { benchDecode, decodeRowLine, decodeTableHead } from "./decode.ts";
import { benchDense, type DenseRow } from "./dense.ts";
import { benchPruneKernels, type PruneBenchRow } from "./prune_kernels.ts";
import { benchSparseGPT, sparsegptTable } from "./sparsegpt.ts";
import { benchSparse, sparseChartSvg, sparseTableHead } from "./sparse.ts";

/** One decoder block shape of the prune suite. */
interface BlockShape {
  name: string;
  hidden: number;
  intermediate: number;
  reps: number;
}

interface PruneSuiteResult extends BlockShape {
  /** Wall seconds for the whole block (random weights, upload, warm-ups and timed runs). */
  seconds: number;
  rows: PruneBenchRow[];
}

const STORIES15M_BLOCK = { name: "stories15M", hidden: 288, intermediate: 768 };
const LLAMA7B_BLOCK = { name: "LLaMA-7B", hidden: 4096, intermediate: 11008 };

function denseTable(rows: DenseRow[]): string {
  const head = "kind  shape                       dtype  ms        GB/s     GFLOP/s  of copy  timing";
  const lines = rows.map((r) =>
    [
      r.kind.padEnd(5),
      r.shape.padEnd(27),
      r.dtype.padEnd(6),
      r.ms.toFixed(3).padStart(9),
      r.gbps.toFixed(2).padStart(8),
      (r.gflops ? r.gflops.toFixed(2) : "-").padStart(8),
      (r.kind === "copy" ? "-" : (100 * r.ofCopy).toFixed(0) + "%").padStart(8),
      r.timing,
    ].join(" ")
  );
  return [head, ...lines].join("\n");
}

/** Weights a row covers: one linear ("RxC") or the whole block. */
function rowWeights(r: PruneBenchRow, block: BlockShape): number {
  const m = /^(\d+)x(\d+)$/.exec(r.shape);
  if (m) return Number(m[1]) * Number(m[2]);
  return 4 * block.hidden * block.hidden + 3 * block.hidden * block.intermediate;
}

function pruneTable(results: PruneSuiteResult[]): string {
  const head = [
    "block".padEnd(13),
    "kernel".padEnd(38),
    "shape".padEnd(29),
    "ms".padStart(10),
    "Gweights/s".padStart(12),
  ].join(" ");
  const lines: string[] = [];
  for (const b of results) {
    for (const r of b.rows) {
      lines.push([
        b.name.padEnd(13),
        r.name.padEnd(38),
        r.shape.padEnd(29),
        r.ms.toFixed(1).padStart(10),
        (rowWeights(r, b) / (r.ms * 1e6)).toFixed(3).padStart(12),
      ].join(" "));
    }
    lines.push(
      `${"".padEnd(13)} (whole block: ${
        b.seconds.toFixed(1)
      } s with weight generation, upload, warm-ups, ${b.reps} reps)`,
    );
  }
  return [head, ...lines].join("\n");
}

function parseStyles(s: string | undefined): KernelStyle[] | undefined {
  if (s === undefined) return undefined;
  const styles = s.split(",").map((x) => x.trim());
  for (const x of styles) {
    if (x !== "cpu" && x !== "gpu") {
      throw new ArgumentError(`--styles takes cpu and/or gpu, got ${JSON.stringify(x)}`);
    }
  }
  return styles as KernelStyle[];
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(path + ".tmp", JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(path + ".tmp", path);
  console.log(`wrote ${path}`);
}

const HELP = `GPU benchmarks on this machine's adapter: tables on stdout, JSON in bench/results/.

Usage: deno task bench [flags]

  --suite NAME        dense, prune, sparse or all (default all)
  --quick             fewer dense shapes, no LLaMA-7B block, no SparseGPT block, the short sparse suite
  --sparse            the full sparse suite (same as --suite sparse): sparse vs dense GEMV/GEMM at
                      50-90% and 2:4, then a LLaMA-7B-shaped decoder, dense vs sparse; writes an SVG
                      chart beside its JSON
  --decode-blocks N   decoder blocks of the decode benchmark (default 32 on GPUs, 4 on CPU adapters)
  --decode-only       with --sparse: only the decode benchmark
  --llama7b-block     time the pruning kernels on a LLaMA-7B block even with --quick
  --no-llama7b-block  skip that block
  --styles LIST       prune kernel versions to time: cpu, gpu or cpu,gpu (default: the adapter's own)
  --json FILE         also write the rows there (with --sparse: {adapter, rows, decode}, and the chart
                      beside it as .svg)
  -h, --help          this text`;

async function main(args: string[]) {
  const values = parseFlags(args, {
    quick: { type: "boolean" },
    suite: { type: "string", default: "all" },
    "llama7b-block": { type: "boolean" },
    "no-llama7b-block": { type: "boolean" },
    styles: { type: "string" },
    json: { type: "string" },
    sparse: { type: "boolean" },
    "decode-blocks": { type: "string" },
    "decode-only": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const suite = values.sparse ? "sparse" : values.suite;
  if (suite !== "all" && suite !== "dense" && suite !== "prune" && suite !== "sparse") {
    throw new ArgumentError(`--suite takes dense, prune, sparse or all, got ${JSON.stringify(suite)}`);
  }
  if (values["llama7b-block"] && values["no-llama7b-block"]) {
    throw new ArgumentError("--llama7b-block and --no-llama7b-block contradict each other");
  }
  const decodeBlocks = values["decode-blocks"] === undefined
    ? undefined
    : intFlag("decode-blocks", values["decode-blocks"], 0, 1);
  if (suite !== "sparse" && (decodeBlocks !== undefined || values["decode-only"])) {
    throw new ArgumentError("--decode-blocks and --decode-only belong to the sparse suite (--sparse)");
  }
  const styles = parseStyles(values.styles);
  const gpu = await Gpu.create();
  try {
    const adapter = gpu.adapterName;
    const slug = adapter.replace(/[^A-Za-z0-9]+/g, "_").slice(0, 40);
    console.log(`adapter: ${adapter} (f16 ${gpu.f16}, timestamps ${gpu.timestamps}, cpu ${gpu.isCpu})`);
    const meta = { adapter, isCpu: gpu.isCpu, f16: gpu.f16, date: new Date().toISOString() };
    const all: Record<string, unknown> = { ...meta };

    if (suite === "all" || suite === "dense") {
      const rows = await benchDense(gpu, { quick: values.quick });
      console.log(`\n== dense (${adapter})\n${denseTable(rows)}`);
      await writeJson(`bench/results/dense-${slug}.json`, { ...meta, dense: rows });
      all.dense = rows;
    }

    if (suite === "all" || suite === "prune") {
      const llama7b = values["llama7b-block"] || (!values.quick && !values["no-llama7b-block"]);
      const blocks: BlockShape[] = [{ ...STORIES15M_BLOCK, reps: 5 }];
      // One timed run of a 202M-weight block takes seconds on a CPU adapter: fewer repetitions there.
      if (llama7b) blocks.push({ ...LLAMA7B_BLOCK, reps: gpu.isCpu ? 1 : 5 });
      const results: PruneSuiteResult[] = [];
      for (const b of blocks) {
        const t0 = performance.now();
        const rows = await benchPruneKernels(gpu, {
          hidden: b.hidden,
          intermediate: b.intermediate,
          reps: b.reps,
          styles,
        });
        results.push({ ...b, seconds: (performance.now() - t0) / 1000, rows });
      }
      console.log(
        `\n== prune kernels (${adapter}; median wall ms incl. sync/read-back)\n${pruneTable(results)}`,
      );
      await writeJson(`bench/results/prune-${slug}.json`, { ...meta, prune: results });
      all.prune = results;
      if (!values.quick) {
        const sg = await benchSparseGPT(gpu);
        console.log(`\n== SparseGPT, one block at 50% (${adapter}; wall seconds)\n${sparsegptTable(sg)}`);
        await writeJson(`bench/results/sparsegpt-${slug}.json`, { ...meta, sparsegpt: [sg] });
        all.sparsegpt = [sg];
      }
    }

    if (suite === "all" || suite === "sparse") {
      if (suite === "sparse") {
        console.log(
          `\n== decode, dense vs sparse linears (${adapter}; wall time of generate, median of rounds)`,
        );
        const row = await benchDecode(gpu, { blocks: decodeBlocks, log: console.log });
        console.log(`${decodeTableHead()}\n${decodeRowLine(row)}${row.note ? `\n  (${row.note})` : ""}`);
        await writeJson(`bench/results/decode-${slug}.json`, { ...meta, decode: [row] });
        all.decode = [row];
        if (values["decode-only"]) {
          if (values.json) await writeJson(values.json, { ...meta, decode: [row] });
          return;
        }
      }
      console.log(
        `\n== sparse vs dense linears (${adapter}; median of alternating runs)\n${sparseTableHead()}`,
      );
      const rows = await benchSparse(gpu, { quick: suite === "all" || values.quick, log: console.log });
      const chart = sparseChartSvg(rows, `sparse speed-up, ${adapter}`);
      await writeJson(`bench/results/sparse-${slug}.json`, { ...meta, rows });
      await Deno.writeTextFile(`bench/results/sparse-${slug}.svg`, chart);
      if (suite === "sparse" && values.json) {
        await writeJson(values.json, { ...meta, rows, ...(all.decode ? { decode: all.decode } : {}) });
        const svg = values.json.replace(/\.json$/, "") + ".svg";
        await Deno.writeTextFile(svg, chart);
        console.log(`wrote ${svg}`);
      }
      all.sparse = rows;
    }

    if (values.json && suite !== "sparse") await writeJson(values.json, all);
  } finally {
    gpu.destroy();
  }
}

if (import.meta.main) await runCli(main);
