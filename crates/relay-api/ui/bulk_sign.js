// Bulk signing (issue 25), an ES module imported by records.js: a selection checkbox per
// signable row, "Select all on this page", "Sign selected (N)…", and a dialog like the single
// sign dialog (who signs, the meaning and what it implies, reason, masked password, TOTP when
// enrolled, re-login inside the dialog when the session ended) that lists the records, sends
// one POST /signatures/batch (one authentication for the series, 21 CFR 11.200(a)(1)(i); all
// or nothing) and then shows each record's result. Uses app.js's globals ($, el, api, state,
// notice, MEANING_HELP, CREDENTIAL_ERRORS, loadTrails); text is set with textContent only.

const selected = new Map(); // checksum -> { seq, kind, subject }
let trailOf = null;         // the trail the selection belongs to
let refresh = async () => {};
let shownRows = [];         // the signable events of the page shown

function canSign() { return Boolean(state.me && state.me.role === "reviewer"); }

function signable(e) {
  if (!canSign() || e.kind === "SIGNATURE" || e.trail_id === "_relay") return false;
  const v = state.verdicts[e.trail_id];
  return !(v && !v.ok && v.bad !== null && v.bad <= e.chain_seq);
}

function label(t) { return "#" + t.seq + " " + t.kind + (t.subject ? " " + t.subject : ""); }

function setDisabled(b, off) { b.disabled = off; b.setAttribute("aria-disabled", String(off)); }

// The selection bar above the table.
const bar = el("div", null, { id: "bulk-bar", class: "bulk-bar", hidden: "" });
const allLabel = el("label", null, { class: "bulk-all" });
const all = el("input", null, { type: "checkbox", id: "bulk-all" });
allLabel.append(all, document.createTextNode(" Select all on this page"));
const openButton = el("button", "Sign selected (0)…", { type: "button", id: "bulk-open" });
const clearButton = el("button", "Clear selection", { type: "button", id: "bulk-clear", class: "secondary" });
const count = el("span", "", { id: "bulk-count", role: "status", "aria-live": "polite", class: "muted" });
bar.append(allLabel, openButton, clearButton, count);

function updateBar() {
  const n = selected.size;
  openButton.textContent = "Sign selected (" + n + ")…";
  setDisabled(openButton, n === 0);
  setDisabled(clearButton, n === 0);
  count.textContent = n ? n + (n === 1 ? " record selected" : " records selected") + " in " + trailOf : "";
  const on = shownRows.filter((e) => selected.has(e.checksum)).length;
  all.checked = shownRows.length > 0 && on === shownRows.length;
  all.indeterminate = on > 0 && on < shownRows.length;
  setDisabled(all, shownRows.length === 0);
}

// records.js: a row is drawn; a signable one gets its checkbox in the first cell.
export function decorateRow(tr, e) {
  if (!signable(e)) return;
  const box = el("input", null, {
    type: "checkbox", class: "bulk-select", "data-checksum": e.checksum,
    // Named like the row's link ("Open record N (KIND)"); the subject is in its own cell.
    "aria-label": "Select record " + e.chain_seq + " (" + e.kind + ") for signing",
  });
  box.checked = selected.has(e.checksum);
  box.addEventListener("change", () => {
    if (box.checked) selected.set(e.checksum, { seq: e.chain_seq, kind: e.kind, subject: e.subject });
    else selected.delete(e.checksum);
    updateBar();
  });
  tr.firstChild.prepend(box, document.createTextNode(" "));
}

// records.js: a page is shown (after its rows). A new trail starts a new selection.
export function pageShown(route, events) {
  if (!bar.isConnected) {
    const table = $("events-table");
    (table.closest(".table-scroll") || table).before(bar);
  }
  if (!route || route.trail !== trailOf) { selected.clear(); trailOf = route ? route.trail : null; }
  shownRows = (events || []).filter(signable);
  bar.hidden = !canSign() || !route || route.trail === "_relay";
  updateBar();
}

export function setRefresh(fn) { refresh = fn; }

all.addEventListener("change", () => {
  for (const e of shownRows) {
    if (all.checked) selected.set(e.checksum, { seq: e.chain_seq, kind: e.kind, subject: e.subject });
    else selected.delete(e.checksum);
  }
  for (const box of document.querySelectorAll("#events-table input.bulk-select")) box.checked = selected.has(box.dataset.checksum);
  updateBar();
});
clearButton.addEventListener("click", () => {
  selected.clear();
  for (const box of document.querySelectorAll("#events-table input.bulk-select")) box.checked = false;
  updateBar();
  all.focus();
});

