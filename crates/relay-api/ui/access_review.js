// The access review page (administrators and auditors): the periodic review of every account,
// its sealed export, and the "Review completed" signature. Kept apart from app.js, whose
// helpers ($, el, api, notice, guard, state) it uses; text is set with textContent only.
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
  $("access-review-error").textContent = "";
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
  const review = await api("GET", "/access-review");
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
  const body = {
    password: $("access-review-password").value,
    reason: $("access-review-reason").value.trim(),
    review_digest: accessReview.digest,
  };
  const resp = await fetch("/api/v1/access-review/complete", {
    method: "POST",
    headers: { "Accept": "application/json", "Content-Type": "application/json", "Authorization": "Bearer " + state.token },
    body: JSON.stringify(body),
  });
  $("access-review-password").value = "";
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const message = (data && data.error && data.error.message) || ("HTTP " + resp.status);
    $("access-review-error").textContent = message;
    // A wrong password counts toward the lockout and may change the review: show it as it is now.
    if (resp.status === 401 || resp.status === 409) await loadAccessReview();
    return;
  }
  $("access-review-reason").value = "";
  notice("Access review completed: ACCESS_REVIEWED _relay#" + data.seq + " by " + data.printed_name +
    " · " + data.reviewer + ", digest " + data.review_digest + ".");
  await loadAccessReview();
}

async function exportAccessReview() {
  notice("Sealing the access review with the _relay trail…");
  const view = await api("POST", "/access-review/export");
  const resp = await fetch("/api/v1/exports/" + encodeURIComponent(view.package), { headers: { "Authorization": "Bearer " + state.token } });
  if (!resp.ok) { notice("Sealed access review written but download failed: HTTP " + resp.status); return; }
  const blob = await resp.blob();
  const a = el("a", null, { href: URL.createObjectURL(blob), download: view.package });
  document.body.append(a); a.click(); a.remove();
  notice("Sealed access review " + view.package + " (access_review.json with " + view.records +
    " _relay records), seal " + view.seal_fingerprint + ". Check it offline with: relay-verify " + view.package);
}

document.addEventListener("DOMContentLoaded", () => {
  // Follow app.js's session: the page exists for administrators and auditors only, and
  // nothing of it stays on screen after a logout.
  new MutationObserver(() => {
    const loggedIn = !$("whoami").hidden;
    $("show-access-review").hidden = !(loggedIn && accessReviewAllowed());
    if (!loggedIn) accessReviewClear();
  }).observe($("whoami"), { attributes: true, attributeFilter: ["hidden"] });
  $("show-access-review").addEventListener("click", guard(async () => {
    $("access-review").hidden = false;
    await loadAccessReview();
    $("access-review").scrollIntoView();
  }));
  $("access-review-form").addEventListener("submit", guard(completeAccessReview));
  $("access-review-export").addEventListener("click", guard(exportAccessReview));
});
