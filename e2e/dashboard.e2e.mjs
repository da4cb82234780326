// The business dashboard end to end, in Debian's Chromium driven by Playwright. scripts/e2e.sh
// starts a fresh gateway whose file already holds two calls bridged to Vapi (played by `loadgen run`
// against its Vapi-like peer), then runs this with the environment of console.e2e.mjs.
// It plays seven calls through the speech IVR with `myriam simulate` (two qualified, two abandoned at
// different questions, three asking for a person: the office answers, is busy, does not answer),
// follows one lead up in the console, sets the operator's phone on the profile page and calls a
// lead back (Rappeler: the created call at the fake Twilio REST server, then Twilio's side of the
// call played against the gateway, signed like Twilio signs), then opens the dashboard for a
// custom period and checks every figure in its tables against what was played; its CSV;
// axe-core's audit; the width of a phone.
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, copyFileSync, rmSync, writeFileSync } from "node:fs";
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
// The callback: the gateway's Twilio account, its public URL (what Twilio signs), the number
// callers dial, and the file where the fake Twilio REST server appends the calls it created.
const ACCOUNT = env("TWILIO_ACCOUNT_SID");
const AUTH_TOKEN = env("TWILIO_AUTH_TOKEN");
const PUBLIC = env("PUBLIC_BASE_URL");
const BUSINESS = env("BUSINESS_NUMBER");
const CALLS_FILE = env("CALLS_FILE");
// The operator's own phone, typed as people write it, and the lead called back (the French caller).
const OPERATOR_PHONE = "+15145550188";
const LEAD_PHONE = "+15145550199";

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

// Twilio's side of a call: a form POST to `url` (as found in the created call or in TwiML) signed
// as Twilio signs it — base64(HMAC-SHA1(auth token, URL + each parameter's name and value, sorted
// by name)) in X-Twilio-Signature. Returns the status and the body.
async function twilio(url, params) {
  const signed = url + Object.keys(params).sort().map((k) => k + params[k]).join("");
  const signature = createHmac("sha1", AUTH_TOKEN).update(signed, "utf8").digest("base64");
  // Twilio signs the public URL; the gateway listens on the same address here.
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature },
    body: new URLSearchParams(params).toString(),
  });
  return { status: response.status, body: await response.text() };
}
const unescapeXml = (t) =>
  t.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"').replaceAll("&apos;", "'").replaceAll("&amp;", "&");
