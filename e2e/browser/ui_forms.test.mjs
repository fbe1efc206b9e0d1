// REQ: R11.1 (run by .ci/browser.sh, outside the Rust test suite)
// End-to-end test of the review UI's forms (issue 25, second slice) in headless Chromium, with
// window.prompt / confirm / alert replaced by functions that throw and report: none is ever
// called. An administrator resets a password in a dialog (masked temporary password, required
// reason, confirmation, inline errors), cancels a role change (nothing applied), withdraws a
// proposed change (confirmation); a second administrator approves a reviewer in a dialog
// (masked password, a wrong password answered inline); the reviewer's sign dialog says who signs
// and what the meaning implies, and when her session is ended from elsewhere (POST
// /api/v1/auth/logout with the same token) it offers a re-login inside the dialog that keeps the
// reason, after which she signs. Third slice: the signed file is modified and its history lists
// both versions (links, previous -> new SHA-256, each version's signatures, the open one marked);
// "Print report" on a filtered list: under emulated print media no navigation or buttons, a
// header with the trail, the filter and the last verify verdict, each manifestation in full.
// Then the relay is stopped, one record's device is edited in
// relay.db (the append-only triggers dropped, as an attacker with file access would), the relay
// restarted: "Verify this trail" says BROKEN with a link to the first bad record, which opens it
// (#/trail/<id>/record/<seq>), marks its row in words and disables signing at and after it.
// The record detail shows the payload as labelled fields, local time beside UTC. axe-core in
// every new state (0 violations); no Content-Security-Policy violation.
//
// Env: RELAY_EDGE_BIN (default ../../target/debug/relay-edge), CHROMIUM (default
// /usr/bin/chromium), SQLITE3 (default sqlite3), FORMS_SCREENSHOT (default
// ../../docs/screenshots/verify-first-bad-record.png), HISTORY_SCREENSHOT (default
// ../../docs/screenshots/file-history.png), REPORT_SCREENSHOT (default
// ../../docs/screenshots/print-report.png).
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { axeSource, edgeBin, freePort, healthy, launchBrowser, repo, startProcess, stopProcess, waitFor } from "./helpers.mjs";

const sqlite3 = process.env.SQLITE3 || "sqlite3";
const screenshot = process.env.FORMS_SCREENSHOT || join(repo, "docs/screenshots/verify-first-bad-record.png");
const historyShot = process.env.HISTORY_SCREENSHOT || join(repo, "docs/screenshots/file-history.png");
const reportShot = process.env.REPORT_SCREENSHOT || join(repo, "docs/screenshots/print-report.png");
const ADMIN_PW = "forms keeper 2026 admin";
const TEMPORARY_PW = "temporary harbour violet 17";
const SECOND_ADMIN_PW = "amber falcon meadow 73";
const REVIEWER_PW = "quiet copper lantern 42";
const RESET_PW = "fresh temporary otter 55";
const TRAIL = "nmr-forms";

const work = mkdtempSync(join(tmpdir(), "relay-forms-e2e-"));
const dataDir = join(work, "data");
const watchDir = join(work, "instrument");
const profile = join(work, "chromium-profile");
mkdirSync(join(watchDir, "run3"), { recursive: true });
for (let i = 1; i <= 3; i++) writeFileSync(join(watchDir, "run3", `fid-${i}.fid`), `NMR FID ${i}\n`.repeat(200 * i));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let relay = null;
function startRelay() {
  relay = startProcess("relay-edge", edgeBin, ["run", "--data-dir", dataDir, "--watch", watchDir, "--listen", `127.0.0.1:${port}`,
    "--settle-ms", "300", "--device", "e2e-ws", "--trail", TRAIL, "--project", "PRJ-FORMS"]);
  return healthy(relay, base);
}
function stopRelay() {
  return stopProcess(relay);
}

