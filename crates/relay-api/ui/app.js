// The relay's review UI: plain DOM, no framework, no build step. Text is always set with
// textContent (never innerHTML), so record contents cannot inject markup.
"use strict";

// The record list and the open record live in records.js (an ES module, window.relayRecords).
// verdicts: trail -> its last verify verdict in this session, { ok, bad (first bad seq), head }.
const state = { token: null, me: null, trail: null, record: null, pendingUser: null, verdicts: {}, signDraft: null };
const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function notice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

// A success, announced (role=status) and cleared by itself after a few seconds or by the next
// message; errors stay beside what caused them instead.
const toastState = { timer: null };
function toast(text) {
  clearTimeout(toastState.timer);
  notice("");
  $("toast").textContent = text || "";
  if (text) toastState.timer = setTimeout(() => { $("toast").textContent = ""; }, 8000);
}

const CREDENTIAL_ERRORS = ["invalid_credentials", "invalid_totp", "totp_required"];

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch("/api/v1" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!resp.ok) {
    const err = new Error((data && data.error && data.error.message) || ("HTTP " + resp.status));
    err.status = resp.status;
    err.code = data && data.error && data.error.code;
    err.retryAfter = resp.headers.get("Retry-After");
    err.body = data; // e.g. a refused bulk signature's per-record results
    // A wrong password or code (at login, signing or approving) answers 401 too, but ends no
    // session; a signature's 401 is handled by the sign dialog (re-login without losing the reason).
    if (resp.status === 401 && state.token && !path.startsWith("/signatures") && !CREDENTIAL_ERRORS.includes(err.code)) { logout("Your session ended: " + err.message); }
    throw err;
  }
  // The login answer says the session's idle timeout; every authenticated call restarts it on
  // the server (the session is touched), so here too.
  if (path === "/auth/login" && data && data.idle_timeout_secs) sessionStorage.setItem("relay-idle-secs", String(data.idle_timeout_secs));
  if (state.token) idleTouch();
  return data;
}

// The warning before idle expiry: non-modal, a minute before the server's idle timeout ends
// the session (half the timeout when it is under two minutes); "Stay signed in" is one
// authenticated call.
const idle = { timer: null, end: 0 };

function idleTouch() {
  const secs = Number(sessionStorage.getItem("relay-idle-secs"));
  idleStop();
  if (!(secs > 0) || !state.token) return;
  idle.end = Date.now() + secs * 1000;
  const lead = Math.min(60, Math.floor(secs / 2));
  idle.timer = setTimeout(showIdleWarning, (secs - lead) * 1000);
}

function idleStop() {
  clearTimeout(idle.timer);
  idle.timer = null;
  $("idle-warning").hidden = true;
}

function showIdleWarning() {
  if (!state.token) return;
  const end = new Date(idle.end);
  const pad = (n) => String(n).padStart(2, "0");
  $("idle-text").textContent = "No activity for a while: your session ends at " + pad(end.getHours()) + ":" + pad(end.getMinutes()) + ":" + pad(end.getSeconds())
    + " (local time) unless you stay signed in.";
  $("idle-warning").hidden = false;
}

async function showLogin() {
  $("app-view").hidden = true;
  $("whoami").hidden = true;
  // While no account exists the relay has nobody to log in: the first administrator is created
  // on a page of its own instead (GET /auth/setup answers without a session).
  let first = false;
  try {
    const res = await fetch("/api/v1/auth/setup");
    if (res.ok) first = (await res.json()).first_account === true;
  } catch (e) { first = false; }
  if (state.token) return; // a session started meanwhile
  $("setup-view").hidden = !first;
  $("login-view").hidden = first;
}

