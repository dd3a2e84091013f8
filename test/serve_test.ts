/**
 * `deno task serve` (src/cli/serve_main.ts) without a browser: what it serves and refuses (paths
 * sent byte for byte, as a client that does not normalize them would), where it listens, and how
 * its flags fail.
 */
import assert from "node:assert/strict";
import { serveDemo, serveMain } from "../src/cli/serve_main.ts";
import { ArgumentError } from "../src/errors.ts";

/** One HTTP/1.1 GET with `path` exactly as given (fetch would resolve "..", "%2e%2e" stays). */
async function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    ));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return {
      status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]),
      body: text.split("\r\n\r\n").slice(1).join(),
    };
  } finally {
    conn.close();
  }
}

Deno.test("serve: serves the page, 404 for unknown paths, nothing outside its directories", async () => {
  const server = await serveDemo({ port: 0, quiet: true });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/, "listens on 127.0.0.1 by default");
    const get = (p: string) => rawGet(server.port, p);
    const index = await get("/");
    assert.equal(index.status, 200);
    assert.match(index.body, /<script type="module" src="app.js">/);
    assert.equal((await get("/style.css")).status, 200);
    assert.equal((await get("/nope.html")).status, 404);
    assert.equal((await get("/corpus/nope.txt")).status, 404);
    assert.equal((await get("/app.ts")).status, 404);
    for (
      const p of [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/dist/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/examples/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/examples/..%2fdeno.json",
        "/examples/%2e%2e/deno.json",
        "/dist/..%2fdeno.json",
        "/..%2fdeno.json",
        "/..%2f..%2fdeno.json",
        "/corpus/..%2f..%2fdeno.json",
        "//etc/passwd",
        "/examples//etc/passwd",
      ]
    ) {
      const r = await get(p);
      assert([400, 403, 404].includes(r.status), `${p}: status ${r.status}`);
      assert(!r.body.includes("root:") && !r.body.includes('"tasks"'), `${p} leaked a file: ${r.body}`);
    }
    // A NUL byte is a bad request, not a server error that names the served directory.
    for (const p of ["/%00", "/index.html%00.txt", "/examples/browser.html%00"]) {
      const r = await get(p);
      assert.equal(r.status, 400, `${p}: ${r.status} ${r.body}`);
      assert(!r.body.includes(Deno.cwd()), `${p}: ${r.body}`);
    }
    assert.equal((await get("/%zz")).status, 400);
  } finally {
    await server.close();
  }
});

Deno.test("serve: bad --port and --host values are one-line argument errors", async () => {
  for (
    const args of [
      ["--port", "abc"],
      ["--port", "0x50"], // Number() reads hex: it listened on port 80
      ["--port", "1e3"], // and exponents: port 1000
      ["--port", " 80"],
      ["--port", "1.5"],
      ["--port", "65536"],
      ["--port="],
      ["--port", "-1"],
      ["--port"],
      ["--host="],
      ["--bogus"],
      ["positional"],
      ["--host", "192.0.2.1", "--port", "0"], // not an address of this machine (TEST-NET-1)
    ]
  ) {
    await assert.rejects(
      serveMain(args),
      (e) => e instanceof ArgumentError && !e.message.includes("\n"),
      args.join(" "),
    );
  }
});

Deno.test("serve: a port in use stops with one line and exit status 1", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../src/cli/serve_main.ts", import.meta.url).pathname,
        "--port",
        `${busy.addr.port}`,
      ],
      env: { NO_COLOR: "1" },
    }).output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 1, err);
    assert.equal(new TextDecoder().decode(stdout), "");
    assert.equal(
      err,
      `error: port ${busy.addr.port} is in use; pick another with --port (0: any free port)\n`,
    );
  } finally {
    busy.close();
  }
});
