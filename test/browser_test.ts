/**
 * The demo page (examples/web/, `deno task serve`) in headless Chromium on WebGPU: a small
 * OWL-Wanda prune completes in the page, and its numbers are the CLI's (`runPrune`, same
 * settings) to 1e-4; the pruned model.safetensors and model.sparse.safetensors it offers are the
 * CLI's files (`--save-sparse`) byte for byte;
 * dense and pruned generation stream text with tokens/s, and the pruned model on the sparse kernels
 * gives the pruned model's greedy text. Leaves a screenshot in
 * test/output/browser_demo.png.
 *
 * Needs Chromium (Debian's `chromium`, which `bash scripts/setup.sh` installs; another binary via
 * OWLGPU_CHROMIUM=/path). Without it the test fails and says how to install it. Chromium's
 * WebGPU adapter on a machine without a GPU is SwiftShader, so this also runs on CPU-only CI.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
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

/** An init script that keeps the page's WebGPU devices in `window.__devs` (to break them on purpose). */
const KEEP_DEVICES = `
const requestDevice = GPUAdapter.prototype.requestDevice;
window.__devs = [];
GPUAdapter.prototype.requestDevice = async function (...args) {
  const d = await requestDevice.apply(this, args);
  window.__devs.push(d);
  return d;
};`;
/** An init script for a browser without WebGPU: no navigator.gpu and none of the GPU* globals. */
const NO_WEBGPU = `
delete Navigator.prototype.gpu;
for (const k of Object.getOwnPropertyNames(globalThis)) if (k.startsWith("GPU")) delete globalThis[k];`;

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
      const opts = parsePruneArgs([...flags, "--out", `${tmp}/cli`, "--save-sparse"]);
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
        await page.addInitScript(KEEP_DEVICES);
        await page.goto(server.url);
        await page.waitForSelector("#run:not([disabled])", { timeout: 30_000 });
        assert(await page.isDisabled("#dl-model"), "nothing to download before a run");
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
        relClose(web.kl!, cli.kl!, 1e-3, "KL");
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

        // 4. Downloads: the pruned model.safetensors and model.sparse.safetensors are the CLI's
        // (`--save-sparse`), byte for byte.
        for (
          const [button, file] of [["#dl-model", "model.safetensors"], [
            "#dl-sparse",
            "model.sparse.safetensors",
          ]]
        ) {
          const [dl] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
          const dlPath = `${tmp}/web-${file}`;
          await dl.saveAs(dlPath);
          const [webBytes, cliBytes] = await Promise.all([
            Deno.readFile(dlPath),
            Deno.readFile(`${tmp}/cli/${file}`),
          ]);
          assert.equal(webBytes.byteLength, cliBytes.byteLength, `${file} size`);
          let diff = 0;
          for (let i = 0; i < webBytes.length; i++) if (webBytes[i] !== cliBytes[i]) diff++;
          assert.equal(diff, 0, `${file}: ${diff} bytes differ from the CLI's`);
        }

        // 5. Generation: dense, pruned, and pruned on the sparse kernels, side by side.
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
        const sparse = await page.textContent("#gen-sparse-text");
        assert.equal(dense, denseText, "greedy dense text differs from Deno's");
        assert(pruned!.startsWith(PROMPT) && pruned!.length > PROMPT.length, `pruned text: ${pruned}`);
        // The pruned model on the sparse kernels in the browser: the same greedy text, every
        // pruned linear (42 at 50% OWL, each block 40% zeros or more) run sparse.
        assert.equal(
          sparse,
          pruned,
          "greedy text of the pruned model differs between sparse and dense kernels",
        );
        assert.match(
          await page.textContent("#gen-sparse-stats") ?? "",
          /; 42 linears on the sparse kernels$/,
        );
        for (const side of ["dense", "pruned", "sparse"]) {
          const tps = Number(await page.getAttribute(`#gen-${side}-stats`, "data-tokens-per-second"));
          assert(tps > 0, `${side} tokens/s: ${tps}`);
        }

        await Deno.mkdir(OUTPUT, { recursive: true });
        await page.screenshot({ path: new URL("browser_demo.png", OUTPUT).pathname, fullPage: true });
        assert.deepEqual(problems, []);

        // 6. Generation's bad input is refused (a seed is not wrapped modulo 2^32 as before), and the
        // next good generation clears the error.
        const generate = async () => {
          await page.click("#generate");
          await page.waitForSelector('#gen[data-state="done"], #gen[data-state="error"]', {
            timeout: 60_000,
          });
          return await page.getAttribute("#gen", "data-error");
        };
        await page.fill("#max-tokens", "4");
        await page.fill("#temperature", "1");
        await page.fill("#seed", "1.5");
        assert.match(await generate() ?? "", /seed must be an integer in \[0, 4294967295\], got 1\.5/);
        assert(await page.isEnabled("#generate") && await page.isEnabled("#run"));
        await page.fill("#seed", "7");
        assert.equal(await generate(), null);
        assert(
          await page.isHidden("#log"),
          `a stale error stays on the page: ${await page.textContent("#log")}`,
        );

        // 7. A GPU error: shown, and the next run gets a new device instead of failing forever.
        await Promise.all([
          // WebGPU reports the error as an event, later: wait until the page's Gpu has it.
          page.waitForEvent("console", { predicate: (m) => m.text().startsWith("WebGPU error") }),
          page.evaluate(async () => {
            const d = (window as unknown as { __devs: GPUDevice[] }).__devs[0]; // the page's (step 2 made another)
            d.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE }); // invalid
            await d.queue.onSubmittedWorkDone(); // an idle device delivers the error event on its next tick
          }),
        ]);
        assert.match(await generate() ?? "", /^GpuDeviceError: .*the next run starts on a new GPU device/s);
        assert(
          await page.isDisabled("#generate") && await page.isDisabled("#dl-model"),
          "models of a failed device",
        );
        const devices = () => page.evaluate(() => (window as unknown as { __devs: unknown[] }).__devs.length);
        const before = await devices();
        await page.fill("#nsamples", "0"); // fails right after the GPU is acquired
        await page.click("#run");
        await page.waitForSelector('#result[data-state="error"]', { timeout: 30_000 });
        assert.match(await page.getAttribute("#result", "data-error") ?? "", /nsamples must be an integer/);
        assert.equal(await devices(), before + 1, "a new device for the next run");
        assert.deepEqual(problems.filter((p) => !/GpuDeviceError|WebGPU error|nsamples|seed/.test(p)), []);
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