// The dialog, built once.
const dialog = el("dialog", null, { id: "bulk-dialog", "aria-labelledby": "bulk-title" });
const title = el("h2", "Sign records", { id: "bulk-title", tabindex: "-1" });
const signingAs = el("p", "", { id: "bulk-as", class: "signing-as" });
const series = el("p", "One signature record is added to each record listed; your password is checked once for the series. All or nothing: if any record cannot be signed, none is.", { class: "muted" });
const targetsTitle = el("h3", "Records to sign", { id: "bulk-targets-title" });
const targets = el("ul", null, { id: "bulk-targets", class: "bulk-targets", "aria-labelledby": "bulk-targets-title" });

const relogin = el("form", null, { id: "bulk-relogin", class: "relogin", novalidate: "", hidden: "", "aria-labelledby": "bulk-relogin-title" });
const reloginUser = el("input", null, { id: "bulk-relogin-username", autocomplete: "username", readonly: "" });
const reloginPassword = el("input", null, { id: "bulk-relogin-password", type: "password", autocomplete: "current-password", "aria-describedby": "bulk-relogin-error" });
const reloginTotp = el("input", null, { id: "bulk-relogin-totp", inputmode: "numeric", autocomplete: "one-time-code" });
const reloginError = el("p", "", { id: "bulk-relogin-error", role: "alert", class: "error" });
relogin.append(
  el("h3", "Your session ended: log in again to sign", { id: "bulk-relogin-title" }),
  el("p", "Nothing was signed. Your meaning and reason are kept; log in again, then sign."),
  el("label", "Username", { for: "bulk-relogin-username" }), reloginUser,
  el("label", "Password", { for: "bulk-relogin-password" }), reloginPassword,
  el("label", "TOTP code (if enrolled)", { for: "bulk-relogin-totp" }), reloginTotp,
  reloginError, el("button", "Log in again", { type: "submit", id: "bulk-relogin-submit" }));

const form = el("form", null, { id: "bulk-form", method: "dialog", novalidate: "" });
const meaning = el("select", null, { id: "bulk-meaning", required: "", "aria-describedby": "bulk-meaning-help" });
for (const m of ["reviewed", "approved", "rejected"]) meaning.append(el("option", m, { value: m }));
const meaningHelp = el("p", "", { id: "bulk-meaning-help", class: "muted" });
const reason = el("textarea", null, { id: "bulk-reason", required: "", maxlength: "1000" });
const password = el("input", null, { id: "bulk-password", type: "password", autocomplete: "current-password", required: "" });
const totp = el("input", null, { id: "bulk-totp", inputmode: "numeric", autocomplete: "one-time-code" });
const error = el("p", "", { id: "bulk-error", role: "alert", class: "error" });
const submit = el("button", "Sign", { type: "submit", id: "bulk-submit" });
const cancel = el("button", "Cancel", { type: "button", id: "bulk-cancel" });
const actions = el("div", null, { class: "actions" });
actions.append(submit, cancel);
form.append(
  el("label", "Meaning", { for: "bulk-meaning" }), meaning, meaningHelp,
  el("label", "Reason (recorded with every signature)", { for: "bulk-reason" }), reason,
  el("label", "Password (checked once for the series)", { for: "bulk-password" }), password,
  el("label", "TOTP code (if enrolled)", { for: "bulk-totp" }), totp,
  error, actions);

const result = el("section", null, { id: "bulk-result", hidden: "", "aria-labelledby": "bulk-result-title" });
const resultTitle = el("h3", "", { id: "bulk-result-title", tabindex: "-1" });
const resultSummary = el("p", "", { id: "bulk-result-summary" });
const resultList = el("ul", null, { id: "bulk-results", class: "bulk-results", "aria-labelledby": "bulk-result-title" });
const close = el("button", "Close", { type: "button", id: "bulk-close" });
result.append(resultTitle, resultSummary, resultList, close);

dialog.append(title, signingAs, series, targetsTitle, targets, relogin, form, result);
document.body.append(dialog);

function showMeaningHelp() { meaningHelp.textContent = (typeof MEANING_HELP === "object" && MEANING_HELP[meaning.value]) || ""; }

function showRelogin(show) {
  relogin.hidden = !show;
  reloginPassword.value = ""; reloginTotp.value = ""; reloginError.textContent = "";
  setDisabled(submit, show);
}

function open() {
  if (!selected.size) return;
  const list = [...selected.entries()].sort((a, b) => a[1].seq - b[1].seq);
  title.textContent = "Sign " + list.length + (list.length === 1 ? " record" : " records") + " of " + trailOf;
  signingAs.textContent = "Signing as " + state.me.full_name + " (" + state.me.username + ")";
  targets.replaceChildren(...list.map(([, t]) => el("li", label(t))));
  targets.hidden = false; targetsTitle.hidden = false; series.hidden = false;
  form.hidden = false; result.hidden = true;
  password.value = ""; totp.value = ""; error.textContent = "";
  submit.textContent = "Sign " + list.length + (list.length === 1 ? " record" : " records");
  showRelogin(false);
  showMeaningHelp();
  dialog.showModal();
  meaning.focus();
}

