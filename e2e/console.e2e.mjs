// End to end, in a real browser: Debian's Chromium driven by Playwright (playwright-core, pinned by
// package-lock.json; Playwright's own browser download is not used). scripts/e2e.sh starts the
// gateway and an administrator, then runs this with:
//   BASE_URL, EMAIL, PASSWORD, MYRIAM_BIN (for `myriam simulate`), OUT_DIR (screenshots, CSV),
//   CHROMIUM (default /usr/bin/chromium).
// It logs in, watches a lead from a simulated call appear live, opens it, changes its follow-up,
// exports CSV and checks the file, erases the caller, and logs out; a screenshot at each step.
import { readFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { axeViolations, env, launch, recorder, runToEnd } from "./common.mjs";

const BASE = env("BASE_URL");
const EMAIL = env("EMAIL");
const PASSWORD = env("PASSWORD");
const BIN = env("MYRIAM_BIN");
const OUT = env("OUT_DIR");
// The built-in French caller calls from this number and confirms it as the callback number.
const CALLER = "+15145550199";

const { passed, check, shot, report } = recorder(OUT);

const simulateCall = () => runToEnd(BIN, ["simulate", "--base-url", BASE, "--language", "fr"]);

const { context, page, consoleErrors, close } = await launch({
  viewport: { width: 1200, height: 900 },
  // Only so axe-core's script can be injected: the console's own pages never need it.
  bypassCSP: true,
});

try {
  // 1. Not signed in: the console sends the browser to the login page.
  await page.goto(`${BASE}/console/leads`);
  check(page.url().endsWith("/console/login"), "without a session, the leads page redirects to login");
  await shot(page, "login");

  // 2. Sign in with the labelled fields.
  await page.getByLabel("Courriel").fill(EMAIL);
  await page.getByLabel("Mot de passe").fill(PASSWORD);
  await page.getByRole("button", { name: "Se connecter" }).click();
  await page.waitForURL(`${BASE}/console/leads`);
  check((await page.locator("h1").textContent()) === "Leads", "signed in, the leads list shows");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "myriam_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");

  // 3. Live: a simulated call's lead appears without reloading.
  await page.locator("#live-status", { hasText: "Mise à jour en direct active." }).waitFor({ timeout: 15000 });
  const before = await page.locator("#leads tbody tr").count();
  await page.evaluate(() => (window.__notReloaded = true));
  await simulateCall();
  await page.locator("#leads tbody tr").nth(before).waitFor({ timeout: 30000 });
  check(await page.evaluate(() => window.__notReloaded === true), "the page was not reloaded");
  const row = page.locator("#leads tbody tr").first();
  check((await row.textContent()).includes("Marie-Ève"), "the new lead is in the list");
  check((await row.getAttribute("class"))?.includes("urgent"), "the urgent lead stands out");
  await shot(page, "live-lead");

  // 4. Open it.
  check((await row.locator('a[href^="tel:+1"]').count()) === 1, "the caller's number is a tel: link");
  // The lead's own link (the row also has the caller's number as a tel: link).
  await row.locator('a[href^="/console/leads/"]').click();
  await page.waitForURL(/\/console\/leads\/[0-9a-f-]{36}$/);
  check((await page.locator("h1").textContent()).includes("Marie-Ève"), "the lead's page shows its name");
  check(await page.getByText("Conversation").isVisible(), "the conversation is shown");
  await shot(page, "lead");

  // 5. Change its follow-up, with a note.
  await page.getByLabel("Suivi", { exact: true }).selectOption("planifie");
  await page.getByLabel("Note").fill("Rendez-vous jeudi 9 h");
  await page.getByRole("button", { name: "Enregistrer" }).click();
  await page.getByRole("heading", { name: "Suivi (Planifié)" }).waitFor();
  check((await page.getByLabel("Note").inputValue()) === "Rendez-vous jeudi 9 h", "the note is saved");
  await shot(page, "follow-up");

  // 6. Export CSV and read the file.
  await page.getByRole("link", { name: "← Leads" }).click();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Exporter en CSV (filtre actuel)" }).click(),
  ]);
  const csvPath = join(OUT, "leads.csv");
  copyFileSync(await download.path(), csvPath);
  const bytes = readFileSync(csvPath);
  check(bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf, "the CSV starts with a UTF-8 BOM");
  const text = bytes.subarray(3).toString("utf8");
  check(text.startsWith('"Identifiant";"Créé le";"Nom complet";"Téléphone"'), "the CSV has French headers");
  check(text.includes('"Marie-Ève Côté-Lévesque"') || text.includes("Marie-Ève"), "the CSV holds the lead");
  check(text.includes('"Planifié"') && text.includes('"Rendez-vous jeudi 9 h"'), "the CSV holds the follow-up");
  await shot(page, "list-after-export");

  // 7. Erase the caller (typed confirmation).
  await page.getByRole("link", { name: "Effacer un appelant" }).click();
  await page.getByLabel("Numéro de téléphone de l'appelant").fill(CALLER);
  await page.getByLabel("Tapez EFFACER pour confirmer").fill("EFFACER");
  await shot(page, "erase-form");
  await page.getByRole("button", { name: "Effacer définitivement" }).click();
  await page.getByRole("heading", { name: "Appelant effacé" }).waitFor();
  check((await page.getByRole("status").textContent()).startsWith("1 lead(s)"), "one lead erased");
  await shot(page, "erased");
  const erasedViolations = await axeViolations(page);
  check(erasedViolations.length === 0, `axe-core finds no WCAG A/AA violation on the erasure's result (${erasedViolations.join("; ")})`);
  await page.goto(`${BASE}/console/leads`);
  check(!(await page.locator("#leads").textContent()).includes("Marie-Ève"), "the erased lead is gone from the list");

  // 8. The audit log names the actions.
  await page.getByRole("link", { name: "Journal" }).click();
  const audit = await page.locator("table").textContent();
  for (const action of ["login", "follow_up_changed", "export", "erase"]) {
    check(audit.includes(action), `the audit log records ${action}`);
  }
  check(!audit.includes("5550199"), "the audit log holds no caller number");
  await shot(page, "audit");

  // 9. Log out: server-side, so the page is closed to this browser again.
  await page.getByRole("button", { name: "Se déconnecter" }).click();
  await page.waitForURL(`${BASE}/console/login`);
  await page.goto(`${BASE}/console/leads`);
  check(page.url().endsWith("/console/login"), "after logout, the leads page redirects to login");
  await shot(page, "logged-out");

  // 10. Phone width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/console/login`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  check(!overflow, "the login page fits a phone's width");
  await shot(page, "login-phone");

  check(consoleErrors.length === 0, `no browser console errors (${consoleErrors.join("; ")})`);
  report();
  console.log(`e2e: ${passed.length} checks passed; screenshots in ${OUT}`);
} catch (error) {
  report();
  await shot(page, "failure").catch(() => {});
  console.error(`e2e: FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  await close();
}