function logout(message) {
  if (state.token) { fetch("/api/v1/auth/logout", { method: "POST", headers: { "Authorization": "Bearer " + state.token } }).catch(() => {}); }
  state.token = null; state.me = null; state.trail = null; state.record = null; state.verdicts = {}; state.signDraft = null;
  idleStop();
  hideRelogin();
  for (const d of ["sign-dialog", "account-dialog", "decide-dialog"]) if ($(d).open) $(d).close();
  sessionStorage.removeItem("relay-token");
  sessionStorage.removeItem("relay-idle-secs");
  // Nothing of the previous session stays on screen for the next user.
  for (const id of ["trail-list", "detail-fields", "manifestations", "verdict"]) $(id).replaceChildren();
  for (const t of ["events-table", "accounts-table"]) $(t).querySelector("tbody").replaceChildren();
  if (window.relayRecords) window.relayRecords.reset();
  $("accounts").hidden = true;
  $("changes").hidden = true;
  toast("");
  for (const id of ["export-error", "export-status", "create-account-error", "create-account-result", "propose-error"]) $(id).textContent = "";
  $("changes-result").hidden = true; $("changes-result-text").textContent = "";
  showLogin();
  notice(message || "");
}

async function startSession(token) {
  state.token = token;
  sessionStorage.setItem("relay-token", token);
  state.me = await api("GET", "/auth/me");
  $("me-name").textContent = state.me.full_name + " · " + state.me.username;
  $("me-role").textContent = state.me.role;
  $("whoami").hidden = false;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("show-accounts").hidden = state.me.role !== "admin";
  $("f-queue-label").hidden = state.me.role !== "reviewer";
  $("show-changes").hidden = !["admin", "auditor"].includes(state.me.role);
  notice("");
  const trails = await loadTrails();
  await window.relayRecords.start(trails);
}

async function loadTrails() {
  const trails = await api("GET", "/trails");
  const list = $("trail-list");
  list.replaceChildren();
  for (const t of trails) {
    const b = el("button", t.trail_id + " (" + t.head_seq + ")", { type: "button", "data-trail": t.trail_id });
    b.setAttribute("aria-current", t.trail_id === state.trail ? "true" : "false");
    b.addEventListener("click", () => window.relayRecords.openTrail(t.trail_id));
    const li = el("li", null, { "data-trail": t.trail_id }); li.append(b, el("span", null, { class: "trail-badges" })); list.append(li);
  }
  state.trailHeads = Object.fromEntries(trails.map((t) => [t.trail_id, t.head_seq]));
  window.relayRecords.setTrails(trails);
  trailBadges();
  return trails;
}

// Per-trail badges, from what this session already knows (no read per trail): the last verify
// verdict (verified, or BROKEN in red linking to the first bad record) and whether records were
// added since that verdict (its head against the trail's head in the list).
function trailBadges() {
  for (const li of $("trail-list").children) {
    const trail = li.dataset.trail;
    const box = li.querySelector(".trail-badges");
    box.replaceChildren();
    const v = state.verdicts[trail];
    if (!v) { box.append(el("span", "not verified in this session", { class: "badge trail-unknown" })); continue; }
    if (v.ok) {
      box.append(el("span", "verified to #" + v.head, { class: "badge trail-ok" }));
      const head = (state.trailHeads || {})[trail];
      if (head > v.head) box.append(el("span", (head - v.head) + " newer, not verified", { class: "badge trail-newer" }));
    } else if (v.bad) {
      const a = el("a", "BROKEN at #" + v.bad, { class: "badge trail-broken", href: "#/trail/" + encodeURIComponent(trail) + "/record/" + v.bad });
      a.append(el("span", " (" + trail + ": first bad record)", { class: "sr-only" }));
      box.append(a);
    } else {
      box.append(el("span", "BROKEN", { class: "badge trail-broken" }));
    }
  }
}

// Where a record stands in the signing workflow (null: cannot be signed).
function statusBadge(r) {
  if (!r.review_status) return document.createTextNode("—");
  const title = r.superseded_by ? "Superseded by record #" + r.superseded_by + " (a later capture of the same file)" : "";
  return el("span", r.review_status, { class: "badge status-" + r.review_status, title });
}

// The server of record's time of receipt (outside the chained bytes): a "late" badge when the
// record reached the server more than late_after_secs after it was recorded (downtime).
function lateBadge(r) {
  return el("span", "late", { class: "badge late", title: "Received " + receivedAfter(r) + " after it was recorded (threshold " + r.late_after_secs + " s)" });
}

function receivedAfter(r) {
  const s = Math.round(r.received_after_ms / 1000);
  return s >= 3600 ? (s / 3600).toFixed(1) + " h" : s >= 60 ? Math.round(s / 60) + " min" : s + " s";
}

