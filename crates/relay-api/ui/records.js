// The record list and the open record (issue 25), an ES module: newest first by default with
// a sort toggle, totals, first / previous / next / last, the kind picker and local date-time
// pickers, ACCESS events of _relay hidden unless asked, and every view in the URL hash
// (#/trail/<id>[/record/<seq>]?…) so that refresh and back / forward keep the place; a file
// record's history across versions; the printable report's header.
// It uses the helpers of app.js (a classic script loaded before it: $, el, api, state, guard,
// statusBadge, lateBadge, receiptText) and gives app.js window.relayRecords. Text is set with
// textContent only.
import { decorateRow, pageShown, setRefresh } from "./bulk_sign.js";
import { KINDS, checkFolder, emptyRoute, eventsQuery, formatSize, lastPageSize, listKey, localTimeText, localToUtc, parseRoute, payloadFields, rangeText, routeHash, searchedText, totalIsCheap, utcToLocal } from "./records_lib.js";

const PAGE = 50;
const view = {
  route: null,      // the view shown
  loadedKey: null,  // listKey of the page in the table
  page: null,       // { events, offset, total (null while counted), next }
  facetsOf: null,   // the trail whose facets fill the pickers
  shownRecord: null,
  trails: [],
  loading: 0,
};

// The count in flight (an AbortController), see countOf.
let counting = null;

// Goes to a view: a new history entry, rendered by the hashchange listener.
function go(route, { replace = false } = {}) {
  const hash = routeHash(route);
  if (location.hash === hash) { render().catch(report); return; }
  if (replace) { history.replaceState(null, "", hash); render().catch(report); } else { location.hash = hash; }
}

function report(e) { notice(e && e.message ? e.message : String(e)); }

function withRoute(changes) {
  return Object.assign({}, view.route || emptyRoute(), changes);
}

// The view the URL names, or the landing view: the first capture trail (not _relay); a
// reviewer lands on their signing queue there (the queue filter on, one click turns it off).
function currentRoute() {
  const r = parseRoute(location.hash);
  if (r && view.trails.some((t) => t.trail_id === r.trail)) return r;
  const landing = view.trails.find((t) => t.trail_id !== "_relay") || view.trails[0];
  if (!landing) return null;
  const queue = Boolean(state.me && state.me.role === "reviewer" && landing.trail_id !== "_relay");
  return Object.assign(emptyRoute(), { trail: landing.trail_id, queue });
}

async function render() {
  if (!state.token) return;
  const r = currentRoute();
  if (!r) return;
  if (routeHash(r) !== location.hash) history.replaceState(null, "", routeHash(r));
  if (!view.route || listKey(r) !== listKey(view.route)) printEnded();
  const trailChanged = !view.route || view.route.trail !== r.trail;
  view.route = r;
  state.trail = r.trail;
  for (const b of document.querySelectorAll("#trail-list button")) {
    b.setAttribute("aria-current", b.dataset.trail === r.trail ? "true" : "false");
  }
  $("events-title").textContent = (r.queue ? "Your signing queue in " : "Records of ") + r.trail;
  $("queue-note").hidden = !r.queue;
  if (trailChanged) $("verdict").textContent = "";
  if (view.facetsOf !== r.trail) loadFacets(r.trail);
  // The form shows the list's filters; unsaved edits stay while a record is opened.
  if (listKey(r) !== view.loadedKey) { showFilters(r); await loadList(r); }
  if (r.record) {
    if (view.shownRecord !== r.trail + "#" + r.record) await showRecord(r.trail, r.record, true);
  } else {
    closeRecord();
  }
}

// The filter form shows the view's filters (times in local time).
function showFilters(r) {
  $("f-kind").value = KINDS.includes(r.kind) ? r.kind : "";
  $("f-actor").value = r.actor;
  $("f-project").value = r.project;
  $("f-folder").value = r.folder;
  $("f-q").value = r.q;
  $("f-since").value = utcToLocal(r.since);
  $("f-until").value = utcToLocal(r.until);
  $("f-status").value = r.status;
  $("f-queue").checked = r.queue;
  $("f-order").value = r.order;
  $("f-access").checked = r.access;
  $("f-access-label").hidden = r.trail !== "_relay";
  for (const f of FIELDS) fieldError(f, "");
}

// The fields that can show an inline error.
const FIELDS = ["actor", "project", "folder", "since", "until"];

