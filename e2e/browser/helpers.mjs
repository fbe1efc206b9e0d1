// The set-up the browser tests share: where the binaries and Chromium are, axe-core's source, a
// free port, polling for a condition, starting a relay process and waiting for its /healthz,
// stopping it, and the headless Chromium every test drives. What each test checks stays in its
// own file.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/** This directory. */
export const here = dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const repo = resolve(here, "../..");
/** `relay-edge` (RELAY_EDGE_BIN, else the debug build). */
export const edgeBin = process.env.RELAY_EDGE_BIN || join(repo, "target/debug/relay-edge");
/** `relay-server` (RELAY_SERVER_BIN, else the debug build). */
export const serverBin = process.env.RELAY_SERVER_BIN || join(repo, "target/debug/relay-server");
/** `relay-bench` (RELAY_BENCH_BIN, else the debug build). */
export const benchBin = process.env.RELAY_BENCH_BIN || join(repo, "target/debug/relay-bench");
/** Chromium (CHROMIUM, else Debian's). */
export const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
/** axe-core, injected into pages for the accessibility checks. */
export const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** A TCP port free on 127.0.0.1 at the time of asking. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

/** Polls `fn` every `everyMs` until it returns a truthy value (returned) or `timeoutMs` passes. */
// Waits until the review UI's list shows a new view. `sameStep` is a browser-side predicate on
// something render() sets in the same step as the range line's "Loading…" (the title, a filter
// field, the queue note), so the view before cannot satisfy it; once it holds and the range line
// has left "Loading…", the rows on screen are the new view's. Waiting for a range line or a row
// alone can pass on the view before when it showed the same.
export async function listLoaded(page, sameStep, arg) {
  await page.waitForFunction(sameStep, arg);
  await page.waitForFunction(() => !document.getElementById("range").textContent.startsWith("Loading"));
}

export async function waitFor(what, fn, timeoutMs = 30000, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

/**
 * Spawns relay binary `bin` with `args` (output inherited, `env` defaulting to this process's
 * with RELAY_LOG=warn): `{ name, child, exit }`, `exit` set to `{ code, signal }` when it exits.
 */
export function startProcess(name, bin, args, env = { ...process.env, RELAY_LOG: "warn" }) {
  const child = spawn(bin, args, { stdio: ["ignore", "inherit", "inherit"], env });
  const proc = { name, child, exit: null };
  child.on("exit", (code, signal) => { proc.exit = { code, signal }; });
  return proc;
}

/** Waits until `proc` answers GET `base`/healthz with 2xx; fails at once if it exits. */
export function healthy(proc, base, timeoutMs = 30000, everyMs = 250) {
  return waitFor(proc.name + " /healthz", async () => {
    if (proc.exit) throw new Error(proc.name + " exited: " + JSON.stringify(proc.exit));
    return (await fetch(base + "/healthz")).ok;
  }, timeoutMs, everyMs);
}

/**
 * SIGTERM, then up to 20 s for `proc` to exit; SIGKILL if it does not, and the timeout is
 * rethrown unless `quiet`.
 */
export async function stopProcess(proc, { quiet = false } = {}) {
  if (proc.exit) return;
  proc.child.kill("SIGTERM");
  await waitFor(proc.name + " to stop", () => proc.exit !== null, 20000).catch((e) => {
    proc.child.kill("SIGKILL");
    if (!quiet) throw e;
  });
}

/** Chromium's flags in every test: no sandbox, GPU, background traffic or shared memory. */
export const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

/** Headless Chromium with profile directory `profile`, 1366x860 unless `options` say otherwise. */
export function launchBrowser(profile, options = {}) {
  return chromium.launchPersistentContext(profile, {
    executablePath: browserPath,
    headless: true,
    viewport: { width: 1366, height: 860 },
    args: CHROMIUM_ARGS,
    ...options,
  });
}
