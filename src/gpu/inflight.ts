/**
 * Waits on GPU work without stalling the GPU. Waiting on the host for everything submitted so far
 * (`Gpu.sync`) leaves the GPU idle until the host notices and records more, which in Deno is at
 * least one ~10 ms poll of the device; a loop that waits every few windows pays that each time.
 * {@linkcode InFlight} holds the waits (a readback, or `Gpu.done()`) of the last few batches and
 * waits on the oldest only once more than `ahead` are pending, so the GPU always has the next
 * batch queued while the host waits.
 * @module
 */

/**
 * Pending GPU waits, oldest first, at most `ahead` of them after each {@linkcode InFlight.add}.
 *
 * A wait that fails is rethrown by the `add` or `drain` that reaches it, never reported as an
 * unhandled rejection before then (nor at all, if the caller gives up first).
 *
 * @example Two batches in flight: the third add waits for the first
 * ```ts
 * import assert from "node:assert/strict";
 * import { InFlight } from "./inflight.ts";
 *
 * const done: number[] = [];
 * const inflight = new InFlight(2);
 * for (let i = 0; i < 3; i++) await inflight.add(Promise.resolve().then(() => void done.push(i)));
 * assert.ok(done.includes(0)); // the first was waited for
 * await inflight.drain();
 * assert.deepEqual(done, [0, 1, 2]);
 * ```
 */
export class InFlight {
  #pending: Promise<unknown>[] = [];

  /** `ahead`: waits left pending after each `add` (at least 0). */
  constructor(readonly ahead: number) {
    if (!(Number.isInteger(ahead) && ahead >= 0)) {
      throw new RangeError(`InFlight: ahead must be >= 0, got ${ahead}`);
    }
  }

  /** Waits not yet reached. */
  get size(): number {
    return this.#pending.length;
  }

  /** Hold `wait`; then, while more than `ahead` are held, wait for the oldest. */
  async add(wait: Promise<unknown>): Promise<void> {
    wait.catch(() => {}); // handled: the failure surfaces when this wait is reached
    this.#pending.push(wait);
    while (this.#pending.length > this.ahead) await this.#pending.shift();
  }

  /** Wait for every held wait, oldest first. */
  async drain(): Promise<void> {
    while (this.#pending.length) await this.#pending.shift();
  }
}
