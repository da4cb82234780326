// What both end-to-end scripts share: their environment, a command run to its end (`myriam
// simulate`), Debian's Chromium launched the way this machine needs (a fresh profile, no
// background networking), checks and screenshots.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

// axe-core's audit of the page in the browser (WCAG 2.1 A and AA rules): the violations, each as
// one line. The context must be launched with `bypassCSP: true` for the script to be injected.
export async function axeViolations(page) {
  await page.addScriptTag({ path: AXE });
  const audit = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  return audit.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} node(s), e.g. ${v.nodes[0]?.target}`);
}

// Runs `bin` with `args`; resolves with its output when it exits 0, rejects with it otherwise.
export function runToEnd(bin, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("exit", (code) => (code === 0 ? resolve(output) : reject(new Error(`${args[0]} exited ${code}:\n${output}`))));
  });
}

// Launches Chromium on a fresh profile; `options` go to Playwright (e.g. `bypassCSP`). Returns the
// first page, the list its console errors go to, and `close()` (which removes the profile).
export async function launch(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "myriam-e2e-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    acceptDownloads: true,
    locale: "fr-CA",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
    ...options,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, consoleErrors, close };
}

// Named checks, printed at the end; full-page screenshots numbered in order under OUT_DIR.
export function recorder(out, prefix = "") {
  mkdirSync(out, { recursive: true });
  const passed = [];
  let step = 0;
  return {
    passed,
    check(condition, what) {
      if (!condition) throw new Error(`check failed: ${what}`);
      passed.push(what);
    },
    async shot(page, name) {
      step += 1;
      await page.screenshot({ path: join(out, `${prefix}${String(step).padStart(2, "0")}-${name}.png`), fullPage: true });
    },
    report() {
      for (const p of passed) console.log(`ok  ${p}`);
    },
  };
}
