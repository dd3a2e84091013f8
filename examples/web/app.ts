/// <reference lib="dom" />
/**
 * The demo page's script (examples/web/index.html), bundled by esbuild when `deno task serve`
 * serves `/app.js`. Prunes a model on the page's WebGPU device, shows the report, generates text
 * with the dense and the pruned model, and offers the pruned model for download.
 *
 * The page's state for tests: `#result[data-state]` is `idle`, `running`, `done` or `error`, and
 * when done `#report-json` holds report.json; `#gen[data-state]` likewise for generation.
 * @module
 */
import {
  type Allocation,
  ALLOCATIONS,
  Gpu,
  type Method,
  METHODS,
  OwlError,
  reportJson,
  reportSvg,
} from "../../mod.ts";
import {
  type DemoRun,
  type DemoSettings,
  fetchBytes,
  fetchText,
  generateText,
  type LoadedModel,
  loadEmbedded,
  loadLlama2c,
  parsePattern,
  pruneAndEvaluate,
  prunedConfigJson,
  prunedSafetensors,
  SERVED,
  tokenizeText,
} from "./owlgpu_web.ts";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
};
const input = (id: string) => $<HTMLInputElement>(id);
const select = (id: string) => $<HTMLSelectElement>(id);

const result = $("result");
const gen = $("gen");
const bar = $<HTMLProgressElement>("bar");
const phaseText = $("phase");
const log = $("log");

let gpu: Gpu | undefined;
let embedded: Promise<LoadedModel> | undefined;
let fileModel: { key: string; model: LoadedModel } | undefined;
const corpora = new Map<string, Promise<Int32Array>>();
let run: { model: LoadedModel; demo: DemoRun } | undefined;
let busy = false;

function fillSelect(id: string, values: readonly string[], selected: string): void {
  const s = select(id);
  for (const v of values) s.add(new Option(v, v, v === selected, v === selected));
}

fillSelect("method", METHODS, "owl-wanda");
fillSelect("allocation", ["auto", ...ALLOCATIONS], "auto");

// Settings from the query string (?method=wanda&sparsity=0.5...) fill the form.
for (const [k, v] of new URLSearchParams(location.search)) {
  const el = document.getElementById(k);
  if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement) el.value = v;
}

function showModelChoice(): void {
  $("file-row").hidden = select("model").value !== "file";
}
select("model").addEventListener("change", showModelChoice);
showModelChoice();

function setPhase(text: string, done = 0, total = 0): void {
  phaseText.textContent = text;
  if (total > 0) {
    bar.max = total;
    bar.value = done;
  } else bar.removeAttribute("value"); // indeterminate
}

function message(e: unknown): string {
  if (e instanceof OwlError) return `${e.name}: ${e.message}`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function fail(section: HTMLElement, e: unknown): void {
  console.error(e);
  section.dataset.state = "error";
  section.dataset.error = message(e);
  log.textContent = message(e);
  log.hidden = false;
  setPhase("failed", 0, 1);
}

async function getGpu(): Promise<Gpu> {
  gpu ??= await Gpu.create();
  $("adapter").textContent = `${gpu.adapterName}${gpu.isCpu ? " (CPU)" : ""}${gpu.f16 ? ", shader-f16" : ""}`;
  return gpu;
}

function mib(n: number): string {
  return (n / 2 ** 20).toFixed(1);
}

async function getModel(): Promise<LoadedModel> {
  if (select("model").value !== "file") {
    embedded ??= (async () => {
      const data = await fetchBytes(
        SERVED.embeddedData,
        (l, t) => setPhase(`downloading stories15M: ${mib(l)} / ${mib(t)} MiB`, l, t),
      );
      setPhase("verifying stories15M (sha256)");
      return loadEmbedded(data);
    })();
    try {
      return await embedded;
    } catch (e) {
      embedded = undefined;
      throw e;
    }
  }
  const ckpt = input("checkpoint").files?.[0], tok = input("tokenizer").files?.[0];
  if (!ckpt || !tok) throw new Error("pick a llama2.c checkpoint (.bin) and its tokenizer.bin");
  const key = `${ckpt.name}:${ckpt.size}:${ckpt.lastModified}:${tok.name}:${tok.size}:${tok.lastModified}`;
  if (fileModel?.key !== key) {
    setPhase(`reading ${ckpt.name}`);
    const model = await loadLlama2c(
      new Uint8Array(await ckpt.arrayBuffer()),
      new Uint8Array(await tok.arrayBuffer()),
      ckpt.name.replace(/\.bin$/, ""),
    );
    fileModel = { key, model };
  }
  return fileModel.model;
}

/** Token ids of a built-in corpus under the model's tokenizer (fetched and tokenized once). */
function corpusIds(name: string, model: LoadedModel): Promise<Int32Array> {
  const key = `${model.name}\0${model.tokenizerBytes.byteLength}\0${name}`;
  let ids = corpora.get(key);
  if (!ids) {
    ids = (async () => {
      setPhase(`downloading the ${name} corpus`);
      const text = await fetchText(SERVED.corpus(name));
      setPhase(`tokenizing ${name} (${mib(text.length)} M characters)`);
      await new Promise((r) => setTimeout(r, 0)); // let the label paint before the long loop
      return tokenizeText(text, model.tokenizer);
    })();
    corpora.set(key, ids);
    ids.catch(() => corpora.delete(key));
  }
  return ids;
}

function num(id: string): number {
  const v = input(id).value;
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x)) throw new Error(`${id} must be a number, got "${v}"`);
  return x;
}

