// The business dashboard end to end, in Debian's Chromium driven by Playwright. scripts/e2e.sh
// starts a fresh gateway whose file already holds two calls bridged to Vapi (played by `loadgen run`
// against its Vapi-like peer), then runs this with the environment of console.e2e.mjs.
// It plays seven calls through the speech IVR with `myriam simulate` (two qualified, two abandoned at
// different questions, three asking for a person: the office answers, is busy, does not answer),
// follows one lead up in the console, then opens the dashboard for a custom period and checks every
// figure in its tables against what was played; its CSV; axe-core's audit; the width of a phone.
import { mkdtempSync, readFileSync, copyFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { axeViolations, env, launch, recorder, runToEnd } from "./common.mjs";

const BASE = env("BASE_URL");
const EMAIL = env("EMAIL");
const PASSWORD = env("PASSWORD");
const BIN = env("MYRIAM_BIN");
const OUT = env("OUT_DIR");
// Bridged calls already in the file (scripts/e2e.sh).
const BRIDGED = Number(env("BRIDGED_CALLS"));

const scratch = mkdtempSync(join(tmpdir(), "myriam-e2e-dashboard-"));
const { passed, check, shot, report } = recorder(OUT, "dashboard-");
function same(actual, expected, what) {
  check(JSON.stringify(actual) === JSON.stringify(expected), `${what}: ${JSON.stringify(actual)} (expected ${JSON.stringify(expected)})`);
}

// One call through the IVR: `answers` one per line (the call ends when they run out).
function simulate(name, from, answers, extra = []) {
  const args = ["simulate", "--base-url", BASE, "--from", from, ...extra];
  if (answers) {
    const file = join(scratch, `${name}.txt`);
    writeFileSync(file, `${answers.join("\n")}\n`);
    args.push("--answers", file);
  }
  return runToEnd(BIN, args);
}

const PERSON = ["Gaétan Lévesque", "je veux parler à quelqu'un"];
const calls = [
  // The built-in French caller: qualified, urgent.
  ["french", "+15145550199", null, []],
  // The built-in English caller: qualified.
  ["english", "+14165550142", null, ["--language", "en"]],
  // A name, then the caller hangs up at the number question.
  ["gone-at-number", "+15145550111", ["Julie Tremblay"], []],
  // Name, number, address, then the caller hangs up at the service question.
  ["gone-at-service", "+15145550122", ["Julie Tremblay", "oui", "45 rue King Ouest, Sherbrooke"], []],
  // A name, then a person asked for at the number question: the office answers, is busy, does not.
  ["answered", "+15145550133", PERSON, ["--dial-status", "completed"]],
  ["busy", "+15145550144", PERSON, ["--dial-status", "busy"]],
  ["no-answer", "+15145550155", PERSON, ["--dial-status", "no-answer"]],
];

// A local date (YYYY-MM-DD) in the office's time zone, `days` from today.
function localDate(days) {
  const when = new Date(Date.now() + days * 86400000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: "America/Toronto", year: "numeric", month: "2-digit", day: "2-digit" }).format(when);
}