let context;
try {
  await startRelay();
  context = await launchBrowser(profile);
  // No prompt(), confirm() or alert(): each throws in the page and is reported here.
  const promptCalls = [];
  await context.exposeBinding("__relayPromptCalled", (_source, what) => { promptCalls.push(what); });
  await context.addInitScript(() => {
    for (const f of ["prompt", "confirm", "alert"]) {
      window[f] = (message) => { window.__relayPromptCalled(f + "(" + message + ")"); throw new Error(f + "() is not allowed"); };
    }
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("dialog", (d) => { promptCalls.push(d.type() + ": " + d.message()); d.dismiss().catch(() => {}); });
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
    assert.ok(r.passed > 10, `axe-core checked the page (${r.passed} rules passed)`);
    console.log(`forms e2e: axe-core: 0 violations, ${r.passed} rules passed (${label})`);
  };
  const masked = async (locator, autocomplete) => {
    const got = await locator.evaluate((i) => ({ type: i.type, autocomplete: i.getAttribute("autocomplete") }));
    assert.deepEqual(got, { type: "password", autocomplete }, "a masked password field");
  };
  const login = async (username, password) => {
    await page.locator("#login-username").fill(username);
    await page.locator("#login-password").fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
  };
  const firstLogin = async (username, temporary, chosen) => {
    await login(username, temporary);
    await page.getByText("Your password was set by an administrator").waitFor();
    await page.locator("#pw-new").fill(chosen);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Password changed; log in with the new one.").waitFor();
    await login(username, chosen);
  };
  const notice = page.locator("#notice");
  const toast = page.locator("#toast");

  await page.goto(base + "/");
  await page.getByRole("heading", { name: "Create the first administrator" }).waitFor();
  await page.locator("#reg-username").fill("ada");
  await page.getByLabel("Full name (printed on signatures)").fill("Ada Lovelace");
  await page.getByLabel("Password (at least 12 characters)").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Register administrator" }).click();
  await page.getByText("Administrator ada registered").waitFor();
  await login("ada", ADMIN_PW);
  await page.locator("#me-role").filter({ hasText: "admin" }).waitFor();

  // 1. Accounts: a second administrator and an operator directly; a reviewer proposed.
  await page.getByRole("button", { name: "Manage accounts" }).click();
  const createAccount = async (username, fullName, role, reason) => {
    await page.locator("#new-username").fill(username);
    await page.locator("#new-fullname").fill(fullName);
    await page.locator("#new-password").fill(TEMPORARY_PW);
    await page.locator("#new-role").selectOption(role);
    await page.locator("#new-reason").fill(reason);
    await page.getByRole("button", { name: "Create account" }).click();
  };
  await createAccount("bea", "Bea Second-Admin", "admin", "second administrator for four-eyes");
  await toast.filter({ hasText: "Account bea created" }).waitFor();
  await createAccount("otto", "Otto Operator", "operator", "runs the NMR");
  await toast.filter({ hasText: "Account otto created" }).waitFor();
  await createAccount("rita", "Rita Reviewer", "reviewer", "new QA reviewer");
  await page.locator("#create-account-result").filter({ hasText: "A reviewer account needs a second administrator" }).waitFor();

  // 2. Reset password: a dialog with a masked temporary password, a required reason and a
  // confirmation; errors beside their fields; nothing sent until all are right.
  const ottoRow = page.locator("#accounts-table tbody tr").filter({ hasText: "Otto Operator" });
  await ottoRow.getByRole("button", { name: "Reset password" }).click();
  const accountDialog = page.locator("#account-dialog[open]");
  await accountDialog.waitFor();
  const tempField = accountDialog.getByLabel(/^Temporary password/);
  await masked(tempField, "new-password");
  assert.equal(await page.evaluate(() => document.activeElement.id), "account-password", "focus on the first field");
  await accountDialog.getByRole("button", { name: "Reset password" }).click();
  await accountDialog.locator("#account-password-error").filter({ hasText: "at least 12 characters" }).waitFor();
  await accountDialog.locator("#account-reason-error").filter({ hasText: "Enter a reason" }).waitFor();
  await accountDialog.locator("#account-confirm-error").filter({ hasText: "Tick the box" }).waitFor();
  assert.equal(await tempField.getAttribute("aria-invalid"), "true");
  await axe("reset password dialog with inline errors");
  await tempField.fill(RESET_PW);
  await accountDialog.getByLabel("Reason (required, recorded with the change)").fill("Otto forgot his password (ticket 4711).");
  await accountDialog.getByLabel("I confirm resetting the password of otto").check();
  // Otto's row read "temporary password" before the reset too: wait for the list read after it.
  const accountsReloaded = page.waitForResponse((r) => r.request().method() === "GET" && r.url().endsWith("/api/v1/accounts"));
  await accountDialog.getByRole("button", { name: "Reset password" }).click();
  await toast.filter({ hasText: "Account otto changed." }).waitFor();
  await (await accountsReloaded).finished();
  await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => ok())));
  assert.equal(await page.locator("#account-dialog").evaluate((d) => d.open), false);
  await ottoRow.filter({ hasText: "temporary password" }).waitFor();
  const ottoLogin = await fetch(base + "/api/v1/auth/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "otto", password: RESET_PW }) }).then((r) => r.json());
  assert.equal(ottoLogin.must_change_password, true, "the reset set a temporary password: " + JSON.stringify(ottoLogin));

  // A role change is applied only once confirmed: Cancel leaves the role as it was.
  await page.getByLabel("Role of otto", { exact: true }).selectOption("auditor");
  await accountDialog.getByText("Role of otto (Otto Operator): operator → auditor").waitFor();
  await accountDialog.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await page.getByLabel("Role of otto", { exact: true }).inputValue(), "operator");

  // 3. Withdrawing a proposal: a reason and a confirmation.
  await page.getByRole("button", { name: "Configuration changes" }).click();
  await page.locator("#change-setting").selectOption("settle_ms");
  await page.locator("#cv-value").fill("5000");
  await page.locator("#change-reason").fill("slower instrument writes");
  await page.getByRole("button", { name: "Propose change" }).click();
  await toast.filter({ hasText: /Change cr-\w+ proposed/ }).waitFor();
  await page.locator("#changes-table tbody tr").filter({ hasText: "settle_ms" }).getByRole("button", { name: "Withdraw" }).click();
  const decide = page.locator("#decide-dialog[open]");
  await decide.getByLabel("Reason (required, recorded with the decision)").fill("proposed by mistake");
  await decide.getByRole("button", { name: "Withdraw change" }).click();
  await decide.locator("#decide-confirm-error").filter({ hasText: "Tick the box" }).waitFor();
  await axe("withdraw dialog with an inline error");
  await decide.getByLabel("I confirm withdrawing my proposal").check();
  await decide.getByRole("button", { name: "Withdraw change" }).click();
  await toast.filter({ hasText: / withdrawn\.$/ }).waitFor();
  await page.getByRole("button", { name: "Log out" }).click();

  // 4. The second administrator approves the reviewer in a dialog: the password masked, a
  // wrong one answered inline (the dialog stays open, the session too).
  await firstLogin("bea", TEMPORARY_PW, SECOND_ADMIN_PW);
  await page.locator("#me-role").filter({ hasText: "admin" }).waitFor();
  await page.getByRole("button", { name: "Configuration changes" }).click();
  await page.getByRole("row").filter({ hasText: "account_create" }).getByRole("button", { name: "Approve (sign)" }).click();
  await decide.waitFor();
  const approvePw = decide.getByLabel("Your password (approval is a signature)");
  await masked(approvePw, "current-password");
  await decide.getByRole("button", { name: "Approve (sign)" }).click();
  await decide.locator("#decide-reason-error").filter({ hasText: "Enter a reason" }).waitFor();
  await decide.locator("#decide-password-error").filter({ hasText: "Enter your password" }).waitFor();
  await decide.getByLabel("Reason (required, recorded with the decision)").fill("Rita joins QA as a reviewer; agreed with ada.");
  await approvePw.fill("not the password at all");
  await decide.getByRole("button", { name: "Approve (sign)" }).click();
  await decide.locator("#decide-error").filter({ hasText: "wrong username or password" }).waitFor();
  assert.equal(await approvePw.inputValue(), "", "the wrong password is cleared");
  assert.equal(await page.locator("#app-view").isVisible(), true, "a wrong password ends no session");
  await axe("approve dialog, wrong password");
  await approvePw.fill(SECOND_ADMIN_PW);
  await decide.getByRole("button", { name: "Approve (sign)" }).click();
  const approved = page.locator("#changes-result-text").filter({ hasText: "Temporary password for rita" });
  await approved.waitFor();
  const ritaTemporary = /first login\): (\S+)$/.exec((await approved.innerText()).trim())?.[1];
  assert.ok(ritaTemporary, "the approval shows rita's temporary password once");
  await page.getByRole("button", { name: "Log out" }).click();

  // 5. The reviewer signs; her session is ended from elsewhere while the dialog is open.
  await firstLogin("rita", ritaTemporary, REVIEWER_PW);
  await page.locator("#me-role").filter({ hasText: "reviewer" }).waitFor();
  const range = page.locator("#range");
  await waitFor("the three captures", async () => {
    await page.getByRole("button", { name: "Filter" }).click();
    // Wait for this load to finish (rows and total) before reading the range: reading right
    // after the click would see "Loading…" or race the answer.
    await page.waitForFunction(() => {
      const t = document.getElementById("range").textContent;
      return t !== "" && !t.startsWith("Loading") && !t.includes("counting");
    }, null, { timeout: 15000 }).catch(() => {});
    return /^1–3 of 3/.test(await range.innerText());
  }, 60000);
  await page.goto(base + `/#/trail/${TRAIL}/record/1`);
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #1` }).waitFor();

  // The record reads like evidence: size in units, SHA-256, mtime, local time beside UTC.
  const fields = await page.locator("#detail-fields").innerText();
  assert.match(fields, /Size\s+[246] kB \([246],000 bytes\)/);
  assert.match(fields, /SHA-256\s+[0-9a-f]{64}/);
  assert.match(fields, /File modified \(mtime\)\s+\d{4}-\d{2}-\d{2}T[\d:.]+Z \(UTC\)/);
  assert.match(fields, /Recorded\s+\S+Z \(UTC\)\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \(local, UTC[+-]\d{2}:\d{2}\)/);
  assert.doesNotMatch(fields, /"sha256"/, "no raw JSON payload");

  await page.getByRole("button", { name: "Sign this record…" }).click();
  const sign = page.locator("#sign-dialog");
  await sign.locator(":scope[open]").waitFor();
  assert.equal(await sign.locator("#sign-as").innerText(), "Signing as Rita Reviewer (rita)");
  assert.match(await sign.locator("#sign-meaning-help").innerText(), /^Reviewed: /);
  await sign.getByLabel("Meaning").selectOption("approved");
  assert.match(await sign.locator("#sign-meaning-help").innerText(), /^Approved: .*prior review/);
  await sign.getByLabel("Meaning").selectOption("reviewed");
  const REASON = "Spectrum checked against SOP-12; baseline and phase correct.";
  await sign.getByLabel("Reason").fill(REASON);
  await masked(sign.getByLabel("Password (signing re-checks it)"), "current-password");
  await sign.getByLabel("Password (signing re-checks it)").fill(REVIEWER_PW);
  // Another tab logs the same session out.
  const token = await page.evaluate(() => sessionStorage.getItem("relay-token"));
  const out = await fetch(base + "/api/v1/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } });
  assert.equal(out.status, 204);
  await sign.getByRole("button", { name: "Sign", exact: true }).click();
  const relogin = sign.locator("#relogin-form");
  await relogin.waitFor();
  assert.equal(await sign.evaluate((d) => d.open), true, "the dialog stays open");
  assert.equal(await sign.getByLabel("Reason").inputValue(), REASON, "the reason is kept");
  assert.equal(await relogin.getByLabel("Username").inputValue(), "rita");
  await masked(relogin.getByLabel("Password", { exact: true }), "current-password");
  assert.equal(await page.evaluate(() => document.activeElement.id), "relogin-password");
  assert.equal(await sign.getByRole("button", { name: "Sign", exact: true }).isDisabled(), true);
  await axe("sign dialog, re-login after the session ended");
  await relogin.getByLabel("Password", { exact: true }).fill("wrong password entirely");
  await relogin.getByRole("button", { name: "Log in again" }).click();
  await relogin.locator("#relogin-error").filter({ hasText: "wrong username or password" }).waitFor();
  await relogin.getByLabel("Password", { exact: true }).fill(REVIEWER_PW);
  await relogin.getByRole("button", { name: "Log in again" }).click();
  await relogin.waitFor({ state: "hidden" });
  assert.equal(await sign.getByLabel("Reason").inputValue(), REASON, "the reason survives the re-login");
  await sign.getByLabel("Password (signing re-checks it)").fill(REVIEWER_PW);
  await sign.getByRole("button", { name: "Sign", exact: true }).click();
  const m = page.locator(".manifestation").first();
  await m.waitFor();
  assert.match(await m.innerText(), /Rita Reviewer \(rita\)[\s\S]*REVIEWED[\s\S]*SOP-12/);

  // 5b. A file's history across versions (issue 25, third slice): the signed file is modified;
  // its new record lists both versions oldest first, each linked, with size, the previous ->
  // new SHA-256 of the modification, each version's signatures, the open version marked.
  const sha = (b) => createHash("sha256").update(b).digest("hex");
  const subject = await page.evaluate(() => state.record.subject);
  const name = subject.split(/[\\/]/).pop();
  const oldBytes = readFileSync(join(watchDir, "run3", name));
  const newBytes = Buffer.from("NMR FID reprocessed\n".repeat(300));
  writeFileSync(join(watchDir, "run3", name), newBytes);
  const modified = await waitFor("the FILE_MODIFIED record", async () => {
    const r = await page.evaluate(async (t) => {
      const resp = await fetch("/api/v1/events?trail=" + t + "&kind=FILE_MODIFIED", { headers: { Authorization: "Bearer " + state.token } });
      return resp.json();
    }, TRAIL);
    return r.events && r.events.find((e) => e.subject === subject);
  });
  await page.goto(base + `/#/trail/${TRAIL}/record/${modified.chain_seq}`);
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #${modified.chain_seq}` }).waitFor();
  const versions = page.locator("#history li.version");
  await versions.nth(1).waitFor();
  assert.equal(await versions.count(), 2, "two versions of " + subject);
  assert.match(await page.locator("#history-note").innerText(), /^2 versions of .* oldest first\.$/);
  const v1 = versions.nth(0), v2 = versions.nth(1);
  assert.equal(await v1.getByRole("link").getAttribute("href"), `#/trail/${TRAIL}/record/1`);
  assert.equal(await v2.getByRole("link").getAttribute("href"), `#/trail/${TRAIL}/record/${modified.chain_seq}`);
  assert.match(await v1.innerText(), /^#1 FILE_CREATED — \S+Z \(UTC\)/);
  assert.match(await v1.innerText(), new RegExp("SHA-256: " + sha(oldBytes)));
  assert.match(await v1.innerText(), /Signatures: reviewed by Rita Reviewer \(rita\)/);
  assert.match(await v2.innerText(), /FILE_MODIFIED/);
  assert.match(await v2.innerText(), new RegExp("SHA-256: " + sha(oldBytes) + " → " + sha(newBytes)));
  assert.match(await v2.innerText(), /Size: 6 kB \(6,000 bytes\)/);
  assert.match(await v2.innerText(), /No signature on this version\./);
  assert.equal(await v2.getAttribute("aria-current"), "true");
  assert.match(await v2.innerText(), /\(this version\)/);
  assert.equal(await v1.getAttribute("aria-current"), null);
  await axe("file history, modified version open");
  mkdirSync(dirname(historyShot), { recursive: true });
  await page.locator("#history-box").screenshot({ path: historyShot });
  await v1.getByRole("link").click();
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #1` }).waitFor();
  await page.locator('#history li.version[aria-current="true"][data-seq="1"]').waitFor();
  assert.equal(await page.locator("#history li.version").count(), 2);

  // 5c. The printable report of a filtered view: the header names the trail, the filter and
  // the last verify verdict; on paper no navigation or buttons, each manifestation in full.
  await page.goto(base + `/#/trail/${TRAIL}?kind=FILE_CREATED`);
  await range.filter({ hasText: /^1–3 of 3/ }).waitFor();
  await page.getByRole("button", { name: "Verify this trail" }).click();
  await page.locator("#verdict .ok").filter({ hasText: TRAIL }).waitFor();
  await page.evaluate(() => { window.printCalls = 0; window.print = () => { window.printCalls++; }; });
  await page.getByRole("button", { name: "Print report" }).click();
  // The dialog offers the page shown or the whole filtered view; the page shown is the default.
  const printDialog = page.locator("#print-dialog");
  await printDialog.waitFor();
  assert.equal(await page.getByRole("radio", { name: /The page shown/ }).isChecked(), true);
  assert.match(await page.locator("#print-whole-text").innerText(), /The whole filtered view \(3 records; at most 10,000\)/);
  await axe("print dialog");
  await printDialog.getByRole("button", { name: "Print", exact: true }).click();
  assert.equal(await page.evaluate(() => window.printCalls), 1, "the browser's print is asked once");
  const displayOf = (sel) => page.locator(sel).first().evaluate((e) => getComputedStyle(e).display);
  assert.equal(await displayOf("#report-header"), "none", "the report header is for paper only");
  await page.emulateMedia({ media: "print" });
  for (const sel of ["nav.trails", "nav.pager", "#filter-form", "#whoami", "#print-report", "#verify-trail", ".skip-link"]) {
    assert.equal(await displayOf(sel), "none", sel + " is not printed");
  }
  assert.equal(await displayOf("#report-header"), "block");
  assert.notEqual(await displayOf("#events-table"), "none");
  const header = await page.locator("#report-header").innerText();
  assert.match(header, new RegExp("Audit-trail report — trail " + TRAIL));
  assert.match(header, /Printed \d{4}-\d{2}-\d{2}T\S+Z \(UTC\).* by Rita Reviewer \(rita\)/);
  assert.match(header, /Filter: kind FILE_CREATED; newest first\./);
  assert.match(header, /Last verify verdict: OK, the chain up to #\d+ checks out\./);
  assert.match(header, /Records: 1–3 of 3/);
  const printedSig = page.locator('#events-table tr[data-seq="1"] .manifestation-print');
  assert.equal(await printedSig.evaluate((e) => getComputedStyle(e).display), "block");
  assert.match(await printedSig.innerText(), /Rita Reviewer \(rita\) — REVIEWED — \S+Z \(UTC\) — Reason: .*SOP-12/);
  await axe("print media, report header shown");
  await page.screenshot({ path: reportShot });
  await page.emulateMedia({ media: "screen" });
  assert.equal(await displayOf("#report-header"), "none");
  await axe("list after printing");

  // 6. Tamper with record #2 as an attacker with file access (relay stopped), restart.
  await stopRelay();
  const db = join(dataDir, "relay.db");
  assert.ok(existsSync(db), "the edge's store is " + db);
  const edit = spawnSync(sqlite3, [db, "DROP TRIGGER event_log_no_update; " +
    `UPDATE event_log SET device = 'forged-ws' WHERE trail_id = '${TRAIL}' AND chain_seq = 2;`], { encoding: "utf8" });
  assert.equal(edit.status, 0, "sqlite3: " + edit.stdout + edit.stderr);
  await startRelay();
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(base + "/");
  await login("rita", REVIEWER_PW);
  await page.locator("#me-role").filter({ hasText: "reviewer" }).waitFor();
  await range.filter({ hasText: /of \d/ }).waitFor();
  await page.getByRole("button", { name: "Verify this trail" }).click();
  const broken = page.locator("#verdict .broken").filter({ hasText: TRAIL });
  await broken.waitFor();
  const link = broken.getByRole("link", { name: "first bad record #2" });
  assert.equal(await link.getAttribute("href"), `#/trail/${TRAIL}/record/2`);
  await link.click();
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #2` }).waitFor();
  assert.equal(await page.evaluate(() => decodeURIComponent(location.hash)), `#/trail/${TRAIL}/record/2`);
  const badRow = page.locator('#events-table tbody tr[data-seq="2"]');
  assert.match(await badRow.innerText(), /first bad record/, "the row is marked in words");
  assert.equal(await page.locator("#events-table .badge.bad").count(), 1);
  assert.equal(await page.getByRole("button", { name: "Sign this record…" }).isDisabled(), true);
  assert.match(await page.locator("#sign-blocked").innerText(), /broken at record #2 \(this record\)/);
  assert.match(await page.locator("#detail-integrity").innerText(), /^BROKEN/);
  await axe("broken verdict, first bad record opened");
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  // At and after the break signing stays disabled; before it, it is allowed.
  await page.locator('#events-table tbody tr[data-seq="3"] a').click();
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #3` }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Sign this record…" }).isDisabled(), true);
  assert.match(await page.locator("#sign-blocked").innerText(), /before this record/);
  await page.locator('#events-table tbody tr[data-seq="1"] a').click();
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #1` }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Sign this record…" }).isDisabled(), false);
  assert.equal(await page.locator("#sign-blocked").isHidden(), true);

  assert.deepEqual(promptCalls, [], "no prompt(), confirm() or alert()");
  assert.deepEqual(cspViolations, [], "no Content-Security-Policy violation");
  console.log(`forms e2e: OK (screenshots ${screenshot}, ${historyShot}, ${reportShot})`);
} finally {
  if (context) await context.close();
  if (relay && !relay.exit) await stopRelay();
  rmSync(work, { recursive: true, force: true });
}
if (relay?.exit && relay.exit.code !== 0 && relay.exit.signal === null) {
  throw new Error("relay-edge exited with " + JSON.stringify(relay.exit));
}
