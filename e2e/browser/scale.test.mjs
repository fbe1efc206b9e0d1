// REQ: R11.1 (run by .ci/browser.sh, outside the Rust test suite)
// The review UI over a large trail (issue 25): `relay-bench ui-trail` stores SCALE_RECORDS
// (default 100,000) chained records through the real SQLite store, a real relay-server (local
// storage) serves them, and headless Chromium measures the time from the click or navigation to
// the rows rendered for the newest-first first page, the last page, a kind filter, a text
// search, a project filter and a folder filter (each the median of three runs, printed; written
// as JSON to SCALE_TIMINGS if set). Also: the actor, project and folder pickers filled from
// GET /trails/{trail}/facets and usable with the keyboard, an invalid folder answered next to
// its field with the old rows cleared, a text search over the scan limit showing "Searched
// records #A–#B, N found" with "Continue searching" (never a Next to an empty page), axe-core
// with 0 violations in each state, and a 400 px run.
//
// Timing bound: every median must stay under SCALE_BOUND_MS (default 3000 ms: ten times the
// issue's 300 ms, so that a debug build on a loaded 2-core machine never fails it by chance; it
// catches a page that waits for a pass over the trail). The figures against 300 ms are recorded
// in docs/performance.md ("Review UI with 100,000 records").
//
// Env: RELAY_SERVER_BIN, RELAY_BENCH_BIN (default ../../target/debug/…), CHROMIUM (default
// /usr/bin/chromium), SCALE_RECORDS, SCALE_BOUND_MS, SCALE_TIMINGS, SCALE_SCREENSHOT (the
// continue-searching state, none by default).
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { axeSource, benchBin, freePort, healthy, launchBrowser, serverBin, startProcess, stopProcess, waitFor } from "./helpers.mjs";

const N = Number(process.env.SCALE_RECORDS || 100000);
const BOUND_MS = Number(process.env.SCALE_BOUND_MS || 3000);
const TRAIL = "nmr-scale";
const ADMIN_PW = "scale reviewer 2026 hundred";
const fmt = (n) => n.toLocaleString("en-US");