Deno.test({
  name: "browser: the demo page reports bad input, a browser without WebGPU and a lost device",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const executablePath = await chromiumPath();
    const server = await serveDemo({ port: 0, quiet: true });
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
      const open = async (path: string, init?: string) => {
        const page = await (await browser!.newContext()).newPage();
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(e.message));
        if (init) await page.addInitScript(init);
        await page.goto(server.url + path);
        return { page, errors };
      };
      const runError = async (page: Page) => {
        await page.click("#run");
        await page.waitForSelector('#result[data-state="error"], #result[data-state="done"]', {
          timeout: 60_000,
        });
        assert(await page.isEnabled("#run"), "Run is enabled again");
        assert(await page.isVisible("#log"));
        return await page.getAttribute("#result", "data-error") ?? "(no error)";
      };

      // No WebGPU at all (no navigator.gpu, no GPU* globals): the page says so as it starts.
      {
        const { page } = await open("", NO_WEBGPU);
        await page.waitForSelector('#result[data-state="error"]', { timeout: 15_000 });
        assert.match(await page.textContent("#log") ?? "", /this browser has no WebGPU/);
        const gemv = (await open("examples/browser.html", NO_WEBGPU)).page;
        await gemv.waitForFunction(
          () =>
            (globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } })
              .document.getElementById("out").textContent.includes("no WebGPU"),
          null,
          {
            timeout: 15_000,
          },
        );
      }

      // Values in the address that the form cannot take are named; an N:M from the address is offered.
      const { page, errors } = await open("?method=bogus&pattern=3:7&seqlen=64&eval-windows=1", KEEP_DEVICES);
      await page.waitForSelector("#run:not([disabled])", { timeout: 30_000 });
      assert.match(await page.textContent("#log") ?? "", /method="bogus" \(not one of .*owl-wanda/);
      assert.match(await runError(page), /M = 7 does not divide C_in = 288/);
      // The CLI's checks, before any work: nsamples = 10^9 froze the tab, OWL M <= 0 ran.
      await page.selectOption("#pattern", "unstructured");
      for (
        const [field, value, why] of [
          ["nsamples", "1000000000", /nsamples must be an integer in \[1, 4096\]/],
          ["owl-m", "-1", /OWL M must be > 0/],
          ["owl-lambda", "1", /OWL λ must be in \[0, 1\)/],
        ] as const
      ) {
        const before = await page.inputValue(`#${field}`);
        await page.fill(`#${field}`, value);
        assert.match(await runError(page), why);
        await page.fill(`#${field}`, before);
      }

      // A lost device is forgotten: the next run asks for a new one (before, it failed forever).
      const lost = await page.evaluate(async () => {
        const d = (window as unknown as { __devs: GPUDevice[] }).__devs[0];
        d.destroy();
        return (await d.lost).reason;
      });
      assert.equal(lost, "destroyed");
      await page.fill("#owl-m", "-1");
      assert.match(await runError(page), /OWL M must be > 0/);
      assert.equal(await page.evaluate(() => (window as unknown as { __devs: unknown[] }).__devs.length), 2);
      assert.deepEqual(errors, []);
    } finally {
      await browser?.close();
      await server.close();
    }
  },
});
