// Pure helpers of the record list (issue 25): the URL of every view, local <-> UTC times for
// the date-time pickers, and the "1–50 of 5,072" range text. No DOM, no network: imported by
// records.js and testable in Node.

// The filters a view carries in its URL, in this order.
export const FILTER_KEYS = ["kind", "actor", "project", "folder", "q", "since", "until", "status"];

// Every event kind the relay writes (relay_domain::EventKind), for the kind picker.
export const KINDS = [
  "FILE_CREATED", "FILE_MODIFIED", "FILE_DELETED", "CAPTURE_FAILED", "SIGNATURE", "STARTUP", "SHUTDOWN",
  "SYSTEM", "EXPORT", "ANCHORED", "NOTARY_FAILED", "ACCESS", "ACCESS_DENIED", "ACCESS_REVIEWED", "REGISTER",
  "LOGIN", "LOGIN_FAILED", "LOGOUT", "SESSION_EXPIRED", "LOCKOUT", "SIGNATURE_REFUSED", "ACCOUNT_CHANGED",
  "KEY_ROTATED", "KEY_REGISTERED", "CHANGE_PROPOSED", "CHANGE_APPROVED", "CHANGE_REJECTED", "FORWARD_POISONED",
  "CLOCK_SKEW", "ENROLLED", "ENROLLMENT_CODE_ISSUED", "EDGE_REVOKED",
];

// A view: { trail, record (seq or null), order ("desc" | "asc"), from (seq or null: the first
// record of the page in its order; null: the first page), access (show ACCESS events), queue,
// and the filters }.
export function emptyRoute() {
  return { trail: null, record: null, order: "desc", from: null, access: false, queue: false,
    kind: "", actor: "", project: "", folder: "", q: "", since: "", until: "", status: "" };
}

function positiveInt(s) {
  return /^[1-9][0-9]{0,15}$/.test(s || "") ? Number(s) : null;
}

// "#/trail/<id>[/record/<seq>][?query]" -> a view; anything else -> null (e.g. "#main").
export function parseRoute(hash) {
  const m = /^#\/trail\/([^/?]+)(?:\/record\/([^/?]+))?(?:\?(.*))?$/.exec(hash || "");
  if (!m) return null;
  const r = emptyRoute();
  try { r.trail = decodeURIComponent(m[1]); } catch (_) { return null; }
  r.record = positiveInt(m[2]);
  const p = new URLSearchParams(m[3] || "");
  r.order = p.get("order") === "asc" ? "asc" : "desc";
  r.from = positiveInt(p.get("from"));
  r.access = p.get("access") === "1";
  r.queue = p.get("queue") === "1";
  for (const k of FILTER_KEYS) r[k] = (p.get(k) || "").trim();
  // The kind picker is case-insensitive: kinds are upper case.
  r.kind = r.kind.toUpperCase();
  return r;
}

// A view -> its URL hash (the inverse of parseRoute; defaults left out).
export function routeHash(r) {
  let h = "#/trail/" + encodeURIComponent(r.trail);
  if (r.record) h += "/record/" + r.record;
  const p = new URLSearchParams();
  if (r.order === "asc") p.set("order", "asc");
  if (r.from) p.set("from", String(r.from));
  for (const k of FILTER_KEYS) if (r[k]) p.set(k, r[k]);
  if (r.queue) p.set("queue", "1");
  if (r.access) p.set("access", "1");
  const q = p.toString();
  return q ? h + "?" + q : h;
}

// The list a view shows, without the open record: two views with the same key show the same
// page.
export function listKey(r) {
  return routeHash(Object.assign({}, r, { record: null }));
}

// The query of GET /api/v1/events for a view's page.
export function eventsQuery(r, limit) {
  const p = new URLSearchParams({ trail: r.trail, order: r.order, limit: String(limit), count: "true" });
  for (const k of FILTER_KEYS) if (r[k]) p.set(k, r[k]);
  if (r.queue) p.set("queue", "true");
  if (r.trail === "_relay" && !r.access) p.set("exclude_kind", "ACCESS");
  if (r.from) {
    if (r.order === "desc") p.set("before_seq", String(r.from + 1));
    else p.set("after_seq", String(r.from - 1));
  }
  return p;
}

// Whether the server counts a view's total without reading the whole trail (from its per-trail
// tally: kind, actor, project and excluded kinds, or a top-level folder alone). Other filters
// (text, times, review status, the queue, a nested folder, a folder with other filters) make
// the total one pass over the trail, so the list asks for it after the rows are shown.
export function totalIsCheap(r) {
  if (r.q || r.since || r.until || r.status || r.queue) return false;
  if (!r.folder) return true;
  const excludes = r.trail === "_relay" && !r.access;
  return !r.folder.includes("/") && !r.kind && !r.actor && !r.project && !excludes;
}

