/**
 * The kernel choices of the SwiftShader profile (src/gpu/profile.ts: storage weights, storage X,
 * the CSR-groups sparse layout), tested on SwiftShader itself. The suite's own adapter is lavapipe,
 * so this runs the profile's tests (cpu_profile_test.ts: the choices and a pruned model's greedy
 * tokens, sparse against dense and float64), the sparse kernel tests, the bench tests and the
 * JSDoc examples of the modules that choose by adapter again in a child `deno test` whose Vulkan loader sees only SwiftShader's ICD, the one Chromium ships
 * (also the browser demo's adapter on machines without a GPU).
 *
 * Needs Chromium's SwiftShader ICD (Debian's `chromium`, which `bash scripts/setup.sh
 * --with-browser` installs; another via OWLGPU_SWIFTSHADER_ICD=/path/to/vk_swiftshader_icd.json).
 * Without it the test fails and says how to install it.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ICD = Deno.env.get("OWLGPU_SWIFTSHADER_ICD") ?? "/usr/lib/chromium/vk_swiftshader_icd.json";
const FILES = ["test/cpu_profile_test.ts", "test/sparse_kernels_test.ts", "test/bench_test.ts"];
/** Modules whose JSDoc examples assert adapter-dependent choices: run as doc tests there too. */
const DOC_MODULES = [
  "src/gpu/device.ts",
  "src/gpu/profile.ts",
  "src/ops/linear.ts",
  "src/ops/sparse.ts",
  "src/sparse/upload.ts",
  "src/model/forward.ts",
];

Deno.test("SwiftShader: the profile's kernel choices, the sparse kernels and a pruned model's decode", async () => {
  try {
    await Deno.stat(ICD);
  } catch {
    throw new Error(
      `SwiftShader's Vulkan ICD not found at ${ICD}: run \`bash scripts/setup.sh --with-browser\` (installs ` +
        "Debian's chromium, which ships it), or set OWLGPU_SWIFTSHADER_ICD to a vk_swiftshader_icd.json",
    );
  }
  const root = fileURLToPath(new URL("../", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--doc", ...FILES, ...DOC_MODULES],
    cwd: root,
    env: { VK_ICD_FILENAMES: ICD, OWLGPU_EXPECT_CPU_PROFILE: "swiftshader", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `deno test on SwiftShader failed:\n${text.slice(-6000)}`);
  // Every file ran, none of its tests failed, and the profile check really ran there.
  for (const f of [...FILES, ...DOC_MODULES]) {
    assert.match(text, new RegExp(`running \\d+ tests? from \\./${f}`), f);
  }
  assert.match(text, /the adapter picks kernels and layouts from its CPU profile \.\.\. ok/);
  assert.match(text, /\| 0 failed/);
});
