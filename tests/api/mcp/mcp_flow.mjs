// The official MCP TypeScript SDK client against sbx's MCP server: lists the tools and calls each
// one, checking what comes back, over stdio (the `sbx mcp` bridge) or streamable HTTP (/mcp).
// Prints one TAP-style line per check for tests/lib.sh.
// Usage: node mcp_flow.mjs stdio|http APID_URL API_KEY [BRIDGE_BINARY]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, url, apiKey, bridge] = process.argv.slice(2);
const P = `mcp ${mode}`;
let failed = false;
const ok = (n) => console.log(`ok - ${P}: ${n}`);
const notOk = (n, e) => {
  failed = true;
  console.log(`not ok - ${P}: ${n}`);
  if (e !== undefined) console.log(`    ${String(e?.stack ?? (typeof e === "string" ? e : JSON.stringify(e))).split("\n").slice(0, 6).join("\n    ")}`);
};
const check = (n, cond, detail) => (cond ? ok(n) : notOk(n, detail));

// The SDK starts the bridge with a minimal environment: sanitizer settings are passed on so that
// an ASan build of the bridge reports where the ASan layer of tests/run-tests.sh looks.
const sanitizerEnv = Object.fromEntries(["ASAN_OPTIONS", "UBSAN_OPTIONS"].filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
const transport =
  mode === "stdio"
    ? new StdioClientTransport({ command: bridge, args: [], env: { SBX_URL: url, SBX_API_KEY: apiKey, ...sanitizerEnv }, stderr: "inherit" })
    : new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { "OPEN-SANDBOX-API-KEY": apiKey } } });
const client = new Client({ name: "sbx-mcp-test", version: "1.0.0" });
try {
  await client.connect(transport);
  ok("connect (initialize)");
} catch (e) {
  notOk("connect (initialize)", e);
  process.exit(1);
}
check("server is sbx", client.getServerVersion()?.name === "sbx", client.getServerVersion());
if (mode === "http") check("session id issued", typeof transport.sessionId === "string" && transport.sessionId.length === 32, transport.sessionId);

// One tool call; returns {r, s (structuredContent), text}. Exceptions are failures of the check.
const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 120000 });
  return { r, s: r.structuredContent, text: (r.content ?? []).map((c) => c.text).join("\n") };
};
const tryCheck = async (n, fn) => {
  try {
    const [cond, detail] = await fn();
    check(n, cond, detail);
  } catch (e) {
    notOk(n, e);
  }
};

const want = ["create_sandbox", "run_command", "run_code", "read_file", "write_file", "list_directory", "list_sandboxes", "delete_sandbox"];
await tryCheck("tools/list names every tool", async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  const good =
    JSON.stringify(names) === JSON.stringify([...want].sort()) &&
    tools.every((t) => t.description.length > 40 && t.inputSchema?.type === "object" && t.inputSchema.properties) &&
    JSON.stringify(tools.find((t) => t.name === "run_command").inputSchema.required) === '["sandbox_id","command"]' &&
    JSON.stringify(tools.find((t) => t.name === "run_code").inputSchema.properties.language.enum) === '["python","node","bash","sh"]';
  return [good, tools.map((t) => [t.name, t.inputSchema?.required])];
});

let box, hostBox;
await tryCheck("create_sandbox local/busybox", async () => {
  const { r, s } = await call("create_sandbox", { image: "local/busybox", timeout: 600, memory: "256Mi", metadata: { suite: "mcp", mode } });
  box = s?.id;
  return [!r.isError && /^[0-9a-f-]{36}$/.test(box) && s.state === "Running" && s.ready === true && s.image === "local/busybox", r];
});
if (!box) process.exit(1);

