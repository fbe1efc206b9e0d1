// The fleet page (issue 24): every enrolled edge's health, for administrators, reviewers and
// auditors on a server of record; administrators also issue enrollment codes and revoke edges.
// Kept apart from app.js, whose helpers ($, el, api, toast, state) it uses; text is set
// with textContent only. Messages stay beside what caused them (the page's status and error
// lines, the code form's and revoke dialog's errors); a revocation is confirmed by a toast. On a server without a fleet store (an edge's own UI) GET /fleet answers
// 404 fleet_disabled and the page stays hidden.
"use strict";

const fleet = {
  view: null,
  available: false,
  // "status" ascending is the server's order: the unhealthy first.
  sort: { key: "status", dir: "ascending" },
  revoking: null,
  probe: 0,
};

const FLEET_ROLES = ["admin", "reviewer", "auditor"];
const FLEET_RANK = { poisoned: 0, silent: 1, lagging: 2, skewed: 3, never_seen: 4, revoked: 5, ok: 6 };

function fleetIsAdmin() {
  return Boolean(state.me) && state.me.role === "admin";
}

// Compare two optional values: nulls last whichever the direction.
function fleetCompareValues(a, b, dir) {
  const na = a === null || a === undefined;
  const nb = b === null || b === undefined;
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  const c = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
  return dir === "descending" ? -c : c;
}

const FLEET_COLUMNS = [
  { key: "edge", label: "Edge", value: (e) => e.edge },
  { key: "status", label: "Status", value: (e) => FLEET_RANK[e.status] ?? 99 },
  { key: "state", label: "State", value: (e) => e.state },
  { key: "last_seen", label: "Last seen", value: (e) => e.last_seen_at },
  { key: "last_batch", label: "Last batch", value: (e) => e.last_batch_at },
  { key: "lag", label: "Lag", value: (e) => e.lag_records * 1e9 + (e.lag_seconds || 0) },
  { key: "trails", label: "Heads (stored / local)", value: (e) => e.trails.reduce((n, t) => n + t.stored_head_seq, 0) },
  { key: "skew", label: "Clock skew", value: (e) => (e.clock_skew_ms === null ? null : Math.abs(e.clock_skew_ms)) },
  { key: "version", label: "Version", value: (e) => e.version },
  { key: "problems", label: "Problems", value: (e) => e.problems.length },
];

function fleetSorted(edges) {
  const col = FLEET_COLUMNS.find((c) => c.key === fleet.sort.key) || FLEET_COLUMNS[1];
  // Ties keep the server's order (the unhealthy first, then by id).
  return edges
    .map((e, i) => [e, i])
    .sort(([a, i], [b, j]) => fleetCompareValues(col.value(a), col.value(b), fleet.sort.dir) || i - j)
    .map(([e]) => e);
}

function fleetDate(iso) {
  // The server writes microseconds; Date parses milliseconds.
  return new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
}