function settings(model: LoadedModel): DemoSettings {
  const method = select("method").value as Method;
  const alloc = select("allocation").value;
  const seqlen = input("seqlen").value.trim() === "" ? model.source.config.maxSeqLen : num("seqlen");
  return {
    method,
    allocation: (alloc === "auto" ? (method.startsWith("owl-") ? "owl" : "uniform") : alloc) as Allocation,
    sparsity: num("sparsity"),
    pattern: parsePattern(select("pattern").value),
    owlM: num("owl-m"),
    owlLambda: num("owl-lambda"),
    beta: 0.02,
    alpha: 0.15,
    nmRounding: "reference",
    percdamp: 0.01,
    blocksize: 128,
    calib: "sotu",
    nsamples: num("nsamples"),
    seqlen,
    eval: "moby-dick",
    evalWindows: num("eval-windows"),
  };
}

function setText(id: string, text: string): void {
  $(id).textContent = text;
}

function showReport(r: DemoRun["report"]): void {
  setText("r-model", `${r.model}: ${r.method} (${r.allocation}, ${r.pattern})`);
  setText("r-sparsity", `target ${r.sparsity_target.toFixed(4)}, realised ${r.sparsity_realised.toFixed(6)}`);
  setText("r-ppl-dense", r.ppl_dense.toFixed(3));
  setText("r-ppl", r.ppl.toFixed(3));
  setText("r-kl", `${r.kl.toFixed(5)} nats/token`);
  setText("r-eval", `${r.settings.eval}, ${r.settings.eval_windows} windows x ${r.settings.seqlen} tokens`);
  setText("r-calib", `${r.settings.calib}, ${r.settings.nsamples} windows x ${r.settings.seqlen} tokens`);
  setText("r-time", `${r.seconds.toFixed(1)} s on ${r.adapter}`);
  const rows = r.blocks.map((b) =>
    `<tr><td>${b.index}</td><td>${b.outlier_ratio === null ? "-" : b.outlier_ratio.toFixed(3)}</td>` +
    `<td>${b.sparsity.toFixed(4)}</td></tr>`
  );
  $("blocks").innerHTML = rows.join("");
  $("chart").innerHTML = reportSvg(r); // self-contained SVG with escaped text
  setText("report-json", reportJson(r));
}