function receiptText(r) {
  // Only forwarded records have a time of receipt: not on an edge, not the server's own _relay.
  if (r.late_after_secs === null || r.late_after_secs === undefined || r.trail_id === "_relay") return null;
  if (r.received_at === null) return "unknown";
  return r.received_at + " (" + receivedAfter(r) + " after recording; late after " + r.late_after_secs + " s)";
}

// What each meaning of a signature implies (shown under the meaning picker).
const MEANING_HELP = {
  reviewed: "Reviewed: you checked this record and found it complete and correct; it then awaits approval by someone else.",
  approved: "Approved: you accept this record as final; the signing workflow requires a prior review by someone else.",
  rejected: "Rejected: you declare this record not acceptable; it is shown as rejected to every reviewer.",
};

function signKey(r) { return r.trail_id + "#" + r.chain_seq; }

function showMeaningHelp() { $("sign-meaning-help").textContent = MEANING_HELP[$("sign-meaning").value] || ""; }

function openSign() {
  const r = state.record;
  $("sign-target").textContent = "Record " + r.trail_id + " #" + r.chain_seq + " (" + (r.subject || r.kind) + ")";
  $("sign-as").textContent = "Signing as " + state.me.full_name + " (" + state.me.username + ")";
  // A reason typed for this record and cancelled is still there when the dialog opens again.
  const draft = state.signDraft && state.signDraft.key === signKey(r) ? state.signDraft : null;
  $("sign-reason").value = draft ? draft.reason : "";
  if (draft) $("sign-meaning").value = draft.meaning;
  $("sign-password").value = ""; $("sign-error").textContent = "";
  hideRelogin();
  showMeaningHelp();
  $("sign-dialog").showModal();
}

function keepSignDraft() {
  if (state.record) state.signDraft = { key: signKey(state.record), reason: $("sign-reason").value, meaning: $("sign-meaning").value };
}

function hideRelogin() {
  $("relogin-form").hidden = true;
  $("relogin-password").value = ""; $("relogin-totp").value = ""; $("relogin-error").textContent = "";
  $("sign-submit").disabled = false; $("sign-submit").removeAttribute("aria-disabled");
}

// The session ended while the dialog was open: log in again inside it, the reason kept.
function showRelogin(e) {
  $("relogin-username").value = state.me.username;
  $("relogin-form").hidden = false;
  $("relogin-error").textContent = "";
  $("sign-submit").disabled = true; $("sign-submit").setAttribute("aria-disabled", "true");
  $("sign-error").textContent = "Not signed: " + e.message + ". Log in again above; your reason is kept.";
  $("relogin-password").focus();
}

async function submitRelogin(ev) {
  ev.preventDefault();
  const password = $("relogin-password").value;
  if (!password) { $("relogin-error").textContent = "Enter your password."; $("relogin-password").focus(); return; }
  const body = { username: $("relogin-username").value, password };
  const totp = $("relogin-totp").value.trim();
  if (totp) body.totp = totp;
  const ended = state.token;
  try {
    // Without the ended session's token.
    state.token = null;
    const res = await api("POST", "/auth/login", body);
    $("relogin-password").value = "";
    if (res.must_change_password) {
      state.token = ended;
      fetch("/api/v1/auth/logout", { method: "POST", headers: { "Authorization": "Bearer " + res.token } }).catch(() => {});
      $("relogin-error").textContent = "Your password must be changed first: cancel, log out and log in again.";
      return;
    }
    state.token = res.token;
    sessionStorage.setItem("relay-token", res.token);
    hideRelogin();
    $("sign-error").textContent = "";
    $("sign-password").focus();
    notice("Logged in again as " + state.me.username + ": sign with your password.");
  } catch (e) {
    state.token = ended;
    $("relogin-password").value = "";
    $("relogin-error").textContent = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    $("relogin-password").focus();
  }
}