// The actor, project and folder pickers offer the trail's values (GET /trails/{trail}/facets,
// counted incrementally by the server); typing any other value still works.
async function loadFacets(trail) {
  view.facetsOf = trail;
  const fill = (which, facet, what) => {
    const list = $("f-" + which + "-list");
    list.replaceChildren();
    for (const v of facet.values) list.append(el("option", v.value + " (" + v.count.toLocaleString("en-US") + " records)", { value: v.value }));
    $("f-" + which + "-hint").textContent = facet.more
      ? "Suggests the " + facet.values.length + " with most records; " + facet.more.toLocaleString("en-US") + " more " + what + " can be typed."
      : "";
  };
  try {
    const f = await api("GET", "/trails/" + encodeURIComponent(trail) + "/facets");
    if (view.facetsOf !== trail) return;
    fill("actor", f.actors, "actors");
    fill("project", f.projects, "projects");
    fill("folder", f.folders, "folders");
  } catch (_) {
    view.facetsOf = null; // the pickers stay empty; the fields still take typed values
  }
}

function fieldError(which, text) {
  const input = $("f-" + which);
  $("f-" + which + "-error").textContent = text;
  if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
}

// Empties the list: nothing stale stays under filters it does not match.
function clearList(message) {
  if (counting) counting.abort();
  view.loadedKey = null;
  view.page = null;
  $("events-table").querySelector("tbody").replaceChildren();
  $("range").textContent = message || "";
  $("search-progress").hidden = true;
  setPager({ first: false, prev: false, next: false, last: false });
  scrollerReachable();
}

// A narrow window scrolls the table sideways; without a link in it (no rows) the scroller
// itself takes the focus, so the keyboard can scroll it too (WCAG 2.1.1).
function scrollerReachable() {
  const box = $("events-table").parentElement;
  const empty = !document.querySelector("#events-table tbody a");
  if (empty) {
    box.setAttribute("tabindex", "0"); box.setAttribute("role", "region"); box.setAttribute("aria-label", "Records table (empty)");
  } else {
    for (const a of ["tabindex", "role", "aria-label"]) box.removeAttribute(a);
  }
}

function setButton(id, enabled) {
  const b = $(id);
  b.disabled = !enabled;
  b.setAttribute("aria-disabled", String(!enabled));
}

function setPager(p) {
  setButton("first-page", p.first); setButton("prev-page", p.prev);
  setButton("next-page", p.next); setButton("last-page", p.last);
}

// The total of a view whose count is a pass over the trail, read apart from its rows. Leaving
// the view aborts it: the browser drops the connection and the server stops reading (nothing
// answered, so nothing logged), instead of a pass per abandoned view competing with the next.
async function countOf(r) {
  const abort = new AbortController();
  counting = abort;
  try {
    const resp = await fetch("/api/v1/events?" + eventsQuery(r, 1).toString(), {
      headers: { "Accept": "application/json", "Authorization": "Bearer " + state.token }, signal: abort.signal,
    });
    if (!resp.ok) return null;
    return await resp.json();
  } catch (_) {
    return null; // aborted or failed: the range keeps saying the total is not known
  } finally {
    if (counting === abort) counting = null;
  }
}

async function loadList(r) {
  if (counting) counting.abort();
  const ticket = ++view.loading;
  $("range").textContent = "Loading…";
  // The rows first; a total that needs a pass over the trail (text, times, status) follows
  // in a second read, so the rows never wait for it.
  const cheap = totalIsCheap(r);
  const q = eventsQuery(r, PAGE);
  if (!cheap) q.delete("count");
  let page;
  try {
    page = await api("GET", "/events?" + q.toString());
  } catch (e) {
    if (ticket !== view.loading) return;
    // A filter the server refuses: the error beside its field, no stale rows.
    const field = e.status === 400 && FIELDS.find((f) => new RegExp("\\b" + f + "\\b", "i").test(e.message));
    if (field) {
      fieldError(field, e.message);
      clearList("No results: correct the highlighted field.");
      return;
    }
    clearList("");
    throw e;
  }
  if (ticket !== view.loading) return; // a newer view was asked meanwhile
  const next = r.order === "desc" ? page.next_before_seq : page.next_after_seq;
  const shown = page.events.length;
  view.page = { events: page.events, offset: page.offset || 0, total: cheap ? page.total || 0 : null, next: next === undefined ? null : next, scanned: page.scanned };
  view.loadedKey = listKey(r);
  showRange(r);
  const body = $("events-table").querySelector("tbody");
  body.replaceChildren();
  for (const e of page.events) body.append(row(r, e));
  if (!shown) {
    const tr = el("tr"); tr.append(el("td", view.page.next !== null ? "None found in the records searched so far." : "No matching records.", { colspan: "7" })); body.append(tr);
  }
  markSelected();
  markIntegrity();
  pageShown(r, page.events);
  scrollerReachable();
  if (!cheap) {
    const counted = await countOf(r);
    if (!counted || ticket !== view.loading || !view.page) return;
    view.page.offset = counted.offset || 0;
    view.page.total = counted.total || 0;
    showRange(r);
  }
}