// Local time as text, the UTC time in the tooltip and the datetime attribute.
function fleetTime(iso) {
  if (!iso) return document.createTextNode("never");
  const d = fleetDate(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  const local = d.toLocaleString(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  return el("time", local, { datetime: iso, title: "UTC: " + iso });
}

function fleetSeconds(s) {
  if (s === null || s === undefined) return "?";
  if (s >= 3600) return (s / 3600).toFixed(1) + " h";
  if (s >= 60) return Math.floor(s / 60) + " min";
  return Math.round(s) + " s";
}

function fleetStatusText(status) {
  return status.replace(/_/g, " ");
}

function fleetBadge(status) {
  return el("span", fleetStatusText(status), { class: "badge fleet-" + status });
}

function fleetHeader() {
  const row = $("fleet-table").querySelector("thead tr");
  row.replaceChildren();
  for (const c of FLEET_COLUMNS) {
    const th = el("th", null, { scope: "col" });
    const sorted = fleet.sort.key === c.key;
    if (sorted) th.setAttribute("aria-sort", fleet.sort.dir);
    const b = el("button", c.label, { type: "button", class: "sort", "data-sort": c.key });
    b.append(el("span", sorted ? (fleet.sort.dir === "ascending" ? " ▲" : " ▼") : "", { "aria-hidden": "true" }));
    b.addEventListener("click", () => fleetSortBy(c.key));
    th.append(b);
    row.append(th);
  }
  if (fleetIsAdmin()) row.append(el("th", "Actions", { scope: "col" }));
  const col = FLEET_COLUMNS.find((c) => c.key === fleet.sort.key);
  $("fleet-caption").textContent = fleet.sort.key === "status"
    ? "Edges, sorted by status (" + (fleet.sort.dir === "ascending" ? "unhealthy first" : "healthy first") + ")"
    : "Edges, sorted by " + col.label.toLowerCase() + " (" + fleet.sort.dir + ")";
}

function fleetSortBy(key) {
  if (fleet.sort.key === key) {
    fleet.sort.dir = fleet.sort.dir === "ascending" ? "descending" : "ascending";
  } else {
    fleet.sort = { key, dir: "ascending" };
  }
  fleetRender();
  // The header is rebuilt: keep the keyboard focus on the column's button.
  const b = $("fleet-table").querySelector('thead button[data-sort="' + key + '"]');
  if (b) b.focus();
}

function fleetCounts(view) {
  const list = $("fleet-counts");
  list.replaceChildren();
  const statuses = Object.keys(view.counts).sort((a, b) => (FLEET_RANK[a] ?? 99) - (FLEET_RANK[b] ?? 99));
  list.append(el("li", view.edges.length + (view.edges.length === 1 ? " edge" : " edges"), { class: "total" }));
  for (const s of statuses) {
    const li = el("li", null, { "data-status": s });
    li.append(fleetBadge(s), document.createTextNode(" " + view.counts[s]));
    list.append(li);
  }
}

function fleetTrails(e) {
  if (!e.trails.length) return document.createTextNode("—");
  const list = el("ul", null, { class: "plain" });
  for (const t of e.trails) {
    let text = t.trail_id + ": " + t.stored_head_seq + " / " + (t.local_head_seq === null ? "?" : t.local_head_seq);
    if (t.refused) text += " — refused (" + t.refused + ")";
    list.append(el("li", text, { "data-trail": t.trail_id, "data-stored": t.stored_head_seq }));
  }
  return list;
}

function fleetProblems(e) {
  if (!e.problems.length) return document.createTextNode("none");
  const list = el("ul", null, { class: "plain" });
  for (const p of e.problems) list.append(el("li", p));
  return list;
}

function fleetRender() {
  const view = fleet.view;
  fleetHeader();
  const body = $("fleet-table").querySelector("tbody");
  body.replaceChildren();
  if (!view) return;
  fleetCounts(view);
  $("fleet-generated").replaceChildren(document.createTextNode("As of "), fleetTime(view.generated_at), document.createTextNode("."));
  for (const e of fleetSorted(view.edges)) {
    const tr = el("tr", null, { "data-edge": e.edge, "data-status": e.status });
    const cell = (child) => { const td = el("td"); td.append(child); return td; };
    const seen = el("td");
    seen.append(fleetTime(e.last_seen_at));
    if (e.last_seen_age_seconds !== null) seen.append(" (" + fleetSeconds(e.last_seen_age_seconds) + " ago)");
    const lag = e.lag_records + (e.lag_records === 1 ? " record" : " records") +
      (e.lag_seconds === null ? (e.lag_records ? ", ? s" : "") : ", " + fleetSeconds(e.lag_seconds));
    const skew = e.clock_skew_ms === null ? "—" : (e.clock_skew_ms > 0 ? "+" : "") + e.clock_skew_ms + " ms";
    const stateCell = el("td", e.state);
    if (e.state === "revoked" && e.revoked_at) stateCell.append(" at ", fleetTime(e.revoked_at));
    else if (e.enrolled_by) stateCell.append(" (code by " + e.enrolled_by + ")");
    tr.append(
      el("th", e.edge, { scope: "row" }), cell(fleetBadge(e.status)), stateCell, seen,
      cell(fleetTime(e.last_batch_at)), el("td", lag, { class: "num" }), cell(fleetTrails(e)),
      el("td", skew, { class: "num" }), el("td", e.version || "—"), cell(fleetProblems(e)));
    if (fleetIsAdmin()) {
      const actions = el("td");
      if (e.state === "enrolled") {
        const b = el("button", "Revoke", { type: "button", class: "danger" });
        b.append(el("span", " " + e.edge, { class: "sr-only" }));
        b.addEventListener("click", () => fleetOpenRevoke(e.edge));
        actions.append(b);
      }
      tr.append(actions);
    }
    body.append(tr);
  }
  if (!view.edges.length) {
    const tr = el("tr");
    tr.append(el("td", "No edge enrolled yet.", { colspan: String(FLEET_COLUMNS.length + (fleetIsAdmin() ? 1 : 0)) }));
    body.append(tr);
  }
}

async function fleetLoad() {
  $("fleet-error").textContent = "";
  $("fleet-status").textContent = "Loading the fleet…";
  try {
    fleet.view = await api("GET", "/fleet");
  } catch (e) {
    $("fleet-status").textContent = "";
    $("fleet-error").textContent = "The fleet could not be loaded: " + e.message;
    return;
  }
  fleetRender();
  const n = fleet.view.edges.length;
  const bad = fleet.view.edges.filter((e) => e.status !== "ok").length;
  $("fleet-status").textContent = "Updated: " + n + (n === 1 ? " edge" : " edges") + ", " + bad + " needing attention.";
}

// Whether this server has a fleet (200) or not (404 fleet_disabled on an edge): asked once per
// login, the nav entry shown only for a 200.
async function fleetProbe() {
  const ticket = ++fleet.probe;
  fleet.available = false;
  $("show-fleet").hidden = true;
  if (!state.me || !FLEET_ROLES.includes(state.me.role)) return;
  let ok = false;
  try {
    const resp = await fetch("/api/v1/fleet", { headers: { "Accept": "application/json", "Authorization": "Bearer " + state.token } });
    ok = resp.ok;
  } catch (_) { ok = false; }
  if (ticket !== fleet.probe || $("whoami").hidden) return;
  fleet.available = ok;
  $("show-fleet").hidden = !ok;
}

function fleetClear() {
  fleet.probe++;
  fleet.view = null;
  fleet.available = false;
  fleet.revoking = null;
  fleet.sort = { key: "status", dir: "ascending" };
  $("show-fleet").hidden = true;
  $("fleet").hidden = true;
  $("fleet-table").querySelector("tbody").replaceChildren();
  $("fleet-counts").replaceChildren();
  $("fleet-generated").replaceChildren();
  for (const id of ["fleet-status", "fleet-error", "fleet-code-error", "fleet-revoke-error", "fleet-copy-status"]) $(id).textContent = "";
  fleetHideCode();
  $("fleet-code-edge").value = "";
  $("fleet-code-ttl").value = "60";
  $("fleet-revoke-reason").value = "";
  $("fleet-revoke-confirm").checked = false;
  if ($("fleet-revoke-dialog").open) $("fleet-revoke-dialog").close();
}

function fleetHideCode() {
  $("fleet-code-value").value = "";
  $("fleet-code-command").value = "";
  $("fleet-code-for").textContent = "";
  $("fleet-code-expires").replaceChildren();
  $("fleet-copy-status").textContent = "";
  $("fleet-code-result").hidden = true;
}

async function fleetIssueCode() {
  $("fleet-code-error").textContent = "";
  for (const f of ["fleet-code-edge", "fleet-code-ttl"]) $(f).removeAttribute("aria-invalid");
  const edge = $("fleet-code-edge").value.trim();
  const ttl = Number($("fleet-code-ttl").value);
  if (!edge) { $("fleet-code-error").textContent = "Give the edge id (the workstation's device)."; $("fleet-code-edge").setAttribute("aria-invalid", "true"); $("fleet-code-edge").focus(); return; }
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 10080) {
    $("fleet-code-error").textContent = "The lifetime must be a whole number of minutes from 1 to 10080 (7 days).";
    $("fleet-code-ttl").setAttribute("aria-invalid", "true");
    $("fleet-code-ttl").focus();
    return;
  }
  let issued;
  try {
    issued = await api("POST", "/fleet/codes", { edge, ttl_minutes: ttl });
  } catch (e) {
    $("fleet-code-error").textContent = "No code issued: " + e.message;
    if (e.status === 400 || e.status === 422) { $("fleet-code-edge").setAttribute("aria-invalid", "true"); $("fleet-code-edge").focus(); }
    return;
  }
  fleetHideCode();
  $("fleet-code-for").textContent = issued.edge;
  $("fleet-code-expires").replaceChildren(fleetTime(issued.expires_at));
  $("fleet-code-value").value = issued.code;
  $("fleet-code-command").value = "relay-edge enroll --server " + window.location.origin + " --code " + issued.code;
  $("fleet-code-result").hidden = false;
  $("fleet-code-edge").value = "";
  $("fleet-code-result-title").focus();
  await fleetLoad();
}

async function fleetCopy(id, what) {
  const field = $(id);
  field.focus();
  field.select();
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(field.value); copied = true; }
  } catch (_) { copied = false; }
  if (!copied) {
    try { copied = document.execCommand("copy"); } catch (_) { copied = false; }
  }
  $("fleet-copy-status").textContent = copied ? what + " copied." : "Selected: press Ctrl+C (or ⌘C) to copy the " + what.toLowerCase() + ".";
}