async function submitSign(ev) {
  ev.preventDefault();
  const r = state.record;
  if (!$("relogin-form").hidden) { $("relogin-password").focus(); return; }
  const reason = $("sign-reason").value.trim();
  if (!reason) { $("sign-error").textContent = "Enter a reason: it is recorded with the signature."; $("sign-reason").focus(); return; }
  if (!$("sign-password").value) { $("sign-error").textContent = "Enter your password: signing re-checks it."; $("sign-password").focus(); return; }
  try {
    await api("POST", "/signatures", {
      trail_id: r.trail_id, target_checksum: r.checksum, meaning: $("sign-meaning").value,
      reason, password: $("sign-password").value,
    });
    $("sign-password").value = "";
    $("sign-reason").value = "";
    state.signDraft = null;
    $("sign-dialog").close();
    await window.relayRecords.refresh();
    await loadTrails();
    notice("Signed.");
  } catch (e) {
    $("sign-password").value = "";
    if (e.status === 401 && !CREDENTIAL_ERRORS.includes(e.code)) { showRelogin(e); return; }
    $("sign-error").textContent = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
  }
}

async function verify(trail) {
  const out = $("verdict");
  out.textContent = "Verifying…";
  let res;
  try {
    res = await api("POST", "/verify", trail ? { trail_id: trail } : {});
  } catch (e) {
    // Answered where the verdict would be, not in the top banner.
    out.replaceChildren(el("div", "Verify failed: " + (e.status === 429 ? "locked: try again in " + e.retryAfter + " s." : e.message), { class: "broken" }));
    return;
  }
  out.replaceChildren();
  for (const v of res.verdicts) {
    state.verdicts[v.trail_id] = { ok: v.ok, bad: v.first_bad_seq || null, head: v.head_seq };
    if (v.ok) {
      out.append(el("div", "OK " + v.trail_id + ": " + v.records + " records verified, head " + v.head_seq + ", " + v.anchors_checked + " anchor(s)", { class: "ok" }));
      continue;
    }
    const line = el("div", "BROKEN " + v.trail_id + ": ", { class: "broken" });
    if (v.first_bad_seq) {
      // The first bad record, opened by its URL.
      line.append(el("a", "first bad record #" + v.first_bad_seq, {
        href: "#/trail/" + encodeURIComponent(v.trail_id) + "/record/" + v.first_bad_seq, class: "bad-link",
      }), document.createTextNode(": " + v.reason));
    } else {
      line.append(document.createTextNode(v.reason));
    }
    out.append(line);
  }
  if (window.relayRecords) window.relayRecords.markIntegrity();
  trailBadges();
}

// Exports answer beside their buttons: an error in #export-error (role=alert), the result in
// #export-status (kept: it names the package to check offline), both cleared by the next export.
function exportMessage(error, status) {
  $("export-error").textContent = error || "";
  $("export-status").textContent = status || "";
}

async function exportBusy(fn) {
  const buttons = ["export-sealed", "export-csv", "export-json"].map($);
  for (const b of buttons) b.disabled = true;
  try { await fn(); } catch (e) {
    exportMessage((e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : "Export failed: " + e.message), "");
  } finally { for (const b of buttons) b.disabled = false; }
}

async function exportAs(format) {
  exportMessage("", "");
  const p = window.relayRecords.exportParams(); p.set("format", format);
  const resp = await fetch("/api/v1/export?" + p.toString(), { headers: { "Authorization": "Bearer " + state.token } });
  if (!resp.ok) { exportMessage("Export failed: HTTP " + resp.status, ""); return; }
  const blob = await resp.blob();
  const a = el("a", null, { href: URL.createObjectURL(blob), download: state.trail + "." + format });
  document.body.append(a); a.click(); a.remove();
  exportMessage("", "");
  toast("Exported " + state.trail + " as " + format.toUpperCase() + ".");
}

async function sealedExport() {
  exportMessage("", "Building the sealed export package of " + state.trail + "…");
  const view = await api("POST", "/exports", { trail_id: state.trail, format: "both" });
  const resp = await fetch("/api/v1/exports/" + encodeURIComponent(view.package), { headers: { "Authorization": "Bearer " + state.token } });
  if (!resp.ok) { exportMessage("Sealed export written but download failed: HTTP " + resp.status, ""); return; }
  const blob = await resp.blob();
  const a = el("a", null, { href: URL.createObjectURL(blob), download: view.package });
  document.body.append(a); a.click(); a.remove();
  exportMessage("", "Sealed export " + view.package + ": " + view.records + " records up to seq " + view.head_seq +
    ", seal " + view.seal_fingerprint + ". Check it offline with: relay-verify " + view.package);
}