// The range text, the pager and, when the server's scan limit ended a page before it was full,
// "Searched records #A–#B, N found" with "Continue searching" instead of a Next that could
// lead to an empty page.
function showRange(r) {
  const p = view.page;
  const shown = p.events.length;
  const short = shown < PAGE && p.next !== null;
  const order = r.order === "desc" ? ", newest first" : ", oldest first";
  const progress = $("search-progress");
  progress.hidden = !short;
  if (short) $("search-progress-text").textContent = searchedText(r.order, p.next, p.scanned, shown);
  if (p.total === null) {
    $("range").textContent = (shown ? "Showing " + shown + (shown === 1 ? " record" : " records") : "No records shown") + order + "; counting the matches in the whole trail…";
    setPager({ first: Boolean(r.from), prev: Boolean(r.from), next: !short && p.next !== null, last: false });
    return;
  }
  const more = p.offset + shown < p.total;
  setPager({ first: p.offset > 0, prev: p.offset > 0, next: !short && more && p.next !== null, last: more });
  $("range").textContent = (short && !shown ? "None found yet of " + p.total.toLocaleString("en-US") + " matching" : rangeText(p.offset, shown, p.total)) + order;
}

// The trail's last verify verdict in this session: { ok, bad (first bad seq or null), head }.
function verdictOf(trail) { return state.verdicts[trail] || null; }

// The first bad record of a broken trail is marked in words (not colour alone); a record at or
// after it cannot be signed.
function markIntegrity() {
  const v = view.route && verdictOf(view.route.trail);
  const bad = v && !v.ok ? v.bad : null;
  for (const tr of document.querySelectorAll("#events-table tbody tr[data-seq]")) {
    const on = bad !== null && tr.dataset.seq === String(bad);
    tr.classList.toggle("first-bad", on);
    const mark = tr.querySelector(".badge.bad");
    if (on && !mark) tr.firstChild.append(" ", el("span", "first bad record", { class: "badge bad" }));
    if (!on && mark) mark.remove();
  }
  if (state.record) showSignState(state.record);
}

function showSignState(r) {
  const signer = Boolean(state.me && state.me.role === "reviewer" && r.kind !== "SIGNATURE" && r.trail_id !== "_relay");
  const v = verdictOf(r.trail_id);
  const broken = Boolean(v && !v.ok && v.bad !== null && v.bad <= r.chain_seq);
  const sign = $("open-sign");
  sign.hidden = !signer;
  sign.disabled = broken;
  sign.setAttribute("aria-disabled", String(broken));
  if (broken) sign.setAttribute("aria-describedby", "sign-blocked"); else sign.removeAttribute("aria-describedby");
  $("sign-blocked").hidden = !(signer && broken);
  $("sign-blocked").textContent = broken
    ? "Signing disabled: verifying " + r.trail_id + " found its chain broken at record #" + v.bad + (v.bad === r.chain_seq ? " (this record)." : ", before this record.")
    : "";
  const integrity = $("detail-integrity");
  if (integrity) {
    integrity.textContent = !v ? "Not verified in this session (use “Verify this trail”)."
      : broken ? "BROKEN: the trail's chain is broken at record #" + v.bad + (v.bad === r.chain_seq ? " (this record)" : " (before this record)")
        : v.ok ? (r.chain_seq <= v.head ? "Verified: the chain up to #" + v.head + " checks out" : "Recorded after the last verify (up to #" + v.head + ")")
          : "Before the first bad record #" + v.bad + ": its chain checks out";
    integrity.className = broken ? "broken" : v && (v.ok ? r.chain_seq <= v.head : true) ? "ok" : "";
  }
}

