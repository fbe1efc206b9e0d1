// REQ: R4.1 (run by .ci/browser.sh, outside the Rust test suite)
// End-to-end test of bulk signing (issue 25) in headless Chromium: a real relay-edge captures 6
// files; a reviewer (created through four-eyes over the API) lands on their signing queue
// ("Show all records" turns it off), selects 3 records with the keyboard only (Tab / Space /
// Enter), opens "Sign selected (3)…", sees who signs and the records listed, signs them as
// reviewed with one password, and reads each record's result (signed, signature record #seq);
// the list then shows the SIGNATURE records, and the printed report of the whole view has each
// signature's manifestation in full. A second series including one record already approved is
// refused as a whole: the dialog names the refused record and why, and nothing is signed (its
// session ended first: re-login inside the dialog, reason kept). axe-core in each state
// (queue landing, selection, dialog, result, print media; 0 violations), a 400 px run of the
// dialog, no CSP violation, and a screenshot docs/screenshots/bulk-sign.png.
//
// Env: RELAY_EDGE_BIN (default ../../target/debug/relay-edge), CHROMIUM (default
// /usr/bin/chromium), BULK_SCREENSHOT (default ../../docs/screenshots/bulk-sign.png).
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { axeSource, edgeBin, freePort, healthy, launchBrowser, listLoaded, repo, startProcess, waitFor } from "./helpers.mjs";

const screenshot = process.env.BULK_SCREENSHOT || join(repo, "docs/screenshots/bulk-sign.png");
const PW = "bulk signing keeper 2026";
const FILES = 6;
const TRAIL = "nmr-bulk";

