// REQ: R11.1 (run by .ci/browser.sh, outside the Rust test suite)
// End-to-end test of the fleet page (issue 24) in headless Chromium: starts a real relay-server
// on the local provider (SQLite, with a fleet store), registers and logs in an administrator,
// issues an enrollment code through the page's form, enrolls a real relay-edge (ws-ui-1) with
// `relay-edge enroll --server … --code …`, runs it with files in its inbox, and waits until the
// page (after Refresh) shows it caught up (lag 0, stored head > 0). A second edge (ws-ui-2) is
// enrolled the same way and revoked through the page's form; it shows "revoked" and sorts before
// ws-ui-1. Column sorting by keyboard, the local/UTC times, inline form errors, an auditor's
// read-only view, an edge's own UI (no fleet: no Fleet entry), axe-core in every state (0
// violations), no Content-Security-Policy violation, and no horizontal page scroll at 400 px.
//
// Env: RELAY_SERVER_BIN (default ../../target/debug/relay-server), RELAY_EDGE_BIN (default
// ../../target/debug/relay-edge), CHROMIUM (default /usr/bin/chromium), FLEET_SCREENSHOT
// (default ../../docs/screenshots/fleet.png).
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import assert from "node:assert/strict";
import { axeSource, edgeBin, freePort, healthy, launchBrowser, repo, serverBin, startProcess, stopProcess, waitFor } from "./helpers.mjs";

const screenshot = process.env.FLEET_SCREENSHOT || join(repo, "docs/screenshots/fleet.png");
const ADMIN_PW = "fleet keeper harbour 2026";
const AUDITOR_TEMP_PW = "temporary orchid window 58";
const AUDITOR_PW = "silver otter compass 91";

// The children get no RELAY_* variable of this shell: their configuration is the file given.
function childEnv() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RELAY_")));
  return { ...env, RELAY_LOG: "warn" };
}

const children = [];
function start(name, binPath, args) {
  const proc = startProcess(name, binPath, args, childEnv());
  children.push(proc);
  return proc;
}

