/**
 * Waiting on GPU work without draining the queue: `InFlight` (src/gpu/inflight.ts) and its two users
 * that need no model, `Gpu.done()` and the offloaded calibration activations' readbacks
 * (src/prune/activations.ts), which must overlap the next windows' work yet hold at most two.
 * @module
 */
import assert from "node:assert/strict";
import { Gpu } from "../src/gpu/device.ts";
import { InFlight } from "../src/gpu/inflight.ts";
import { CalibrationActivations } from "../src/prune/activations.ts";
import { rng } from "./ref/kernels_ref.ts";

/** A promise and the functions that settle it. */
function deferred() {
  let resolve!: () => void, reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => [resolve, reject] = [res, rej]);
  return { promise, resolve, reject };
}

/** Whether `p` has settled, after letting every queued callback run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => done = true, () => done = true);
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

Deno.test("InFlight: holds `ahead` waits and waits for the oldest only past that", async () => {
  const inflight = new InFlight(2);
  const w = [deferred(), deferred(), deferred(), deferred()];
  await inflight.add(w[0].promise);
  await inflight.add(w[1].promise); // two held: returns at once
  assert.equal(inflight.size, 2);
  const third = inflight.add(w[2].promise);
  assert.equal(await settled(third), false, "the third add must wait for the first");
  w[1].resolve(); // a younger one settling does not release it
  assert.equal(await settled(third), false, "it waits for the oldest, not any");
  w[0].resolve();
  assert.equal(await settled(third), true);
  assert.equal(inflight.size, 2);
  const drain = inflight.drain();
  assert.equal(await settled(drain), false, "drain waits for every held wait");
  w[2].resolve();
  assert.equal(await settled(drain), true);
  assert.equal(inflight.size, 0);
  await inflight.add(w[3].promise);
  w[3].resolve();
  await inflight.drain();
});

Deno.test("InFlight: a failed wait surfaces where it is reached; one never reached is not unhandled", async () => {
  const inflight = new InFlight(1);
  const bad = deferred();
  await inflight.add(bad.promise);
  bad.reject(new Error("device lost"));
  await new Promise((r) => setTimeout(r, 0)); // an unhandled rejection would fail the test here
  await assert.rejects(() => inflight.add(Promise.resolve()), /device lost/);
  await inflight.drain();
  const abandoned = new InFlight(3);
  await abandoned.add(Promise.reject(new Error("never waited for")));
  await new Promise((r) => setTimeout(r, 0));
  assert.throws(() => new InFlight(-1), RangeError);
  assert.throws(() => new InFlight(1.5), RangeError);
});

const gpu = await Gpu.create();

Deno.test("Gpu.done: settles after the submitted work, which then reads back as written", async () => {
  const buf = gpu.buffer(16, "done-test");
  try {
    gpu.write(buf, Float32Array.of(1, 2, 3, 4));
    await gpu.done();
    assert.deepEqual([...await gpu.readF32(buf)], [1, 2, 3, 4]);
  } finally {
    gpu.release(buf);
  }
});

for (const dtype of ["f32", "f16"] as const) {
  Deno.test(`activations offloaded (${dtype}): readbacks overlap the next windows, at most two at once, bits kept`, async () => {
    const windows = 10, values = 6 * 37, outboxWindows = 3;
    const random = rng(dtype === "f32" ? 11 : 12);
    // f16 keeps values an f16 holds exactly, so what comes back must equal what was kept.
    const data = Array.from(
      { length: windows },
      () => Float32Array.from({ length: values }, () => Math.round((random() - 0.5) * 4096) / 64),
    );
    const before = gpu.liveBuffers;
    const acts = new CalibrationActivations(gpu, windows, values, { dtype, offload: true, outboxWindows });
    const x = gpu.buffer(values * 4, "x");
    let reads = 0, outstanding = 0, most = 0;
    const read = gpu.read;
    gpu.read = (...args: Parameters<Gpu["read"]>) => {
      reads++;
      most = Math.max(most, ++outstanding);
      return read.apply(gpu, args).finally(() => outstanding--);
    };
    try {
      for (let w = 0; w < windows; w++) {
        gpu.write(x, data[w]);
        await acts.keep(w, "out", x);
      }
      await acts.flush();
      assert.equal(reads, Math.ceil(windows / outboxWindows), "one readback per outbox");
      assert.equal(most, 2, "a full outbox's readback is waited for only when the next one fills");
      assert.equal(outstanding, 0, "flush waits for every readback");
      acts.swap();
      for (let w = windows - 1; w >= 0; w--) {
        acts.restoreInput(w, x);
        assert.deepEqual(await gpu.readF32(x), data[w], `window ${w}`);
      }
    } finally {
      gpu.read = read;
      acts.release();
      gpu.release(x);
    }
    assert.equal(gpu.liveBuffers, before);
  });
}