function row(r, e) {
  const tr = el("tr", null, { "data-seq": e.chain_seq });
  const link = el("a", "#" + e.chain_seq, {
    href: routeHash(Object.assign({}, r, { record: e.chain_seq })),
    "aria-label": "Open record " + e.chain_seq + " (" + e.kind + ")",
  });
  const seqCell = el("td"); seqCell.append(link);
  const recorded = el("td", e.recorded_at);
  if (e.late === true) recorded.append(" ", lateBadge(e));
  tr.append(seqCell, el("td", e.kind), el("td", e.subject || "—", { class: "subject" }), el("td", e.actor), recorded);
  const status = el("td", null);
  status.append(statusBadge(e));
  tr.append(status);
  const sigs = el("td", e.signatures.map((s) => s.meaning + " by " + s.printed_name + " (" + s.username + ")").join("; ") || "—");
  // On paper, each manifestation in full (21 CFR 11.50): name, time, meaning, reason.
  for (const s of e.signatures) {
    sigs.append(el("span", s.printed_name + " (" + s.username + ") — " + s.meaning.toUpperCase() + " — " + s.signed_at + " (UTC) — Reason: " + s.reason + " — signature record #" + s.signature_seq, { class: "print-only manifestation-print" }));
  }
  tr.append(sigs);
  // A click anywhere on the row opens it too (the link is the keyboard's way).
  tr.addEventListener("click", (ev) => { if (ev.target.closest("a, input")) return; go(withRoute({ record: e.chain_seq })); });
  decorateRow(tr, e); // bulk signing: a selection checkbox on a signable row
  return tr;
}

function markSelected() {
  const r = view.route;
  for (const tr of document.querySelectorAll("#events-table tbody tr")) {
    const on = Boolean(r && r.record) && tr.dataset.seq === String(r.record);
    tr.classList.toggle("selected", on);
    if (on) tr.setAttribute("aria-current", "true"); else tr.removeAttribute("aria-current");
  }
}

// The page that starts where another order's query from `cursor` ends: how previous and last
// find their first record.
async function pageStartFrom(query, count) {
  const r = view.route;
  const opposite = r.order === "desc" ? "asc" : "desc";
  const p = eventsQuery(Object.assign({}, r, { from: null, order: opposite }), count);
  p.delete("count");
  if (query) p.set(opposite === "desc" ? "before_seq" : "after_seq", String(query));
  const page = await api("GET", "/events?" + p.toString());
  return page.events;
}

async function previousPage() {
  const first = view.page && view.page.events[0];
  if (!first) { go(withRoute({ from: null })); return; }
  const before = await pageStartFrom(first.chain_seq, PAGE);
  // While a total is still being counted the offset is not known: a full page before this one
  // is the previous page.
  const full = before.length === PAGE && (view.page.total === null || view.page.offset > PAGE);
  go(withRoute({ from: full ? before[before.length - 1].chain_seq : null }));
}

async function lastPage() {
  const size = lastPageSize(view.page ? view.page.total : 0, PAGE);
  if (!size) return;
  const tail = await pageStartFrom(null, size);
  // A sparse search whose last page lies beyond one scan: the other order's first page, where
  // "Continue searching" goes on.
  if (tail.length < size) { go(withRoute({ order: view.route.order === "desc" ? "asc" : "desc", from: null })); return; }
  const start = tail[tail.length - 1];
  go(withRoute({ from: start && view.page.total > PAGE ? start.chain_seq : null }));
}

function nextPage() {
  const next = view.page && view.page.next;
  if (next === null || next === undefined) return;
  go(withRoute({ from: view.route.order === "desc" ? next - 1 : next + 1 }));
}

// The filter form -> a view, or inline errors (and no stale results) when a field is invalid.
function applyFilters() {
  const since = localToUtc($("f-since").value);
  const until = localToUtc($("f-until").value);
  let bad = false;
  for (const f of FIELDS) fieldError(f, "");
  const folder = checkFolder($("f-folder").value);
  if (folder.error) { fieldError("folder", folder.error); bad = true; }
  if (since === null || $("f-since").validity.badInput) { fieldError("since", "Enter a complete date and time, or clear the field."); bad = true; }
  if (until === null || $("f-until").validity.badInput) { fieldError("until", "Enter a complete date and time, or clear the field."); bad = true; }
  if (!bad && since && until && Date.parse(until) <= Date.parse(since)) { fieldError("until", "Until must be after Since."); bad = true; }
  if (bad) {
    clearList("No results: correct the highlighted field.");
    const first = document.querySelector("#filter-form [aria-invalid=true]");
    if (first) first.focus();
    return;
  }
  view.loadedKey = null; // "Filter" always reads the list again
  go(withRoute({
    kind: $("f-kind").value, actor: $("f-actor").value.trim(), project: $("f-project").value.trim(),
    folder: folder.folder || "", q: $("f-q").value.trim(),
    since, until, status: $("f-status").value, queue: $("f-queue").checked, from: null,
  }));
}