// One record's line in the result: signed #seq, refused (why), or not signed.
function resultLine(r, signedSeries) {
  const t = selected.get(r.target_checksum) || { seq: r.target_seq, kind: "", subject: "" };
  const name = r.target_seq ? label(Object.assign({}, t, { seq: r.target_seq })) : "checksum " + r.target_checksum.slice(0, 12) + "…";
  if (signedSeries) {
    return el("li", name + ": signed, " + r.manifestation.meaning + " — signature record #" + r.manifestation.signature_seq, { class: "result-ok" });
  }
  if (r.ok) return el("li", name + ": not signed (it could have been; the series was refused)", { class: "result-skip" });
  return el("li", name + ": refused — " + r.code + ": " + r.message, { class: "result-refused" });
}

function showResult(signedSeries, body) {
  form.hidden = true; targets.hidden = true; targetsTitle.hidden = true; series.hidden = true;
  result.hidden = false;
  const results = body.results || [];
  if (signedSeries) {
    resultTitle.textContent = "Signed " + body.signed + (body.signed === 1 ? " record" : " records");
    resultSummary.textContent = "One signature record was added to each record below.";
  } else {
    const refused = results.filter((r) => !r.ok).length;
    resultTitle.textContent = "Nothing signed: " + refused + " of " + results.length + " records refused";
    resultSummary.textContent = "The series is all or nothing. Remove or resolve the refused records, then sign again.";
  }
  resultList.replaceChildren(...results.map((r) => resultLine(r, signedSeries)));
  resultTitle.focus();
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!relogin.hidden) { reloginPassword.focus(); return; }
  const why = reason.value.trim();
  if (!why) { error.textContent = "Enter a reason: it is recorded with every signature."; reason.focus(); return; }
  if (!password.value) { error.textContent = "Enter your password: signing re-checks it."; password.focus(); return; }
  const body = { trail_id: trailOf, target_checksums: [...selected.keys()], meaning: meaning.value, reason: why, password: password.value };
  if (totp.value.trim()) body.totp = totp.value.trim();
  setDisabled(submit, true);
  try {
    const res = await api("POST", "/signatures/batch", body);
    password.value = ""; totp.value = "";
    showResult(true, res);
    reason.value = "";
    selected.clear();
    await refresh();
    if (typeof loadTrails === "function") await loadTrails();
  } catch (e) {
    password.value = "";
    if (e.status === 409 && e.body && e.body.results) { showResult(false, e.body); return; }
    if (e.status === 401 && !CREDENTIAL_ERRORS.includes(e.code)) {
      showRelogin(true);
      reloginUser.value = state.me.username;
      error.textContent = "Not signed: " + e.message + ". Log in again above; your reason is kept.";
      reloginPassword.focus();
      return;
    }
    error.textContent = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    (e.status === 401 ? password : meaning).focus();
  } finally {
    if (relogin.hidden) setDisabled(submit, false);
  }
});

relogin.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!reloginPassword.value) { reloginError.textContent = "Enter your password."; reloginPassword.focus(); return; }
  const body = { username: reloginUser.value, password: reloginPassword.value };
  if (reloginTotp.value.trim()) body.totp = reloginTotp.value.trim();
  const ended = state.token;
  try {
    state.token = null;
    const res = await api("POST", "/auth/login", body);
    if (res.must_change_password) {
      state.token = ended;
      reloginError.textContent = "Your password must be changed first: cancel, log out and log in again.";
      return;
    }
    state.token = res.token;
    sessionStorage.setItem("relay-token", res.token);
    showRelogin(false);
    error.textContent = "";
    password.focus();
  } catch (e) {
    state.token = ended;
    reloginPassword.value = "";
    reloginError.textContent = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    reloginPassword.focus();
  }
});

meaning.addEventListener("change", showMeaningHelp);
cancel.addEventListener("click", () => dialog.close());
close.addEventListener("click", () => dialog.close());
openButton.addEventListener("click", open);
dialog.addEventListener("close", () => {
  password.value = ""; totp.value = "";
  // A session that ended and was not renewed ends the UI's session too.
  if (!relogin.hidden && state.token && typeof logout === "function") { showRelogin(false); logout("Your session ended: log in again."); return; }
  if (!bar.hidden) (openButton.disabled ? all : openButton).focus();
});
