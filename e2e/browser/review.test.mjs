// REQ: R11.1 (run by .ci/browser.sh, outside the Rust test suite)
// End-to-end test of the review UI in headless Chromium: starts the real relay-edge binary
// with a watched folder holding one file, registers the first admin, creates a second admin,
// proposes a reviewer that the second admin approves (four-eyes), logs in
// as the reviewer, finds the captured file's record in her queue, signs it as reviewed, finds it
// with the review status filter and sees the manifestation, then
// downloads a sealed export package and checks it with relay-verify (RELAY_VERIFY_BIN); then
// the administrator completes the access review.
//
// Env: RELAY_EDGE_BIN (default ../../target/debug/relay-edge), CHROMIUM (default
// /usr/bin/chromium), SCREENSHOT (default ../../docs/screenshots/record-detail-signed.png),
// ACCESS_REVIEW_SCREENSHOT (default ../../docs/screenshots/access-review.png).
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import assert from "node:assert/strict";
import { axeSource, edgeBin, freePort, healthy, launchBrowser, listLoaded, repo, startProcess, stopProcess, waitFor } from "./helpers.mjs";

const screenshot = process.env.SCREENSHOT || join(repo, "docs/screenshots/record-detail-signed.png");
const reviewScreenshot = process.env.ACCESS_REVIEW_SCREENSHOT || join(repo, "docs/screenshots/access-review.png");
const ADMIN_PW = "admin password 1";
// Set by the administrator: temporary, replaced by the reviewer at the first login.
const TEMPORARY_PW = "temporary harbour violet 17";
const REVIEWER_PW = "quiet copper lantern 42";
const SECOND_ADMIN_PW = "amber falcon meadow 73";

const work = mkdtempSync(join(tmpdir(), "relay-e2e-"));
const dataDir = join(work, "data");
const watchDir = join(work, "instrument");
const profile = join(work, "chromium-profile");
mkdirSync(join(watchDir, "2026", "run1"), { recursive: true });
writeFileSync(join(watchDir, "2026", "run1", "spectrum.fid"), "NMR FID data\n".repeat(100));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const relay = startProcess("relay-edge", edgeBin, ["run", "--data-dir", dataDir, "--watch", watchDir, "--listen", `127.0.0.1:${port}`,
  "--settle-ms", "300", "--device", "e2e-ws", "--trail", "nmr-e2e", "--project", "PRJ-E2E"]);

