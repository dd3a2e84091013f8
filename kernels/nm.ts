/**
 * N:M masks: in every row, in every group of M consecutive columns (starting at column 0), the N
 * entries with the lowest score are pruned, ties → lower column. Scores are recomputed from the
 * weights (Wanda `abs(W * sqrtR)` or magnitude `abs(W)`, see rowmask.ts {@linkcode scoreWgsl}).
 *
 * M is a compile-time option (a pattern, not a shape: it lets the group live in M registers and
 * the comparisons unroll, up to M = 8; longer groups loop over a private array, as SwiftShader's
 * compiler took over 5 GB on M = 16 unrolled); N is a uniform, so OWL's mixed N:M (a different N
 * per block) reuses one pipeline. Member a of a group is pruned iff its stable rank
 * `#{b < a: s_b <= s_a} + #{b > a: s_b < s_a}` is below N: exact, no sort, no atomics.
 *
 * Geometry: one invocation per mask word (row, 32 columns); it ranks every group that overlaps
 * its columns (a group that straddles two words is ranked by both, when 32 % M != 0) and writes
 * the word whole. Mask format: rowmask.ts (bit-packed u32, rows padded to whole words).
 *
 * Bindings: 0 uniform {rows (chunk), cols, wordsPerRow, rowStart, N}; 1 W chunk (f32 or f16)
 * read; 2 sqrtR f32 [cols] read (Wanda only); then Mask u32 [allRows * wordsPerRow] read_write.
 * Requires cols % M == 0 and 1 <= M <= 16.
 * @module
 */
import { enableF16, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";
import { scoreBindingCount, scoreKey, type ScoreSource, scoreWgsl } from "./rowmask.ts";

/**
 * Compile-time options of the N:M mask kernel (N itself is a uniform).
 *
 * @example 2:4 Wanda masks over f16 weights: M is compiled in, N is left to the uniform
 * ```ts
 * import { nmKey, type NMOptions, nmWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: NMOptions = { source: { wDtype: "f16", wanda: true }, M: 4 };
 * const wgsl = nmWgsl(o);
 * assert.ok(wgsl.startsWith("enable f16;"));
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 4); // uniform, W, sqrtR, Mask
 * assert.ok(wgsl.includes("N: u32")); // the same pipeline serves 1:4, 2:4 and 3:4
 * assert.equal(nmKey(o), "nm/f16/wanda/m4");
 * ```
 */
export interface NMOptions {
  /** The score: Wanda (`abs(W * sqrtR)`) or magnitude (`abs(W)`), with the weight dtype. */
  source: ScoreSource;
  /** Group length, 1..16. */
  M: number;
}

/**
 * Invocations per workgroup of the N:M mask kernel (one per mask word).
 *
 * @example Size the dispatch of an N:M mask over a 100 x 72 weight
 * ```ts
 * import { maskWordsPerRow, NM_WG, nmWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.ok(nmWgsl({ source: { wDtype: "f32", wanda: false }, M: 4 }).includes(`@workgroup_size(${NM_WG})`));
 * // One invocation per mask word: 100 rows of 3 words (72 columns) need 300 invocations.
 * const rows = 100, cols = 72;
 * assert.equal(Math.ceil((rows * maskWordsPerRow(cols)) / NM_WG), 5);
 * ```
 */
export const NM_WG = 64;

/** Groups up to this long are ranked fully unrolled, in registers; longer ones in loops. */
const NM_UNROLL_MAX = 8;

/**
 * Pipeline cache key of {@linkcode nmWgsl} for these options.
 *
 * @example One pipeline per (score, M); N does not enter the key
 * ```ts
 * import { nmKey } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wanda = { wDtype: "f32", wanda: true } as const;
 * assert.equal(nmKey({ source: wanda, M: 4 }), nmKey({ source: { wDtype: "f32", wanda: true }, M: 4 }));
 * assert.notEqual(nmKey({ source: wanda, M: 4 }), nmKey({ source: wanda, M: 8 }));
 * assert.notEqual(nmKey({ source: wanda, M: 4 }), nmKey({ source: { wDtype: "f32", wanda: false }, M: 4 }));
 * ```
 */
export function nmKey(o: NMOptions): string {
  return `nm/${scoreKey(o.source)}/m${o.M}`;
}

/**
 * WGSL of the N:M mask kernel for one row chunk. Bindings: see the module doc.
 *
 * @example The magnitude kernel for groups of 8: each group is unrolled into 8 registers
 * ```ts
 * import { nmWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = nmWgsl({ source: { wDtype: "f32", wanda: false }, M: 8 });
 * assert.ok(wgsl.includes("@compute @workgroup_size(64)"));
 * assert.equal(wgsl.match(/let s\d+ = score/g)?.length, 8);
 * assert.equal(wgsl.match(/@binding\(/g)?.length, 3); // uniform, W, Mask: no sqrtR for magnitude
 * assert.ok(!wgsl.includes("enable f16"));
 * ```
 */
export function nmWgsl(o: NMOptions): string {
  const { M } = o;
  const loads: string[] = [];
  const ranks: string[] = [];
  if (M <= NM_UNROLL_MAX) {
    for (let a = 0; a < M; a++) loads.push(`let s${a} = score(e0 + gc + ${a}u, gc + ${a}u);`);
    for (let a = 0; a < M; a++) {
      const terms = ["0u"];
      for (let b = 0; b < M; b++) {
        if (b !== a) terms.push(`select(0u, 1u, s${b} ${b < a ? "<=" : "<"} s${a})`);
      }
      ranks.push(
        `if (${
          terms.join(" + ")
        } < u.N && gc + ${a}u >= c0 && gc + ${a}u < c1) { word |= 1u << (gc + ${a}u - c0); }`,
      );
    }
  } else {
    // The same ranks in loops over a private array: fully unrolled, M = 16's 240 comparisons made
    // SwiftShader's shader compiler take over 5 GB (M = 8: 57 ms).
    loads.push(
      `var s: array<f32, ${M}>;`,
      `for (var a = 0u; a < ${M}u; a++) { s[a] = score(e0 + gc + a, gc + a); }`,
    );
    ranks.push(`for (var a = 0u; a < ${M}u; a++) {
      var rank = 0u;
      for (var b = 0u; b < ${M}u; b++) {
        rank += select(0u, 1u, (b < a && s[b] <= s[a]) || (b > a && s[b] < s[a]));
      }
      if (rank < u.N && gc + a >= c0 && gc + a < c1) { word |= 1u << (gc + a - c0); }
    }`);
  }
  return `${enableF16(o.source.wDtype)}
struct U { rows: u32, cols: u32, wordsPerRow: u32, rowStart: u32, N: u32 }
@group(0) @binding(0) var<uniform> u: U;
${scoreWgsl(o.source)}
@group(0) @binding(${1 + scoreBindingCount(o.source)}) var<storage, read_write> Mask: array<u32>;
@compute @workgroup_size(${NM_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let q = wid * ${NM_WG}u + lid;
  if (q >= u.rows * u.wordsPerRow) { return; }
  let row = q / u.wordsPerRow;
  let c0 = (q - row * u.wordsPerRow) * 32u;
  let c1 = min(u.cols, c0 + 32u);
  let e0 = row * u.cols;
  var word = 0u;
  for (var gc = (c0 / ${M}u) * ${M}u; gc < c1; gc += ${M}u) {
    ${loads.join("\n    ")}
    ${ranks.join("\n    ")}
  }
  Mask[u.rowStart * u.wordsPerRow + q] = word;
}`;
}
