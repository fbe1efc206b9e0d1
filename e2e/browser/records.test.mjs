// REQ: R11.1 (run by .ci/browser.sh, outside the Rust test suite)
// End-to-end test of the record list (issue 25, first slice) in headless Chromium: a real
// relay-edge captures 120 files; an administrator lands on the capture trail (not _relay),
// newest first with "1–50 of 120"; first / previous / next / last with visibly disabled
// states; the sort toggle; every view in the URL (reload and back keep the place); a record
// opened with the keyboard only (skip link, Tab, Enter) shown beside the list with focus on its
// heading; the kind picker (case-insensitive from the URL), date-time pickers in local time and
// an inline error that clears stale results; _relay without ACCESS events unless asked; a 400 px
// run; the printed report of the whole filtered view (every record read in pages, the header
// counting them, a cap said in the header, cancel); the warning before idle expiry (fake page clock) and "Stay signed in"; axe-core in every
// state (0 violations); no Content-Security-Policy violation.
//
// Env: RELAY_EDGE_BIN (default ../../target/debug/relay-edge), CHROMIUM (default
// /usr/bin/chromium), LIST_SCREENSHOT (default ../../docs/screenshots/review-list.png).
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import assert from "node:assert/strict";
import { axeSource, edgeBin, freePort, healthy, launchBrowser, listLoaded, repo, startProcess, stopProcess, waitFor } from "./helpers.mjs";

const screenshot = process.env.LIST_SCREENSHOT || join(repo, "docs/screenshots/review-list.png");
const ADMIN_PW = "records keeper 2026 list";
const FILES = 120;
const TRAIL = "nmr-list";

