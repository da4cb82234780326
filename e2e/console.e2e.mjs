// End to end, in a real browser: Debian's Chromium driven by Playwright (playwright-core, pinned by
// package-lock.json; Playwright's own browser download is not used). scripts/e2e.sh starts the
// gateway and an administrator, then runs this with:
//   BASE_URL, EMAIL, PASSWORD, MYRIAM_BIN (for `myriam simulate`), OUT_DIR (screenshots, CSV),
//   CHROMIUM (default /usr/bin/chromium).
// It logs in, watches a lead from a simulated call appear live, opens it, changes its follow-up,
// exports CSV and checks the file, erases the caller, and logs out; a screenshot at each step.
// axe-core audits every page it passes (`audit`); dashboard.e2e.mjs audits the others.
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

// axe-core's WCAG 2.1 A/AA audit of the page shown, named `what`: no violation at all.
async function audit(what) {
  const violations = await axeViolations(page);
  check(violations.length === 0, `axe-core finds no WCAG A/AA violation on ${what} (${violations.join("; ")})`);
}

try {
  // 1. Not signed in: the console sends the browser to the login page.
  await page.goto(`${BASE}/console/leads`);
  check(page.url().endsWith("/console/login"), "without a session, the leads page redirects to login");
  await audit("the login page");
  await shot(page, "login");

  // A wrong password: the login page again, with its error.
  await page.getByLabel("Courriel").fill(EMAIL);
  await page.getByLabel("Mot de passe").fill(`${PASSWORD}-wrong`);
  await page.getByRole("button", { name: "Se connecter" }).click();
  await page.getByRole("alert").waitFor();
  check((await page.getByRole("alert").textContent()).includes("invalide"), "a wrong password is refused with a message");
  await audit("the login page with its error");
  // The browser logs the refused login's status (401) as an error: expected here, and only that.
  check(consoleErrors.length === 1 && consoleErrors[0].includes("401"), `the refused login is a 401 (${consoleErrors.join("; ")})`);
  consoleErrors.length = 0;

  // 2. Sign in with the labelled fields.
  await page.getByLabel("Courriel").fill(EMAIL);
  await page.getByLabel("Mot de passe").fill(PASSWORD);
  await page.getByRole("button", { name: "Se connecter" }).click();
  await page.waitForURL(`${BASE}/console/leads`);
  check((await page.locator("h1").textContent()) === "Leads", "signed in, the leads list shows");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "myriam_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  await audit("the leads list (empty)");

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
  await audit("the leads list with a lead");
  await shot(page, "live-lead");

  // 4. Open it.
  check((await row.locator('a[href^="tel:+1"]').count()) === 1, "the caller's number is a tel: link");
  // The lead's own link (the row also has the caller's number as a tel: link).
  await row.locator('a[href^="/console/leads/"]').click();
  await page.waitForURL(/\/console\/leads\/[0-9a-f-]{36}$/);
  check((await page.locator("h1").textContent()).includes("Marie-Ève"), "the lead's page shows its name");
  check(await page.getByText("Conversation").isVisible(), "the conversation is shown");
  await audit("a lead's page");
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
  await audit("the erasure form");
  await shot(page, "erase-form");
  await page.getByRole("button", { name: "Effacer définitivement" }).click();
  await page.getByRole("heading", { name: "Appelant effacé" }).waitFor();
  check((await page.getByRole("status").textContent()).startsWith("1 lead(s)"), "one lead erased");
  await shot(page, "erased");
  await audit("the erasure's result");
  // The erasure's own page (its remote deletions), by the request number the result shows.
  const erasureId = (await page.locator("code").filter({ hasText: /^[0-9a-f-]{36}$/ }).first().textContent()).trim();
  await page.goto(`${BASE}/console/erasures/${erasureId}`);
  check((await page.locator("h1").textContent()).length > 0, "the erasure's page opens");
  await audit("an erasure's page");
  await shot(page, "erasure-status");
  // A lead that is not there (the erased one): the console's 404 page.
  const missing = await page.goto(`${BASE}/console/leads/${erasureId}`);
  check(missing.status() === 404, `an unknown lead is a 404 page (${missing.status()})`);
  await audit("the 404 page");
  check(consoleErrors.length === 1 && consoleErrors[0].includes("404"), `only the 404 in the browser's console (${consoleErrors.join("; ")})`);
  consoleErrors.length = 0;
  await page.goto(`${BASE}/console/leads`);
  check(!(await page.locator("#leads").textContent()).includes("Marie-Ève"), "the erased lead is gone from the list");

  // 8. The audit log names the actions.
  await page.getByRole("link", { name: "Journal" }).click();
  const journal = await page.locator("table").textContent();
  for (const action of ["login", "follow_up_changed", "export", "erase"]) {
    check(journal.includes(action), `the audit log records ${action}`);
  }
  check(!journal.includes("5550199"), "the audit log holds no caller number");
  await audit("the audit log");
  await shot(page, "audit");

  // 9. Log out: server-side, so the page is closed to this browser again.
  await page.getByRole("button", { name: "Se déconnecter" }).click();
  await page.waitForURL(`${BASE}/console/login`);
  await page.goto(`${BASE}/console/leads`);
  check(page.url().endsWith("/console/login"), "after logout, the leads page redirects to login");
  await audit("the login page after logout");
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
