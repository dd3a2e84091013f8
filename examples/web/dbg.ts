/// <reference lib="dom" />
import { ForwardRunner, Gpu, GpuModel } from "../../mod.ts";
import { fetchBytes, loadEmbedded } from "./owlgpu_web.ts";
const t0 = performance.now();
const log = async (s: string) => { console.log(`DBG ${((performance.now() - t0) / 1000).toFixed(2)} ${s}`); await new Promise((r) => setTimeout(r, 50)); };
const gpu = await Gpu.create();
await log("gpu " + gpu.adapterName);
const m = await loadEmbedded(await fetchBytes("data/llama2.data"));
await log("loaded");
const model = await GpuModel.load(gpu, m.source);
await log("model");
const mode = new URLSearchParams(location.search).get("mode");
if (mode === "eval") {
  const r = new ForwardRunner(model, 128);
  await log("runner");
  r.forward(Array.from({ length: 128 }, (_, i) => i + 1));
  await log("forward recorded");
  await gpu.readF32(r.logits, 0, 4);
  await log("forward done");
  r.forward(Array.from({ length: 128 }, (_, i) => i + 1));
  await gpu.readF32(r.logits, 0, 4);
  await log("forward 2 done");
}
const runner = new ForwardRunner(model, 5, { perLayerCache: true, maxSeq: 12 });
await log("gen runner");
runner.forward([1, 2, 3, 4, 5], 0);
await log("prefill recorded");
await gpu.readF32(runner.logits, 0, 4);
await log("prefill done");
for (let p = 5; p < 9; p++) {
  runner.forward([7], p);
  await gpu.readF32(runner.logits, 0, 4);
  await log("decode " + p);
}
(document.body as HTMLElement).dataset.done = "1";