// The rows of the table captioned `caption`: header → cells (row header included), all as text.
async function table(page, caption) {
  return page.locator("table", { has: page.locator("caption", { hasText: caption }) }).evaluate((t) => {
    const head = [...t.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    return [...t.querySelectorAll("tbody tr")].map((tr) => {
      const cells = [...tr.children].map((c) => c.textContent.trim());
      return Object.fromEntries(head.map((h, i) => [h, cells[i]]));
    });
  });
}
const sum = (rows, column) => rows.reduce((n, r) => n + Number(r[column]), 0);

for (const [name, from, answers, extra] of calls) await simulate(name, from, answers, extra);

const { page, consoleErrors, close } = await launch({
  viewport: { width: 1280, height: 900 },
  // Only so axe-core's script can be injected: the console's own pages never need it.
  bypassCSP: true,
});

try {
  await page.goto(`${BASE}/console/login`);
  await page.getByLabel("Courriel").fill(EMAIL);
  await page.getByLabel("Mot de passe").fill(PASSWORD);
  await page.getByRole("button", { name: "Se connecter" }).click();
  await page.waitForURL(`${BASE}/console/leads`);

  // Follow one lead up (the English caller's): the dashboard's follow-up delay counts it.
  await page.locator("#leads tbody tr", { hasText: "John Smith" }).locator('a[href^="/console/leads/"]').click();
  await page.waitForURL(/\/console\/leads\/[0-9a-f-]{36}$/);
  await page.getByLabel("Suivi", { exact: true }).selectOption("contacte");
  await page.getByRole("button", { name: "Enregistrer" }).click();
  await page.getByRole("heading", { name: "Suivi (Contacté)" }).waitFor();
  const leadViolations = await axeViolations(page);
  check(leadViolations.length === 0, `axe-core finds no WCAG A/AA violation on a lead's page (${leadViolations.join("; ")})`);
  await shot(page, "lead");

  // The operator's own page (the phone a callback rings first).
  await page.goto(`${BASE}/console/profil`);
  check((await page.locator("h1").textContent()).length > 0, "the profile page opens");
  const profileViolations = await axeViolations(page);
  check(profileViolations.length === 0, `axe-core finds no WCAG A/AA violation on the profile page (${profileViolations.join("; ")})`);
  await shot(page, "profile");

  // The dashboard: this week by default, then a custom period chosen in the form.
  await page.goto(`${BASE}/console/leads`);
  await page.getByRole("link", { name: "Tableau de bord" }).click();
  await page.waitForURL(`${BASE}/console/tableau`);
  check((await page.locator("h1").textContent()) === "Tableau de bord", "the dashboard opens from the menu");
  check((await page.getByLabel("Période").inputValue()) === "week", "this week by default");
  await page.getByLabel("Période").selectOption("custom");
  await page.getByLabel("Du (personnalisée)").fill(localDate(-1));
  await page.getByLabel("Au (personnalisée)").fill(localDate(1));
  await page.getByRole("button", { name: "Afficher" }).click();
  await page.waitForURL(/period=custom/);
  check((await page.locator("table", { has: page.locator("caption", { hasText: "Appels par jour" }) }).locator("tbody tr").count()) === 3,
    "the custom period has three days");

  const totals = Object.fromEntries(
    await page.locator("#totaux > div").evaluateAll((ds) => ds.map((d) => [d.querySelector("dt").textContent, d.querySelector("dd").textContent])),
  );
  const all = BRIDGED + calls.length;
  same(
    [totals["Appels"], totals["Leads"], totals["Qualifiés"], totals["Urgents"], totals["Transferts"], totals["Messages vocaux"], totals["Appels hors heures"]],
    [`${all}`, `${all}`, "2", "1", "3", "2", "0"],
    "totals: calls, leads, qualified, urgent, transfers, voicemails, after hours (open all week)",
  );
  check(totals["Conversion (qualifiés ÷ appels)"] === `${(200 / all).toFixed(1).replace(".", ",")} %`, `conversion is 2 of ${all}`);

  const perDay = await table(page, "Appels par jour");
  same(
    ["Appels", "Vapi", "RVI", "Transferts", "Messages vocaux", "Français", "Anglais"].map((c) => sum(perDay, c)),
    [all, BRIDGED, calls.length, 3, 2, all - 1, 1],
    "calls by handling and language",
  );
  const leads = await table(page, "Leads par jour");
  same(
    ["Leads", "Qualifiés", "Nouveaux", "Abandonnés", "Transférés", "À rappeler", "Urgents"].map((c) => sum(leads, c)),
    [all, 2, BRIDGED, 2, 1, 2, 1],
    "leads by status (the bridged calls' leads are still new: nothing was said)",
  );
  const funnel = await table(page, "Entonnoir par question");
  same(
    funnel.map((r) => [r["Question"], r["Ont répondu"], r["Ont raccroché ici"], r["Ont demandé une personne ici"], r["En cours ici"]]),
    [
      ["Nom", `${calls.length}`, "0", "0", `${BRIDGED}`],
      ["Numéro", "3", "1", "3", "0"],
      ["Adresse", "3", "0", "0", "0"],
      ["Service", "2", "1", "0", "0"],
      ["Description", "2", "0", "0", "0"],
      ["Urgence", "2", "0", "0", "0"],
    ],
    "the funnel: who answered each question, and where the others hung up or asked for a person",
  );
  const transfers = await table(page, "Transferts et messages vocaux");
  same(
    transfers.map((r) => [r["Issue"], r["Nombre"]]),
    [["Répondus", "1"], ["Occupé", "1"], ["Sans réponse", "1"], ["Autres (échec, annulé)", "0"], ["Messages vocaux laissés", "2"]],
    "transfers by outcome, and the voicemails left",
  );
  const followUp = await table(page, "Délai avant le premier suivi");
  check(sum(followUp, "Leads suivis") === 1, "one lead followed up");
  check(followUp.some((r) => r["Médiane (min)"] !== "—"), "its delay is shown");
  check((await page.locator("svg.chart").count()) >= 5, "each section has its chart");
  check((await page.locator("svg.chart title").first().textContent()).length > 0, "charts carry a title");
  await shot(page, "period");

  // The funnel's CSV holds the same numbers.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("#entonnoir").locator("..").getByRole("link", { name: "Télécharger en CSV" }).click(),
  ]);
  const csvPath = join(OUT, "funnel.csv");
  copyFileSync(await download.path(), csvPath);
  const csv = readFileSync(csvPath, "utf8").replace(/^\uFEFF/, "");
  check(csv.split(/\r?\n/).some((l) => l.replaceAll('"', "").startsWith("Numéro;3;1;3;0")), `the funnel's CSV holds the number question's row:\n${csv}`);

  // axe-core's audit of the page (WCAG 2.1 A and AA rules).
  const violations = await axeViolations(page);
  check(violations.length === 0, `axe-core finds no WCAG A/AA violation on the dashboard (${violations.join("; ")})`);

  // A phone's width: nothing wider than the screen but the tables' own scrolling boxes.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  check(!overflow, "the dashboard fits a phone's width");
  await shot(page, "phone");

  check(consoleErrors.length === 0, `no browser console errors (${consoleErrors.join("; ")})`);
  report();
  console.log(`e2e dashboard: ${passed.length} checks passed; screenshots in ${OUT}`);
} catch (error) {
  report();
  await shot(page, "failure").catch(() => {});
  console.error(`e2e dashboard: FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  await close();
  rmSync(scratch, { recursive: true, force: true });
}