const work = mkdtempSync(join(tmpdir(), "relay-bulk-e2e-"));
const dataDir = join(work, "data");
const watchDir = join(work, "instrument");
const profile = join(work, "chromium-profile");
mkdirSync(join(watchDir, "run3"), { recursive: true });
for (let i = 1; i <= FILES; i++) writeFileSync(join(watchDir, "run3", `fid-${i}.fid`), `NMR FID ${i}\n`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const relay = startProcess("relay-edge", edgeBin, ["run", "--data-dir", dataDir, "--watch", watchDir, "--listen", `127.0.0.1:${port}`,
  "--settle-ms", "300", "--device", "e2e-ws", "--trail", TRAIL, "--project", "PRJ-BULK"]);

async function call(method, path, token, body) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(base + "/api/v1" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}
async function login(username, password = PW) {
  const r = await call("POST", "/auth/login", null, { username, password });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.token;
}
async function setPassword(username, old) {
  const r = await call("POST", "/auth/password", null, { username, old_password: old, new_password: PW });
  assert.equal(r.status, 204, JSON.stringify(r.body));
}
// A reviewer through four-eyes: ada proposes, quinn approves, the owner sets the password.
async function reviewer(ada, quinn, username, fullName) {
  const p = await call("POST", "/changes", ada, { setting: "account_create", value: { username, full_name: fullName, role: "reviewer" }, reason: "new reviewer " + username });
  assert.equal(p.status, 201, JSON.stringify(p.body));
  const a = await call("POST", `/changes/${p.body.id}/approve`, quinn, { password: PW, reason: "second administrator approves" });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  await setPassword(username, a.body.applied.temporary_password);
}

let context;
try {
  await healthy(relay, base);
  // Accounts over the API: ada (first admin), quinn (second admin), rita and roy (reviewers).
  assert.equal((await call("POST", "/auth/register", null, { username: "ada", full_name: "Ada Lovelace", password: PW, role: "admin" })).status, 201);
  const ada = await login("ada");
  const q = await call("POST", "/accounts", ada, { username: "quinn", full_name: "Quinn Second", password: "temporary violet harbour 17", role: "admin", reason: "a second administrator for four-eyes" });
  assert.equal(q.status, 201, JSON.stringify(q.body));
  await setPassword("quinn", "temporary violet harbour 17");
  const quinn = await login("quinn");
  await reviewer(ada, quinn, "rita", "Rita Reviewer");
  await reviewer(ada, quinn, "roy", "Roy Approver");
  const roy = await login("roy");
  const captures = await waitFor("all captures", async () => {
    const r = await call("GET", `/events?trail=${TRAIL}&kind=FILE_CREATED&order=asc&limit=50`, ada);
    return r.status === 200 && r.body.events.length === FILES ? r.body.events : null;
  }, 60000);

  context = await launchBrowser(profile);
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) problems.push("CSP: " + m.text()); });

  const axe = async (label) => {
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeSource);
    const r = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return { passed: r.passes.length, violations: r.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary) })) };
    });
    assert.deepEqual(r.violations, [], `axe-core violations (${label}): ${JSON.stringify(r.violations, null, 2)}`);
    assert.ok(r.passed > 10, `axe-core checked the page (${r.passed} rules passed)`);
    console.log(`bulk e2e: axe-core: 0 violations, ${r.passed} rules passed (${label})`);
  };
  const noPageScroll = async (label) => {
    const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    assert.ok(scroll <= client, `${label}: the page scrolls horizontally (${scroll} > ${client})`);
  };
  const focusedId = () => page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.getAttribute("aria-label")));
  // Tab until the element matching `selector` has focus (keyboard only).
  const tabTo = async (selector, max = 80) => {
    for (let i = 0; i < max; i++) {
      if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return i;
      await page.keyboard.press("Tab");
    }
    throw new Error("could not reach " + selector + " with Tab; focus is on " + await focusedId());
  };

  await page.goto(base + "/");
  await page.locator("#login-username").fill("rita");
  await page.locator("#login-password").fill(PW);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#me-role").filter({ hasText: "reviewer" }).waitFor();
  // 0. A reviewer with no view in the URL lands on their signing queue of the capture trail,
  // said visibly; one click shows all records.
  const queueNote = page.locator("#queue-note");
  await queueNote.waitFor();
  assert.match(await queueNote.innerText(), /Your signing queue/);
  assert.match(await page.locator("#events-title").innerText(), new RegExp("Your signing queue in " + TRAIL));
  assert.match(await page.evaluate(() => location.hash), /queue=1/);
  assert.equal(await page.locator("#f-queue").isChecked(), true);
  await waitFor("the queue listed", async () => (await page.locator("#events-table tbody tr[data-seq]").count()) === FILES);
  await axe("reviewer landing on the signing queue");
  await page.getByRole("button", { name: "Show all records" }).click();
  await queueNote.waitFor({ state: "hidden" });
  assert.doesNotMatch(await page.evaluate(() => location.hash), /queue=1/);
  assert.equal(await page.locator("#f-queue").isChecked(), false);
  assert.equal(await page.evaluate(() => document.activeElement.id), "events-title");
  await page.goto(base + `/#/trail/${TRAIL}?order=asc`);
  // The views before held the same row: wait for the oldest-first list itself, or its rows
  // could replace the table under the keyboard selection below.
  await listLoaded(page, () => document.getElementById("f-order").value === "asc");
  await page.locator(`#events-table tbody tr[data-seq="${captures[0].chain_seq}"]`).waitFor();

  // 1. Selection: the three oldest captures, keyboard only (Tab to each checkbox, Space).
  const bar = page.locator("#bulk-bar");
  assert.equal(await bar.isVisible(), true, "a reviewer sees the selection bar");
  assert.equal(await page.locator("#bulk-open").isDisabled(), true, "nothing selected: Sign selected is disabled");
  const firstThree = captures.slice(0, 3);
  await page.locator("#skip-link").focus();
  for (const c of firstThree) {
    const box = `#events-table input.bulk-select[data-checksum="${c.checksum}"]`;
    const name = await page.locator(box).getAttribute("aria-label");
    assert.equal(name, `Select record ${c.chain_seq} (FILE_CREATED) for signing`, "the checkbox names its record");
    await tabTo(box);
    await page.keyboard.press("Space");
    assert.equal(await page.locator(box).isChecked(), true);
  }
  await page.getByRole("button", { name: "Sign selected (3)…" }).waitFor();
  assert.match(await page.locator("#bulk-count").innerText(), /^3 records selected in nmr-bulk$/);
  // SIGNATURE rows have no checkbox.
  await axe("selection");

  // 2. The dialog: Enter on "Sign selected (3)…".
  await tabTo("#bulk-open");
  await page.keyboard.press("Enter");
  const dialog = page.locator("#bulk-dialog");
  await dialog.waitFor();
  assert.equal(await focusedId(), "bulk-meaning", "focus moves into the dialog");
  assert.equal(await page.locator("#bulk-as").innerText(), "Signing as Rita Reviewer (rita)");
  assert.equal(await page.locator("#bulk-title").innerText(), "Sign 3 records of nmr-bulk");
  const listed = await page.locator("#bulk-targets li").allInnerTexts();
  assert.deepEqual(listed.map((t) => t.split(" ")[0]), firstThree.map((c) => "#" + c.chain_seq), "the records to sign are listed");
  assert.match(await page.locator("#bulk-meaning-help").innerText(), /^Reviewed: /, "what the meaning implies");
  assert.equal(await page.locator("#bulk-password").getAttribute("type"), "password", "the password is masked");
  await axe("dialog");
  // A 400 px run of the dialog: it reflows, no horizontal page scroll.
  await page.setViewportSize({ width: 400, height: 800 });
  await noPageScroll("dialog at 400 px");
  const box = await dialog.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 400, `the dialog fits 400 px (${JSON.stringify(box)})`);
  await axe("dialog at 400 px");
  await page.setViewportSize({ width: 1366, height: 860 });
  // Meaning (kept: reviewed), reason, password with the keyboard; Enter submits.
  await page.keyboard.press("Tab");
  assert.equal(await focusedId(), "bulk-reason");
  await page.keyboard.type("Run 3 spectra checked against the acquisition log.");
  await page.keyboard.press("Tab");
  assert.equal(await focusedId(), "bulk-password");
  await page.keyboard.type(PW);
  await page.keyboard.press("Enter");
  const resultTitle = page.locator("#bulk-result-title");
  await resultTitle.filter({ hasText: "Signed 3 records" }).waitFor();
  assert.equal(await focusedId(), "bulk-result-title", "focus moves to the result");
  const lines = await page.locator("#bulk-results li").allInnerTexts();
  assert.equal(lines.length, 3);
  for (const [i, c] of firstThree.entries()) assert.match(lines[i], new RegExp(`^#${c.chain_seq} .*: signed, reviewed — signature record #\\d+$`));
  await axe("result");
  await page.screenshot({ path: screenshot });
  await page.keyboard.press("Tab");
  assert.equal(await focusedId(), "bulk-close");
  await page.keyboard.press("Enter");
  await dialog.waitFor({ state: "hidden" });
  // The list refreshed: three SIGNATURE records, each naming its target; selection cleared.
  const sigs = await waitFor("signature records", async () => {
    const r = await call("GET", `/events?trail=${TRAIL}&kind=SIGNATURE&order=asc&limit=50`, ada);
    return r.body.events.length === 3 ? r.body.events : null;
  });
  assert.deepEqual(sigs.map((s) => s.payload.target_checksum), firstThree.map((c) => c.checksum));
  const signatureRows = () => page.locator("#events-table tbody tr[data-seq]").evaluateAll((rows) => rows
    .filter((r) => r.cells[1].textContent === "SIGNATURE").map((r) => r.querySelectorAll("input.bulk-select").length));
  await waitFor("SIGNATURE rows in the list", async () => (await signatureRows()).length === 3);
  assert.deepEqual(await signatureRows(), [0, 0, 0], "signatures cannot be selected");
  await page.getByRole("button", { name: "Sign selected (0)…" }).waitFor();
  const reviewedBadges = await page.locator(`#events-table tbody tr[data-seq="${firstThree[0].chain_seq}"]`).innerText();
  assert.match(reviewedBadges, /reviewed by Rita Reviewer \(rita\)/);

  // 2b. The printed report of the whole view (read in pages of 4 here): every record with each
  // signature's manifestation in full.
  await page.evaluate(() => {
    window.printCalls = 0; window.print = () => { window.printCalls++; };
    document.getElementById("print-dialog").dataset.pageSize = "4";
  });
  await page.getByRole("button", { name: "Print report" }).click();
  await page.getByRole("radio", { name: /The whole filtered view/ }).check();
  await page.locator("#print-dialog").getByRole("button", { name: "Print", exact: true }).click();
  await waitFor("the whole view printed", () => page.evaluate(() => window.printCalls === 1));
  await page.emulateMedia({ media: "print" });
  const printed = await page.locator("#report-all-table tbody tr").evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  assert.equal(printed.length, FILES + 3, "6 captures and 3 signatures printed");
  assert.deepEqual(printed, [...printed].sort((a, b) => a - b), "oldest first, as the view");
  const printedRow = await page.locator(`#report-all-table tr[data-seq="${firstThree[0].chain_seq}"] .manifestation-print`).innerText();
  assert.match(printedRow, /Rita Reviewer \(rita\) — REVIEWED — \S+Z \(UTC\) — Reason: .+ — signature record #\d+/);
  assert.match(await page.locator("#report-header").innerText(), new RegExp("Records " + (FILES + 3) + " of " + (FILES + 3) + " \\(the whole filtered view\\)"));
  await axe("print media, whole view with manifestations");
  await page.emulateMedia({ media: "screen" });

  // 3. A refused series: roy approves capture 1 (over the API; an approved record is final),
  // then rita selects 1, 4 and 5 and signs them as reviewed: nothing is signed, the dialog says why.
  const approved = firstThree[0];
  const ap = await call("POST", "/signatures", roy, { trail_id: TRAIL, target_checksum: approved.checksum, meaning: "approved", reason: "spectrum accepted", password: PW });
  assert.equal(ap.status, 201, JSON.stringify(ap.body));
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator(`#events-table tbody tr[data-seq="${approved.chain_seq}"]`, { hasText: "approved by Roy" }).waitFor();
  const headBefore = (await call("GET", `/events?trail=${TRAIL}&order=desc&limit=1`, ada)).body.events[0].chain_seq;
  for (const c of [approved, captures[3], captures[4]]) {
    await tabTo(`#events-table input.bulk-select[data-checksum="${c.checksum}"]`);
    await page.keyboard.press("Space");
  }
  await tabTo("#bulk-open");
  await page.keyboard.press("Enter");
  await dialog.waitFor();
  await page.keyboard.press("Tab");
  await page.keyboard.type("Second series");
  await page.keyboard.press("Tab");
  await page.keyboard.type(PW);
  // The session ends meanwhile (logged out from another tab): the dialog offers a re-login
  // inside it, the meaning and reason kept, and nothing is signed.
  const ritaToken = await page.evaluate(() => sessionStorage.getItem("relay-token"));
  assert.equal((await fetch(base + "/api/v1/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + ritaToken } })).status, 204);
  await page.keyboard.press("Enter");
  await page.locator("#bulk-relogin").waitFor();
  assert.equal(await focusedId(), "bulk-relogin-password", "focus moves to the re-login password");
  assert.equal(await page.locator("#bulk-relogin-username").inputValue(), "rita");
  assert.equal(await page.locator("#bulk-reason").inputValue(), "Second series", "the reason is kept");
  assert.match(await page.locator("#bulk-error").innerText(), /^Not signed: /);
  await axe("re-login in the bulk dialog");
  await page.keyboard.type(PW);
  await page.keyboard.press("Enter");
  await page.locator("#bulk-relogin").waitFor({ state: "hidden" });
  assert.equal(await focusedId(), "bulk-password", "back to the signature's password");
  await page.keyboard.type(PW);
  await page.keyboard.press("Enter");
  await resultTitle.filter({ hasText: "Nothing signed: 1 of 3 records refused" }).waitFor();
  assert.equal(await focusedId(), "bulk-result-title");
  const refused = await page.locator("#bulk-results li").allInnerTexts();
  assert.match(refused[0], new RegExp(`^#${approved.chain_seq} .*: refused — already_approved: `));
  assert.match(refused[1], /not signed \(it could have been; the series was refused\)$/);
  assert.equal(await page.locator("#bulk-results li.result-refused").count(), 1);
  await axe("refused result");
  const headAfter = (await call("GET", `/events?trail=${TRAIL}&order=desc&limit=1`, ada)).body.events[0].chain_seq;
  assert.equal(headAfter, headBefore, "nothing was appended to the trail");
  const sigsAfter = await call("GET", `/events?trail=${TRAIL}&kind=SIGNATURE&limit=50`, ada);
  assert.equal(sigsAfter.body.events.length, 4, "only the earlier three and roy's approval");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.deepEqual(problems, [], "no page error and no CSP violation");
  console.log("bulk e2e: keyboard-only bulk signing of 3 records, per-record results, a refused series signs nothing");
} finally {
  if (context) await context.close();
  relay.child.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
}