await tryCheck("run_command: stdout, stderr, exit code, duration", async () => {
  const { r, s } = await call("run_command", { sandbox_id: box, command: "echo hello; echo oops >&2; exit 3" });
  return [!r.isError && s.stdout === "hello\n" && s.stderr === "oops\n" && s.exit_code === 3 && s.timed_out === false && Number.isInteger(s.duration_ms) && JSON.parse(r.content[0].text).exit_code === 3, r];
});
await tryCheck("run_command: env and cwd", async () => {
  const { r, s } = await call("run_command", { sandbox_id: box, command: 'echo "$GREETING from $(pwd)"', env: { GREETING: "hi" }, cwd: "/tmp" });
  return [!r.isError && s.stdout === "hi from /tmp\n" && s.exit_code === 0, r];
});
await tryCheck("run_command: timeout kills the command", async () => {
  const { r, s } = await call("run_command", { sandbox_id: box, command: "echo started; sleep 30; echo never", timeout: 1 });
  return [!r.isError && s.timed_out === true && s.exit_code !== 0 && s.stdout === "started\n" && s.duration_ms < 20000, r];
});
await tryCheck("run_command: long output is cut with a note", async () => {
  const { r, s } = await call("run_command", { sandbox_id: box, command: "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done", max_output_bytes: 2048 });
  return [!r.isError && s.truncated === true && s.stdout.startsWith("line0\n") && s.stdout.endsWith("line2999\n") && /bytes cut by sbx/.test(s.stdout) && s.stdout.length < 2300, { len: s?.stdout?.length, t: s?.truncated }];
});

await tryCheck("write_file then read_file: same text", async () => {
  const w = await call("write_file", { sandbox_id: box, path: "/tmp/mcp/dir/a.txt", content: "line1\nline2 ünïcödé\n" });
  const rd = await call("read_file", { sandbox_id: box, path: "/tmp/mcp/dir/a.txt" });
  return [!w.r.isError && w.s.bytes_written === Buffer.byteLength("line1\nline2 ünïcödé\n") && !rd.r.isError && rd.text === "line1\nline2 ünïcödé\n" && rd.s.encoding === "utf8" && rd.s.truncated === false, [w.r, rd.r]];
});
await tryCheck("write_file base64 then read_file: same bytes", async () => {
  const w = await call("write_file", { sandbox_id: box, path: "/tmp/mcp/dir/bin", content: "AAEC/w==", encoding: "base64" });
  const rd = await call("read_file", { sandbox_id: box, path: "/tmp/mcp/dir/bin" });
  return [!w.r.isError && w.s.bytes_written === 4 && rd.s?.encoding === "base64" && rd.s.content === "AAEC/w==" && rd.s.size === 4, [w.r, rd.r]];
});
await tryCheck("write_file mode 755: the script runs", async () => {
  const w = await call("write_file", { sandbox_id: box, path: "/tmp/mcp/run.sh", content: "#!/bin/sh\necho ran $1\n", mode: "755" });
  const { r, s } = await call("run_command", { sandbox_id: box, command: "/tmp/mcp/run.sh ok" });
  return [!w.r.isError && !r.isError && s.stdout === "ran ok\n", [w.r, r]];
});
await tryCheck("read_file max_bytes: cut and marked", async () => {
  const { r, s, text } = await call("read_file", { sandbox_id: box, path: "/tmp/mcp/dir/a.txt", max_bytes: 3 });
  return [!r.isError && s.content === "lin" && s.truncated === true && s.size > 3 && /only max_bytes/.test(text), r];
});
await tryCheck("list_directory: entries with type and size", async () => {
  const { r, s } = await call("list_directory", { sandbox_id: box, path: "/tmp/mcp/dir" });
  const a = s?.entries?.find((e) => e.path === "/tmp/mcp/dir/a.txt");
  const b = s?.entries?.find((e) => e.path === "/tmp/mcp/dir/bin");
  return [!r.isError && s.entries.length === 2 && a?.type === "file" && a.size === Buffer.byteLength("line1\nline2 ünïcödé\n") && b?.size === 4, r];
});
await tryCheck("list_directory depth 2 descends", async () => {
  const { r, s } = await call("list_directory", { sandbox_id: box, path: "/tmp/mcp", depth: 2 });
  const paths = (s?.entries ?? []).map((e) => e.path);
  return [!r.isError && paths.includes("/tmp/mcp/dir") && paths.includes("/tmp/mcp/dir/a.txt") && paths.includes("/tmp/mcp/run.sh"), r];
});
await tryCheck("run_code sh", async () => {
  const { r, s } = await call("run_code", { sandbox_id: box, language: "sh", code: "echo $((6 * 7))\n" });
  return [!r.isError && s.stdout === "42\n" && s.exit_code === 0 && s.language === "sh", r];
});
await tryCheck("run_code leaves no file behind", async () => {
  const { r, s } = await call("run_command", { sandbox_id: box, command: "ls /tmp | grep -c sbx-mcp- || true" });
  return [!r.isError && s.stdout === "0\n", r];
});
await tryCheck("run_code python without python: isError naming the interpreter", async () => {
  const { r, text } = await call("run_code", { sandbox_id: box, language: "python", code: "print(1)" });
  return [r.isError === true && /no python interpreter: python3 or python is not on its PATH/.test(text), r];
});