async function loadAccounts() {
  const accounts = await api("GET", "/accounts");
  const body = $("accounts-table").querySelector("tbody");
  body.replaceChildren();
  for (const a of accounts) {
    const tr = el("tr");
    const status = a.disabled ? "disabled" : a.locked_until ? "locked until " + a.locked_until : "active";
    tr.append(el("td", a.username), el("td", a.full_name));
    const roleCell = el("td");
    const sel = el("select", null, { "aria-label": "Role of " + a.username });
    for (const r of ["operator", "reviewer", "admin", "auditor"]) {
      const o = el("option", r, { value: r }); if (r === a.role) o.selected = true; sel.append(o);
    }
    sel.disabled = a.username === state.me.username;
    sel.addEventListener("change", () => {
      const role = sel.value;
      sel.value = a.role; // applied only once the dialog is confirmed
      openAccountChange(a, { role }, {
        title: "Change the role of " + a.username,
        what: "Role of " + a.username + " (" + a.full_name + "): " + a.role + " → " + role + ". Takes effect at once; a privileged role needs a second administrator.",
        confirm: "I confirm changing " + a.username + " from " + a.role + " to " + role, submit: "Change role",
      });
    });
    roleCell.append(sel);
    tr.append(roleCell, el("td", status + (a.must_change_password ? " (temporary password)" : "")), el("td", a.last_login_at || "never"));
    const actions = el("td");
    if (a.username !== state.me.username) {
      const toggle = el("button", a.disabled ? "Enable" : "Disable", { type: "button" });
      toggle.addEventListener("click", () => openAccountChange(a, { disabled: !a.disabled }, a.disabled
        ? { title: "Enable " + a.username, what: a.username + " (" + a.full_name + ") can log in again.", submit: "Enable account" }
        : { title: "Disable " + a.username, what: a.username + " (" + a.full_name + ") can no longer log in; open sessions end.", confirm: "I confirm disabling " + a.username, submit: "Disable account", danger: true }));
      actions.append(toggle);
    }
    const reset = el("button", "Reset password", { type: "button" });
    reset.addEventListener("click", () => openAccountChange(a, { reset_password: "" }, {
      title: "Reset the password of " + a.username,
      what: "A temporary password for " + a.username + " (" + a.full_name + "): they must change it at the next login; their current password stops working.",
      confirm: "I confirm resetting the password of " + a.username, submit: "Reset password", danger: true, password: true,
    }));
    actions.append(reset);
    if (a.locked_until) {
      const unlock = el("button", "Unlock", { type: "button" });
      unlock.addEventListener("click", () => openAccountChange(a, { unlock: true }, { title: "Unlock " + a.username, what: a.username + " can try to log in again at once.", submit: "Unlock account" }));
      actions.append(unlock);
    }
    tr.append(actions);
    body.append(tr);
  }
}

async function loadChanges() {
  const changes = await api("GET", "/changes");
  const body = $("changes-table").querySelector("tbody");
  body.replaceChildren();
  $("propose-form").hidden = state.me.role !== "admin";
  if (state.me.role === "admin" && window.loadChangeForm) await window.loadChangeForm();
  for (const c of changes) {
    const tr = el("tr");
    tr.append(el("td", c.setting), el("td", JSON.stringify(c.value)), el("td", c.proposer), el("td", c.reason),
      el("td", c.state + (c.decided_by ? " by " + c.decided_by : "") + (c.takes_effect ? " — takes effect: " + c.takes_effect : "")),
      el("td", c.expires_at));
    const actions = el("td");
    if (c.state === "pending" && state.me.role === "admin") {
      if (c.proposer !== state.me.username) {
        const ok = el("button", "Approve (sign)", { type: "button" });
        ok.addEventListener("click", () => openDecide(c, "approve"));
        actions.append(ok);
      }
      const no = el("button", c.proposer === state.me.username ? "Withdraw" : "Reject", { type: "button" });
      no.addEventListener("click", () => openDecide(c, c.proposer === state.me.username ? "withdraw" : "reject"));
      actions.append(no);
    }
    tr.append(actions);
    body.append(tr);
  }
}

// Inline errors of the dialogs' fields: beside the field, which is marked invalid.
function setFieldError(input, text) {
  $(input + "-error").textContent = text;
  if (text) $(input).setAttribute("aria-invalid", "true"); else $(input).removeAttribute("aria-invalid");
}

