// The "Propose a change" form (issue 25): a setting picker and, for the chosen setting, a typed
// form (number with unit and bounds, switch, select, list editor, account picker) with the value
// the relay runs with shown beside it, read from GET /api/v1/changes/settings. The server keeps
// validating every value; this form only helps. Classic script: uses app.js's helpers ($, el,
// api, state, toast, setFieldError).
"use strict";

const changeForm = { settings: [], accounts: [], fields: [] };

// A value in words, as the current value is shown.
function changeValueText(s, v) {
  if (v === null || v === undefined) return null;
  if (s.kind === "integer") return v + (s.unit ? " " + s.unit : "");
  if (s.kind === "boolean") return v ? "yes (closed)" : "no (open)";
  if (s.kind === "path_list") return v.length ? v.join(", ") : "none";
  if (s.kind === "workflow") {
    const rules = Object.entries(v).filter(([, on]) => on).map(([k]) => k.replace(/_/g, " "));
    return rules.length === 5 ? "strict (every rule on)" : rules.length === 0 ? "relaxed (every rule off)" : "rules on: " + rules.join(", ");
  }
  return typeof v === "string" ? v : JSON.stringify(v);
}

// One labelled field with its inline error; returns the control.
function changeField(box, id, label, control, help) {
  const wrap = el("div", null, { class: "field" });
  control.id = id;
  const describedBy = [id + "-error"];
  wrap.append(el("label", label, { for: id }), control);
  if (help) { wrap.append(el("p", help, { id: id + "-help", class: "muted hint" })); describedBy.unshift(id + "-help"); }
  wrap.append(el("p", "", { id: id + "-error", class: "field-error", role: "alert" }));
  control.setAttribute("aria-describedby", describedBy.join(" "));
  box.append(wrap);
  changeForm.fields.push(id);
  return control;
}

function changeSelect(options, selected) {
  const sel = el("select");
  for (const [value, text] of options) {
    const o = el("option", text, { value }); if (value === selected) o.selected = true; sel.append(o);
  }
  return sel;
}

function changeSwitch(box, id, label, on) {
  const wrap = el("div", null, { class: "field" });
  const lab = el("label", null, { class: "check switch" });
  const input = el("input", null, { type: "checkbox", role: "switch", id, "aria-describedby": id + "-error" });
  input.checked = Boolean(on);
  lab.append(input, el("span", label));
  wrap.append(lab, el("p", "", { id: id + "-error", class: "field-error", role: "alert" }));
  box.append(wrap);
  changeForm.fields.push(id);
  return input;
}

function accountOptions(placeholder) {
  return [["", placeholder]].concat(changeForm.accounts.map((a) => [a.username, a.username + " (" + a.full_name + ", " + a.role + (a.disabled ? ", disabled" : "") + ")"]));
}

// The current value of a per-account setting, once an account is picked.
function showAccountCurrent(s, username) {
  const a = changeForm.accounts.find((x) => x.username === username);
  if (!a) { $("change-current").textContent = "Current value: pick an account to see it."; return; }
  const what = s.kind === "account_status" ? (a.disabled ? "disabled" : "enabled")
    : s.kind === "account_password_reset" ? (a.must_change_password ? "a temporary password (not yet changed)" : "their own password")
    : a.role;
  $("change-current").textContent = "Current value for " + a.username + ": " + what;
}

// A list of paths: one input per path, add and remove.
function pathList(box, paths) {
  const list = el("ol", null, { class: "path-list", id: "cv-paths", "aria-label": "Folders" });
  const add = el("button", "Add folder", { type: "button", class: "secondary", id: "cv-add" });
  const row = (value) => {
    const li = el("li");
    const n = list.children.length + 1;
    const input = el("input", null, { "aria-label": "Folder " + n, class: "mono", spellcheck: "false" });
    input.value = value || "";
    const rm = el("button", "Remove", { type: "button", class: "secondary", "aria-label": "Remove folder " + n });
    rm.addEventListener("click", () => { li.remove(); renumber(); (list.querySelector("input") || add).focus(); });
    li.append(input, rm);
    list.append(li);
    return input;
  };
  const renumber = () => {
    [...list.children].forEach((li, i) => {
      li.querySelector("input").setAttribute("aria-label", "Folder " + (i + 1));
      li.querySelector("button").setAttribute("aria-label", "Remove folder " + (i + 1));
    });
  };
  for (const p of paths || []) row(p);
  if (!list.children.length) row("");
  add.addEventListener("click", () => row("").focus());
  const wrap = el("div", null, { class: "field" });
  wrap.append(el("p", "Watched folders (absolute paths; at least one)", { class: "label" }), list, add,
    el("p", "", { id: "cv-paths-error", class: "field-error", role: "alert" }));
  box.append(wrap);
  changeForm.fields.push("cv-paths");
}

