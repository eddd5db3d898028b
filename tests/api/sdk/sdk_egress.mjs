// The OpenSandbox SDK with an FQDN egress policy: Sandbox.create with networkPolicy naming a
// domain (sbx used to refuse it with 400), then the egress API through the SDK's own calls
// (getEgressPolicy, patchEgressRules, deleteEgressRules), which reach apid's /policy on the
// sandbox's port 18080 with the OPENSANDBOX-EGRESS-AUTH header from the endpoint answer.
// Usage: node sdk_egress.mjs HOST:PORT API_KEY
import { ConnectionConfig, Sandbox } from "@alibaba-group/opensandbox";

const [domain, apiKey] = process.argv.slice(2);
const ok = (n) => console.log(`ok - sdk egress: ${n}`);
const notOk = (n, e) => {
  console.log(`not ok - sdk egress: ${n}`);
  if (e) console.log(`    ${String(e?.stack ?? e).split("\n").slice(0, 4).join("\n    ")}`);
};
const check = (n, cond, detail) => (cond ? ok(n) : notOk(n, detail));
const rules = (p) => (p?.egress ?? []).map((r) => `${r.action}:${r.target}`).join(",");
const connectionConfig = new ConnectionConfig({ domain, apiKey, requestTimeoutSeconds: 30 });
let sbx;
try {
  sbx = await Sandbox.create({
    connectionConfig,
    image: "local/busybox",
    entrypoint: ["sleep", "1000"],
    timeoutSeconds: 300,
    networkPolicy: { defaultAction: "deny", egress: [{ action: "allow", target: "pypi.org" }] },
  });
  ok("Sandbox.create with an FQDN networkPolicy");
} catch (e) {
  notOk("Sandbox.create with an FQDN networkPolicy", e);
  process.exit(1);
}
try {
  const p = await sbx.getEgressPolicy();
  check("getEgressPolicy shows the policy", p.defaultAction === "deny" && rules(p) === "allow:pypi.org", JSON.stringify(p));
  await sbx.patchEgressRules([{ action: "allow", target: "*.example.com" }]);
  const q = await sbx.getEgressPolicy();
  check("patchEgressRules merges, incoming first", rules(q) === "allow:*.example.com,allow:pypi.org", JSON.stringify(q));
  await sbx.deleteEgressRules(["pypi.org"]);
  const d = await sbx.getEgressPolicy();
  check("deleteEgressRules removes the target", rules(d) === "allow:*.example.com", JSON.stringify(d));
} catch (e) {
  notOk("egress calls", e);
}
try {
  await sbx.kill();
  ok("kill");
} catch (e) {
  notOk("kill", e);
}