async function showRecord(trail, seq, focus) {
  const r = await api("GET", "/events/" + encodeURIComponent(trail) + "/" + seq);
  state.record = r;
  view.shownRecord = trail + "#" + seq;
  markSelected();
  $("detail-title").textContent = "Record " + r.trail_id + " #" + r.chain_seq;
  const dl = $("detail-fields");
  dl.replaceChildren();
  const payload = r.payload || {};
  const unattributed = payload.unattributed === true ? " — UNATTRIBUTED: no person could be resolved" : "";
  // [label, value, kind]: a "time" shows the local time beside UTC, a "hash" is monospaced.
  const fields = [["Kind", r.kind], ["Subject", r.subject || "—"], ["Actor", r.actor + " (" + r.actor_source + ")" + unattributed]];
  if (r.review_status) fields.unshift(["Review status", r.review_status + (r.superseded_by ? " (by record #" + r.superseded_by + ")" : "")]);
  fields.push(["Integrity", "", "integrity"]);
  fields.push(["Occurred", r.occurred_at, "time"], ["Recorded", r.recorded_at, "time"]);
  const receipt = receiptText(r);
  if (receipt !== null) fields.push(["Received by server (UTC)", receipt]);
  fields.push(["Time source", r.time_source], ["Device", r.device], ["Project", r.project || "—"]);
  for (const f of payloadFields(payload)) fields.push(f);
  fields.push(["Checksum", r.checksum, "hash"], ["Previous checksum", r.prev_checksum, "hash"], ["Key", r.key_id]);
  for (const [k, v, kind] of fields) {
    const dd = el("dd", kind === "time" ? (v ? v + " (UTC)" : "—") : v, kind === "hash" ? { class: "mono" } : kind === "integrity" ? { id: "detail-integrity" } : {});
    if (kind === "time") {
      const local = localTimeText(v);
      if (local) dd.append(el("span", local, { class: "local-time" }));
    }
    if (k.startsWith("Received") && r.late === true) dd.append(" ", lateBadge(r));
    dl.append(el("dt", k), dd);
  }
  const list = $("manifestations");
  list.replaceChildren();
  for (const s of r.signatures) {
    // The meaning in words and in colour: rejected red, approved green, reviewed blue.
    const li = el("li", null, { class: "manifestation meaning-" + s.meaning });
    li.append(el("span", s.meaning.toUpperCase(), { class: "badge meaning" }), document.createTextNode(" "));
    li.append(el("strong", s.printed_name), document.createTextNode(" (" + s.username + ") — " + s.meaning.toUpperCase() + " — " + s.signed_at + " (UTC)"));
    li.append(el("div", "Reason: " + s.reason));
    li.append(el("div", "Signature record #" + s.signature_seq + " by " + s.username, { class: "muted" }));
    list.append(li);
  }
  if (!r.signatures.length) list.append(el("li", "Not signed."));
  showSignState(r);
  await showHistory(r);
  $("detail").hidden = false;
  $("app-view").classList.add("with-detail");
  if (focus) $("detail-title").focus();
}

const FILE_KINDS = ["FILE_CREATED", "FILE_MODIFIED", "FILE_DELETED"];
const HISTORY_PAGES = 40; // at most 40 reads of 500 records (each bounded by max_scan)

// The other versions of the open record's file: the records of the same subject, oldest
// first, read with the events API's text search and kept when the subject is exactly the same.
async function fileVersions(r) {
  const out = [];
  let after = null;
  for (let i = 0; i < HISTORY_PAGES; i++) {
    const p = new URLSearchParams({ trail: r.trail_id, q: r.subject, order: "asc", limit: "500" });
    if (after !== null) p.set("after_seq", String(after));
    const page = await api("GET", "/events?" + p.toString());
    for (const e of page.events) if (e.subject === r.subject && FILE_KINDS.includes(e.kind)) out.push(e);
    if (page.next_after_seq === undefined || page.next_after_seq === null) return { versions: out, complete: true };
    after = page.next_after_seq;
  }
  return { versions: out, complete: false, searchedTo: after };
}

