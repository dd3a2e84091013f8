/**
 * Float64 references for the forward-pass kernels, and the comparison helper every GPU test
 * uses (abs + rel tolerance; on failure: how many elements, the worst error and where).
 * @module
 */
import type { RopeScaling } from "../../kernels/rope.ts";

/** Seeded PRNG (mulberry32) so every test is reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform values in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/** Normal values with standard deviation `scale` (Box-Muller on {@linkcode rng}). */
export function randomNormal(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const rad = Math.sqrt(-2 * Math.log(1 - r())), ang = 2 * Math.PI * r();
    a[i] = rad * Math.cos(ang) * scale;
    if (i + 1 < n) a[i + 1] = rad * Math.sin(ang) * scale;
  }
  return a;
}

/** Throw unless |got - want| <= atol + rtol * |want| everywhere. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol: number,
  rtol: number,
  what = "values",
): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} != ${want.length}`);
  let bad = 0, worst = 0, where = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const lim = atol + rtol * Math.abs(want[i]);
    if (!(err <= lim)) {
      bad++;
      if (!(err <= worst)) {
        worst = err;
        where = i;
      }
    }
  }
  if (bad > 0) {
    throw new Error(
      `${what}: ${bad}/${want.length} elements out of tolerance (atol ${atol}, rtol ${rtol}); ` +
        `worst |err| ${worst} at index ${where}: got ${got[where]}, want ${want[where]}`,
    );
  }
}

/** Y[M,N] = X[M,K] W[N,K]^T + b. */
export function refLinear(
  X: ArrayLike<number>,
  W: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  b?: ArrayLike<number>,
): Float64Array {
  const Y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += X[m * K + k] * W[n * K + k];
      Y[m * N + n] = s;
    }
  }
  return Y;
}

export function refRmsnorm(
  X: ArrayLike<number>,
  w: ArrayLike<number>,
  T: number,
  dim: number,
  eps: number,
): Float64Array {
  const Y = new Float64Array(T * dim);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += X[t * dim + j] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) Y[t * dim + j] = X[t * dim + j] * inv * w[j];
  }
  return Y;
}

/**
 * RoPE frequency i of a head of `hd` in float64, with Hugging Face's `rope_scaling` written the
 * way transformers computes it (both candidates, then masks): linear divides by the factor;
 * llama3 divides low frequencies (wavelength > original / low_freq_factor) by the factor, keeps
 * high ones (wavelength < original / high_freq_factor) and blends the rest.
 */
export function refRopeFrequency(
  i: number,
  hd: number,
  theta: number,
  scaling?: RopeScaling,
): number {
  const f = 1 / theta ** ((2 * i) / hd);
  if (scaling === undefined) return f;
  if (scaling.type === "linear") return f / scaling.factor;
  const old = scaling.originalMaxPositions;
  const wavelen = (2 * Math.PI) / f;
  const lowFreq = wavelen > old / scaling.lowFreqFactor;
  const highFreq = wavelen < old / scaling.highFreqFactor;
  const scaled = lowFreq ? f / scaling.factor : f;
  const smooth = (old / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
  const smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
  return !lowFreq && !highFreq ? smoothed : scaled;
}

export function refRope(
  X: ArrayLike<number>,
  T: number,
  nHeads: number,
  hd: number,
  pos0: number,
  theta: number,
  layout: "interleaved" | "half",
  scaling?: RopeScaling,
): Float64Array {
  const Y = Float64Array.from(X);
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * hd;
      for (let i = 0; i < half; i++) {
        const ang = (pos0 + t) * refRopeFrequency(i, hd, theta, scaling);
        const [a, b] = layout === "interleaved"
          ? [base + 2 * i, base + 2 * i + 1]
          : [base + i, base + i + half];
        const x0 = X[a], x1 = X[b];
        Y[a] = x0 * Math.cos(ang) - x1 * Math.sin(ang);
        Y[b] = x0 * Math.sin(ang) + x1 * Math.cos(ang);
      }
    }
  }
  return Y;
}

