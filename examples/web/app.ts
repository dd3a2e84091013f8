/// <reference lib="dom" />
/**
 * The demo page's script (examples/web/index.html), bundled by esbuild when `deno task serve`
 * serves `/app.js`. Prunes a model on the page's WebGPU device, shows the report, generates text
 * with the dense and the pruned model (the pruned one also on the sparse kernels: the same greedy
 * text), and offers the pruned model for download.
 *
 * The page's state for tests: `#result[data-state]` is `idle`, `running`, `done` or `error`, and
 * when done `#report-json` holds report.json; `#gen[data-state]` likewise for generation.
 * @module
 */
import {
  type Allocation,
  ALLOCATIONS,
  ArgumentError,
  checkJobFits,
  Gpu,
  GpuDeviceError,
  type GpuModel,
  GpuOutOfMemoryError,
  type Method,
  METHODS,
  OwlError,
  reportJson,
  reportSvg,
  ZEROS_MIN_SPARSITY,
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
  loadSparsePruned,
  parsePattern,
  pruneAndEvaluate,
  prunedConfigJson,
  prunedSafetensors,
  prunedSparseSafetensors,
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
let run: { model: LoadedModel; demo: DemoRun; settings: DemoSettings } | undefined;
/** The finished run's pruned model on the sparse kernels, loaded at its first generation. */
let sparseRun: { of: typeof run; model: GpuModel; sparseLinears: number } | undefined;
let busy = false;

function fillSelect(id: string, values: readonly string[], selected: string): void {
  const s = select(id);
  for (const v of values) s.add(new Option(v, v, v === selected, v === selected));
}

fillSelect("method", METHODS, "owl-wanda");
fillSelect("allocation", ["auto", ...ALLOCATIONS], "auto");

// Settings from the query string (?method=wanda&sparsity=0.5...) fill the form. A value the field
// cannot take (a select without that choice, a number input given text) is named, not dropped
// silently; any N:M pattern may be asked for this way.
const ignored: string[] = [];
for (const [k, v] of new URLSearchParams(location.search)) {
  const el = document.getElementById(k);
  if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement)) continue;
  if (el instanceof HTMLSelectElement && k === "pattern" && /^\d+:\d+$/.test(v)) {
    if (![...el.options].some((o) => o.value === v)) el.add(new Option(v, v));
  }
  const before = el.value;
  el.value = v;
  if (el.value !== v) {
    el.value = before;
    const choices = el instanceof HTMLSelectElement
      ? `one of ${[...el.options].map((o) => o.value).join(", ")}`
      : "a number";
    ignored.push(`${k}=${JSON.stringify(v)} (not ${choices}; kept ${JSON.stringify(before)})`);
  }
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
  let text = message(e);
  if (gpu && (e instanceof GpuDeviceError || e instanceof GpuOutOfMemoryError)) {
    // The device's error sticks: every later readback would fail too. Start over on a new device.
    dropGpu(gpu);
    text += " (the next run starts on a new GPU device)";
  }
  section.dataset.state = "error";
  section.dataset.error = text;
  log.textContent = text;
  log.hidden = false;
  setPhase("failed", 0, 1);
}

const downloadButtons = document.querySelectorAll<HTMLButtonElement>("button[data-download]");

/** The finished run that generation and the downloads use (none: their buttons are disabled). */
function setRun(r: typeof run): void {
  if (run && run !== r) {
    try {
      run.demo.release();
      sparseRun?.model.release();
    } catch (e) {
      console.warn("releasing the previous run:", e);
    }
    sparseRun = undefined;
  }
  run = r;
  $<HTMLButtonElement>("generate").disabled = busy || !r;
  for (const b of downloadButtons) b.disabled = !r;
}

/** Forget `g` and everything on it, so that the next action asks for a new device. */
function dropGpu(g: Gpu): void {
  if (gpu !== g) return;
  gpu = undefined;
  setRun(undefined);
  g.destroy();
}

/** What to tell a user whose browser has no WebGPU (index.html says the same if app.js cannot start). */
const NO_WEBGPU = "this browser has no WebGPU (navigator.gpu is missing): use Chrome or Edge 113+, " +
  "Firefox 141+ on Windows, or Safari 26+";