async function showHistory(r) {
  const box = $("history-box");
  const list = $("history");
  list.replaceChildren();
  $("history-note").textContent = "";
  if (!r.subject || !FILE_KINDS.includes(r.kind)) { box.hidden = true; return; }
  const { versions, complete, searchedTo } = await fileVersions(r);
  if (!view.route || state.record !== r) return; // another record was opened meanwhile
  box.hidden = false;
  $("history-note").textContent = versions.length + (versions.length === 1 ? " version" : " versions") + " of " + r.subject + " in " + r.trail_id + ", oldest first"
    + (complete ? "." : "; searched up to record #" + searchedTo + ", later versions not shown.");
  for (const e of versions) {
    const current = e.chain_seq === r.chain_seq;
    const li = el("li", null, { class: current ? "version current" : "version", "data-seq": e.chain_seq });
    if (current) li.setAttribute("aria-current", "true");
    const head = el("div");
    head.append(el("a", "#" + e.chain_seq, {
      href: routeHash(Object.assign({}, view.route, { record: e.chain_seq })),
      "aria-label": "Open version record " + e.chain_seq + " (" + e.kind + ")",
    }), document.createTextNode(" " + e.kind + " — " + e.recorded_at + " (UTC)"));
    const local = localTimeText(e.recorded_at);
    if (local) head.append(el("span", local, { class: "local-time" }));
    if (current) head.append(" ", el("strong", "(this version)"));
    li.append(head);
    const p = e.payload || {};
    if (p.size !== undefined) li.append(el("div", "Size: " + formatSize(p.size)));
    if (e.kind === "FILE_MODIFIED" && p.previous_sha256) {
      li.append(el("div", "SHA-256: " + p.previous_sha256 + " → " + (p.sha256 || "—"), { class: "mono hash-change" }));
    } else if (p.sha256) {
      li.append(el("div", "SHA-256: " + p.sha256, { class: "mono" }));
    }
    li.append(el("div", e.signatures.length
      ? "Signatures: " + e.signatures.map((s) => s.meaning + " by " + s.printed_name + " (" + s.username + ")").join("; ")
      : "No signature on this version.", { class: "version-signatures" }));
    list.append(li);
  }
}

// The report header of the list shown: trail, time printed, filter, last verify verdict.
function filterText(r) {
  const parts = [];
  if (r.kind) parts.push("kind " + r.kind);
  if (r.actor) parts.push("actor " + r.actor);
  if (r.project) parts.push("project " + r.project);
  if (r.folder) parts.push("folder " + r.folder);
  if (r.q) parts.push("text “" + r.q + "”");
  if (r.since) parts.push("since " + r.since);
  if (r.until) parts.push("until " + r.until);
  if (r.status) parts.push("review status " + r.status);
  if (r.queue) parts.push("my signing queue");
  if (r.trail === "_relay" && !r.access) parts.push("access events left out");
  return (parts.length ? "Filter: " + parts.join(", ") : "Filter: none (all records)") + "; " + (r.order === "desc" ? "newest first" : "oldest first") + ".";
}

// `range`: the report's "Records:" line (the page shown's range when not given).
function fillReport(range) {
  const r = view.route;
  if (!r) return;
  const now = new Date();
  $("report-title").textContent = "Audit-trail report — trail " + r.trail;
  $("report-printed").textContent = "Printed " + now.toISOString() + " (UTC), " + localTimeText(now.toISOString()) + " by " + (state.me ? state.me.full_name + " (" + state.me.username + ")" : "—");
  $("report-filter").textContent = filterText(r);
  const v = verdictOf(r.trail);
  $("report-verdict").textContent = !v ? "Last verify verdict: not verified in this session."
    : v.ok ? "Last verify verdict: OK, the chain up to #" + v.head + " checks out."
      : "Last verify verdict: BROKEN, first bad record #" + v.bad + ".";
  $("report-range").textContent = typeof range === "string" ? range : "Records: " + $("range").textContent;
}

