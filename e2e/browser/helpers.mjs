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

// A port for a relay process started later: below the kernel's ephemeral range, which every
// client connection on the machine draws its local port from (a port from listen(0) can be taken
// by one before the relay binds it, and its bind then fails), and reserved for the life of this
// process by an abstract Unix socket named after it, the same lock the Rust tests take
// (relay_conformance::test_ports), so no two tests choose the same port.
const LOWEST_PORT = 20000;
const heldPorts = [];

function ephemeralStart() {
  try {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(start) ? start : 32768;
  } catch {
    return 32768;
  }
}

function tryListen(options) {
  return new Promise((ok) => {
    const s = createServer();
    s.once("error", () => ok(null));
    s.listen(options, () => ok(s));
  });
}

/** A TCP port free on 127.0.0.1 that no other process takes while this one runs. */
export async function freePort() {
  const start = ephemeralStart();
  const high = start > LOWEST_PORT + 1000 ? start : LOWEST_PORT + 10000;
  const span = high - LOWEST_PORT;
  const seed = (process.pid * 7919 + Date.now()) % span;
  for (let i = 0; i < span; i++) {
    const port = LOWEST_PORT + ((seed + i) % span);
    const lock = await tryListen({ path: `\0gims-relay-test-port-${port}` });
    if (!lock) continue;
    const tcp = await tryListen({ port, host: "127.0.0.1" });
    if (!tcp) {
      await new Promise((ok) => lock.close(ok));
      continue;
    }
    await new Promise((ok) => tcp.close(ok));
    lock.unref();
    heldPorts.push(lock);
    return port;
  }
  throw new Error(`no free TCP port in ${LOWEST_PORT}..${high}`);
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