// A folder filter as typed -> the folder sent ("run7/" -> "run7"), or null with the reason when
// it is not a relative path (the server answers 400 for the same inputs).
export function checkFolder(value) {
  const v = (value || "").trim().replace(/\/+$/, "");
  if (!v) return { folder: "" };
  if (v.startsWith("/")) return { error: "Enter a folder relative to the watched folder, e.g. run7 (not an absolute path)." };
  if (v.includes("\\")) return { error: "Use / between folder names, not \\." };
  if (v.split("/").some((c) => c === "" || c === "." || c === "..")) return { error: "A folder name cannot be empty, . or .." };
  return { folder: v };
}

// The range a page's scan covered, when the server stopped at its scan limit before the page
// was full: "Searched records #4,001–#9,000, 3 found" (seqs are consecutive; `next` is the
// answer's cursor, `scanned` its count).
export function searchedText(order, next, scanned, found) {
  const lo = order === "desc" ? next : next - scanned + 1;
  const hi = order === "desc" ? next + scanned - 1 : next;
  return "Searched records #" + NUMBER.format(Math.max(lo, 1)) + "–#" + NUMBER.format(hi) + ", " + NUMBER.format(found) + " found" + ".";
}

function pad(n) { return String(n).padStart(2, "0"); }

// "2026-01-31T09:00" (an <input type=datetime-local> value, local time) -> "2026-01-31T08:00:00Z"
// (RFC 3339 UTC); "" -> ""; anything unreadable -> null.
export function localToUtc(value) {
  if (!value) return "";
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.000Z$/, "Z");
}

// "2026-01-31T08:00:00Z" -> "2026-01-31T09:00" in local time (for the picker); "" if unreadable.
export function utcToLocal(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return "";
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
}

const NUMBER = new Intl.NumberFormat("en-US");

// "1–50 of 5,072" (offset: records before the page; shown: records on it).
export function rangeText(offset, shown, total) {
  if (!total) return "No matching records";
  if (!shown) return "None here of " + NUMBER.format(total);
  return NUMBER.format(offset + 1) + "–" + NUMBER.format(offset + shown) + " of " + NUMBER.format(total);
}

// How many records the last page holds when pages hold `size`.
export function lastPageSize(total, size) {
  if (total <= 0) return 0;
  return total - Math.floor((total - 1) / size) * size;
}

// 1300 -> "1.3 kB (1,300 bytes)"; sizes may come as numbers or (beyond 2^53) decimal strings.
export function formatSize(size) {
  const n = typeof size === "string" ? Number(size) : size;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return String(size);
  const bytes = NUMBER.format(n) + (n === 1 ? " byte" : " bytes");
  if (n < 1000) return bytes;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  let v = n / 1000, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)).replace(/\.?0+$/, "") + " " + units[i] + " (" + bytes + ")";
}

// An RFC 3339 UTC time -> "2026-01-31 09:00:05 (local, UTC+01:00)" in the browser's time zone;
// null if unreadable.
export function localTimeText(utc) {
  if (!utc) return null;
  const d = new Date(utc);
  if (Number.isNaN(d.getTime())) return null;
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const abs = Math.abs(off);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
    pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + " (local, UTC" + sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60) + ")";
}

// The labelled fields of a record's payload: [label, value, kind] with kind "size", "hash",
// "time" or "text"; fields not known here follow under their own names.
const PAYLOAD_LABELS = [
  ["size", "Size", "size"], ["previous_size", "Previous size", "size"],
  ["sha256", "SHA-256", "hash"], ["previous_sha256", "Previous SHA-256", "hash"],
  ["mtime", "File modified (mtime)", "time"], ["previous_mtime", "Previous mtime", "time"],
  ["ctime", "Inode changed (ctime)", "time"], ["root", "Watched folder", "text"], ["inode", "Inode", "text"],
  ["owner", "File owner", "text"], ["owner_uid", "File owner uid", "text"],
  ["process_user", "Captured by process user", "text"], ["process_uid", "Process uid", "text"],
  ["detected_by", "Detected by", "text"], ["reason", "Reason", "text"], ["detail", "Detail", "text"],
];

export function payloadFields(payload) {
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) return [["Payload", JSON.stringify(payload), "text"]];
  const out = [];
  const seen = new Set();
  for (const [key, label, kind] of PAYLOAD_LABELS) {
    if (!(key in payload) || payload[key] === null) continue;
    seen.add(key);
    const v = payload[key];
    out.push([label, kind === "size" ? formatSize(v) : typeof v === "string" ? v : JSON.stringify(v), kind]);
  }
  for (const [key, v] of Object.entries(payload)) {
    if (seen.has(key) || key === "unattributed") continue;
    out.push([key, typeof v === "string" ? v : JSON.stringify(v), "text"]);
  }
  return out;
}