// The printed report of the whole filtered view (not only the page shown): every matching
// record read through GET /api/v1/events with the view's filters and order, in pages of 500
// (the server's cursors), at most PRINT_MAX records, each with its manifestations in full.
// The browser tests shrink both through data-page-size / data-max on the dialog.
const PRINT_PAGE_SIZE = 500;
const PRINT_MAX_RECORDS = 10000;
const printLimit = (which, fallback) => Number($("print-dialog").dataset[which]) || fallback;
const printing = { whole: false, abort: null };

function printScopeTexts() {
  const p = view.page;
  const PRINT_MAX = printLimit("max", PRINT_MAX_RECORDS);
  $("print-page-text").textContent = "The page shown (" + ($("range").textContent || "no records") + ")";
  const total = p && p.total !== null ? p.total : null;
  $("print-whole-text").textContent = "The whole filtered view (" + (total === null ? "all matching records" : total.toLocaleString("en-US") + (total === 1 ? " record" : " records"))
    + "; at most " + PRINT_MAX.toLocaleString("en-US") + ")";
}

function openPrint() {
  if (!view.route) return;
  printScopeTexts();
  $("print-page").checked = true;
  $("print-progress-box").hidden = true;
  $("print-error").textContent = "";
  $("print-submit").disabled = false;
  $("print-scope").disabled = false;
  $("print-dialog").showModal();
  $("print-page").focus();
}

function printPage() {
  printing.whole = false;
  $("app-view").classList.remove("print-whole");
  fillReport();
  window.print();
}