const work = mkdtempSync(join(tmpdir(), "relay-scale-e2e-"));
const dataDir = join(work, "data");
const profile = join(work, "chromium-profile");
const t0 = Date.now();
execFileSync(benchBin, ["ui-trail", "--data-dir", dataDir, "--trail", TRAIL, "--records", String(N)], { stdio: "inherit" });
console.log(`scale e2e: ${fmt(N)} records stored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const conf = join(work, "server.toml");
const toml = (p) => JSON.stringify(p);
writeFileSync(conf, `data_dir = ${toml(dataDir)}\ndevice = "relay-server-scale"\nlisten = "127.0.0.1:${port}"\n` +
  `notary_interval_secs = 3600\n[storage]\nprovider = "local"\n`);
const server = startProcess("relay-server", serverBin, ["run", "--config", conf]);

let context;
const timings = {};
try {
  await healthy(server, base, 60000);
  const reg = await fetch(base + "/api/v1/auth/register", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "ada", full_name: "Ada Lovelace", password: ADMIN_PW, role: "admin" }) });
  assert.ok(reg.ok, "register the administrator: " + reg.status + " " + await reg.text());

  context = await launchBrowser(profile);
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => { throw e; });
  const cspViolations = [];
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  const axe = async (label) => {
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeSource);
    const r = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return { passed: r.passes.length, violations: r.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary) })) };
    });
    assert.deepEqual(r.violations, [], `axe-core violations (${label}): ${JSON.stringify(r.violations, null, 2)}`);
    console.log(`scale e2e: axe-core: 0 violations, ${r.passed} rules passed (${label})`);
  };
  const range = page.locator("#range");
  const firstSeq = () => page.locator("#events-table tbody tr[data-seq]").first().getAttribute("data-seq").then(Number);

  // Log in: the first read of the trail builds its review snapshot and tally (once per trail).
  await page.goto(base + "/#/trail/" + TRAIL);
  await page.locator("#login-username").fill("ada");
  await page.locator("#login-password").fill(ADMIN_PW);
  const tLogin = Date.now();
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator(`#events-table tbody tr[data-seq="${N}"]`).waitFor({ timeout: 120000 });
  timings.first_view_after_login_ms = Date.now() - tLogin;
  assert.equal(await range.innerText(), `1–50 of ${fmt(N)}, newest first`);

  // In the page: the time from an action to the rows rendered (the first row's seq as
  // expected, the range text settled), measured with performance.now() and one animation frame.
  // Sets the hash and returns once the UI's hashchange listener has run (it was added first),
  // so the range line read next is the new view's, never the one before it.
  const goHash = (f) => page.evaluate((f) => new Promise((ok) => {
    if (location.hash === f) return ok();
    addEventListener("hashchange", () => ok(), { once: true });
    location.hash = f;
  }), f);
  const measure = async (label, action, expectFirst, expectRange) => {
    const from = action.from || "#/trail/" + TRAIL + "?order=asc&kind=FILE_MODIFIED";
    const runs = [];
    for (let i = 0; i < 3; i++) {
      // Start from another view each time, so the list really loads.
      await goHash(from);
      await page.waitForFunction((f) => location.hash === f && / of [0-9,]+, (newest|oldest) first$/.test(document.getElementById("range").textContent), from);
      const ms = await page.evaluate(async ({ action, expectFirst, expectRange }) => {
        const start = performance.now();
        if (action.hash) location.hash = action.hash; else document.getElementById(action.click).click();
        const re = new RegExp(expectRange);
        await new Promise((ok) => {
          const check = () => {
            const tr = document.querySelector("#events-table tbody tr[data-seq]");
            if (tr && tr.dataset.seq === String(expectFirst) && re.test(document.getElementById("range").textContent)) ok();
            else requestAnimationFrame(check);
          };
          check();
        });
        await new Promise((ok) => requestAnimationFrame(() => ok()));
        return performance.now() - start;
      }, { action: typeof action === "string" ? { hash: action } : action, expectFirst, expectRange });
      runs.push(Math.round(ms));
    }
    runs.sort((x, y) => x - y);
    timings[label] = { median_ms: runs[1], runs_ms: runs };
    console.log(`scale e2e: ${label}: median ${runs[1]} ms (runs ${runs.join(", ")} ms)`);
    assert.ok(runs[1] < BOUND_MS, `${label}: median ${runs[1]} ms over the bound ${BOUND_MS} ms`);
  };

  // A reload of the first page (the page, its modules, the session check, the trails, the rows).
  const reloads = [];
  for (let i = 0; i < 3; i++) {
    const t = Date.now();
    await page.reload();
    await page.locator(`#events-table tbody tr[data-seq="${N}"]`).waitFor();
    reloads.push(Date.now() - t);
  }
  reloads.sort((x, y) => x - y);
  timings["reload to the first page's rows"] = { median_ms: reloads[1], runs_ms: reloads };
  console.log(`scale e2e: reload to the first page's rows: median ${reloads[1]} ms (runs ${reloads.join(", ")} ms)`);
  assert.ok(reloads[1] < BOUND_MS, `reload: median ${reloads[1]} ms over the bound ${BOUND_MS} ms`);

  const h = (q) => "#/trail/" + TRAIL + (q ? "?" + q : "");
  const deleted = Array.from({ length: N }, (_, i) => i).filter((i) => i % 97 === 96);
  await measure("first page, newest first", h(""), N, `^1–50 of ${fmt(N)}, newest first$`);
  await measure("last page (Last page button on the first page)", { click: "last-page", from: h("") }, 50, `^${fmt(N - 49)}–${fmt(N)} of ${fmt(N)}, newest first$`);
  await measure("kind filter FILE_DELETED", h("kind=FILE_DELETED"), deleted[deleted.length - 1] + 1, `^1–50 of ${fmt(deleted.length)}, newest first$`);
  const prj7 = Math.max(...Array.from({ length: Math.ceil(N / 100) }, (_, r) => r).filter((r) => r % 3 === 1)) * 100 + 100;
  await measure("project filter PRJ-7", h("project=PRJ-7"), Math.min(prj7, N), "^1–50 of [0-9,]+, newest first$");
  await measure("folder filter 2026-run0995", h("folder=2026-run0995"), 99500, "^1–50 of 100, newest first$");
  await measure("text search spectrum-0042.fid (rows)", h("q=spectrum-0042.fid"), 99942, "newest first");
  // The total of a text search is one pass over the trail, asked after the rows are shown.
  const tTotal = Date.now();
  await page.waitForFunction(() => /^1–50 of 1,000, newest first$/.test(document.getElementById("range").textContent), null, { timeout: 120000 });
  timings["text search total shown after the rows"] = { ms: Date.now() - tTotal };
  console.log(`scale e2e: text search total shown ${timings["text search total shown after the rows"].ms} ms after the rows`);
  await axe("text search with its total");
  assert.ok(await firstSeq() === 99942);

  // The pickers: actors, projects and run folders of the trail, from GET /trails/{trail}/facets.
  const settled = (hash) => page.waitForFunction((f) => location.hash === f && /(newest|oldest) first|found/.test(document.getElementById("range").textContent + document.getElementById("search-progress-text").textContent), hash);
  await goHash(h(""));
  await settled(h(""));
  const options = (which) => page.locator(`#f-${which}-list option`).evaluateAll((os) => os.map((o) => o.value));
  await waitFor("the actor picker", async () => (await options("actor")).length === 4, 30000);
  assert.deepEqual((await options("actor")).sort(), ["ada", "grace", "hplc-bot", "nmr-operator"]);
  assert.deepEqual(await options("project"), ["PRJ-42", "PRJ-7", "STABILITY-2026"], "most records first");
  const folders = await options("folder");
  assert.equal(folders.length, 200, "the folder picker offers the 200 with most records");
  assert.equal(await page.locator("#f-folder-hint").innerText(), "Suggests the 200 with most records; 800 more folders can be typed.");
  assert.equal(await page.getByLabel("Project").getAttribute("list"), "f-project-list");
  assert.equal(await page.getByLabel("Run / folder").getAttribute("list"), "f-folder-list");
  await axe("pickers filled");
  // Keyboard only: type a project from the list, Enter submits the form.
  await page.getByLabel("Project").focus();
  await page.keyboard.type("PRJ-7");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => /^1–50 of 33,300, newest first$/.test(document.getElementById("range").textContent));
  assert.match(await page.evaluate(() => location.hash), /project=PRJ-7/);
  await page.getByLabel("Actor").fill("grace");
  await page.getByLabel("Run / folder").fill("2026-run0998/");
  await page.getByLabel("Run / folder").press("Enter");
  await page.waitForFunction(() => /^1–25 of 25, newest first$/.test(document.getElementById("range").textContent));
  assert.match(decodeURIComponent(await page.evaluate(() => location.hash)), /actor=grace&project=PRJ-7&folder=2026-run0998$/);
  // An invalid folder: the error beside the field, the old rows gone.
  await page.getByLabel("Run / folder").fill("/data/nmr/2026-run0998");
  await page.getByLabel("Run / folder").press("Enter");
  await page.locator("#f-folder-error").filter({ hasText: "not an absolute path" }).waitFor();
  assert.equal(await page.getByLabel("Run / folder").getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator("#events-table tbody tr[data-seq]").count(), 0, "no stale rows under the invalid filter");
  assert.equal(await range.innerText(), "No results: correct the highlighted field.");
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-folder");
  await axe("invalid folder");
  await page.keyboard.type("x");
  assert.equal(await page.locator("#f-folder-error").innerText(), "", "typing clears the error");

  // A text search over the scan limit (5,000 records per read): an honest progress line and
  // "Continue searching", never a Next that leads to an empty page.
  const sparse = h("q=2026-run0500%2F");
  await page.evaluate((f) => { location.hash = f; }, sparse);
  await page.locator("#search-progress").waitFor();
  assert.equal(await page.locator("#search-progress-text").innerText(), `Searched records #${fmt(N - 4999)}–#${fmt(N)}, 0 found.`);
  const nextState = await page.locator("#next-page").evaluate((b) => ({ disabled: b.disabled, aria: b.getAttribute("aria-disabled"), style: getComputedStyle(b).borderStyle }));
  assert.deepEqual(nextState, { disabled: true, aria: "true", style: "dashed" }, "Next is visibly disabled");
  await page.waitForFunction(() => /^None found yet of 100 matching, newest first$/.test(document.getElementById("range").textContent), null, { timeout: 120000 });
  await axe("search continues");
  if (process.env.SCALE_SCREENSHOT) await page.screenshot({ path: process.env.SCALE_SCREENSHOT, fullPage: false });
  await page.getByRole("button", { name: "Continue searching" }).click();
  await page.locator("#search-progress-text").filter({ hasText: `Searched records #${fmt(N - 9999)}–#${fmt(N - 5000)}, 0 found.` }).waitFor();
  for (let i = 0; i < 20 && await page.locator("#events-table tbody tr[data-seq]").count() === 0; i++) {
    const before = await page.locator("#search-progress-text").innerText();
    await page.getByRole("button", { name: "Continue searching" }).click();
    await page.waitForFunction((b) => document.getElementById("search-progress").hidden || document.getElementById("search-progress-text").textContent !== b, before);
  }
  assert.equal(await firstSeq(), 50000, "the run's newest record once the search reaches it");
  // 400 px: the filters, the progress line and the pager reflow without page scroll.
  await page.setViewportSize({ width: 400, height: 800 });
  await page.evaluate((f) => { location.hash = f; }, sparse);
  await page.locator("#search-progress").waitFor();
  const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(scroll <= client, `400 px: the page scrolls horizontally (${scroll} > ${client})`);
  await axe("400 px, search continues");
  assert.deepEqual(cspViolations, []);
  if (process.env.SCALE_TIMINGS) writeFileSync(process.env.SCALE_TIMINGS, JSON.stringify({ records: N, timings }, null, 2) + "\n");
} finally {
  if (context) await context.close().catch(() => {});
  await stopProcess(server, { quiet: true });
  rmSync(work, { recursive: true, force: true });
}
console.log("scale e2e: passed", JSON.stringify(timings));