let context;
try {
  await healthy(relay, base);
  context = await launchBrowser(profile);
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => { throw e; });
  const axe = async (label) => {
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeSource);
    const r = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return { passed: r.passes.length, violations: r.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary) })) };
    });
    assert.deepEqual(r.violations, [], `axe-core violations (${label}): ${JSON.stringify(r.violations, null, 2)}`);
    console.log(`browser e2e: axe-core: 0 violations, ${r.passed} rules passed (${label})`);
  };
  await page.goto(base + "/");

  // 1. Register the first administrator (open only while no account exists).
  await page.getByRole("heading", { name: "Create the first administrator" }).waitFor();
  await page.getByLabel("Username", { exact: true }).nth(1).fill("ada");
  await page.getByLabel("Full name (printed on signatures)").fill("Ada Lovelace");
  await page.getByLabel("Password (at least 12 characters)").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Register administrator" }).click();
  await page.getByText("Administrator ada registered").waitFor();

  // 2. Log in as the admin; create a second administrator (the one privileged account the
  // bootstrap lets her create alone) and propose the reviewer, a signer, which a second
  // administrator must approve (issue 18: four-eyes for every privileged account).
  await page.locator("#login-username").fill("ada");
  await page.locator("#login-password").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Log in" }).click();
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
  await page.getByText("Account bea created").waitFor();
  await createAccount("rita", "Rita Reviewer", "reviewer", "new QA reviewer");
  await page.getByText("A reviewer account needs a second administrator: proposed as change").waitFor();
  await page.getByRole("button", { name: "Log out" }).click();

  // The second administrator replaces her temporary password, then approves the proposal
  // (a signature: reason and password in a dialog) and is shown rita's temporary password.
  const firstLogin = async (username, temporary, chosen) => {
    await page.locator("#login-username").fill(username);
    await page.locator("#login-password").fill(temporary);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByText("Your password was set by an administrator").waitFor();
    await page.locator("#pw-new").fill(chosen);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Password changed; log in with the new one.").waitFor();
    await page.locator("#login-username").fill(username);
    await page.locator("#login-password").fill(chosen);
    await page.getByRole("button", { name: "Log in" }).click();
  };
  await firstLogin("bea", TEMPORARY_PW, SECOND_ADMIN_PW);
  await page.locator("#me-role").filter({ hasText: "admin" }).waitFor();
  await page.getByRole("button", { name: "Configuration changes" }).click();
  // Approving is a signature: reason and password in a dialog (masked), never a prompt().
  await page.getByRole("row").filter({ hasText: "account_create" }).getByRole("button", { name: "Approve (sign)" }).click();
  const decide = page.locator("#decide-dialog[open]");
  await decide.getByLabel("Reason (required, recorded with the decision)").fill("Rita joins QA as a reviewer; agreed with ada.");
  await decide.getByLabel("Your password (approval is a signature)").fill(SECOND_ADMIN_PW);
  await decide.getByRole("button", { name: "Approve (sign)" }).click();
  const approved = page.locator("#changes-result-text").filter({ hasText: "Temporary password for rita" });
  await approved.waitFor();
  const ritaTemporary = /first login\): (\S+)$/.exec((await approved.innerText()).trim())?.[1];
  assert.ok(ritaTemporary, "the approval shows rita's temporary password once");
  await page.getByRole("button", { name: "Log out" }).click();

  // 3. The reviewer's first login: the password two administrators saw is temporary, so the UI
  // asks for her own before anything else; then she logs in with it and finds the captured record.
  await firstLogin("rita", ritaTemporary, REVIEWER_PW);
  await page.locator("#me-role").filter({ hasText: "reviewer" }).waitFor();
  await waitFor("the captured file's record", async () => {
    await page.getByRole("button", { name: /^nmr-e2e/ }).click({ timeout: 1000 });
    await page.getByLabel("Text").fill("spectrum.fid");
    await page.getByRole("button", { name: "Filter" }).click();
    return await page.getByRole("cell", { name: "2026/run1/spectrum.fid" }).isVisible();
  });
  // That check can pass on her landing queue, which shows the same row, before the trail's
  // text-filtered view renders; a late render would then reset the queue box checked next.
  await listLoaded(page, () => document.getElementById("events-title").textContent.startsWith("Records of ")
    && new URLSearchParams(location.hash.split("?")[1] || "").get("q") === "spectrum.fid");
  // The record awaits her review: it is in her queue, pending (issue 20).
  await page.getByLabel("My queue (awaiting my signature)").check();
  await page.getByRole("button", { name: "Filter" }).click();
  // The text-filtered view before showed the same row: wait for the queue's own list.
  await listLoaded(page, () => !document.getElementById("queue-note").hidden);
  const queued = page.getByRole("row").filter({ hasText: "2026/run1/spectrum.fid" });
  await queued.waitFor();
  assert.match(await queued.innerText(), /pending/);
  await page.getByLabel("My queue (awaiting my signature)").uncheck();
  await page.getByRole("cell", { name: "2026/run1/spectrum.fid" }).click();
  await page.locator("#detail-title").filter({ hasText: "nmr-e2e #1" }).waitFor();
  await page.getByText("Not signed.").waitFor();
  // Focus moved to the opened record (issue 25); signing is one Tab away.
  assert.equal(await page.evaluate(() => document.activeElement.id), "detail-title");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Sign this record…");

  // 4. Sign it: meaning, reason, password. Approval needs a prior review by someone else
  // (the signing workflow), so the first signature is the review. Opened with the keyboard.
  await page.keyboard.press("Enter");
  await page.locator("#sign-dialog[open]").waitFor();
  // Scoped to the sign dialog: other panels (configuration changes) also have a "Reason" field.
  const dialog = page.locator("#sign-dialog");
  await dialog.getByLabel("Meaning").selectOption("reviewed");
  await dialog.getByLabel("Reason").fill("Spectrum reviewed against SOP-12; ready for approval.");
  await dialog.getByLabel("Password (signing re-checks it)").fill(REVIEWER_PW);
  await dialog.getByRole("button", { name: "Sign", exact: true }).click();

  // 5. The manifestation: printed name, meaning, UTC time, reason.
  const m = page.locator(".manifestation").first();
  await m.waitFor();
  const text = await m.innerText();
  assert.match(text, /Rita Reviewer/);
  assert.match(text, /REVIEWED/);
  assert.match(text, /Rita Reviewer \(rita\)/); // the username beside the printed name (issue 18)
  assert.match(text, /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z \(UTC\)/);
  assert.match(text, /SOP-12/);

  // The status filter finds it as reviewed; it has left her queue (she cannot approve her own
  // review).
  await page.getByLabel("Review status").selectOption("reviewed");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator("#events-table .badge.status-reviewed").first().waitFor();
  await page.getByLabel("Review status").selectOption("");
  await page.getByLabel("My queue (awaiting my signature)").check();
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No matching records.").waitFor();
  await page.getByLabel("My queue (awaiting my signature)").uncheck();
  await page.getByRole("button", { name: "Filter" }).click();

  // 6. Verify the trail from the UI.
  await page.getByRole("button", { name: "Verify this trail" }).click();
  await page.locator("#verdict .ok").filter({ hasText: "nmr-e2e" }).waitFor();

  // 7. A sealed export package from the UI, checked offline by relay-verify (when built).
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Sealed export package" }).click(),
  ]);
  const zipPath = join(work, download.suggestedFilename());
  await download.saveAs(zipPath);
  const notice = page.locator("#export-status").filter({ hasText: "relay-verify" });
  await notice.waitFor();
  // The relay states its seal key fingerprint with the export; relay-verify says VERIFIED (exit
  // 0) only for a pinned key, and "intact, origin not pinned" (exit 3) without one.
  const fingerprint = /seal ([0-9a-f]{32})/.exec(await notice.innerText())?.[1];
  assert.ok(fingerprint, "the export notice names the seal key fingerprint");
  const verifyBin = process.env.RELAY_VERIFY_BIN;
  if (verifyBin) {
    const unpinned = spawnSync(verifyBin, [zipPath], { encoding: "utf8" });
    assert.equal(unpinned.status, 3, "relay-verify without a pin: " + unpinned.stdout + unpinned.stderr);
    const out = spawnSync(verifyBin, [zipPath, "--expect-fingerprint", fingerprint], { encoding: "utf8" });
    assert.equal(out.status, 0, "relay-verify of the UI's package: " + out.stdout + out.stderr);
    console.log("browser e2e: relay-verify accepted the UI's sealed package, pinned to " + fingerprint);
  }

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.locator("#detail").scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: true });

  // 8. The administrator's access review: every account with its history, then "Review
  // completed" signed with her password and a reason (ACCESS_REVIEWED in _relay).
  await page.getByRole("button", { name: "Log out" }).click();
  await page.locator("#login-username").fill("ada");
  await page.locator("#login-password").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#me-role").filter({ hasText: "admin" }).waitFor();
  await page.getByRole("button", { name: "Access review" }).click();
  const review = page.locator("#access-review");
  await review.locator("td", { hasText: "Rita Reviewer" }).waitFor();
  assert.match(await review.locator("#access-review-digest").innerText(), /^[0-9a-f]{64}$/);
  const reviewForm = page.locator("#access-review-form");
  const banner = page.locator("#notice");
  // Messages beside their cause (issue 25), not in the top banner: a wrong password in the
  // form (the field marked invalid and described by the error), the export's result beside
  // its button, the completion a toast (role=status).
  await reviewForm.getByLabel("Reason").fill("Quarterly access review: every account justified.");
  await reviewForm.getByLabel("Password").fill("not the password at all");
  await reviewForm.getByRole("button", { name: "Review completed" }).click();
  const reviewError = reviewForm.locator("#access-review-error");
  await waitFor("the wrong password beside the form", async () => (await reviewError.innerText()) !== "");
  assert.equal(await reviewError.getAttribute("role"), "alert");
  assert.equal(await reviewForm.getByLabel("Password").getAttribute("aria-invalid"), "true");
  assert.match(await reviewForm.getByLabel("Password").getAttribute("aria-describedby"), /access-review-error/);
  assert.equal(await banner.isVisible(), false, "nothing in the top banner");
  await axe("access review, wrong password");
  await review.getByRole("button", { name: "Sealed export of the review" }).click();
  const exportStatus = review.locator("#access-review-export-status");
  await exportStatus.filter({ hasText: "relay-verify" }).waitFor();
  assert.equal(await exportStatus.getAttribute("role"), "status");
  assert.equal(await banner.isVisible(), false, "the export's result beside its button");
  await axe("access review, export done");
  await reviewForm.getByLabel("Password").fill(ADMIN_PW);
  await reviewForm.getByRole("button", { name: "Review completed" }).click();
  const toast = page.locator("#toast");
  await toast.filter({ hasText: "Access review completed" }).waitFor();
  assert.equal(await toast.getAttribute("role"), "status");
  assert.equal(await reviewError.innerText(), "", "the error cleared");
  assert.equal(await reviewForm.getByLabel("Password").getAttribute("aria-invalid"), null);
  assert.equal(await banner.isVisible(), false);
  await review.locator("#access-review-summary").filter({ hasText: "since the previous review" }).waitFor();
  await axe("access review completed (toast)");
  await page.setViewportSize({ width: 400, height: 800 });
  const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(scroll <= client, `400 px access review: the page scrolls horizontally (${scroll} > ${client})`);
  await page.setViewportSize({ width: 1366, height: 860 });
  await review.scrollIntoViewIfNeeded();
  await page.screenshot({ path: reviewScreenshot, fullPage: true });
  console.log(`browser e2e: OK (screenshots ${screenshot}, ${reviewScreenshot})`);
} finally {
  if (context) await context.close();
  await stopProcess(relay);
  rmSync(work, { recursive: true, force: true });
}
if (relay.exit && relay.exit.code !== 0 && relay.exit.signal === null) {
  throw new Error("relay-edge exited with " + JSON.stringify(relay.exit));
}