/** Causal GQA attention; K/V hold positions 0..pos0+T-1. */
export function refAttention(
  Q: ArrayLike<number>,
  K: ArrayLike<number>,
  V: ArrayLike<number>,
  T: number,
  nHeads: number,
  nKv: number,
  hd: number,
  pos0: number,
): Float64Array {
  const O = new Float64Array(T * nHeads * hd);
  const group = nHeads / nKv;
  for (let t = 0; t < T; t++) {
    const p = pos0 + t;
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      const sc = new Float64Array(p + 1);
      let mx = -Infinity;
      for (let s = 0; s <= p; s++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += Q[(t * nHeads + h) * hd + i] * K[(s * nKv + kh) * hd + i];
        sc[s] = d / Math.sqrt(hd);
        mx = Math.max(mx, sc[s]);
      }
      let sum = 0;
      for (let s = 0; s <= p; s++) sum += sc[s] = Math.exp(sc[s] - mx);
      for (let s = 0; s <= p; s++) {
        for (let i = 0; i < hd; i++) {
          O[(t * nHeads + h) * hd + i] += (sc[s] / sum) * V[(s * nKv + kh) * hd + i];
        }
      }
    }
  }
  return O;
}

function logSumExp(row: ArrayLike<number>, base: number, n: number): number {
  let mx = -Infinity;
  for (let i = 0; i < n; i++) mx = Math.max(mx, row[base + i]);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(row[base + i] - mx);
  return mx + Math.log(s);
}

export function refNll(P: ArrayLike<number>, targets: ArrayLike<number>, R: number, V: number): Float64Array {
  const out = new Float64Array(R);
  for (let r = 0; r < R; r++) out[r] = logSumExp(P, r * V, V) - P[r * V + targets[r]];
  return out;
}

export function refKl(P: ArrayLike<number>, Q: ArrayLike<number>, R: number, V: number): Float64Array {
  const out = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    const lp = logSumExp(P, r * V, V), lq = logSumExp(Q, r * V, V);
    let s = 0;
    for (let i = 0; i < V; i++) {
      const a = P[r * V + i] - lp;
      s += Math.exp(a) * (a - (Q[r * V + i] - lq));
    }
    out[r] = s;
  }
  return out;
}

/**
 * Float64 reference of kernels/sample.ts: the id sampled from logits `x` at temperature `T` with
 * nucleus mass `topP` and random number `r`, and whether float32 rounding could change it (the
 * nucleus cut, a near-tie with its threshold, or the pick's boundary within `slack` of the mass).
 */
export function refSample(
  x: ArrayLike<number>,
  T: number,
  topP: number,
  r: number,
  slack = 1e-5,
): { id: number; ambiguous: boolean } {
  const n = x.length;
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (!Number.isNaN(x[i])) m = Math.max(m, x[i]);
  const e = Float64Array.from({ length: n }, (_, i) => Number.isNaN(x[i]) ? -1 : Math.exp((x[i] - m) / T));
  let S = 0;
  for (const v of e) if (v > 0) S += v;
  if (!(S > 0)) return { id: 0, ambiguous: false }; // no finite logit
  let tau = 0, ambiguous = false;
  if (topP < 1) {
    // Descending values; whole runs of ties join the nucleus together.
    const sorted = e.filter((v) => v > 0).sort((a, b) => b - a);
    const goal = topP * S;
    let mass = 0, below = 0; // mass of {e >= tau} and of {e > tau}
    for (let k = 0; k < sorted.length;) {
      let j = k;
      below = mass;
      while (j < sorted.length && sorted[j] === sorted[k]) mass += sorted[j++];
      tau = sorted[k];
      if (mass >= goal) {
        ambiguous ||= (k > 0 && sorted[k - 1] - tau < 1e-5 * tau) ||
          (j < sorted.length && tau - sorted[j] < 1e-5 * tau);
        break;
      }
      k = j;
    }
    ambiguous ||= mass - goal < slack * S || goal - below < slack * S;
  }
  let nucleus = 0;
  for (const v of e) if (v >= tau && v >= 0) nucleus += v;
  const target = r * nucleus;
  let c = 0, last = -1;
  for (let i = 0; i < n; i++) {
    if (!(e[i] >= tau && e[i] >= 0)) continue;
    const prev = c;
    c += e[i];
    last = i;
    if (target < c) {
      ambiguous ||= c - target < slack * nucleus || target - prev < slack * nucleus;
      return { id: i, ambiguous };
    }
  }
  return { id: Math.max(last, 0), ambiguous: true };
}
