/**
 * The demo page (examples/web/, `deno task serve`) in headless Chromium on WebGPU: a small
 * OWL-Wanda prune completes in the page, and its numbers are the CLI's (`runPrune`, same
 * settings) to 1e-4; the pruned model.safetensors it offers is the CLI's file byte for byte;
 * dense and pruned generation stream text with tokens/s. Leaves a screenshot in
 * test/output/browser_demo.png.
 *
 * Needs Chromium (Debian's `chromium`, which `bash scripts/setup.sh` installs; another binary via
 * OWLGPU_CHROMIUM=/path). Without it the test fails and says how to install it. Chromium's
 * WebGPU adapter on a machine without a GPU is SwiftShader, so this also runs on CPU-only CI.
 */
import assert from "node:assert/strict";
import { type Browser, chromium } from "playwright-core";
import { generateText, MOD_IMPORTS } from "../examples/web/owlgpu_web.ts";
import { DENO_ONLY } from "../scripts/build.ts";
import { parsePruneArgs, runPrune } from "../src/cli/prune_main.ts";
import type { PruneReport } from "../src/prune/report.ts";
import { serveDemo } from "../src/cli/serve_main.ts";
import { Gpu } from "../src/gpu/device.ts";
import { GpuModel } from "../src/model/forward.ts";
import { openWeights } from "../src/model/open.ts";
import { openTokenizer } from "../src/data/open_tokenizer.ts";
import { argmaxWgsl } from "../kernels/argmax.ts";
import { sampleWgsl } from "../kernels/sample.ts";

const CHROMIUM = Deno.env.get("OWLGPU_CHROMIUM") ?? "/usr/bin/chromium";
/**
 * WebGPU is off by default in Chromium on Linux. playwright-core adds --headless, --no-sandbox and
 * --enable-unsafe-swiftshader, so without a GPU the adapter is SwiftShader (Vulkan on the CPU).
 */
const CHROMIUM_ARGS = ["--enable-unsafe-webgpu"];
const OUTPUT = new URL("./output/", import.meta.url);

/** The run: small enough for a CPU adapter (tens of seconds), as `deno task prune` flags. */
const SETTINGS = {
  method: "owl-wanda",
  sparsity: "0.5",
  nsamples: "4",
  seqlen: "128",
  "eval-windows": "2",
} as const;
const PROMPT = "Once upon a time";
const GEN_TOKENS = 24;

async function chromiumPath(): Promise<string> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: run \`bash scripts/setup.sh\` (installs Debian's chromium) or ` +
        "`apt-get install -y --no-install-recommends chromium`, or set OWLGPU_CHROMIUM to a Chromium binary",
    );
  }
  return CHROMIUM;
}

function relClose(a: number, b: number, tol: number, what: string): void {
  const rel = Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
  assert(
    rel <= tol,
    `${what}: browser ${a} vs CLI ${b} (relative difference ${rel.toExponential(2)} > ${tol})`,
  );
}

Deno.test("demo page's helpers use only what dist/owlgpu.js exports", async () => {
  const mod = await import("../mod.ts");
  for (const n of MOD_IMPORTS) {
    assert(n in mod, `mod.ts does not export ${n}`);
    assert(!DENO_ONLY.includes(n), `${n} is Deno-only, not in dist/owlgpu.js`);
  }
});