const work = mkdtempSync(join(tmpdir(), "relay-records-e2e-"));
const dataDir = join(work, "data");
const watchDir = join(work, "instrument");
const profile = join(work, "chromium-profile");
mkdirSync(join(watchDir, "run7"), { recursive: true });
for (let i = 1; i <= FILES; i++) writeFileSync(join(watchDir, "run7", `fid-${String(i).padStart(3, "0")}.fid`), `NMR FID ${i}\n`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const relay = startProcess("relay-edge", edgeBin, ["run", "--data-dir", dataDir, "--watch", watchDir, "--listen", `127.0.0.1:${port}`,
  "--settle-ms", "300", "--device", "e2e-ws", "--trail", TRAIL, "--project", "PRJ-LIST"]);

let context;
try {
  await healthy(relay, base);
  context = await launchBrowser(profile);
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
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
    console.log(`records e2e: axe-core: 0 violations, ${r.passed} rules passed (${label})`);
  };
  const noPageScroll = async (label) => {
    const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    assert.ok(scroll <= client, `${label}: the page scrolls horizontally (${scroll} > ${client})`);
  };
  const range = page.locator("#range");
  const seqsShown = () => page.locator("#events-table tbody tr[data-seq]").evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  const hash = () => page.evaluate(() => decodeURIComponent(location.hash));

  await page.goto(base + "/");
  // A fresh relay has no account: the first administrator is created on a page of its own,
  // not under the login form (GET /auth/setup, issue 25).
  await page.getByRole("heading", { name: "Create the first administrator" }).waitFor();
  assert.equal(await page.locator("#login-view").isVisible(), false, "no login form before any account exists");
  assert.equal(await page.locator("#reg-password").getAttribute("type"), "password", "the password is masked");
  await axe("first-start setup page");
  await page.locator("#reg-username").fill("ada");
  await page.getByLabel("Full name (printed on signatures)").fill("Ada Lovelace");
  await page.getByLabel("Password (at least 12 characters)").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Register administrator" }).click();
  await page.getByText("Administrator ada registered").waitFor();
  // From now on only the login form: no registration box, also after a reload.
  for (const reloaded of [false, true]) {
    if (reloaded) { await page.reload(); await page.getByRole("heading", { name: "Log in" }).waitFor(); }
    assert.equal(await page.locator("#setup-view").isVisible(), false, "the setup page is gone once an account exists");
    assert.equal(await page.getByRole("button", { name: "Register administrator" }).isVisible(), false, "no registration box on the login page");
    assert.equal(await page.locator("#login-form").isVisible(), true);
  }
  await page.locator("#login-username").fill("ada");
  await page.locator("#login-password").fill(ADMIN_PW);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#me-role").filter({ hasText: "admin" }).waitFor();

  // 1. The landing view: the capture trail (not _relay), newest first, with the total.
  await waitFor("all captures", async () => {
    await page.getByRole("button", { name: "Filter" }).click();
    // Wait for this load to finish (rows and total) before reading the range: reading right
    // after the click would see "Loading…" or race the answer.
    await page.waitForFunction(() => {
      const t = document.getElementById("range").textContent;
      return t !== "" && !t.startsWith("Loading") && !t.includes("counting");
    }, null, { timeout: 15000 }).catch(() => {});
    return /^1–50 of 120, newest first$/.test(await range.innerText());
  }, 60000);
  assert.equal(await hash(), `#/trail/${TRAIL}`);
  assert.equal(await page.getByRole("button", { name: new RegExp("^" + TRAIL) }).getAttribute("aria-current"), "true");
  let seqs = await seqsShown();
  assert.equal(seqs.length, 50);
  assert.deepEqual(seqs.slice(0, 3), [FILES, FILES - 1, FILES - 2], "newest first");

  // Disabled pager buttons: inert, aria-disabled, and drawn differently from enabled ones.
  const look = (id) => page.locator(id).evaluate((b) => ({ disabled: b.disabled, aria: b.getAttribute("aria-disabled"), bg: getComputedStyle(b).backgroundColor }));
  const first = await look("#first-page"); const prev = await look("#prev-page"); const next = await look("#next-page");
  assert.deepEqual([first.disabled, first.aria, prev.disabled, prev.aria], [true, "true", true, "true"]);
  assert.deepEqual([next.disabled, next.aria], [false, "false"]);
  assert.notEqual(first.bg, next.bg, "a disabled button looks different");
  await axe("landing, newest first");

  // 2. Next, last, previous, first.
  await page.getByRole("button", { name: "Next page" }).click();
  await range.filter({ hasText: /^51–100 of 120/ }).waitFor();
  assert.equal((await seqsShown())[0], FILES - 50);
  assert.match(await hash(), /\?from=70$/);
  await page.getByRole("button", { name: "Last page" }).click();
  await range.filter({ hasText: /^101–120 of 120/ }).waitFor();
  assert.deepEqual(await seqsShown(), Array.from({ length: 20 }, (_, i) => 20 - i));
  assert.equal((await look("#next-page")).disabled, true);
  assert.equal((await look("#last-page")).aria, "true");
  await page.getByRole("button", { name: "Previous page" }).click();
  await range.filter({ hasText: /^51–100 of 120/ }).waitFor();
  assert.equal((await seqsShown())[0], 70);

  // 3. The URL keeps the place: reload, then back / forward.
  await page.reload();
  await range.filter({ hasText: /^51–100 of 120/ }).waitFor();
  await page.goBack();
  await range.filter({ hasText: /^101–120 of 120/ }).waitFor();
  await page.goForward();
  await range.filter({ hasText: /^51–100 of 120/ }).waitFor();
  await page.getByRole("button", { name: "First page" }).click();
  await range.filter({ hasText: /^1–50 of 120/ }).waitFor();

  // 4. The sort toggle.
  await page.getByLabel("Order").selectOption("asc");
  await range.filter({ hasText: "1–50 of 120, oldest first" }).waitFor();
  assert.deepEqual((await seqsShown()).slice(0, 2), [1, 2]);
  assert.match(await hash(), /order=asc/);
  await page.goBack();
  await range.filter({ hasText: "newest first" }).waitFor();
  assert.equal((await seqsShown())[0], FILES);

  // 5. Keyboard only: the skip link, Tab to the first record, Enter; focus on its heading,
  // the list and the record both in view; one Tab to the record's first action.
  await page.goto(base + "/#/trail/" + TRAIL);
  await page.reload(); // a fresh document: the keyboard starts at the top
  await range.filter({ hasText: /^1–50 of 120/ }).waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "skip-link");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  let presses = 0;
  while (!(await page.evaluate(() => Boolean(document.activeElement.closest("#events-table a"))))) {
    await page.keyboard.press("Tab");
    assert.ok(++presses < 60, "a record link is reachable by Tab");
  }
  const linkName = await page.evaluate(() => document.activeElement.getAttribute("aria-label"));
  assert.equal(linkName, `Open record ${FILES} (FILE_CREATED)`);
  await page.keyboard.press("Enter");
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #${FILES}` }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "detail-title");
  assert.equal(await hash(), `#/trail/${TRAIL}/record/${FILES}`);
  const inView = (sel) => page.locator(sel).evaluate((e) => { const r = e.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0 && r.left < innerWidth && r.right > 0; });
  assert.ok(await inView("#detail-title"), "the record is in view");
  assert.ok(await inView(`#events-table tr[data-seq="${FILES}"]`), "its row is in view beside it");
  const listBox = await page.locator("#events").boundingBox();
  const detailBox = await page.locator("#detail").boundingBox();
  assert.ok(detailBox.x >= listBox.x + listBox.width - 1, "the record is beside the list at 1366 px");
  assert.equal(await page.locator(`#events-table tr[data-seq="${FILES}"]`).getAttribute("aria-current"), "true");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "close-detail", "the record's actions come right after its heading");
  await axe("record open beside the list");
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });
  // Reload: the record stays open.
  await page.reload();
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #${FILES}` }).waitFor();
  await page.keyboard.press("Enter"); // on the focused heading: nothing breaks
  await page.getByRole("button", { name: "Close record" }).click();
  await page.locator("#detail").waitFor({ state: "hidden" });
  assert.equal(await hash(), `#/trail/${TRAIL}`);

  // 6. Filters: the kind picker (a lower-case kind in the URL still finds), local date-time
  // pickers converted to UTC, and an invalid range shown at the field with no stale results.
  await page.goto(base + `/#/trail/${TRAIL}?kind=file_created`);
  // The view before showed the same range line (every record is FILE_CREATED): wait for the
  // Kind picker, set with the new route, and its list.
  await listLoaded(page, () => document.getElementById("f-kind").value === "FILE_CREATED");
  await range.filter({ hasText: /^1–50 of 120/ }).waitFor();
  assert.equal(await page.getByLabel("Kind").inputValue(), "FILE_CREATED");
  await page.getByLabel("Kind").selectOption("FILE_DELETED");
  await page.getByRole("button", { name: "Filter" }).click();
  await range.filter({ hasText: "No matching records" }).waitFor();
  await page.getByLabel("Kind").selectOption("");
  await page.getByLabel("Since (local time)").fill("2000-01-01T00:00");
  await page.getByRole("button", { name: "Filter" }).click();
  await range.filter({ hasText: /^1–50 of 120/ }).waitFor();
  const since = new URLSearchParams((await hash()).split("?")[1]).get("since");
  assert.equal(since, new Date("2000-01-01T00:00").toISOString().replace(".000Z", "Z"), "since is sent as RFC 3339 UTC");
  await page.getByLabel("Until (local time)").fill("1999-06-01T12:30");
  await page.getByRole("button", { name: "Filter" }).click();
  const err = page.locator("#f-until-error");
  await err.filter({ hasText: "Until must be after Since." }).waitFor();
  assert.equal(await page.getByLabel("Until (local time)").getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator("#events-table tbody tr").count(), 0, "no stale results under an invalid filter");
  assert.match(await range.innerText(), /correct the highlighted field/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-until");
  await axe("invalid date range");
  await page.getByLabel("Until (local time)").fill("");
  await page.getByLabel("Since (local time)").fill("");
  await page.getByRole("button", { name: "Filter" }).click();
  await range.filter({ hasText: /^1–50 of 120/ }).waitFor();
  assert.equal(await err.innerText(), "");

  // 7. _relay: account and configuration events first; ACCESS only when asked.
  await page.getByRole("button", { name: /^_relay/ }).click();
  const kinds = () => page.locator("#events-table tbody tr[data-seq] td:nth-child(2)").allInnerTexts();
  // The range line of the trail shown before also ends "newest first": wait for _relay's own
  // rows (its REGISTER event), not for that line, before reading what is shown.
  await waitFor("_relay's events", async () => (await kinds()).includes("REGISTER"));
  let shown = await kinds();
  assert.ok(shown.length > 0 && !shown.includes("ACCESS"), "ACCESS hidden by default: " + shown.join(","));
  assert.ok(shown.includes("REGISTER") && shown.includes("LOGIN"), shown.join(","));
  const hiddenTotal = await range.innerText();
  await page.getByLabel("Show access events").check();
  await waitFor("ACCESS events", async () => (await kinds()).includes("ACCESS"));
  assert.match(await hash(), /access=1/);
  assert.notEqual(await range.innerText(), hiddenTotal);
  await axe("_relay with access events");

  // 7b. The printed report of the whole filtered view (not only the page shown): every record,
  // read in pages (shrunk to 50 here, 500 in use) with progress; the header counts them.
  await page.goto(base + "/#/trail/" + TRAIL);
  // _relay's range line could read the same if its count were 120: wait for this trail's view.
  await listLoaded(page, (t) => document.getElementById("events-title").textContent === "Records of " + t, TRAIL);
  await range.filter({ hasText: /^1–50 of 120, newest first$/ }).waitFor();
  await page.evaluate(() => {
    window.printCalls = 0; window.print = () => { window.printCalls++; };
    document.getElementById("print-dialog").dataset.pageSize = "50";
  });
  const printReads = [];
  page.on("request", (rq) => { if (/\/api\/v1\/events\?.*limit=50\b/.test(rq.url())) printReads.push(rq.url()); });
  await page.getByRole("button", { name: "Print report" }).click();
  await page.getByRole("radio", { name: /The whole filtered view \(120 records; at most 10,000\)/ }).check();
  await axe("print dialog, whole view chosen");
  printReads.length = 0;
  await page.locator("#print-dialog").getByRole("button", { name: "Print", exact: true }).click();
  await waitFor("the whole view printed", () => page.evaluate(() => window.printCalls === 1));
  assert.ok(printReads.length >= 3, "120 records read in pages of 50: " + printReads.length);
  await page.emulateMedia({ media: "print" });
  const printedSeqs = await page.locator("#report-all-table tbody tr").evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  assert.equal(printedSeqs.length, 120, "every record of the view is in the printed section");
  assert.deepEqual(printedSeqs, [...printedSeqs].sort((a, b) => b - a), "in the view's order (newest first)");
  assert.equal(new Set(printedSeqs).size, 120);
  assert.equal(await page.locator("#events-table").evaluate((e) => getComputedStyle(e).display), "none", "the page shown is not printed twice");
  assert.match(await page.locator("#report-header").innerText(), /Records 120 of 120 \(the whole filtered view\)\./);
  await axe("print media, whole filtered view");
  await page.emulateMedia({ media: "screen" });
  assert.equal(await page.locator("#report-all").evaluate((e) => getComputedStyle(e).display), "none", "on screen only the list");
  // A cap that cuts the view is said in the header, never silently.
  await page.evaluate(() => { document.getElementById("print-dialog").dataset.max = "70"; });
  await page.getByRole("button", { name: "Print report" }).click();
  await page.getByRole("radio", { name: /The whole filtered view \(120 records; at most 70\)/ }).check();
  await page.locator("#print-dialog").getByRole("button", { name: "Print", exact: true }).click();
  await waitFor("the capped view printed", () => page.evaluate(() => window.printCalls === 2));
  assert.equal(await page.locator("#report-all-table tbody tr").count(), 70);
  assert.match(await page.locator("#report-range").innerText(), /Records 70 of 120 \(the whole filtered view; CUT at the first 70 records: narrow the filter to print the rest\)\./);
  // Cancel: the dialog closes, nothing printed.
  await page.getByRole("button", { name: "Print report" }).click();
  await page.locator("#print-dialog").getByRole("button", { name: "Cancel" }).click();
  await page.locator("#print-dialog").waitFor({ state: "hidden" });
  assert.equal(await page.evaluate(() => window.printCalls), 2);

  // 8. 400 px: one column, no horizontal page scroll; a record opens below the list.
  await page.setViewportSize({ width: 400, height: 800 });
  await page.getByRole("button", { name: "Print report" }).click();
  await page.getByRole("radio", { name: /The whole filtered view/ }).check();
  await noPageScroll("400 px, print dialog");
  await axe("400 px, print dialog");
  await page.locator("#print-dialog").getByRole("button", { name: "Cancel" }).click();
  await page.goto(base + `/#/trail/${TRAIL}/record/3`);
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #3` }).waitFor();
  await noPageScroll("400 px with a record open");
  assert.equal(await page.evaluate(() => document.activeElement.id), "detail-title");
  await axe("400 px with a record open");

  // 9. The warning before idle expiry (issue 25, third slice): the login answered the idle
  // timeout; a minute before it ends a non-modal warning offers "Stay signed in", one
  // authenticated call that restarts it. The page's clock is faked (the server's is not).
  await page.setViewportSize({ width: 1366, height: 860 });
  const idleSecs = await page.evaluate(() => Number(sessionStorage.getItem("relay-idle-secs")));
  assert.ok(idleSecs > 120, "the idle timeout is known from the login: " + idleSecs);
  await page.clock.install();
  await page.reload();
  await page.locator("#detail-title").filter({ hasText: `${TRAIL} #3` }).waitFor();
  const idleWarning = page.locator("#idle-warning");
  assert.equal(await idleWarning.isHidden(), true);
  await page.clock.runFor((idleSecs - 61) * 1000);
  assert.equal(await idleWarning.isHidden(), true, "no warning earlier than a minute before");
  await page.clock.runFor(2000);
  await idleWarning.waitFor();
  assert.match(await idleWarning.innerText(), /your session ends at \d{2}:\d{2}:\d{2} \(local time\) unless you stay signed in/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "detail-title", "the warning takes no focus");
  await axe("warning before idle expiry");
  const touched = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/me") && r.ok());
  await idleWarning.getByRole("button", { name: "Stay signed in" }).click();
  await touched;
  await idleWarning.waitFor({ state: "hidden" });
  await page.clock.runFor((idleSecs - 61) * 1000);
  assert.equal(await idleWarning.isHidden(), true, "the timeout restarted");

  assert.deepEqual(cspViolations, [], "no Content-Security-Policy violation");
  console.log(`records e2e: OK (screenshot ${screenshot})`);
} finally {
  if (context) await context.close();
  await stopProcess(relay);
  rmSync(work, { recursive: true, force: true });
}
if (relay.exit && relay.exit.code !== 0 && relay.exit.signal === null) {
  throw new Error("relay-edge exited with " + JSON.stringify(relay.exit));
}