function fleetOpenRevoke(edge) {
  fleet.revoking = edge;
  $("fleet-revoke-title").textContent = "Revoke edge " + edge;
  $("fleet-revoke-confirm-text").textContent = "I confirm: refuse " + edge + "'s ingest now (only a new enrollment code undoes it).";
  $("fleet-revoke-reason").value = "";
  $("fleet-revoke-confirm").checked = false;
  $("fleet-revoke-error").textContent = "";
  for (const f of ["fleet-revoke-reason", "fleet-revoke-confirm"]) $(f).removeAttribute("aria-invalid");
  $("fleet-revoke-dialog").showModal();
  $("fleet-revoke-reason").focus();
}

async function fleetRevoke(ev) {
  ev.preventDefault();
  const edge = fleet.revoking;
  const reason = $("fleet-revoke-reason").value.trim();
  $("fleet-revoke-error").textContent = "";
  for (const f of ["fleet-revoke-reason", "fleet-revoke-confirm"]) $(f).removeAttribute("aria-invalid");
  const bad = (field, text) => { $("fleet-revoke-error").textContent = text; $(field).setAttribute("aria-invalid", "true"); $(field).focus(); };
  if (!reason) { bad("fleet-revoke-reason", "Say why the edge is revoked."); return; }
  if (!$("fleet-revoke-confirm").checked) { bad("fleet-revoke-confirm", "Tick the confirmation to revoke " + edge + "."); return; }
  const submit = $("fleet-revoke-submit");
  submit.disabled = true;
  try {
    await api("POST", "/fleet/edges/" + encodeURIComponent(edge) + "/revoke", { reason });
  } catch (e) {
    $("fleet-revoke-error").textContent = "Not revoked: " + e.message;
    return;
  } finally {
    submit.disabled = false;
  }
  fleet.revoking = null;
  $("fleet-revoke-dialog").close();
  toast("Edge " + edge + " revoked: its ingest is refused; only a new enrollment code undoes it.");
  await fleetLoad();
  $("fleet-title").focus();
}