function renderChangeFields() {
  const s = changeForm.settings.find((x) => x.setting === $("change-setting").value);
  const box = $("change-fields");
  for (const n of [...box.children]) if (n.tagName !== "LEGEND") n.remove();
  changeForm.fields = [];
  for (const id of ["change-reason", "propose-error"]) if ($(id + "-error")) setFieldError(id, "");
  $("propose-error").textContent = "";
  if (!s) return;
  $("change-about").textContent = s.description + " Takes effect " + s.takes_effect + ".";
  const current = changeValueText(s, s.current);
  $("change-current").textContent = current !== null ? "Current value: " + current : "Current value: " + (s.current_note || "not known");
  $("change-pending").textContent = s.pending.length ? "Already pending: " + s.pending.join(", ") + " (see the list above)." : "";
  $("change-legend").textContent = "New value of " + s.setting;
  const blocked = s.applies === "not_here";
  $("propose-submit").disabled = blocked;
  if (blocked) $("propose-submit").setAttribute("aria-disabled", "true"); else $("propose-submit").removeAttribute("aria-disabled");
  $("propose-blocked").textContent = blocked ? "Cannot be proposed here: " + s.takes_effect + "." : "";
  box.disabled = blocked;
  switch (s.kind) {
    case "integer": {
      const input = el("input", null, { type: "number", inputmode: "numeric", step: "1", min: String(s.min), max: String(s.max), required: "" });
      if (s.current !== null && s.current !== undefined) input.value = String(s.current);
      changeField(box, "cv-value", "New value (" + (s.unit || "whole number") + ")", input, "A whole number of at least " + s.min + (s.unit ? " " + s.unit : "") + ".");
      break;
    }
    case "boolean":
      changeSwitch(box, "cv-value", "Registration closed (self-registration refused)", s.current === true);
      break;
    case "path_list":
      pathList(box, s.current || []);
      break;
    case "workflow": {
      const cur = s.current || {};
      const rules = ["review_before_approval", "approver_not_reviewer", "approver_not_author", "no_approval_when_superseded", "no_repeated_meaning"];
      const preset = changeSelect([["strict", "strict (every rule on)"], ["relaxed", "relaxed (every rule off)"], ["custom", "custom (choose the rules)"]],
        rules.every((r) => cur[r] !== false) ? "strict" : rules.every((r) => cur[r] === false) ? "relaxed" : "custom");
      changeField(box, "cv-preset", "Workflow", preset);
      const switches = rules.map((r) => changeSwitch(box, "cv-rule-" + r, r.replace(/_/g, " "), cur[r] !== false));
      const sync = () => { for (const sw of switches) sw.disabled = preset.value !== "custom"; };
      preset.addEventListener("change", () => {
        if (preset.value !== "custom") for (const sw of switches) sw.checked = preset.value === "strict";
        sync();
      });
      sync();
      break;
    }
    case "text":
      changeField(box, "cv-value", "New value", el("input", null, { required: "", spellcheck: "false" })).value = s.current || "";
      break;
    case "digest":
      changeField(box, "cv-value", "Configuration digest", el("input", null, { class: "mono", spellcheck: "false", placeholder: "sha256:…" }),
        "The sha256:<64 hex digits> digest a CONFIG_DRIFT event named.");
      break;
    case "account_role": case "account_password_reset": case "account_status": {
      const who = changeField(box, "cv-username", "Account", changeSelect(accountOptions("choose an account"), ""));
      who.addEventListener("change", () => showAccountCurrent(s, who.value));
      if (s.kind === "account_role") changeField(box, "cv-role", "New role", changeSelect(s.options.map((r) => [r, r]), "reviewer"));
      if (s.kind === "account_status") changeSwitch(box, "cv-disabled", "Disabled (cannot log in)", true);
      showAccountCurrent(s, "");
      break;
    }
    case "account_create":
      changeField(box, "cv-username", "Username", el("input", null, { autocomplete: "off", spellcheck: "false" }));
      changeField(box, "cv-fullname", "Full name (printed on signatures)", el("input"));
      changeField(box, "cv-role", "Role", changeSelect(s.options.map((r) => [r, r]), "reviewer"));
      break;
    case "ingest_token":
      changeField(box, "cv-edge", "Edge id", el("input", null, { spellcheck: "false" }));
      changeField(box, "cv-action", "Action", changeSelect(s.options.map((a) => [a, a]), "issue"));
      break;
    case "enrollment_code": {
      changeField(box, "cv-edge", "Edge id", el("input", null, { spellcheck: "false" }));
      const ttl = el("input", null, { type: "number", inputmode: "numeric", step: "1", min: String(s.min), max: String(s.max) });
      ttl.value = "60";
      changeField(box, "cv-ttl", "Lifetime (minutes)", ttl, "From " + s.min + " to " + s.max + " minutes.");
      break;
    }
    default:
      changeField(box, "cv-json", "New value (JSON: " + s.expected + ")", el("textarea", null, { class: "mono" }));
  }
}

