/**
 * The prune report: report.json (machine-readable), report.md (a table) and report.svg (per-block
 * outlier ratio and sparsity). Pure functions from a PruneReport to text, so they are testable
 * without a GPU.
 * @module
 */
import type { BlockReport } from "./pipeline.ts";

/**
 * Everything a prune run reports (field names are the report.json keys).
 *
 * @example The optional fields of mixed N:M and `--save-sparse` add rows to report.md
 * ```ts
 * import { type PruneReport, reportMarkdown } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const report: PruneReport = {
 *   model: "tiny", method: "owl-wanda", allocation: "owl", pattern: "2:4", sparsity_target: 0.5,
 *   sparsity_realised: 0.5, ppl_dense: 10, ppl: 14, kl: 0.2, seconds: 2, adapter: "llvmpipe",
 *   blocks: [{ index: 0, outlier_ratio: 3, sparsity: 0.25 }, { index: 1, outlier_ratio: 1, sparsity: 0.75 }],
 *   linears: [], settings: { owl_lambda: 2 },
 *   mean_n: 2, sparse_file: "model.sparse.safetensors", sparse_bytes: 1500, dense_linear_bytes: 2000,
 * };
 * const md = reportMarkdown(report);
 * assert(md.startsWith("# tiny: owl-wanda at 2:4\n"));
 * assert(md.includes("| mean N (mixed N:M) | 2.0000 |"));
 * assert(md.includes("| sparse linears (model.sparse.safetensors) | 1500 B, 75.0% of 2000 B dense f32 |"));
 * ```
 */
export interface PruneReport {
  /** The model argument (embedded name or resolved path). */
  model: string;
  /** The pruning method. */
  method: string;
  /** The allocation rule. */
  allocation: string;
  /** The sparsity pattern ("unstructured" or "N:M"). */
  pattern: string;
  /** Target sparsity (for N:M, n / m). */
  sparsity_target: number;
  /** Pruned weights / all weights of the pruned linears, counted from the masks. */
  sparsity_realised: number;
  /** Perplexity of the dense model. */
  ppl_dense: number;
  /** Perplexity of the pruned model. */
  ppl: number;
  /**
   * Mean per-token KL(dense || pruned) on the evaluation windows, in nats; null when the models
   * were evaluated one at a time (`--no-kl`).
   */
  kl: number | null;
  /** Wall time of the run, in seconds. */
  seconds: number;
  /** The WebGPU adapter's name. */
  adapter: string;
  /** Per-block outlier ratio and sparsity. */
  blocks: BlockReport[];
  /** Per linear: weights pruned by its mask, and what the floor rule asks for. */
  linears: { name: string; pruned: number; expected: number; numel: number }[];
  /** The run's other settings (OWL, depth and DLP parameters, calibration, evaluation, SparseGPT). */
  settings: Record<string, unknown>;
  /** Mixed N:M: the realised mean N over blocks. */
  mean_n?: number;
  /** `--save-sparse`: the sparse file's name in the output directory. */
  sparse_file?: string;
  /** `--save-sparse`: bytes of the pruned linears' sparse arrays in that file (bitmaps, offsets, values). */
  sparse_bytes?: number;
  /** `--save-sparse`: bytes the same linears take dense in f32. */
  dense_linear_bytes?: number;
}

function fmt(x: number | null | undefined, digits: number): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);
}

/**
 * report.json's text.
 *
 * @example It parses back to the same report
 * ```ts
 * import { type PruneReport, reportJson } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const report: PruneReport = {
 *   model: "tiny", method: "wanda", allocation: "uniform", pattern: "unstructured", sparsity_target: 0.5,
 *   sparsity_realised: 0.5, ppl_dense: 10, ppl: 12, kl: 0.1, seconds: 1, adapter: "llvmpipe",
 *   blocks: [{ index: 0, outlier_ratio: null, sparsity: 0.5 }],
 *   linears: [{ name: "model.layers.0.self_attn.q_proj.weight", pruned: 32, expected: 32, numel: 64 }],
 *   settings: { nsamples: 8, seqlen: 256 },
 * };
 * const text = reportJson(report);
 * assert(text.endsWith("}\n"));
 * assert.deepEqual(JSON.parse(text), report);
 * ```
 */