async function getGpu(): Promise<Gpu> {
  if (!gpu) {
    if (!navigator.gpu) throw new Error(NO_WEBGPU);
    const g = gpu = await Gpu.create();
    // A lost device (driver reset, tab in the background too long, destroy) never comes back.
    g.device.lost.then((info) => {
      if (gpu !== g) return;
      console.warn(`WebGPU device lost (${info.reason}): ${info.message}`);
      dropGpu(g);
    });
  }
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

/** A number field's value; an ArgumentError naming the field when it holds no number. */
function num(id: string): number {
  const el = input(id), v = el.value;
  // A number input that holds text ("1e", "abc") reports an empty value: say what is wrong.
  if (el.validity.badInput) throw new ArgumentError(`${id} is not a number`);
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x)) throw new ArgumentError(`${id} must be a number, got "${v}"`);
  return x;
}

/** An integer field's value in [min, max]. */
function int(id: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const x = num(id);
  if (!(Number.isInteger(x) && x >= min && x <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new ArgumentError(`${id} must be an integer ${range}, got ${x}`);
  }
  return x;
}

/**
 * Most calibration windows the page takes: the windows are made on the page's only thread before
 * any progress shows, and nsamples = 10^9 froze the tab (the CLI's default is 128).
 */
const MAX_NSAMPLES = 4096;

/** The form's settings, checked as `deno task prune` checks its flags (cheap errors first). */
function settings(model: LoadedModel): DemoSettings {
  const method = select("method").value as Method;
  if (!METHODS.includes(method)) throw new ArgumentError(`method must be one of ${METHODS.join(", ")}`);
  const alloc = select("allocation").value;
  if (alloc !== "auto" && !(ALLOCATIONS as readonly string[]).includes(alloc)) {
    throw new ArgumentError(`allocation must be auto or one of ${ALLOCATIONS.join(", ")}`);
  }
  const seqlen = input("seqlen").value.trim() === "" && !input("seqlen").validity.badInput
    ? model.source.config.maxSeqLen
    : int("seqlen", 2);
  const pattern = parsePattern(select("pattern").value);
  if (pattern.kind === "nm" && pattern.n === pattern.m) {
    throw new ArgumentError(`pattern ${pattern.n}:${pattern.m} prunes every weight; use N < M, e.g. 2:4`);
  }
  const owlM = num("owl-m"), owlLambda = num("owl-lambda");
  if (!(owlM > 0)) throw new ArgumentError(`OWL M must be > 0, got ${owlM}`);
  if (!(owlLambda >= 0 && owlLambda < 1)) {
    throw new ArgumentError(`OWL λ must be in [0, 1), got ${owlLambda}`);
  }
  const s: DemoSettings = {
    method,
    allocation: (alloc === "auto" ? (method.startsWith("owl-") ? "owl" : "uniform") : alloc) as Allocation,
    sparsity: num("sparsity"),
    pattern,
    owlM,
    owlLambda,
    beta: 0.02,
    alpha: 0.15,
    nmRounding: "reference",
    percdamp: 0.01,
    blocksize: 128,
    calib: "sotu",
    nsamples: int("nsamples", 1, MAX_NSAMPLES),
    seqlen,
    eval: "moby-dick",
    evalWindows: int("eval-windows", 1),
  };
  if (!(s.sparsity >= 0 && s.sparsity < 1)) {
    throw new ArgumentError(`sparsity must be in [0, 1), got ${s.sparsity}`);
  }
  checkJobFits(model.source.config, s); // N:M against the layers, seqlen against the context
  return s;
}

function setText(id: string, text: string): void {
  $(id).textContent = text;
}

function showReport(r: DemoRun["report"]): void {
  setText("r-model", `${r.model}: ${r.method} (${r.allocation}, ${r.pattern})`);
  setText("r-sparsity", `target ${r.sparsity_target.toFixed(4)}, realised ${r.sparsity_realised.toFixed(6)}`);
  setText("r-ppl-dense", r.ppl_dense.toFixed(3));
  setText("r-ppl", r.ppl.toFixed(3));
  setText("r-kl", r.kl === null ? "not computed" : `${r.kl.toFixed(5)} nats/token`);
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
    setRun(undefined);
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
    showReport(demo.report);
    setPhase(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`, 1, 1);
    result.dataset.state = "done";
    busy = false;
    setRun({ model, demo, settings: s });
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
  log.hidden = true;
  gen.dataset.state = "running";
  delete gen.dataset.error;
  setText("elapsed", "");
  // The page evaluates with the KL (both models stay on the GPU), so the dense model is there.
  const sides: [string, GpuModel | undefined][] = [["dense", current.demo.dense!], [
    "pruned",
    current.demo.pruned,
  ]];
  try {
    if (sparseRun?.of !== current) {
      setPhase("packing the pruned linears for the sparse kernels");
      const g = await getGpu();
      sparseRun = { of: current, ...await loadSparsePruned(g, current.model.source, current.demo.weights) };
    }
    const sparse = sparseRun;
    // No linear with enough zeros (method dense, or a low sparsity): nothing would run sparse.
    sides.push(["sparse", sparse.sparseLinears > 0 ? sparse.model : undefined]);
    const opts = {
      maxTokens: int("max-tokens", 1),
      temperature: num("temperature"),
      topP: num("top-p"),
      seed: int("seed", 0, 2 ** 32 - 1), // as `deno task generate --seed`: no silent wrap-around
    };
    const prompt = input("prompt").value;
    for (const [side] of sides) {
      $(`gen-${side}-text`).textContent = "";
      $(`gen-${side}-stats`).textContent = "waiting...";
    }
    for (const [side, model] of sides) {
      const out = $(`gen-${side}-text`), stats = $(`gen-${side}-stats`);
      if (!model) {
        stats.textContent = `no pruned linear has ${
          100 * ZEROS_MIN_SPARSITY
        }% zeros or more: nothing runs sparse`;
        continue;
      }
      setPhase(`generating with the ${side} model`);
      const r = await generateText(model, current.model.tokenizer, prompt, opts, (s) => out.textContent += s);
      stats.textContent = `${r.ids.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s ` +
        `(prompt ${r.promptTokens} tokens in ${(r.prefillSeconds * 1000).toFixed(0)} ms)`;
      if (side === "sparse") stats.textContent += `; ${sparse.sparseLinears} linears on the sparse kernels`;
      stats.dataset.tokensPerSecond = String(r.tokensPerSecond);
      stats.dataset.tokens = String(r.ids.length);
    }
    setPhase("generated", 1, 1);
    gen.dataset.state = "done";
  } catch (e) {
    for (const [side] of sides) {
      const stats = $(`gen-${side}-stats`);
      if (stats.textContent === "waiting...") stats.textContent = "";
    }
    fail(gen, e);
  } finally {
    busy = false;
    $<HTMLButtonElement>("generate").disabled = !run;
    $<HTMLButtonElement>("run").disabled = false;
  }
}

async function onDownload(kind: string): Promise<void> {
  if (!run) return;
  const { model, demo, settings: runSettings } = run;
  const r = demo.report;
  try {
    if (kind === "model") {
      setPhase("encoding model.safetensors");
      const bytes = await prunedSafetensors(model.source, demo.weights);
      download(`${slug(r)}.safetensors`, bytes, "application/octet-stream");
      setPhase(`model.safetensors: ${mib(bytes.byteLength)} MiB`, 1, 1);
    } else if (kind === "sparse") {
      setPhase("packing model.sparse.safetensors");
      const bytes = await prunedSparseSafetensors(model.source, demo.weights, runSettings);
      download(`${slug(r)}.sparse.safetensors`, bytes, "application/octet-stream");
      setPhase(`model.sparse.safetensors: ${mib(bytes.byteLength)} MiB`, 1, 1);
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
for (const b of downloadButtons) b.addEventListener("click", () => onDownload(b.dataset.download!));
setRun(undefined);
$<HTMLButtonElement>("run").disabled = false;
result.dataset.state = "idle";
gen.dataset.state = "idle";
document.body.dataset.started = "true"; // index.html reports errors before this point
if (ignored.length > 0) {
  log.textContent = `ignored in the address: ${ignored.join("; ")}`;
  log.hidden = false;
}
getGpu().catch((e) => {
  $("adapter").textContent = "none";
  fail(result, e);
});