// An account change (role, status, password reset, unlock): a dialog with a required reason, a
// masked temporary password for a reset, and a confirmation for what cannot be taken back.
let accountChange = null;

function openAccountChange(account, change, text) {
  accountChange = { username: account.username, change, text };
  $("account-title").textContent = text.title;
  $("account-what").textContent = text.what;
  $("account-password-field").hidden = !text.password;
  $("account-password").required = Boolean(text.password);
  $("account-password").value = ""; $("account-reason").value = ""; $("account-confirm").checked = false;
  $("account-confirm-label").hidden = !text.confirm;
  $("account-confirm-text").textContent = text.confirm || "";
  for (const f of ["account-password", "account-reason", "account-confirm"]) setFieldError(f, "");
  $("account-error").textContent = "";
  $("account-submit").textContent = text.submit;
  $("account-submit").className = text.danger ? "danger" : "";
  $("account-dialog").showModal();
  (text.password ? $("account-password") : $("account-reason")).focus();
}

async function submitAccountChange(ev) {
  ev.preventDefault();
  const { username, change, text } = accountChange;
  const body = Object.assign({}, change);
  let first = null;
  const bad = (field, message) => { setFieldError(field, message); if (!first) first = field; };
  for (const f of ["account-password", "account-reason", "account-confirm"]) setFieldError(f, "");
  $("account-error").textContent = "";
  if (text.password) {
    const pw = $("account-password").value;
    if (pw.length < 12) bad("account-password", "Enter a temporary password of at least 12 characters.");
    body.reset_password = pw;
  }
  const reason = $("account-reason").value.trim();
  if (!reason) bad("account-reason", "Enter a reason: every account change is recorded with one.");
  if (text.confirm && !$("account-confirm").checked) bad("account-confirm", "Tick the box to confirm.");
  if (first) { $(first).focus(); return; }
  body.reason = reason;
  try {
    await api("PATCH", "/accounts/" + encodeURIComponent(username), body);
  } catch (e) {
    $("account-password").value = "";
    $("account-error").textContent = e.code === "four_eyes_required"
      ? e.message + " (propose it under Configuration changes)"
      : e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    return;
  }
  $("account-password").value = "";
  $("account-dialog").close();
  toast("Account " + username + " changed.");
  await loadAccounts();
}

// Approving (a signature: reason and password), rejecting or withdrawing a proposed change.
let decision = null;

function openDecide(c, action) {
  decision = { change: c, action };
  const value = JSON.stringify(c.value);
  const titles = { approve: "Approve change", reject: "Reject change", withdraw: "Withdraw change" };
  $("decide-title").textContent = titles[action] + " " + c.id;
  $("decide-what").textContent = c.setting + " = " + value + ", proposed by " + c.proposer + ": “" + c.reason + "”." +
    (action === "approve" ? " Approving is a signature: it applies the change." : " The change will not take effect; this cannot be undone.");
  $("decide-password-field").hidden = action !== "approve";
  $("decide-confirm-label").hidden = action === "approve";
  $("decide-confirm-text").textContent = action === "withdraw" ? "I confirm withdrawing my proposal" : "I confirm rejecting this change";
  $("decide-reason").value = ""; $("decide-password").value = ""; $("decide-confirm").checked = false;
  for (const f of ["decide-reason", "decide-password", "decide-confirm"]) setFieldError(f, "");
  $("decide-error").textContent = "";
  $("decide-submit").textContent = action === "approve" ? "Approve (sign)" : action === "withdraw" ? "Withdraw change" : "Reject change";
  $("decide-submit").className = action === "approve" ? "" : "danger";
  $("decide-dialog").showModal();
  $("decide-reason").focus();
}