async function fetchPage(q, signal) {
  const resp = await fetch("/api/v1/events?" + q.toString(), {
    headers: { "Accept": "application/json", "Authorization": "Bearer " + state.token }, signal,
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error((data && data.error && data.error.message) || ("HTTP " + resp.status));
  return data;
}

function reportRow(e) {
  const tr = el("tr", null, { "data-seq": e.chain_seq });
  const sigs = el("td");
  if (!e.signatures.length) sigs.textContent = "—";
  else {
    const ul = el("ul");
    for (const s of e.signatures) {
      ul.append(el("li", s.printed_name + " (" + s.username + ") — " + s.meaning.toUpperCase() + " — " + s.signed_at + " (UTC) — Reason: " + s.reason + " — signature record #" + s.signature_seq, { class: "manifestation-print" }));
    }
    sigs.append(ul);
  }
  tr.append(el("td", "#" + e.chain_seq), el("td", e.kind), el("td", e.subject || "—", { class: "subject" }), el("td", e.actor),
    el("td", e.recorded_at + (e.late === true ? " (late)" : "")), el("td", e.review_status || "—"), sigs);
  return tr;
}

async function printWhole() {
  const r = view.route;
  const PRINT_PAGE = printLimit("pageSize", PRINT_PAGE_SIZE);
  const PRINT_MAX = printLimit("max", PRINT_MAX_RECORDS);
  const abort = new AbortController();
  printing.abort = abort;
  $("print-submit").disabled = true;
  $("print-scope").disabled = true;
  $("print-error").textContent = "";
  $("print-progress-box").hidden = false;
  const known = view.page && view.page.total !== null ? view.page.total : null;
  let total = known;
  const progress = $("print-progress");
  const say = (n) => {
    progress.max = Math.max(1, Math.min(total === null ? PRINT_MAX : total, PRINT_MAX));
    progress.value = Math.min(n, progress.max);
    $("print-progress-text").textContent = "Fetched " + n.toLocaleString("en-US") + " of " + (total === null ? "the matching records" : Math.min(total, PRINT_MAX).toLocaleString("en-US")) + " records…";
  };
  const events = [];
  let cursor = null;
  let complete = false;
  say(0);
  try {
    while (events.length < PRINT_MAX) {
      const q = eventsQuery(Object.assign({}, r, { from: null }), Math.min(PRINT_PAGE, PRINT_MAX - events.length));
      if (total !== null || events.length) q.delete("count");
      if (cursor !== null) q.set(r.order === "desc" ? "before_seq" : "after_seq", String(cursor));
      const page = await fetchPage(q, abort.signal);
      if (total === null && typeof page.total === "number") total = page.total;
      events.push(...page.events);
      say(events.length);
      const next = r.order === "desc" ? page.next_before_seq : page.next_after_seq;
      if (next === undefined || next === null) { complete = true; break; }
      cursor = next;
    }
  } catch (e) {
    printing.abort = null;
    $("print-submit").disabled = false;
    $("print-scope").disabled = false;
    if (abort.signal.aborted) return;
    $("print-error").textContent = "The report could not be fetched: " + e.message;
    return;
  }
  printing.abort = null;
  if (complete) total = events.length;
  const body = $("report-all-table").querySelector("tbody");
  body.replaceChildren();
  for (const e of events) body.append(reportRow(e));
  const n = events.length.toLocaleString("en-US");
  const range = "Records " + n + " of " + (total === null ? "more than " + n : total.toLocaleString("en-US")) + " (the whole filtered view"
    + (complete ? ")." : "; CUT at the first " + PRINT_MAX.toLocaleString("en-US") + " records: narrow the filter to print the rest).");
  $("print-dialog").close();
  printing.whole = true;
  $("app-view").classList.add("print-whole");
  fillReport(range);
  window.print();
}

function cancelPrint() {
  if (printing.abort) { printing.abort.abort(); printing.abort = null; }
  $("print-dialog").close();
  $("print-report").focus();
}

// A print the user starts (Ctrl+P) or a new view: back to the page shown.
function printEnded() {
  printing.whole = false;
  $("app-view").classList.remove("print-whole");
}

function closeRecord() {
  if (view.shownRecord === null && $("detail").hidden) return;
  view.shownRecord = null;
  state.record = null;
  $("detail").hidden = true;
  $("app-view").classList.remove("with-detail");
  markSelected();
}

function reset() {
  view.route = null; view.trails = []; view.shownRecord = null; view.facetsOf = null;
  $("queue-note").hidden = true;
  printEnded();
  clearList("");
  closeRecord();
}

window.relayRecords = {
  // After login, with the trails: show the view the URL names (or the landing trail).
  async start(trails) { view.trails = trails; view.loadedKey = null; view.shownRecord = null; await render(); },
  setTrails(trails) { view.trails = trails; },
  openTrail(trail) { go(Object.assign(emptyRoute(), { trail, order: view.route ? view.route.order : "desc" })); },
  // After a signature: the page and the record again.
  async refresh() {
    view.loadedKey = null;
    if (view.route) await loadList(view.route);
    if (state.record) await showRecord(state.record.trail_id, state.record.chain_seq, false);
  },
  reset,
  // After a verify: the first bad record marked, signing disabled at or after it.
  markIntegrity,
  // The export's filters (those of the list shown).
  exportParams() {
    const p = eventsQuery(view.route, PAGE);
    for (const k of ["order", "limit", "count", "before_seq", "after_seq", "exclude_kind"]) p.delete(k);
    return p;
  },
};

setRefresh(() => window.relayRecords.refresh());
const kindSelect = $("f-kind");
for (const k of KINDS) kindSelect.append(el("option", k, { value: k }));
window.addEventListener("hashchange", () => { render().catch(report); });
$("filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); applyFilters(); });
$("f-order").addEventListener("change", () => go(withRoute({ order: $("f-order").value, from: null })));
$("f-access").addEventListener("change", () => go(withRoute({ access: $("f-access").checked, from: null })));
$("first-page").addEventListener("click", () => go(withRoute({ from: null })));
$("prev-page").addEventListener("click", guard(previousPage));
$("next-page").addEventListener("click", nextPage);
$("continue-search").addEventListener("click", nextPage);
$("last-page").addEventListener("click", guard(lastPage));
$("print-report").addEventListener("click", openPrint);
$("queue-off").addEventListener("click", () => { go(withRoute({ queue: false, from: null, record: null })); $("events-title").focus(); });
$("print-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if ($("print-whole").checked) { printWhole().catch(report); return; }
  $("print-dialog").close();
  printPage();
});
$("print-cancel").addEventListener("click", cancelPrint);
$("print-dialog").addEventListener("close", () => { if (printing.abort) { printing.abort.abort(); printing.abort = null; } });
window.addEventListener("beforeprint", () => { if (!printing.whole) fillReport(); });
window.addEventListener("afterprint", printEnded);
$("close-detail").addEventListener("click", () => {
  const seq = view.route && view.route.record;
  go(withRoute({ record: null }));
  const link = seq && document.querySelector('#events-table tr[data-seq="' + seq + '"] a');
  if (link) link.focus();
});
$("skip-link").addEventListener("click", (ev) => { ev.preventDefault(); $("main").focus(); });
for (const f of FIELDS) $("f-" + f).addEventListener("input", () => fieldError(f, ""));