// Tool errors: isError with a message, never a JSON-RPC error or a dropped connection.
await tryCheck("bad sandbox id: isError", async () => {
  const { r, text } = await call("run_command", { sandbox_id: "no-such-sandbox", command: "true" });
  return [r.isError === true && /sandbox `no-such-sandbox` not found/.test(text), r];
});
await tryCheck("missing argument: isError naming it", async () => {
  const { r, text } = await call("run_command", { sandbox_id: box });
  return [r.isError === true && /argument `command` is required/.test(text), r];
});
await tryCheck("unknown argument: isError naming it", async () => {
  const { r, text } = await call("read_file", { sandbox_id: box, path: "/etc/hostname", bogus: 1 });
  return [r.isError === true && /unknown argument `bogus`/.test(text), r];
});
await tryCheck("read_file of a missing file: isError", async () => {
  const { r, text } = await call("read_file", { sandbox_id: box, path: "/tmp/mcp/nope" });
  return [r.isError === true && /reading \/tmp\/mcp\/nope/.test(text), r];
});
await tryCheck("read_file of a directory: isError pointing to list_directory", async () => {
  const { r, text } = await call("read_file", { sandbox_id: box, path: "/tmp/mcp" });
  return [r.isError === true && /use list_directory/.test(text), r];
});
await tryCheck("unknown tool: JSON-RPC error -32602", async () => {
  try {
    const r = await client.callTool({ name: "no_such_tool", arguments: {} });
    return [false, r];
  } catch (e) {
    return [e.code === -32602 && /unknown tool/.test(e.message), e];
  }
});

await tryCheck("create_sandbox local/host", async () => {
  const { r, s } = await call("create_sandbox", { image: "local/host", timeout: 600, memory: "1Gi", metadata: { suite: "mcp", mode } });
  hostBox = s?.id;
  return [!r.isError && s.state === "Running" && s.ready === true, r];
});
if (hostBox) {
  await tryCheck("run_code python: output and exit code", async () => {
    const { r, s } = await call("run_code", { sandbox_id: hostBox, language: "python", code: "import sys\nprint(sum(range(10)))\nprint('err', file=sys.stderr)\nsys.exit(4)\n" });
    return [!r.isError && s.stdout === "45\n" && s.stderr === "err\n" && s.exit_code === 4 && s.language === "python", r];
  });
  await tryCheck("run_code node", async () => {
    const { r, s } = await call("run_code", { sandbox_id: hostBox, language: "node", code: "console.log([1, 2, 3].map((x) => x * 2).join(','));" });
    return [!r.isError && s.stdout === "2,4,6\n" && s.exit_code === 0, r];
  });
  await tryCheck("run_code bash", async () => {
    const { r, s } = await call("run_code", { sandbox_id: hostBox, language: "bash", code: "a=(x y z); echo ${#a[@]} ${BASH_VERSION:+bash}" });
    return [!r.isError && s.stdout === "3 bash\n", r];
  });
}

await tryCheck("list_sandboxes shows both, filtered by label", async () => {
  const { r, s } = await call("list_sandboxes", { metadata: { mode } });
  const ids = (s?.sandboxes ?? []).map((x) => x.id).sort();
  const mine = (s?.sandboxes ?? []).find((x) => x.id === box);
  return [!r.isError && JSON.stringify(ids) === JSON.stringify([box, hostBox].filter(Boolean).sort()) && mine?.state === "Running" && mine?.image === "local/busybox" && mine?.metadata?.suite === "mcp", r];
});
for (const [n, id] of [["busybox", box], ["host", hostBox]]) {
  if (!id) continue;
  await tryCheck(`delete_sandbox ${n}`, async () => {
    const { r, s } = await call("delete_sandbox", { sandbox_id: id });
    return [!r.isError && s.deleted === true && s.sandbox_id === id, r];
  });
}
await tryCheck("a deleted sandbox: isError", async () => {
  const { r, text } = await call("run_command", { sandbox_id: box, command: "true" });
  return [r.isError === true && /not found|Terminated|Stopping/.test(text), r];
});
await tryCheck("ping", async () => [JSON.stringify(await client.ping()) === "{}", "ping"]);
await client.close();
ok("close");
process.exit(failed ? 1 : 0);
