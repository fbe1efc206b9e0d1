// The access review page (administrators and auditors): the periodic review of every account,
// its sealed export, and the "Review completed" signature. Kept apart from app.js, whose
// helpers ($, el, api, toast, state) it uses; text is set with textContent only. Messages stay
// beside what caused them: load errors under the summary, the export's progress and result
// beside its button, the signature's errors in its form, its success a toast.
"use strict";

const accessReview = { digest: null };

function accessReviewAllowed() {
  return Boolean(state.me) && ["admin", "auditor"].includes(state.me.role);
}

function accessReviewClear() {
  accessReview.digest = null;
  $("access-review-table").querySelector("tbody").replaceChildren();
  $("access-review-summary").textContent = "";
  $("access-review-digest").textContent = "";
  for (const id of ["access-review-error", "access-review-load-error", "access-review-export-status", "access-review-export-error"]) $(id).textContent = "";
  $("access-review-password").value = "";
  $("access-review-reason").value = "";
  $("access-review").hidden = true;
}

function accessReviewHistory(a) {
  const list = el("ul");
  for (const c of a.role_history) {
    let text = (c.from ? c.from + " → " : "created as ") + c.to + " at " + c.at + " by " + c.by;
    if (c.change_id) text += " (four-eyes " + c.change_id + ", proposed by " + (c.proposed_by || "?") + ")";
    if (c.reason) text += ": " + c.reason;
    list.append(el("li", text));
  }
  return list;
}

async function loadAccessReview() {
  $("access-review-load-error").textContent = "";
  let review;
  try {
    review = await api("GET", "/access-review");
  } catch (e) {
    $("access-review-load-error").textContent = "The access review could not be loaded: " + e.message;
    return;
  }
  accessReview.digest = review.digest;
  const body = $("access-review-table").querySelector("tbody");
  body.replaceChildren();
  for (const a of review.accounts) {
    const tr = el("tr");
    if (a.flags.length) tr.className = "flagged";
    const history = el("td");
    history.append(accessReviewHistory(a));
    tr.append(
      el("td", a.username), el("td", a.full_name), el("td", a.role), el("td", a.status),
      el("td", a.created_at + " by " + (a.created_by || "(not in the trail)") + (a.creation ? " (" + a.creation + ")" : "")),
      el("td", a.last_login_at || "never"),
      el("td", a.password_changed_at || "temporary (must change)"),
      el("td", a.failed_logins), history, el("td", a.flags.join(", ")));
    body.append(tr);
  }
  const prev = review.previous_review;
  $("access-review-summary").textContent = review.accounts.length + " accounts; period " +
    (prev ? "since the previous review at " + prev.at + " by " + prev.reviewer : "since installation") +
    "; failed logins with names that are no account: " + review.failed_logins_unknown_names + ".";
  $("access-review-digest").textContent = review.digest;
}

// The signature is posted without app.js's api(): a wrong password (401) must not end the session.
async function completeAccessReview() {
  $("access-review-error").textContent = "";
  for (const f of ["access-review-reason", "access-review-password"]) $(f).removeAttribute("aria-invalid");
  const missing = !$("access-review-reason").value.trim() ? "access-review-reason" : !$("access-review-password").value ? "access-review-password" : null;
  if (missing) {
    $("access-review-error").textContent = missing === "access-review-reason" ? "Enter a reason: it is recorded with the signature." : "Enter your password: completing the review is a signature.";
    $(missing).setAttribute("aria-invalid", "true");
    $(missing).focus();
    return;
  }
  const body = {
    password: $("access-review-password").value,
    reason: $("access-review-reason").value.trim(),
    review_digest: accessReview.digest,
  };
  let resp;
  try {
    resp = await fetch("/api/v1/access-review/complete", {
    method: "POST",
    headers: { "Accept": "application/json", "Content-Type": "application/json", "Authorization": "Bearer " + state.token },
    body: JSON.stringify(body),
    });
  } catch (e) {
    $("access-review-password").value = "";
    $("access-review-error").textContent = "Not completed: " + e.message;
    return;
  }
  $("access-review-password").value = "";
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const message = (data && data.error && data.error.message) || ("HTTP " + resp.status);
    $("access-review-error").textContent = (resp.status === 429 ? "Locked: try again in " + resp.headers.get("Retry-After") + " s." : message);
    $("access-review-password").setAttribute("aria-invalid", "true");
    // A wrong password counts toward the lockout and may change the review: show it as it is now.
    if (resp.status === 401 || resp.status === 409) await loadAccessReview();
    return;
  }
  $("access-review-reason").value = "";
  toast("Access review completed: ACCESS_REVIEWED _relay#" + data.seq + " by " + data.printed_name +
    " · " + data.reviewer + ", digest " + data.review_digest + ".");
  await loadAccessReview();
}

async function exportAccessReview() {
  const status = $("access-review-export-status");
  const error = $("access-review-export-error");
  error.textContent = "";
  status.textContent = "Sealing the access review with the _relay trail…";
  const button = $("access-review-export");
  button.disabled = true;
  try {
    const view = await api("POST", "/access-review/export");
    const resp = await fetch("/api/v1/exports/" + encodeURIComponent(view.package), { headers: { "Authorization": "Bearer " + state.token } });
    if (!resp.ok) { status.textContent = ""; error.textContent = "Sealed access review written but the download failed: HTTP " + resp.status; return; }
    const blob = await resp.blob();
    const a = el("a", null, { href: URL.createObjectURL(blob), download: view.package });
    document.body.append(a); a.click(); a.remove();
    status.textContent = "Sealed access review " + view.package + " (access_review.json with " + view.records +
      " _relay records), seal " + view.seal_fingerprint + ". Check it offline with: relay-verify " + view.package;
  } catch (e) {
    status.textContent = "";
    error.textContent = "Not exported: " + (e.status === 429 ? "locked: try again in " + e.retryAfter + " s." : e.message);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  // Follow app.js's session: the page exists for administrators and auditors only, and
  // nothing of it stays on screen after a logout.
  new MutationObserver(() => {
    const loggedIn = !$("whoami").hidden;
    $("show-access-review").hidden = !(loggedIn && accessReviewAllowed());
    if (!loggedIn) accessReviewClear();
  }).observe($("whoami"), { attributes: true, attributeFilter: ["hidden"] });
  $("show-access-review").addEventListener("click", async () => {
    $("access-review").hidden = false;
    await loadAccessReview();
    $("access-review").scrollIntoView();
  });
  $("access-review-form").addEventListener("submit", (ev) => { ev.preventDefault(); completeAccessReview(); });
  $("access-review-export").addEventListener("click", exportAccessReview);
});