Deno.test({
  name: "browser: the demo page prunes on WebGPU in Chromium with the CLI's numbers",
  // playwright keeps a pipe to Chromium and timers of its own between steps.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const executablePath = await chromiumPath();
    const tmp = await Deno.makeTempDir({ prefix: "owlgpu-browser-" });
    const t0 = performance.now();
    const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    try {
      // 1. The CLI path: same settings, model saved for the byte comparison.
      const flags = Object.entries(SETTINGS).flatMap(([k, v]) => [`--${k}`, v]);
      const opts = parsePruneArgs([...flags, "--out", `${tmp}/cli`]);
      assert(opts !== "help");
      const cli: PruneReport = await runPrune(opts, () => {});
      const tCli = secs();

      // Greedy text of the dense model from Deno, through the page's own generation helper.
      let denseText: string;
      {
        const gpu = await Gpu.create();
        const source = await openWeights("stories15M");
        try {
          const model = await GpuModel.load(gpu, source);
          const opts = { maxTokens: GEN_TOKENS, temperature: 0, topP: 0.9, seed: 42 };
          denseText = (await generateText(model, await openTokenizer("stories15M"), PROMPT, opts)).text;
          model.release();
        } finally {
          source.close();
          gpu.destroy();
        }
      }

      // 2. The page.
      const server = await serveDemo({ port: 0, quiet: true });
      let browser: Browser | undefined;
      const problems: string[] = [];
      try {
        browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
        const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(`console: ${m.text()}`);
        });
        await page.goto(server.url);
        await page.waitForSelector("#run:not([disabled])", { timeout: 30_000 });
        for (const [k, v] of Object.entries(SETTINGS)) {
          if (k === "method") await page.selectOption(`#${k}`, v);
          else await page.fill(`#${k}`, v);
        }
        await page.click("#run");
        await page.waitForSelector('#result[data-state="done"], #result[data-state="error"]', {
          timeout: 240_000,
        });
        const state = await page.getAttribute("#result", "data-state");
        assert.equal(
          state,
          "done",
          `the page failed: ${await page.getAttribute("#result", "data-error")}\n${problems.join("\n")}`,
        );
        const tPage = secs();
        // The token-choosing kernels, which the demo's greedy generation runs only in part
        // (sampling not at all), compile in Chromium's WGSL compiler too.
        const compileErrors = await page.evaluate(async (sources: Record<string, string>) => {
          const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
          const errors: string[] = [];
          for (const [name, code] of Object.entries(sources)) {
            const info = await device.createShaderModule({ code }).getCompilationInfo();
            for (const m of info.messages) if (m.type === "error") errors.push(`${name}: ${m.message}`);
          }
          return errors;
        }, { argmax: argmaxWgsl(), sample: sampleWgsl() });
        assert.deepEqual(compileErrors, []);
        const web: PruneReport = JSON.parse(await page.textContent("#report-json") ?? "");

        // 3. The page's numbers are the CLI's.
        relClose(web.ppl_dense, cli.ppl_dense, 1e-4, "dense perplexity");
        relClose(web.ppl, cli.ppl, 1e-4, "pruned perplexity");
        relClose(web.kl, cli.kl, 1e-3, "KL");
        relClose(web.sparsity_realised, cli.sparsity_realised, 1e-6, "realised sparsity");
        assert.equal(web.blocks.length, cli.blocks.length);
        for (let i = 0; i < cli.blocks.length; i++) {
          relClose(web.blocks[i].sparsity, cli.blocks[i].sparsity, 1e-6, `block ${i} sparsity`);
          relClose(
            web.blocks[i].outlier_ratio!,
            cli.blocks[i].outlier_ratio!,
            1e-6,
            `block ${i} outlier ratio`,
          );
        }
        assert.deepEqual(web.settings, cli.settings);
        // What the page shows is what it computed.
        assert.equal(await page.textContent("#r-ppl-dense"), web.ppl_dense.toFixed(3));
        assert.equal(await page.textContent("#r-ppl"), web.ppl.toFixed(3));
        assert.equal(await page.locator("#chart svg rect").count() > cli.blocks.length, true, "chart bars");

        // 4. Download: the pruned model.safetensors is the CLI's, byte for byte.
        const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#dl-model")]);
        const dlPath = `${tmp}/web.safetensors`;
        await dl.saveAs(dlPath);
        const [webBytes, cliBytes] = await Promise.all([
          Deno.readFile(dlPath),
          Deno.readFile(`${tmp}/cli/model.safetensors`),
        ]);
        assert.equal(webBytes.byteLength, cliBytes.byteLength, "model.safetensors size");
        let diff = 0;
        for (let i = 0; i < webBytes.length; i++) if (webBytes[i] !== cliBytes[i]) diff++;
        assert.equal(diff, 0, `model.safetensors: ${diff} bytes differ from the CLI's`);

        // 5. Generation, dense and pruned side by side.
        await page.fill("#prompt", PROMPT);
        await page.fill("#max-tokens", String(GEN_TOKENS));
        await page.fill("#temperature", "0");
        await page.click("#generate");
        await page.waitForSelector('#gen[data-state="done"], #gen[data-state="error"]', { timeout: 150_000 });
        assert.equal(
          await page.getAttribute("#gen", "data-state"),
          "done",
          `generation failed: ${await page.getAttribute("#gen", "data-error")}`,
        );
        const dense = await page.textContent("#gen-dense-text");
        const pruned = await page.textContent("#gen-pruned-text");
        assert.equal(dense, denseText, "greedy dense text differs from Deno's");
        assert(pruned!.startsWith(PROMPT) && pruned!.length > PROMPT.length, `pruned text: ${pruned}`);
        for (const side of ["dense", "pruned"]) {
          const tps = Number(await page.getAttribute(`#gen-${side}-stats`, "data-tokens-per-second"));
          assert(tps > 0, `${side} tokens/s: ${tps}`);
        }

        await Deno.mkdir(OUTPUT, { recursive: true });
        await page.screenshot({ path: new URL("browser_demo.png", OUTPUT).pathname, fullPage: true });
        assert.deepEqual(problems, []);
        console.log(
          `CLI ${tCli}; page done at ${tPage}; all at ${secs()}. ppl dense ${web.ppl_dense} / ${cli.ppl_dense}, ` +
            `pruned ${web.ppl} / ${cli.ppl} on ${web.adapter}`,
        );
      } finally {
        await browser?.close();
        await server.close();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