// The text of every <Say> of a TwiML document, and an attribute of its first `verb`.
const spoken = (twiml) => [...twiml.matchAll(/<Say[^>]*>([^<]*)<\/Say>/g)].map((m) => unescapeXml(m[1]));
const attribute = (twiml, verb, name) => {
  const tag = twiml.match(new RegExp(`<${verb}\\b[^>]*>`))?.[0] ?? "";
  const value = tag.match(new RegExp(`\\b${name}="([^"]*)"`))?.[1];
  return value === undefined ? undefined : unescapeXml(value);
};
// The calls the fake Twilio REST server created, in order (each: its SID and its form's fields).
function createdCalls() {
  if (!existsSync(CALLS_FILE)) return [];
  return readFileSync(CALLS_FILE, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}
const field = (call, name) => call.fields.filter(([k]) => k === name).map(([, v]) => v);

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

  // The operator's own page: the phone a callback rings first, set in the form.
  await page.goto(`${BASE}/console/profil`);
  check((await page.locator("h1").textContent()) === "Mon profil", "the profile page opens");
  await page.getByLabel("Mon numéro de téléphone (pour les rappels en un clic)").fill("555-01");
  await page.getByRole("button", { name: "Enregistrer" }).click();
  await page.getByRole("alert").waitFor();
  check((await page.getByRole("alert").textContent()).startsWith("Ce numéro n'est pas un numéro nord-américain valide"),
    "a malformed phone is refused with a message");
  const refusedViolations = await axeViolations(page);
  check(refusedViolations.length === 0, `axe-core finds no WCAG A/AA violation on the profile page with its error (${refusedViolations.join("; ")})`);
  // The browser logs the refused form's status (400) as an error: expected here, and only that.
  check(consoleErrors.length === 1 && consoleErrors[0].includes("400"), `the refused phone is a 400 (${consoleErrors.join("; ")})`);
  consoleErrors.length = 0;
  await page.getByLabel("Mon numéro de téléphone (pour les rappels en un clic)").fill("514 555-0188");
  await page.getByRole("button", { name: "Enregistrer" }).click();
  await page.waitForURL(`${BASE}/console/profil?ok=1`);
  check((await page.getByRole("status").textContent()) === "Numéro enregistré.", "the operator's phone is saved");
  check((await page.getByLabel("Mon numéro de téléphone (pour les rappels en un clic)").inputValue()) === "514 555-0188",
    "the profile shows it the way people read it");
  const profileViolations = await axeViolations(page);
  check(profileViolations.length === 0, `axe-core finds no WCAG A/AA violation on the profile page (${profileViolations.join("; ")})`);
  await shot(page, "profile");

  // Rappeler: open the French caller's qualified lead and click.
  await page.goto(`${BASE}/console/leads`);
  await page.locator("#leads tbody tr", { hasText: "Marie-Ève" }).locator('a[href^="/console/leads/"]').click();
  await page.waitForURL(/\/console\/leads\/[0-9a-f-]{36}$/);
  const leadUrl = page.url();
  const leadId = leadUrl.split("/").pop();
  const rappel = page.locator("section", { has: page.getByRole("heading", { name: "Rappeler" }) });
  check((await rappel.textContent()).includes("514 555-0188") && (await rappel.textContent()).includes("514 555-0199"),
    "the Rappeler section names the operator's phone and the lead's");
  check(createdCalls().length === 0, "no call is created before the click");
  await rappel.getByRole("button", { name: "Rappeler" }).click();
  await page.waitForURL(`${leadUrl}?rappel=1`);
  check((await rappel.getByRole("status").textContent()).startsWith("Appel lancé : votre téléphone va sonner."),
    "the page says the operator's phone will ring");
  // A second click at once: refused (one callback per operator every 10 s), nothing created.
  await rappel.getByRole("button", { name: "Rappeler" }).click();
  await page.getByRole("heading", { name: "Rappel non lancé" }).waitFor();
  check((await page.getByRole("alert").textContent()).startsWith("Vous venez de lancer un rappel."), "a second click at once is refused");
  const refusalViolations = await axeViolations(page);
  check(refusalViolations.length === 0, `axe-core finds no WCAG A/AA violation on the callback's refusal (${refusalViolations.join("; ")})`);
  await shot(page, "callback-refused");
  check(consoleErrors.length === 1 && consoleErrors[0].includes("429"), `the refused click is a 429 (${consoleErrors.join("; ")})`);
  consoleErrors.length = 0;

  // The fake Twilio REST server received POST /2010-04-01/Accounts/{AC}/Calls.json with the form.
  const created = createdCalls();
  check(created.length === 1, `exactly one call created at Twilio (${created.length})`);
  const [callback] = created;
  const answerUrl = `${PUBLIC}/twilio/callback/answer?lead=${leadId}`;
  const statusUrl = `${PUBLIC}/twilio/callback/status?lead=${leadId}`;
  same(
    ["To", "From", "Url", "Method", "StatusCallback", "StatusCallbackMethod"].map((n) => field(callback, n)),
    [[OPERATOR_PHONE], [BUSINESS], [answerUrl], ["POST"], [statusUrl], ["POST"]],
    "the created call: To = the operator's phone, From = BUSINESS_NUMBER, Url and StatusCallback = the gateway's callback routes",
  );
  same(field(callback, "StatusCallbackEvent"), ["initiated", "ringing", "answered", "completed"], "every status callback event is asked for");

  // Twilio's side of the callback, as Twilio would request each URL it was given.
  const sid = callback.sid;
  const base = { AccountSid: ACCOUNT, ApiVersion: "2010-04-01", CallSid: sid, Direction: "outbound-api",
    From: BUSINESS, Caller: BUSINESS, To: OPERATOR_PHONE, Called: OPERATOR_PHONE };
  for (const CallStatus of ["initiated", "ringing"]) {
    const r = await twilio(statusUrl, { ...base, CallStatus, Timestamp: new Date().toUTCString() });
    check(r.status === 204, `the status callback (${CallStatus}) is accepted (${r.status} ${r.body})`);
  }
  const unsigned = await fetch(answerUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...base, CallStatus: "in-progress" }).toString() });
  check(unsigned.status === 401, `an unsigned answer is refused (${unsigned.status})`);
  const answer = await twilio(answerUrl, { ...base, CallStatus: "in-progress" });
  check(answer.status === 200, `the operator answers: TwiML (${answer.status} ${answer.body})`);
  const announced = spoken(answer.body);
  check(announced[0]?.startsWith("Rappel de BP Émondage. Vous allez joindre Marie-Ève Côté") && announced[0].includes("Appuyez sur 1"),
    `Myriam names the lead and asks to press 1 (${announced.join(" / ")})`);
  check(attribute(answer.body, "Gather", "numDigits") === "1" && !answer.body.includes("<Dial"), "one key is gathered, nobody is dialled yet");
  const pressUrl = attribute(answer.body, "Gather", "action");
  check(pressUrl === `${PUBLIC}/twilio/callback/press?lead=${leadId}`, `the key goes to the press route (${pressUrl})`);
  await twilio(statusUrl, { ...base, CallStatus: "in-progress", Timestamp: new Date().toUTCString() });

  const press = await twilio(pressUrl, { ...base, CallStatus: "in-progress", Digits: "1", FinishedOnKey: "" });
  check(press.status === 200, `1 is pressed: TwiML (${press.status} ${press.body})`);
  check(attribute(press.body, "Dial", "callerId") === BUSINESS, `the lead is dialled with BUSINESS_NUMBER as caller ID (${press.body})`);
  check(press.body.includes(`<Number>${LEAD_PHONE}</Number>`), `the lead's number is dialled (${press.body})`);
  const dialUrl = attribute(press.body, "Dial", "action");
  check(dialUrl === `${PUBLIC}/twilio/callback/dial?lead=${leadId}`, `the dial's outcome goes to the dial route (${dialUrl})`);

  const dialed = await twilio(dialUrl, { ...base, CallStatus: "in-progress", DialCallSid: `CA${"d".repeat(32)}`,
    DialCallStatus: "completed", DialCallDuration: "95", DialBridged: "true" });
  check(dialed.status === 200, `the dial's outcome is taken (${dialed.status} ${dialed.body})`);
  same(spoken(dialed.body), ["L'appel est terminé. Au revoir."], "after the lead's leg, the operator hears goodbye");
  check(dialed.body.includes("<Hangup/>"), "and the call hangs up");
  const done = await twilio(statusUrl, { ...base, CallStatus: "completed", CallDuration: "130", Timestamp: new Date().toUTCString() });
  check(done.status === 204, `the final status callback is accepted (${done.status})`);

  // The lead's history shows the callback and its outcome.
  await page.goto(leadUrl);
  const callRow = page.locator("tr", { hasText: `rappel par ${EMAIL}` });
  check((await callRow.count()) === 1, "the lead's history shows the callback, with who placed it");
  const rowText = await callRow.textContent();
  check(rowText.includes("completed") && rowText.includes("130 s") && rowText.includes("répondu (95 s)"),
    `with its outcome: completed, 130 s, the lead answered for 95 s (${rowText.replace(/\s+/g, " ")})`);
  const historyViolations = await axeViolations(page);
  check(historyViolations.length === 0, `axe-core finds no WCAG A/AA violation on a lead's page with a callback (${historyViolations.join("; ")})`);
  await shot(page, "callback-lead");

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
  const callbacks = await table(page, "Rappels");
  same(
    callbacks.map((r) => [r["Issue"], r["Nombre"]]),
    [["Rappels lancés", "1"], ["Client joint", "1"], ["Client occupé", "0"], ["Client sans réponse", "0"], ["Échec ou annulé", "0"],
      ["Non confirmé (pas de 1)", "0"], ["Opérateur non joint", "0"], ["En cours", "0"]],
    "the callback table: one placed, the lead reached (and not counted as a call received above)",
  );
  // No SMS alert in the period: the section says so instead of drawing empty axes.
  const sms = page.locator('section[aria-labelledby="alertes"]');
  check((await sms.locator("p.empty").textContent()) === "Aucune alerte SMS pour cette période." && (await sms.locator("svg").count()) === 0,
    "the SMS alerts' section says there is none, with no empty chart");
  same(await table(page, "Alertes SMS"), [], "and its table is there, with no row");
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
