/**
 * `deno task bench`: GPU benchmarks on this machine's adapter. Prints a table and writes JSON to
 * bench/results/. Flags: --quick (fewer shapes), --json FILE (also write the rows there).
 * @module
 */
import { parseArgs } from "node:util";
import { Gpu } from "../src/gpu/device.ts";
import { runCli } from "../src/cli/run.ts";
import { benchDense, type DenseRow } from "./dense.ts";

function table(rows: DenseRow[]): string {
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

async function main(args: string[]) {
  const { values } = parseArgs({ args, options: { quick: { type: "boolean" }, json: { type: "string" } } });
  const gpu = await Gpu.create();
  console.log(`adapter: ${gpu.adapterName} (f16 ${gpu.f16}, timestamps ${gpu.timestamps}, cpu ${gpu.isCpu})`);
  const rows = await benchDense(gpu, { quick: values.quick });
  console.log(table(rows));
  const result = { adapter: gpu.adapterName, date: new Date().toISOString(), dense: rows };
  const name = `bench/results/dense-${gpu.adapterName.replace(/[^A-Za-z0-9]+/g, "_").slice(0, 40)}.json`;
  for (const path of [name, values.json].filter((p): p is string => !!p)) {
    await Deno.writeTextFile(path + ".tmp", JSON.stringify(result, null, 2));
    await Deno.rename(path + ".tmp", path);
    console.log(`wrote ${path}`);
  }
  gpu.destroy();
}

if (import.meta.main) await runCli(main);