async function submitDecide(ev) {
  ev.preventDefault();
  const { change: c, action } = decision;
  let first = null;
  const bad = (field, message) => { setFieldError(field, message); if (!first) first = field; };
  for (const f of ["decide-reason", "decide-password", "decide-confirm"]) setFieldError(f, "");
  $("decide-error").textContent = "";
  const reason = $("decide-reason").value.trim();
  if (!reason) bad("decide-reason", "Enter a reason: it is recorded with the decision.");
  if (action === "approve" && !$("decide-password").value) bad("decide-password", "Enter your password: approving is a signature.");
  if (action !== "approve" && !$("decide-confirm").checked) bad("decide-confirm", "Tick the box to confirm.");
  if (first) { $(first).focus(); return; }
  let done;
  try {
    done = action === "approve"
      ? await api("POST", "/changes/" + encodeURIComponent(c.id) + "/approve", { password: $("decide-password").value, reason })
      : await api("POST", "/changes/" + encodeURIComponent(c.id) + "/reject", { reason });
  } catch (e) {
    $("decide-password").value = "";
    $("decide-error").textContent = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    if (action === "approve") $("decide-password").focus();
    return;
  }
  $("decide-password").value = "";
  $("decide-dialog").close();
  $("changes-result").hidden = true;
  if (action !== "approve") {
    toast("Change " + c.id + (action === "withdraw" ? " withdrawn." : " rejected."));
  } else {
    const applied = (done && done.applied) || {};
    if (applied.temporary_password) {
      // Account creations and resets: shown once, to hand to the owner, who must change it; kept
      // beside the list (not a toast that clears) until dismissed.
      toast("");
      $("changes-result-text").textContent = "Change " + c.id + " approved. Temporary password for " + applied.username + " (shown once; hand it to them, they must change it at the first login): " + applied.temporary_password;
      $("changes-result").hidden = false;
    } else {
      toast("Change " + c.id + " approved; takes effect: " + ((done && done.takes_effect) || "see the list") + ".");
    }
  }
  await loadChanges();
  if (!$("changes-result").hidden) $("changes-result").focus();
}

// Creating an account: errors beside their fields or the form, the result beside the form
// (a four-eyes proposal stays there; a direct creation is a toast).
async function submitCreateAccount(ev) {
  ev.preventDefault();
  const fields = ["new-username", "new-fullname", "new-password", "new-reason"];
  for (const f of fields) setFieldError(f, "");
  $("create-account-error").textContent = ""; $("create-account-result").textContent = "";
  const account = { username: $("new-username").value.trim(), full_name: $("new-fullname").value.trim(), role: $("new-role").value };
  const reason = $("new-reason").value.trim();
  let first = null;
  const bad = (field, message) => { setFieldError(field, message); if (!first) first = field; };
  if (!account.username) bad("new-username", "Enter a username.");
  if (!account.full_name) bad("new-fullname", "Enter the full name (printed on signatures).");
  if ($("new-password").value.length < 12) bad("new-password", "Enter a temporary password of at least 12 characters.");
  if (!reason) bad("new-reason", "Enter a reason: it is recorded with the account.");
  if (first) { $(first).focus(); return; }
  $("create-account-submit").disabled = true;
  try {
    try {
      await api("POST", "/accounts", Object.assign({ password: $("new-password").value, reason }, account));
      toast("Account " + account.username + " created; its password is temporary: the owner must change it at the first login.");
    } catch (e) {
      if (e.code !== "four_eyes_required") throw e;
      // A privileged account (a signer, or another administrator) needs a second administrator:
      // propose it; the approver is shown a temporary password to hand over.
      const proposed = await api("POST", "/changes", { setting: "account_create", value: account, reason });
      toast("");
      $("create-account-result").textContent = "A " + account.role + " account needs a second administrator: proposed as change " + proposed.id + ". Once another administrator approves it under Configuration changes, they are shown a temporary password to hand to " + account.username + ".";
    }
  } catch (e) {
    $("new-password").value = "";
    const text = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    if (/password/i.test(e.message) && e.status === 422) { setFieldError("new-password", text); $("new-password").focus(); }
    else if (/username|name/i.test(e.message) && e.status === 422) { setFieldError("new-username", text); $("new-username").focus(); }
    else $("create-account-error").textContent = text;
    return;
  } finally {
    $("create-account-submit").disabled = false;
  }
  $("new-username").value = ""; $("new-fullname").value = ""; $("new-password").value = ""; $("new-reason").value = "";
  await loadAccounts();
}

