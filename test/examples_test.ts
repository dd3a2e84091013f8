/**
 * The runnable examples (examples/*.ts) run to completion: each is a process, as a user starts it,
 * and says what it promises (results checked against float64 or the pruning rule, no GPU buffer left).
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

async function runExample(name: string): Promise<string> {
  const p = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `examples/${name}`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(p.stdout), err = new TextDecoder().decode(p.stderr);
  assert.equal(p.code, 0, `${name} exited ${p.code}\n${out}\n${err}`);
  return out;
}

Deno.test("examples/gemv.ts: GEMV and GEMM in f32 and f16 close to float64, nothing left on the GPU", async () => {
  const out = await runExample("gemv.ts");
  const errors = [...out.matchAll(/max error ([\d.e+-]+) of max \|y\|/g)].map((m) => Number(m[1]));
  assert(errors.length >= 2, out);
  assert(errors.every((e) => e < 1e-3), `errors ${errors}`);
  assert.match(out, /live buffers after release: 0/);
});

Deno.test("examples/outliers_rowmask.ts: counts outliers and prints row masks", async () => {
  const out = await runExample("outliers_rowmask.ts");
  assert.match(out, /outliers: \d+ of \d+ scores above 5 x mean/);
  assert.match(out, /^[01]( [01])+$/m);
});

Deno.test("examples/prune_library.ts: OWL-Wanda 50% through the library, evaluated, nothing left on the GPU", async () => {
  const out = await runExample("prune_library.ts");
  const realised = Number(/overall realised sparsity: ([\d.]+)/.exec(out)?.[1]);
  assert(Math.abs(realised - 0.5) < 0.01, out);
  const dense = Number(/dense\s+([\d.]+)/.exec(out)?.[1]),
    pruned = Number(/pruned\s+([\d.]+)/.exec(out)?.[1]);
  assert(Number.isFinite(dense) && pruned > dense, out);
  assert.match(out, /live GPU buffers: 0/);
});