// An unexpected failure of the page's actions: on the page's error line, not the top banner.
function fleetGuard(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    try { await fn(ev); } catch (e) { $("fleet-error").textContent = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message; }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  // Follow app.js's session: asked once per login; nothing of the page stays after a logout.
  new MutationObserver(() => {
    if ($("whoami").hidden) fleetClear(); else fleetProbe();
  }).observe($("whoami"), { attributes: true, attributeFilter: ["hidden"] });
  $("show-fleet").addEventListener("click", fleetGuard(async () => {
    $("fleet").hidden = false;
    $("fleet-code-form").hidden = !fleetIsAdmin();
    await fleetLoad();
    $("fleet").scrollIntoView();
    $("fleet-title").focus({ preventScroll: true });
  }));
  $("fleet-refresh").addEventListener("click", fleetGuard(fleetLoad));
  $("fleet-code-form").addEventListener("submit", fleetGuard(fleetIssueCode));
  $("fleet-code-copy").addEventListener("click", fleetGuard(() => fleetCopy("fleet-code-value", "Code")));
  $("fleet-command-copy").addEventListener("click", fleetGuard(() => fleetCopy("fleet-code-command", "Command")));
  $("fleet-code-done").addEventListener("click", () => { fleetHideCode(); $("fleet-code-edge").focus(); });
  $("fleet-revoke-form").addEventListener("submit", fleetGuard(fleetRevoke));
  $("fleet-revoke-cancel").addEventListener("click", () => { fleet.revoking = null; $("fleet-revoke-dialog").close(); });
});