function guard(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    try { await fn(ev); } catch (e) { notice(e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message); }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("idle-stay").addEventListener("click", guard(async () => { await api("GET", "/auth/me"); }));
  $("login-form").addEventListener("submit", guard(async () => {
    const username = $("login-username").value.trim();
    const body = { username, password: $("login-password").value };
    const totp = $("login-totp").value.trim();
    if (totp) body.totp = totp;
    try {
      const res = await api("POST", "/auth/login", body);
      if (res.must_change_password) {
        // A temporary password (set by an administrator) opens nothing but the change: end
        // that session and ask for the owner's own password.
        fetch("/api/v1/auth/logout", { method: "POST", headers: { "Authorization": "Bearer " + res.token } }).catch(() => {});
        state.pendingUser = username;
        $("pw-old").value = $("login-password").value;
        $("login-password").value = "";
        $("password-form").hidden = false;
        $("pw-new").focus();
        notice("Your password was set by an administrator: choose your own to continue.");
        return;
      }
      $("login-password").value = "";
      await startSession(res.token);
    } catch (e) {
      if (e.code === "password_expired") {
        state.pendingUser = username;
        $("password-form").hidden = false;
        $("pw-old").value = $("login-password").value;
      }
      $("login-password").value = "";
      throw e;
    }
  }));
  $("password-form").addEventListener("submit", guard(async () => {
    await api("POST", "/auth/password", { username: state.pendingUser, old_password: $("pw-old").value, new_password: $("pw-new").value });
    $("pw-old").value = ""; $("pw-new").value = "";
    $("password-form").hidden = true;
    notice("Password changed; log in with the new one.");
  }));
  $("register-form").addEventListener("submit", guard(async () => {
    const username = $("reg-username").value.trim();
    await api("POST", "/auth/register", { username, full_name: $("reg-fullname").value, password: $("reg-password").value, role: "admin" });
    $("reg-password").value = "";
    $("setup-view").hidden = true;
    $("login-view").hidden = false;
    $("login-username").value = username;
    notice("Administrator " + username + " registered; log in.");
  }));
  $("logout").addEventListener("click", () => logout("Logged out."));
  $("verify-trail").addEventListener("click", guard(() => verify(state.trail)));
  $("verify-all").addEventListener("click", guard(() => verify(null)));
  $("export-sealed").addEventListener("click", () => exportBusy(sealedExport));
  $("export-csv").addEventListener("click", () => exportBusy(() => exportAs("csv")));
  $("export-json").addEventListener("click", () => exportBusy(() => exportAs("json")));
  $("changes-result-done").addEventListener("click", () => { $("changes-result").hidden = true; $("changes-result-text").textContent = ""; $("propose-title").focus(); });
  $("open-sign").addEventListener("click", openSign);
  $("sign-form").addEventListener("submit", submitSign);
  $("sign-cancel").addEventListener("click", () => $("sign-dialog").close());
  $("sign-meaning").addEventListener("change", showMeaningHelp);
  $("relogin-form").addEventListener("submit", submitRelogin);
  // Closed without signing (Cancel, Escape): the reason is kept for this record; a session that
  // ended and was not renewed ends the UI's session too.
  $("sign-dialog").addEventListener("close", () => {
    if ($("sign-reason").value.trim()) keepSignDraft();
    if (!$("relogin-form").hidden && state.token) { hideRelogin(); logout("Your session ended: log in again."); }
  });
  $("account-form").addEventListener("submit", submitAccountChange);
  $("account-cancel").addEventListener("click", () => { $("account-password").value = ""; $("account-dialog").close(); });
  $("account-dialog").addEventListener("close", () => { $("account-password").value = ""; });
  $("decide-form").addEventListener("submit", submitDecide);
  $("decide-cancel").addEventListener("click", () => { $("decide-password").value = ""; $("decide-dialog").close(); });
  $("decide-dialog").addEventListener("close", () => { $("decide-password").value = ""; });
  $("show-accounts").addEventListener("click", guard(async () => { $("accounts").hidden = false; await loadAccounts(); $("accounts").scrollIntoView(); }));
  $("show-changes").addEventListener("click", guard(async () => { $("changes").hidden = false; await loadChanges(); $("changes").scrollIntoView(); }));
  $("create-account-form").addEventListener("submit", submitCreateAccount);
  const saved = sessionStorage.getItem("relay-token");
  if (saved) { startSession(saved).catch(() => logout()); } else { showLogin(); }
});