// Reads the typed form into the JSON value the API takes; marks the first bad field.
function readChangeValue(s, bad) {
  const v = (id) => $(id).value.trim();
  const need = (id, what) => { if (!v(id)) bad(id, "Enter " + what + "."); return v(id); };
  switch (s.kind) {
    case "integer": {
      const raw = v("cv-value");
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) { bad("cv-value", "Enter a whole number" + (s.unit ? " of " + s.unit : "") + "."); return null; }
      if (n < s.min || n > s.max) { bad("cv-value", "Enter a number from " + s.min + " to " + s.max + "."); return null; }
      if (s.current === n) { bad("cv-value", "This is the current value: enter a different one."); return null; }
      return n;
    }
    case "boolean": {
      const b = $("cv-value").checked;
      if (s.current === b) { bad("cv-value", "This is the current value: switch it to propose a change."); return null; }
      return b;
    }
    case "path_list": {
      const paths = [...$("cv-paths").querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
      if (!paths.length) bad("cv-paths", "Enter at least one folder.");
      return paths;
    }
    case "workflow": {
      const preset = $("cv-preset").value;
      if (preset !== "custom") return preset;
      const out = {};
      for (const r of ["review_before_approval", "approver_not_reviewer", "approver_not_author", "no_approval_when_superseded", "no_repeated_meaning"]) out[r] = $("cv-rule-" + r).checked;
      return out;
    }
    case "text": return need("cv-value", "a value");
    case "digest": {
      const d = v("cv-value");
      if (!/^sha256:[0-9a-fA-F]{64}$/.test(d)) bad("cv-value", "Enter sha256: followed by 64 hex digits.");
      return d;
    }
    case "account_role": return { username: need("cv-username", "an account"), role: v("cv-role") };
    case "account_password_reset": return { username: need("cv-username", "an account") };
    case "account_status": return { username: need("cv-username", "an account"), disabled: $("cv-disabled").checked };
    case "account_create": return { username: need("cv-username", "a username"), full_name: need("cv-fullname", "the full name"), role: v("cv-role") };
    case "ingest_token": return { source: need("cv-edge", "the edge id"), action: v("cv-action") };
    case "enrollment_code": {
      const ttl = Number(v("cv-ttl"));
      if (!Number.isInteger(ttl) || ttl < s.min || ttl > s.max) bad("cv-ttl", "Enter a number of minutes from " + s.min + " to " + s.max + ".");
      return { edge: need("cv-edge", "the edge id"), ttl_minutes: ttl };
    }
    default:
      try { return JSON.parse(v("cv-json")); } catch (_) { bad("cv-json", "Enter valid JSON: " + s.expected + "."); return null; }
  }
}

async function submitChange(ev) {
  ev.preventDefault();
  const s = changeForm.settings.find((x) => x.setting === $("change-setting").value);
  if (!s) return;
  let first = null;
  const bad = (field, message) => { setFieldError(field, message); if (!first) first = field; };
  for (const f of changeForm.fields.concat(["change-reason"])) if ($(f + "-error")) setFieldError(f, "");
  $("propose-error").textContent = "";
  const value = readChangeValue(s, bad);
  const reason = $("change-reason").value.trim();
  if (!reason) bad("change-reason", "Enter a reason: it is recorded with the proposal.");
  if (first) {
    const target = $(first).matches("input, select, textarea") ? $(first) : $(first).querySelector("input") || $(first);
    target.focus();
    return;
  }
  $("propose-submit").disabled = true;
  try {
    const done = await api("POST", "/changes", { setting: s.setting, value, reason });
    $("change-reason").value = "";
    toast("Change " + done.id + " proposed (" + s.setting + "); a different administrator must approve it.");
    await loadChanges();
  } catch (e) {
    // The server's refusal, next to the form (and the field when it names the value).
    const text = e.status === 429 ? "Locked: try again in " + e.retryAfter + " s." : e.message;
    if (e.code === "invalid_value" && changeForm.fields.length) { setFieldError(changeForm.fields[0], text); $(changeForm.fields[0]).focus(); }
    else $("propose-error").textContent = text;
  } finally {
    $("propose-submit").disabled = s.applies === "not_here";
  }
}

// Loads the settings (and, for the per-account forms, the accounts) and renders the picker,
// keeping the chosen setting.
async function loadChangeForm() {
  if (!state.me || state.me.role !== "admin") return;
  const [settings, accounts] = await Promise.all([api("GET", "/changes/settings"), api("GET", "/accounts")]);
  changeForm.settings = settings;
  changeForm.accounts = accounts;
  const sel = $("change-setting");
  const chosen = sel.value || "settle_ms";
  sel.replaceChildren();
  for (const s of settings) {
    sel.append(el("option", s.setting + (s.applies === "not_here" ? " (not on this relay)" : ""), { value: s.setting }));
  }
  sel.value = settings.some((s) => s.setting === chosen) ? chosen : settings[0].setting;
  renderChangeFields();
}

document.addEventListener("DOMContentLoaded", () => {
  $("change-setting").addEventListener("change", renderChangeFields);
  $("propose-form").addEventListener("submit", submitChange);
});