export function reportJson(r: PruneReport): string {
  return JSON.stringify(r, null, 2) + "\n";
}

/**
 * report.md's text: the summary, the per-block table and a link to the chart.
 *
 * @example The title, a summary row, a block row and the chart link
 * ```ts
 * import { type PruneReport, reportMarkdown } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const report: PruneReport = {
 *   model: "tiny", method: "owl-wanda", allocation: "owl", pattern: "unstructured", sparsity_target: 0.5,
 *   sparsity_realised: 0.49, ppl_dense: 10, ppl: 12.5, kl: 0.1, seconds: 3, adapter: "llvmpipe",
 *   blocks: [{ index: 0, outlier_ratio: 2, sparsity: 0.45 }, { index: 1, outlier_ratio: 1, sparsity: 0.55 }],
 *   linears: [], settings: { owl_lambda: 0.05 },
 * };
 * const md = reportMarkdown(report, "chart.svg");
 * assert(md.startsWith("# tiny: owl-wanda at 50.0%\n"));
 * assert(md.includes("| perplexity pruned | 12.500 |"));
 * assert(md.includes("| 1 | 1.0000 | 0.550000 |"));
 * assert(md.includes("![per-block outlier ratio and sparsity](chart.svg)"));
 * ```
 */
export function reportMarkdown(r: PruneReport, chartFile = "report.svg"): string {
  const lines = [
    `# ${r.model}: ${r.method} at ${
      r.pattern === "unstructured" ? `${fmt(100 * r.sparsity_target, 1)}%` : r.pattern
    }`,
    "",
    "| | |",
    "|---|---|",
    `| method | ${r.method} |`,
    `| allocation | ${r.allocation} |`,
    `| pattern | ${r.pattern} |`,
    `| target sparsity | ${fmt(r.sparsity_target, 4)} |`,
    `| realised sparsity | ${fmt(r.sparsity_realised, 6)} |`,
    ...(r.mean_n !== undefined ? [`| mean N (mixed N:M) | ${fmt(r.mean_n, 4)} |`] : []),
    `| perplexity dense | ${fmt(r.ppl_dense, 3)} |`,
    `| perplexity pruned | ${fmt(r.ppl, 3)} |`,
    `| KL(dense, pruned) per token | ${r.kl === null ? "not computed (--no-kl)" : `${fmt(r.kl, 5)} nats`} |`,
    ...(r.sparse_bytes !== undefined && r.dense_linear_bytes
      ? [
        `| sparse linears (${r.sparse_file}) | ${r.sparse_bytes} B, ${
          fmt(100 * r.sparse_bytes / r.dense_linear_bytes, 1)
        }% of ${r.dense_linear_bytes} B dense f32 |`,
      ]
      : []),
    `| time | ${fmt(r.seconds, 1)} s |`,
    `| adapter | ${r.adapter} |`,
    "",
    "## Blocks",
    "",
    "| block | outlier ratio D (%) | sparsity |",
    "|---:|---:|---:|",
    ...r.blocks.map((b) => `| ${b.index} | ${fmt(b.outlier_ratio, 4)} | ${fmt(b.sparsity, 6)} |`),
    "",
    `![per-block outlier ratio and sparsity](${chartFile})`,
    "",
    "## Settings",
    "",
    "```json",
    JSON.stringify(r.settings, null, 2),
    "```",
    "",
  ];
  return lines.join("\n");
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * A bar chart of per-block sparsity (bars, left axis 0-100%) with the outlier ratio D_l as a
 * line and dots (right axis, scaled to its maximum). Self-contained SVG, no scripts.
 *
 * @example One bar and one dot per block; bars scale with the sparsity (236 px is 100%)
 * ```ts
 * import { type PruneReport, reportSvg } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const report: PruneReport = {
 *   model: "tiny", method: "owl-wanda", allocation: "owl", pattern: "unstructured", sparsity_target: 0.5,
 *   sparsity_realised: 0.5, ppl_dense: 10, ppl: 12, kl: 0.1, seconds: 1, adapter: "llvmpipe",
 *   blocks: [{ index: 0, outlier_ratio: 1, sparsity: 0.75 }, { index: 1, outlier_ratio: 3, sparsity: 0.25 }],
 *   linears: [], settings: {},
 * };
 * const svg = reportSvg(report);
 * assert(svg.startsWith("<svg") && svg.endsWith("</svg>\n"));
 * const bars = [...svg.matchAll(/height="([\d.]+)" fill="#2e86c1"/g)].map((m) => Number(m[1]));
 * assert.deepEqual(bars, [0.75 * 236, 0.25 * 236]);
 * assert.equal(svg.match(/<circle/g)?.length, 2);
 * ```
 */
export function reportSvg(r: PruneReport): string {
  const W = 640, H = 320, left = 56, right = 56, top = 40, bottom = 44;
  const pw = W - left - right, ph = H - top - bottom;
  const n = Math.max(r.blocks.length, 1);
  const slot = pw / n, bar = Math.max(2, slot * 0.6);
  const y = (frac: number) => top + ph * (1 - frac);
  const ratios = r.blocks.map((b) => b.outlier_ratio).filter((d): d is number => d !== null);
  const dMax = ratios.length ? Math.max(...ratios) * 1.1 || 1 : 1;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${
      esc(`${r.model} ${r.method} (${r.allocation}, ${r.pattern}, target ${fmt(r.sparsity_target, 2)})`)
    }</text>`,
  ];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end">${(t * 100).toFixed(0)}%</text>`);
    if (ratios.length) {
      out.push(`<text x="${W - right + 6}" y="${y(t) + 4}" fill="#c0392b">${(t * dMax).toFixed(2)}</text>`);
    }
  }
  r.blocks.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    out.push(
      `<rect x="${cx - bar / 2}" y="${y(b.sparsity)}" width="${bar}" height="${
        ph * b.sparsity
      }" fill="#2e86c1"><title>block ${b.index}: sparsity ${fmt(b.sparsity, 4)}</title></rect>`,
    );
    if (n <= 40 || i % Math.ceil(n / 40) === 0) {
      out.push(`<text x="${cx}" y="${H - bottom + 14}" text-anchor="middle">${b.index}</text>`);
    }
  });
  if (ratios.length) {
    const pts = r.blocks.map((b, i) => `${left + slot * (i + 0.5)},${y((b.outlier_ratio ?? 0) / dMax)}`);
    out.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="#c0392b" stroke-width="2"/>`);
    r.blocks.forEach((b, i) => {
      out.push(
        `<circle cx="${left + slot * (i + 0.5)}" cy="${
          y((b.outlier_ratio ?? 0) / dMax)
        }" r="3" fill="#c0392b"><title>block ${b.index}: D = ${fmt(b.outlier_ratio, 4)}%</title></circle>`,
      );
    });
  }
  out.push(`<text x="${left + pw / 2}" y="${H - 8}" text-anchor="middle">block</text>`);
  out.push(
    `<text x="14" y="${top + ph / 2}" transform="rotate(-90 14 ${
      top + ph / 2
    })" text-anchor="middle" fill="#2e86c1">sparsity</text>`,
  );
  if (ratios.length) {
    out.push(
      `<text x="${W - 10}" y="${top + ph / 2}" transform="rotate(90 ${W - 10} ${
        top + ph / 2
      })" text-anchor="middle" fill="#c0392b">outlier ratio D (%)</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