function download(name: string, bytes: Uint8Array | string, type: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function slug(r: DemoRun["report"]): string {
  const tag = r.pattern === "unstructured"
    ? `${Math.round(r.sparsity_target * 100)}`
    : r.pattern.replace(":", "of");
  return `${r.model}-${r.method}-${tag}`;
}

async function onRun(ev: Event): Promise<void> {
  ev.preventDefault();
  if (busy) return;
  busy = true;
  $<HTMLButtonElement>("run").disabled = true;
  $<HTMLButtonElement>("generate").disabled = true;
  log.hidden = true;
  result.dataset.state = "running";
  delete result.dataset.error;
  gen.dataset.state = "idle";
  const t0 = performance.now();
  const timer = setInterval(
    () => setText("elapsed", `${((performance.now() - t0) / 1000).toFixed(0)} s`),
    500,
  );
  try {
    run?.demo.release();
    run = undefined;
    const g = await getGpu();
    const model = await getModel();
    const s = settings(model);
    const calib = await corpusIds(s.calib, model);
    const evalIds = await corpusIds(s.eval, model);
    const labels: Record<string, string> = {
      outliers: "outlier pass (dense model, per block)",
      prune: "pruning block by block",
      evaluate: "evaluating dense and pruned",
    };
    setPhase("pruning");
    const demo = await pruneAndEvaluate(g, model, calib, evalIds, s, (phase, done, total) => {
      setPhase(`${labels[phase] ?? phase}: ${done} / ${total}`, done, total);
    });
    run = { model, demo };
    showReport(demo.report);
    setPhase(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`, 1, 1);
    result.dataset.state = "done";
    $<HTMLButtonElement>("generate").disabled = false;
  } catch (e) {
    fail(result, e);
  } finally {
    clearInterval(timer);
    busy = false;
    $<HTMLButtonElement>("run").disabled = false;
  }
}

async function onGenerate(ev: Event): Promise<void> {
  ev.preventDefault();
  if (busy || !run) return;
  busy = true;
  const current = run;
  $<HTMLButtonElement>("generate").disabled = true;
  $<HTMLButtonElement>("run").disabled = true;
  gen.dataset.state = "running";
  setText("elapsed", "");
  try {
    const opts = {
      maxTokens: num("max-tokens"),
      temperature: num("temperature"),
      topP: num("top-p"),
      seed: num("seed"),
    };
    const prompt = input("prompt").value;
    const sides = [["dense", current.demo.dense], ["pruned", current.demo.pruned]] as const;
    for (const [side] of sides) {
      $(`gen-${side}-text`).textContent = "";
      $(`gen-${side}-stats`).textContent = "waiting...";
    }
    for (const [side, model] of sides) {
      const out = $(`gen-${side}-text`), stats = $(`gen-${side}-stats`);
      setPhase(`generating with the ${side} model`);
      const r = await generateText(model, current.model.tokenizer, prompt, opts, (s) => out.textContent += s);
      stats.textContent = `${r.ids.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s ` +
        `(prompt ${r.promptTokens} tokens in ${(r.prefillSeconds * 1000).toFixed(0)} ms)`;
      stats.dataset.tokensPerSecond = String(r.tokensPerSecond);
      stats.dataset.tokens = String(r.ids.length);
    }
    setPhase("generated", 1, 1);
    gen.dataset.state = "done";
  } catch (e) {
    fail(gen, e);
  } finally {
    busy = false;
    $<HTMLButtonElement>("generate").disabled = false;
    $<HTMLButtonElement>("run").disabled = false;
  }
}

async function onDownload(kind: string): Promise<void> {
  if (!run) return;
  const { model, demo } = run;
  const r = demo.report;
  try {
    if (kind === "model") {
      setPhase("encoding model.safetensors");
      const bytes = await prunedSafetensors(model.source, demo.weights);
      download(`${slug(r)}.safetensors`, bytes, "application/octet-stream");
      setPhase(`model.safetensors: ${mib(bytes.byteLength)} MiB`, 1, 1);
    } else if (kind === "config") download("config.json", prunedConfigJson(model.source), "application/json");
    else if (kind === "report") download("report.json", reportJson(r), "application/json");
    else if (kind === "svg") download("report.svg", reportSvg(r), "image/svg+xml");
    else if (kind === "tokenizer") {
      download("tokenizer.bin", model.tokenizerBytes, "application/octet-stream");
    }
  } catch (e) {
    log.textContent = message(e);
    log.hidden = false;
  }
}

$("settings").addEventListener("submit", onRun);
$("gen-form").addEventListener("submit", onGenerate);
for (const b of document.querySelectorAll<HTMLButtonElement>("button[data-download]")) {
  b.addEventListener("click", () => onDownload(b.dataset.download!));
}
$<HTMLButtonElement>("run").disabled = false;
result.dataset.state = "idle";
gen.dataset.state = "idle";
getGpu().catch((e) => {
  $("adapter").textContent = "none";
  fail(result, e);
});
