// The OpenSandbox SDK creating a sandbox from a registry image sbx has not pulled yet: the create
// answers Pending (IMAGE_PULLING) at once, the sandbox runs once the pull is done, and commands
// run in the pulled image's files. Usage: node sdk_image.mjs HOST:PORT API_KEY IMAGE_REF
import { ConnectionConfig, Sandbox } from "@alibaba-group/opensandbox";

const [domain, apiKey, image] = process.argv.slice(2);
const ok = (n) => console.log(`ok - sdk image: ${n}`);
const notOk = (n, e) => {
  console.log(`not ok - sdk image: ${n}`);
  if (e) console.log(`    ${String(e?.stack ?? e).split("\n").slice(0, 4).join("\n    ")}`);
};
const check = (n, cond, detail) => (cond ? ok(n) : notOk(n, detail));
const connectionConfig = new ConnectionConfig({ domain, apiKey, requestTimeoutSeconds: 30 });
let sbx;
try {
  sbx = await Sandbox.create({
    connectionConfig,
    image,
    entrypoint: ["sleep", "1000"],
    timeoutSeconds: 300,
    skipHealthCheck: true,
  });
  ok("Sandbox.create from a registry image");
} catch (e) {
  notOk("Sandbox.create from a registry image", e);
  process.exit(1);
}
let info;
for (let i = 0; i < 150; i++) {
  info = await sbx.getInfo();
  if (info.status?.state !== "Pending") break;
  await new Promise((r) => setTimeout(r, 200));
}
check("the sandbox runs once its image is pulled", info.status?.state === "Running", JSON.stringify(info.status));
let healthy = false;
for (let i = 0; i < 50 && !healthy; i++) {
  healthy = await sbx.isHealthy();
  if (!healthy) await new Promise((r) => setTimeout(r, 200));
}
check("agent ready in the pulled image", healthy);
try {
  const ex = await sbx.commands.run("cat /sdk-marker");
  check("commands.run sees the image's files", ex.logs.stdout.map((l) => l.text).join("").trim() === "from the registry", JSON.stringify(ex.logs));
} catch (e) {
  notOk("commands.run in the pulled image", e);
}
try {
  await sbx.kill();
  ok("kill");
} catch (e) {
  notOk("kill", e);
}