async function apiCall(base, method, path, token, body) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(base + "/api/v1" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

const toml = (s) => JSON.stringify(s);

const work = mkdtempSync(join(tmpdir(), "relay-fleet-e2e-"));
const profile = join(work, "chromium-profile");

function edgeConfig(name) {
  const dir = join(work, name);
  const inbox = join(work, name + "-inbox");
  mkdirSync(dir, { recursive: true });
  mkdirSync(inbox, { recursive: true });
  const conf = join(work, name + ".toml");
  // No forward_url and no token: enrollment stores the server and the ingest token.
  writeFileSync(conf, `data_dir = ${toml(dir)}\nwatch = [${toml(inbox)}]\ndevice = ${toml(name)}\n` +
    `listen = "127.0.0.1:0"\nsettle_ms = 150\nrescan_secs = 1\n`);
  return { name, dir, inbox, conf };
}

function enroll(edge, base, code) {
  const out = spawnSync(edgeBin, ["enroll", "--config", edge.conf, "--server", base, "--code", code],
    { encoding: "utf8", env: childEnv() });
  assert.equal(out.status, 0, `relay-edge enroll ${edge.name}: ${out.stdout}${out.stderr}`);
  assert.match(out.stdout, new RegExp("enrolled edge " + edge.name));
  return out.stdout;
}

const serverPort = await freePort();
const base = `http://127.0.0.1:${serverPort}`;
const serverDir = join(work, "server");
mkdirSync(serverDir, { recursive: true });
const serverConf = join(work, "server.toml");
// No ingest_edges: every edge comes in through an enrollment code.
writeFileSync(serverConf, `data_dir = ${toml(serverDir)}\ndevice = "relay-server-ui"\nlisten = "127.0.0.1:${serverPort}"\n` +
  `notary_interval_secs = 3600\n[storage]\nprovider = "local"\n`);

let context;
const problems = [];
try {
  const server = start("relay-server", serverBin, ["run", "--config", serverConf]);
  await healthy(server, base);

  context = await launchBrowser(profile, {
    viewport: { width: 1280, height: 800 },
    // Not UTC: the page shows local times, the UTC time in the tooltip.
    timezoneId: "Europe/Berlin",
    locale: "en-GB",
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push("CSP: " + m.text());
  });
  const noProblems = () => assert.deepEqual(problems, [], "no page error and no CSP violation");

  // axe-core, injected through the DevTools protocol (the page's CSP allows no inline script).
  const axe = async (label) => {
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeSource);
    const violations = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return {
        passed: r.passes.length,
        violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary) })),
      };
    });
    assert.deepEqual(violations.violations, [], `axe-core violations (${label}): ${JSON.stringify(violations.violations, null, 2)}`);
    assert.ok(violations.passed > 10, `axe-core checked the page (${violations.passed} rules passed)`);
    console.log(`fleet e2e: axe-core: 0 violations, ${violations.passed} rules passed (${label})`);
  };
  const noPageScroll = async (label) => {
    const { scroll, client, wide } = await page.evaluate(() => {
      const client = document.documentElement.clientWidth;
      // The outermost elements reaching past the window's right edge (for the failure message).
      const wide = [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > client + 0.5 && !(e.parentElement && e.parentElement.getBoundingClientRect().right > client + 0.5))
        .slice(0, 10).map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "") + " " + Math.round(e.getBoundingClientRect().right));
      return { scroll: document.documentElement.scrollWidth, client, wide };
    });
    assert.ok(scroll <= client, `${label}: the page scrolls horizontally (${scroll} > ${client}): ${wide.join(", ")}`);
  };

  await page.goto(base + "/");

  // 1. Register the first administrator, log in.
  await page.getByRole("heading", { name: "Create the first administrator" }).waitFor();
  await page.locator("#reg-username").fill("ada");
  await page.getByLabel("Full name (printed on signatures)").fill("Ada Lovelace");
  await page.getByLabel("Password (at least 12 characters)").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Register administrator" }).click();
  await page.getByText("Administrator ada registered").waitFor();
  await page.locator("#login-username").fill("ada");
  await page.locator("#login-password").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#me-role").filter({ hasText: "admin" }).waitFor();

  // 2. The Fleet page: no edge yet.
  await page.getByRole("button", { name: "Fleet", exact: true }).click();
  const fleet = page.locator("#fleet");
  await fleet.getByText("No edge enrolled yet.").waitFor();
  await fleet.locator("#fleet-counts").filter({ hasText: "0 edges" }).waitFor();
  await axe("empty fleet");

  // 3. The enrollment code form: errors inline beside it (a bad lifetime, caught in the page; a
  // bad edge id, refused by the server), then a code for ws-ui-1.
  const codeForm = page.locator("#fleet-code-form");
  const issueCode = async (edge, ttl) => {
    await codeForm.getByLabel("Edge id").fill(edge);
    await codeForm.getByLabel("Lifetime (minutes)").fill(String(ttl));
    await codeForm.getByRole("button", { name: "Issue code" }).click();
  };
  await issueCode("ws-ui-1", 0);
  await page.locator("#fleet-code-error").filter({ hasText: "1 to 10080" }).waitFor();
  // Beside the field (issue 25): marked invalid, described by the error, focused; not the banner.
  assert.equal(await codeForm.getByLabel("Lifetime (minutes)").getAttribute("aria-invalid"), "true");
  assert.match(await codeForm.getByLabel("Lifetime (minutes)").getAttribute("aria-describedby"), /fleet-code-error/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "fleet-code-ttl");
  assert.equal(await page.locator("#fleet-code-error").getAttribute("role"), "alert");
  await issueCode("bad edge/id", 30);
  await page.locator("#fleet-code-error").filter({ hasText: "No code issued" }).waitFor();
  assert.equal(await codeForm.getByLabel("Lifetime (minutes)").getAttribute("aria-invalid"), null);
  assert.equal(await codeForm.getByLabel("Edge id").getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator("#notice").isVisible(), false, "nothing in the top banner");
  await axe("code form with an error");
  const showCode = async (edge, ttl) => {
    await issueCode(edge, ttl);
    const result = page.locator("#fleet-code-result");
    await result.locator("#fleet-code-for").filter({ hasText: new RegExp("^" + edge + "$") }).waitFor();
    assert.equal(await page.locator("#fleet-code-error").innerText(), "");
    const code = await result.getByLabel("Code", { exact: true }).inputValue();
    assert.match(code, /^[0-9a-f]{32}$/, "a one-time code of 32 hex characters");
    assert.equal(await result.getByLabel("Code", { exact: true }).getAttribute("readonly"), "");
    const command = await result.getByLabel("On the workstation, run").inputValue();
    assert.equal(command, `relay-edge enroll --server ${base} --code ${code}`);
    // The expiry: local time shown, UTC in the tooltip, ttl minutes from now.
    const expires = result.locator("#fleet-code-expires time");
    const utc = await expires.getAttribute("datetime");
    assert.equal(await expires.getAttribute("title"), "UTC: " + utc);
    const minutes = (Date.parse(utc.replace(/(\.\d{3})\d+/, "$1")) - Date.now()) / 60000;
    assert.ok(minutes > ttl - 2 && minutes <= ttl + 0.1, `expires in ${minutes} min, not ${ttl}`);
    return code;
  };
  const code1 = await showCode("ws-ui-1", 30);
  // Copy to the clipboard (or, where the clipboard is refused, the text is selected).
  await page.getByRole("button", { name: "Copy command" }).click();
  await page.locator("#fleet-copy-status").filter({ hasText: /Command copied|Selected/ }).waitFor();
  await axe("code shown");

  // 4. Enroll and run ws-ui-1; drop files into its inbox.
  const edge1 = edgeConfig("ws-ui-1");
  enroll(edge1, base, code1);
  const replay = spawnSync(edgeBin, ["enroll", "--config", edgeConfig("ws-ui-x").conf, "--server", base, "--code", code1], { encoding: "utf8", env: childEnv() });
  assert.notEqual(replay.status, 0, "a used code enrolls nothing");
  const run1 = start("relay-edge ws-ui-1", edgeBin, ["run", "--config", edge1.conf]);
  for (let i = 1; i <= 3; i++) writeFileSync(join(edge1.inbox, `sample-${i}.csv`), `run,${i}\n`.repeat(20 * i));

  // 5. Refresh until ws-ui-1 is caught up: ok, lag 0, stored head > 0 and equal to the local head.
  const row = (edge) => page.locator(`#fleet-table tbody tr[data-edge="${edge}"]`);
  const refresh = async () => {
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("#fleet-status").filter({ hasText: "Updated" }).waitFor();
  };
  const stored = await waitFor("ws-ui-1 caught up on the fleet page", async () => {
    if (run1.exit) throw new Error("relay-edge ws-ui-1 exited: " + JSON.stringify(run1.exit));
    await refresh();
    const r = row("ws-ui-1");
    if ((await r.count()) !== 1 || (await r.getAttribute("data-status")) !== "ok") return false;
    const trail = r.locator('li[data-trail="ws-ui-1"]');
    if ((await trail.count()) !== 1) return false;
    const n = Number(await trail.getAttribute("data-stored"));
    const [storedHead, localHead] = (await trail.innerText()).replace("ws-ui-1: ", "").split(" / ").map(Number);
    const lag = await r.locator("td").nth(4).innerText();
    return n >= 3 && storedHead === n && localHead === n && /^0 records, 0 s$/.test(lag) ? n : false;
  }, 60000);
  console.log(`fleet e2e: ws-ui-1 caught up, stored head ${stored}`);
  const r1 = row("ws-ui-1");
  assert.match(await r1.locator("td").nth(0).innerText(), /^ok$/);
  assert.match(await r1.locator("td").nth(1).innerText(), /^enrolled \(code by ada\)$/);
  assert.match(await r1.locator("td").nth(8).innerText(), /^none$/);
  assert.notEqual(await r1.locator("td").nth(7).innerText(), "—", "the edge's version is shown");
  // Last seen: local time (Europe/Berlin, not UTC) with the UTC time in the tooltip.
  const seen = r1.locator("td").nth(2).locator("time");
  const seenUtc = await seen.getAttribute("datetime");
  assert.match(seenUtc, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  assert.equal(await seen.getAttribute("title"), "UTC: " + seenUtc);
  assert.match(await seen.innerText(), /CES?T/, "the last seen time is local");
  assert.match(await r1.locator("td").nth(2).innerText(), /\(\d+ s ago\)$/);
  await fleet.locator("#fleet-counts li[data-status='ok']").filter({ hasText: "ok 1" }).waitFor();
  await axe("ws-ui-1 caught up");

  // 6. A second edge: a code through the form, enrolled, never run (never seen).
  const code2 = await showCode("ws-ui-2", 15);
  const edge2 = edgeConfig("ws-ui-2");
  enroll(edge2, base, code2);
  await refresh();
  await row("ws-ui-2").and(page.locator('[data-status="never_seen"]')).waitFor();
  const order = async () => page.locator("#fleet-table tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.edge));
  assert.deepEqual(await order(), ["ws-ui-2", "ws-ui-1"], "the unhealthy first");

  // 7. Sorting by column, with the keyboard: buttons in the headers, aria-sort on the column.
  const header = (name) => page.locator("#fleet-table thead th").filter({ has: page.getByRole("button", { name, exact: true }) });
  assert.equal(await header("Status").getAttribute("aria-sort"), "ascending");
  await page.getByRole("button", { name: "Edge", exact: true }).focus();
  await page.keyboard.press("Enter");
  assert.equal(await header("Edge").getAttribute("aria-sort"), "ascending");
  assert.equal(await header("Status").getAttribute("aria-sort"), null);
  assert.deepEqual(await order(), ["ws-ui-1", "ws-ui-2"]);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.sort), "edge", "focus stays on the header button");
  await page.keyboard.press("Space");
  assert.equal(await header("Edge").getAttribute("aria-sort"), "descending");
  assert.deepEqual(await order(), ["ws-ui-2", "ws-ui-1"]);
  await page.getByRole("button", { name: "Status", exact: true }).click();
  assert.equal(await header("Status").getAttribute("aria-sort"), "ascending");
  assert.deepEqual(await order(), ["ws-ui-2", "ws-ui-1"]);
  await axe("two edges, sorted");

  // 8. Revoke ws-ui-2 through the form: a reason and a confirmation, errors inline in the form.
  assert.equal(await row("ws-ui-1").getByRole("button", { name: "Revoke ws-ui-1" }).count(), 1);
  await row("ws-ui-2").getByRole("button", { name: "Revoke ws-ui-2" }).click();
  const dialog = page.getByRole("dialog", { name: "Revoke edge ws-ui-2" });
  await dialog.waitFor();
  await dialog.getByRole("button", { name: "Revoke edge" }).click();
  await dialog.locator("#fleet-revoke-error").filter({ hasText: "Say why" }).waitFor();
  assert.equal(await dialog.getByLabel("Reason").getAttribute("aria-invalid"), "true");
  await dialog.getByLabel("Reason").fill("Workstation ws-ui-2 retired from the lab (decommissioning ticket 42).");
  await dialog.getByRole("button", { name: "Revoke edge" }).click();
  await dialog.locator("#fleet-revoke-error").filter({ hasText: "Tick the confirmation" }).waitFor();
  await axe("revoke form with an error");
  await dialog.getByLabel(/I confirm: refuse ws-ui-2's ingest now/).check();
  await dialog.getByRole("button", { name: "Revoke edge" }).click();
  await dialog.waitFor({ state: "hidden" });
  const toast = page.locator("#toast");
  await toast.filter({ hasText: "Edge ws-ui-2 revoked" }).waitFor();
  assert.equal(await toast.getAttribute("role"), "status");
  assert.equal(await page.locator("#notice").isVisible(), false, "the revocation is a toast, not the top banner");
  await row("ws-ui-2").and(page.locator('[data-status="revoked"]')).waitFor();
  const r2 = row("ws-ui-2");
  assert.match(await r2.locator("td").nth(0).innerText(), /^revoked$/);
  assert.match(await r2.locator("td").nth(1).innerText(), /^revoked at /);
  assert.equal(await r2.getByRole("button", { name: /Revoke/ }).count(), 0, "a revoked edge has no Revoke action");
  assert.deepEqual(await order(), ["ws-ui-2", "ws-ui-1"], "revoked sorts before ok");
  await fleet.locator("#fleet-counts li[data-status='revoked']").filter({ hasText: "revoked 1" }).waitFor();
  await noPageScroll("1280 px");
  await axe("ws-ui-2 revoked");
  // The toast clears by itself (after 8 s).
  await waitFor("the toast cleared", async () => (await toast.innerText()) === "", 20000);
  const viewed = await apiCall(base, "GET", "/fleet", await page.evaluate(() => sessionStorage.getItem("relay-token")));
  assert.equal(viewed.status, 200);
  assert.deepEqual(viewed.body.edges.map((e) => [e.edge, e.status, e.state]), [["ws-ui-2", "revoked", "revoked"], ["ws-ui-1", "ok", "enrolled"]]);
  noProblems();

  // 9. The screenshot: both edges, the counts and the enrollment form.
  await page.getByRole("button", { name: "Done (hide the code)" }).click();
  await page.locator("#fleet-code-result").waitFor({ state: "hidden" });
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await fleet.evaluate((e) => e.scrollIntoView({ block: "start" }));
  await page.screenshot({ path: screenshot });

  // 10. A 400 px wide window: the table scrolls inside its container, never the page.
  await page.setViewportSize({ width: 400, height: 800 });
  await refresh();
  await noPageScroll("400 px");
  const scroller = await page.locator("#fleet .table-scroll").evaluate((e) => ({ scroll: e.scrollWidth, client: e.clientWidth }));
  assert.ok(scroller.client <= 400, `the table's container fits the window (${scroller.client} px)`);
  await axe("400 px");
  await page.setViewportSize({ width: 1280, height: 800 });

  // 11. An auditor sees the fleet, read-only: no enrollment form, no Revoke action.
  const adminToken = await page.evaluate(() => sessionStorage.getItem("relay-token"));
  const created = await apiCall(base, "POST", "/accounts", adminToken,
    { username: "otto", full_name: "Otto Auditor", role: "auditor", password: AUDITOR_TEMP_PW, reason: "external audit of the fleet" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const changed = await apiCall(base, "POST", "/auth/password", null, { username: "otto", old_password: AUDITOR_TEMP_PW, new_password: AUDITOR_PW });
  assert.ok(changed.status < 300, JSON.stringify(changed.body));
  await page.getByRole("button", { name: "Log out" }).click();
  assert.equal(await page.locator("#fleet").isHidden(), true, "nothing of the fleet stays after logout");
  assert.equal(await page.locator("#fleet-table tbody tr").count(), 0);
  await page.locator("#login-username").fill("otto");
  await page.locator("#login-password").fill(AUDITOR_PW);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#me-role").filter({ hasText: "auditor" }).waitFor();
  await page.getByRole("button", { name: "Fleet", exact: true }).click();
  await row("ws-ui-1").waitFor();
  assert.equal(await page.locator("#fleet-code-form").isHidden(), true, "no enrollment form for an auditor");
  assert.equal(await page.locator("#fleet-table").getByRole("button", { name: /Revoke/ }).count(), 0);
  assert.equal(await page.locator("#fleet-table thead th").filter({ hasText: "Actions" }).count(), 0);
  assert.deepEqual(await order(), ["ws-ui-2", "ws-ui-1"]);
  await axe("auditor");
  await page.getByRole("button", { name: "Log out" }).click();

  // 12. An edge's own UI has no fleet (404 fleet_disabled): no Fleet entry.
  const edgePort = await freePort();
  const edgeBase = `http://127.0.0.1:${edgePort}`;
  const standalone = join(work, "standalone");
  mkdirSync(join(standalone, "inbox"), { recursive: true });
  const edgeRun = start("relay-edge standalone", edgeBin, ["run", "--data-dir", join(standalone, "data"), "--watch", join(standalone, "inbox"),
    "--listen", `127.0.0.1:${edgePort}`, "--device", "ws-ui-standalone"]);
  await healthy(edgeRun, edgeBase);
  const reg = await apiCall(edgeBase, "POST", "/auth/register", null, { username: "ada", full_name: "Ada Lovelace", password: ADMIN_PW, role: "admin" });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const edgePage = await context.newPage();
  edgePage.on("pageerror", (e) => problems.push("edge page error: " + e.message));
  await edgePage.goto(edgeBase + "/");
  await edgePage.locator("#login-username").fill("ada");
  await edgePage.locator("#login-password").fill(ADMIN_PW);
  await edgePage.getByRole("button", { name: "Log in" }).click();
  await edgePage.locator("#me-role").filter({ hasText: "admin" }).waitFor();
  await edgePage.getByRole("button", { name: "Access review" }).waitFor();
  const edgeToken = await edgePage.evaluate(() => sessionStorage.getItem("relay-token"));
  const disabled = await apiCall(edgeBase, "GET", "/fleet", edgeToken);
  assert.equal(disabled.status, 404);
  assert.equal(disabled.body.error.code, "fleet_disabled");
  await edgePage.waitForTimeout(500);
  assert.equal(await edgePage.locator("#show-fleet").isHidden(), true, "no Fleet entry on an edge");
  await edgePage.close();
  await stopProcess(edgeRun);

  noProblems();
  console.log(`browser e2e (fleet): OK (screenshot ${screenshot})`);
} finally {
  if (context) await context.close();
  for (const p of children.reverse()) await stopProcess(p).catch((e) => console.error(e.message));
  rmSync(work, { recursive: true, force: true });
}
for (const p of children) {
  if (p.exit && p.exit.code !== 0 && p.exit.signal === null) throw new Error(p.name + " exited with " + JSON.stringify(p.exit));
}
