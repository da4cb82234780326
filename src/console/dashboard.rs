//! The business dashboard: `/console/tableau` (server-rendered HTML, a GET form for the period, an
//! SVG chart drawn here from the numbers, each beside its table and a CSV download; no script),
//! `/console/tableau.csv` and `GET /api/v1/stats` (the same numbers as JSON).
//!
//! The period (day, week — the default —, month, or custom dates) is cut in `BUSINESS_TIMEZONE`
//! into local days, weeks and opening ranges ([`StatsQuery`]); the store sums
//! ([`crate::store::stats`]).

use std::fmt::Write as _;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

use super::auth::{ApiUser, PageUser};
use super::error::{ApiError, ConsoleError, PageError, Problem};
use super::html::{Chrome, Esc, layout};
use crate::domain::BusinessHours;
use crate::state::AppState;
use crate::store::stats::{
    AlertCount, Callbacks, DayCounts, FunnelStep, Stats, StatsQuery, StatsStore, Transfers,
};

/// The longest custom period, in days.
pub const MAX_DAYS: i64 = 93;

/// The period asked for. Every parameter is optional; an empty one counts as absent (the page's
/// form sends them all).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// `day`, `week` (default), `month` or `custom` (implied by `from`/`to`).
    #[param(pattern = "^(day|week|month|custom)?$")]
    pub period: Option<String>,
    /// A day inside the period (`YYYY-MM-DD`, local); today by default.
    #[param(format = Date)]
    pub date: Option<String>,
    /// First day of a custom period (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Last day of a custom period, included (`YYYY-MM-DD`), at most 93 days after `from`.
    #[param(format = Date)]
    pub to: Option<String>,
    /// For `/console/tableau.csv`: `calls`, `leads`, `funnel`, `transfers`, `follow_up`,
    /// `alerts`.
    #[param(ignore)]
    pub table: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Day,
    Week,
    Month,
    Custom,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Day => "day",
            Kind::Week => "week",
            Kind::Month => "month",
            Kind::Custom => "custom",
        }
    }
}

/// A resolved period: its kind and its first and last local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    kind: Kind,
    first: Date,
    last: Date,
}

fn present(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn parse_date(name: &str, value: &str) -> Result<Date, ConsoleError> {
    let bad = || ConsoleError::BadRequest(format!("{name} must be a date YYYY-MM-DD"));
    let parts: Vec<&str> = value.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    if !(2000..=2100).contains(&year) {
        return Err(ConsoleError::BadRequest(format!(
            "{name}: the year must be between 2000 and 2100"
        )));
    }
    let month = Month::try_from(month).map_err(|_| bad())?;
    Date::from_calendar_date(year, month, day).map_err(|_| bad())
}

impl Period {
    /// Resolves `q` around `today` (the local date).
    pub fn resolve(q: &PeriodQuery, today: Date) -> Result<Self, ConsoleError> {
        let from = present(q.from.as_ref());
        let to = present(q.to.as_ref());
        let kind = match present(q.period.as_ref()) {
            None if from.is_some() || to.is_some() => Kind::Custom,
            None | Some("week") => Kind::Week,
            Some("day") => Kind::Day,
            Some("month") => Kind::Month,
            Some("custom") => Kind::Custom,
            Some(_) => {
                return Err(ConsoleError::BadRequest(
                    "period is day, week, month or custom".to_owned(),
                ));
            }
        };
        let date = present(q.date.as_ref())
            .map(|d| parse_date("date", d))
            .transpose()?
            .unwrap_or(today);
        let (first, last) = match kind {
            Kind::Day => (date, date),
            Kind::Week => {
                let monday =
                    date - Duration::days(i64::from(date.weekday().number_days_from_monday()));
                (monday, monday + Duration::days(6))
            }
            Kind::Month => {
                let first = date.replace_day(1).map_err(|e| bad_date(&e))?;
                let last = date
                    .replace_day(date.month().length(date.year()))
                    .map_err(|e| bad_date(&e))?;
                (first, last)
            }
            Kind::Custom => {
                let (Some(from), Some(to)) = (from, to) else {
                    return Err(ConsoleError::BadRequest(
                        "a custom period needs from and to (YYYY-MM-DD)".to_owned(),
                    ));
                };
                let (first, last) = (parse_date("from", from)?, parse_date("to", to)?);
                if last < first {
                    return Err(ConsoleError::BadRequest(
                        "to must not be before from".to_owned(),
                    ));
                }
                if (last - first).whole_days() >= MAX_DAYS {
                    return Err(ConsoleError::BadRequest(format!(
                        "a custom period is at most {MAX_DAYS} days"
                    )));
                }
                (first, last)
            }
        };
        Ok(Self { kind, first, last })
    }

    fn dates(&self) -> Vec<Date> {
        let mut out = Vec::new();
        let mut d = self.first;
        while d <= self.last {
            out.push(d);
            match d.next_day() {
                Some(next) => d = next,
                None => break,
            }
        }
        out
    }

    /// The instants the store compares: local days, weeks (Monday first, cut to the period) and
    /// opening ranges.
    pub fn query(
        &self,
        hours: &BusinessHours,
        now: OffsetDateTime,
    ) -> Result<StatsQuery, ConsoleError> {
        let out_of_range = || ConsoleError::BadRequest("the period is out of range".to_owned());
        let dates = self.dates();
        let mut days = Vec::with_capacity(dates.len());
        let mut weeks: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        let mut open = Vec::new();
        for d in &dates {
            let start = hours.day_start(*d).ok_or_else(out_of_range)?;
            let end = d
                .next_day()
                .and_then(|n| hours.day_start(n))
                .ok_or_else(out_of_range)?;
            days.push((start, end));
            match weeks.last_mut() {
                Some(week) if d.weekday() != time::Weekday::Monday => week.1 = end,
                _ => weeks.push((start, end)),
            }
            open.extend(hours.open_ranges(*d));
        }
        Ok(StatsQuery {
            days,
            weeks,
            open,
            now,
        })
    }
}

fn bad_date(e: &time::error::ComponentRange) -> ConsoleError {
    ConsoleError::BadRequest(format!("invalid date: {e}"))
}

/// One local day's numbers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayView {
    /// `YYYY-MM-DD`, local.
    pub date: String,
    #[serde(flatten)]
    pub counts: DayCounts,
}

/// One week's time to first follow-up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeekView {
    /// The week's first day in the period (`YYYY-MM-DD`).
    pub from: String,
    pub followed_up: u64,
    pub median_seconds: Option<u64>,
    pub p90_seconds: Option<u64>,
}

/// The period's totals.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Totals {
    pub calls: u64,
    pub leads: u64,
    pub qualified: u64,
    /// Qualified leads ÷ calls received (0 to 1, three decimals); `null` without calls.
    pub conversion: Option<f64>,
    pub urgent: u64,
    pub after_hours: u64,
    pub transfers: u64,
    pub voicemails: u64,
    /// Leads of the period still `nouveau` 24 hours after they arrived.
    pub overdue: u64,
}

/// The period itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeriodView {
    /// `day`, `week`, `month` or `custom`.
    pub kind: String,
    /// First local day (`YYYY-MM-DD`).
    pub from: String,
    /// Last local day, included.
    pub to: String,
    /// `BUSINESS_TIMEZONE`.
    pub timezone: String,
}

/// `GET /api/v1/stats`: the dashboard's numbers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsView {
    pub period: PeriodView,
    pub totals: Totals,
    pub days: Vec<DayView>,
    pub funnel: Vec<FunnelStep>,
    pub transfers: Transfers,
    pub follow_up: Vec<WeekView>,
    pub alerts: Vec<AlertCount>,
    /// Callbacks placed from the console (Rappeler), by outcome; not counted in `calls`.
    pub callbacks: Callbacks,
}

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl StatsView {
    fn new(period: &Period, timezone: &str, query: &StatsQuery, stats: Stats) -> Self {
        let dates = period.dates();
        let mut totals = Totals {
            overdue: stats.overdue,
            ..Totals::default()
        };
        for d in &stats.days {
            totals.calls += d.calls;
            totals.leads += d.leads;
            totals.qualified += d.qualifie;
            totals.urgent += d.urgent;
            totals.after_hours += d.after_hours;
            totals.transfers += d.transfer;
            totals.voicemails += d.voicemail;
        }
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        if totals.calls > 0 {
            let ratio = totals.qualified as f64 / totals.calls as f64;
            totals.conversion = Some((ratio * 1000.0).round() / 1000.0);
        }
        let week_starts: Vec<String> = query
            .weeks
            .iter()
            .map(|(start, _)| {
                let i = query.days.iter().position(|(s, _)| s == start).unwrap_or(0);
                dates.get(i).map(|d| iso(*d)).unwrap_or_default()
            })
            .collect();
        Self {
            period: PeriodView {
                kind: period.kind.as_str().to_owned(),
                from: iso(period.first),
                to: iso(period.last),
                timezone: timezone.to_owned(),
            },
            totals,
            days: dates
                .iter()
                .zip(stats.days)
                .map(|(d, counts)| DayView {
                    date: iso(*d),
                    counts,
                })
                .collect(),
            funnel: stats.funnel,
            transfers: stats.transfers,
            follow_up: week_starts
                .into_iter()
                .zip(stats.follow_up)
                .map(|(from, w)| WeekView {
                    from,
                    followed_up: w.followed_up,
                    median_seconds: w.median_seconds,
                    p90_seconds: w.p90_seconds,
                })
                .collect(),
            alerts: stats.alerts,
            callbacks: stats.callbacks,
        }
    }
}

async fn compute(app: &AppState, q: &PeriodQuery) -> Result<(Period, StatsView), ConsoleError> {
    let hours = &app.settings.office.hours;
    let now = OffsetDateTime::now_utc();
    let today = hours.local_date(now).unwrap_or_else(|| now.date());
    let period = Period::resolve(q, today)?;
    let query = period.query(hours, now)?;
    let stats = app.store.stats(&query).await?;
    let view = StatsView::new(&period, hours.timezone_name(), &query, stats);
    Ok((period, view))
}

fn read_query(q: Result<Query<PeriodQuery>, QueryRejection>) -> Result<PeriodQuery, ConsoleError> {
    q.map(|Query(q)| q)
        .map_err(|e| ConsoleError::BadRequest(e.body_text()))
}

/// The dashboard's numbers for a period in `BUSINESS_TIMEZONE`: calls per day by handling and
/// language, leads per day by status, the funnel by question, transfers, time to first
/// follow-up, SMS alerts.
#[utoipa::path(get, path = "/api/v1/stats", params(PeriodQuery), tag = "stats",
    responses(
        (status = 200, description = "The period's numbers", body = StatsView),
        (status = 400, description = "Invalid period", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn stats_api(
    State(app): State<AppState>,
    _user: ApiUser,
    raw: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Json<StatsView>, ApiError> {
    let q = read_query(raw)?;
    // The API is strict where the page's form is lenient: an empty parameter is refused.
    if [&q.period, &q.date, &q.from, &q.to]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| v.trim().is_empty()))
    {
        return Err(ConsoleError::BadRequest(
            "a parameter is empty: leave it out instead".to_owned(),
        )
        .into());
    }
    let (_, view) = compute(&app, &q).await?;
    Ok(Json(view))
}

/// `GET /console/tableau`.
pub async fn page(
    State(app): State<AppState>,
    user: PageUser,
    raw: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let q = read_query(raw)?;
    let (period, view) = compute(&app, &q).await?;
    let chrome = Chrome {
        title: "Tableau de bord",
        user: Some((&user.principal.actor, &user.csrf)),
        admin: user.principal.is_admin(),
    };
    Ok(Html(layout(&chrome, &render(&period, &view))))
}

/// `GET /console/tableau.csv?table=…`: one table of the dashboard as CSV.
pub async fn csv(
    State(app): State<AppState>,
    _user: PageUser,
    raw: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let q = read_query(raw)?;
    let Some(table) = TABLES
        .iter()
        .find(|t| present(q.table.as_ref()) == Some(t.name))
    else {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        return Err(
            ConsoleError::BadRequest(format!("table is one of {}", names.join(", "))).into(),
        );
    };
    let (_, view) = compute(&app, &q).await?;
    let (head, rows) = (table.rows)(&view);
    let mut out = String::from("\u{feff}");
    for line in std::iter::once(head).chain(rows) {
        let cells: Vec<String> = line.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(";"));
        out.push_str("\r\n");
    }
    let disposition = format!(
        "attachment; filename=\"tableau-{}-{}.csv\"",
        table.name, view.period.from
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response())
}

/// A CSV cell: quoted, and a leading `= + - @` neutralised (spreadsheet formulas).
fn cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", value.replace('"', "\"\""))
}

type Rows = (Vec<String>, Vec<Vec<String>>);

struct Table {
    name: &'static str,
    rows: fn(&StatsView) -> Rows,
}

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_owned()).collect()
}

const TABLES: [Table; 7] = [
    Table {
        name: "calls",
        rows: calls_rows,
    },
    Table {
        name: "leads",
        rows: leads_rows,
    },
    Table {
        name: "funnel",
        rows: funnel_rows,
    },
    Table {
        name: "transfers",
        rows: transfer_rows,
    },
    Table {
        name: "follow_up",
        rows: follow_up_rows,
    },
    Table {
        name: "alerts",
        rows: alert_rows,
    },
    Table {
        name: "callbacks",
        rows: callback_rows,
    },
];

fn calls_rows(v: &StatsView) -> Rows {
    let head = strings([
        "Jour",
        "Appels",
        "Vapi",
        "RVI",
        "Transferts",
        "Messages vocaux",
        "Français",
        "Anglais",
        "Hors heures",
    ]);
    let rows = v
        .days
        .iter()
        .map(|d| {
            let c = &d.counts;
            let mut row = vec![d.date.clone()];
            row.extend(
                [
                    c.calls,
                    c.bridge,
                    c.ivr,
                    c.transfer,
                    c.voicemail,
                    c.french,
                    c.english,
                    c.after_hours,
                ]
                .map(|n| n.to_string()),
            );
            row
        })
        .collect();
    (head, rows)
}

fn leads_rows(v: &StatsView) -> Rows {
    let head = strings([
        "Jour",
        "Leads",
        "Qualifiés",
        "En cours",
        "Nouveaux",
        "Abandonnés",
        "Transférés",
        "À rappeler",
        "Urgents",
    ]);
    let rows = v
        .days
        .iter()
        .map(|d| {
            let c = &d.counts;
            let mut row = vec![d.date.clone()];
            row.extend(
                [
                    c.leads,
                    c.qualifie,
                    c.en_cours,
                    c.nouveau,
                    c.abandonne,
                    c.transfere,
                    c.rappel,
                    c.urgent,
                ]
                .map(|n| n.to_string()),
            );
            row
        })
        .collect();
    (head, rows)
}

fn question(field: &str) -> &'static str {
    match field {
        "nom_complet" => "Nom",
        "telephone" => "Numéro",
        "adresse_complete" => "Adresse",
        "type_service" => "Service",
        "description" => "Description",
        "urgence" => "Urgence",
        _ => "?",
    }
}

fn funnel_rows(v: &StatsView) -> Rows {
    let head = strings([
        "Question",
        "Ont répondu",
        "Ont raccroché ici",
        "Ont demandé une personne ici",
        "En cours ici",
    ]);
    let rows = v
        .funnel
        .iter()
        .map(|s| {
            let mut row = vec![question(&s.field).to_owned()];
            row.extend([s.answered, s.hung_up, s.asked_person, s.open].map(|n| n.to_string()));
            row
        })
        .collect();
    (head, rows)
}

fn transfer_rows(v: &StatsView) -> Rows {
    let t = &v.transfers;
    let rows = [
        ("Répondus", t.answered),
        ("Occupé", t.busy),
        ("Sans réponse", t.no_answer),
        ("Autres (échec, annulé)", t.other),
        ("Messages vocaux laissés", v.totals.voicemails),
    ]
    .iter()
    .map(|(label, n)| vec![(*label).to_owned(), n.to_string()])
    .collect();
    (strings(["Issue", "Nombre"]), rows)
}

fn callback_rows(v: &StatsView) -> Rows {
    let c = &v.callbacks;
    let rows = [
        ("Rappels lancés", c.placed),
        ("Client joint", c.connected),
        ("Client occupé", c.busy),
        ("Client sans réponse", c.no_answer),
        ("Échec ou annulé", c.failed),
        ("Non confirmé (pas de 1)", c.not_confirmed),
        ("Opérateur non joint", c.operator_unreached),
        ("En cours", c.open),
    ]
    .iter()
    .map(|(label, n)| vec![(*label).to_owned(), n.to_string()])
    .collect();
    (strings(["Issue", "Nombre"]), rows)
}

fn minutes(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "—".to_owned(), |s| format!("{}", s.div_ceil(60)))
}

fn follow_up_rows(v: &StatsView) -> Rows {
    let head = strings([
        "Semaine du",
        "Leads suivis",
        "Médiane (min)",
        "90e centile (min)",
    ]);
    let rows = v
        .follow_up
        .iter()
        .map(|w| {
            vec![
                w.from.clone(),
                w.followed_up.to_string(),
                minutes(w.median_seconds),
                minutes(w.p90_seconds),
            ]
        })
        .collect();
    (head, rows)
}

fn alert_label(status: &str) -> String {
    match status {
        "delivered" => "Livrés".to_owned(),
        "sent" => "Envoyés".to_owned(),
        "pending" | "claimed" => "En attente".to_owned(),
        "undelivered" => "Non livrés".to_owned(),
        "failed" => "Échec".to_owned(),
        "dead" => "Abandonnés".to_owned(),
        other => other.to_owned(),
    }
}

fn alert_rows(v: &StatsView) -> Rows {
    let rows = v
        .alerts
        .iter()
        .map(|a| {
            vec![
                alert_label(&a.status),
                a.status.clone(),
                a.count.to_string(),
            ]
        })
        .collect();
    (strings(["État", "Code", "Nombre"]), rows)
}

/// A bar chart as SVG: one bar per label, the series stacked (or side by side when `grouped`).
struct Chart<'a> {
    id: &'a str,
    title: &'a str,
    labels: Vec<String>,
    series: Vec<(&'a str, &'a str, Vec<u64>)>,
    grouped: bool,
}

const PALETTE: [&str; 5] = ["#1b6e3a", "#b3261e", "#c36a00", "#3b5ba9", "#6b6b6b"];

impl Chart<'_> {
    #[allow(clippy::cast_precision_loss, clippy::many_single_char_names)] // chart coordinates
    fn svg(&self) -> String {
        const W: f64 = 640.0;
        const H: f64 = 220.0;
        const LEFT: f64 = 40.0;
        const BOTTOM: f64 = 40.0;
        const TOP: f64 = 28.0;
        let n = self.labels.len().max(1);
        let heights: Vec<u64> = (0..n)
            .map(|i| {
                let values = self.series.iter().map(|s| s.2.get(i).copied().unwrap_or(0));
                if self.grouped {
                    values.max().unwrap_or(0)
                } else {
                    values.sum()
                }
            })
            .collect();
        let max = heights.iter().copied().max().unwrap_or(0).max(1);
        let plot_h = H - BOTTOM - TOP;
        let slot = (W - LEFT - 8.0) / n as f64;
        let scale = |v: u64| v as f64 / max as f64 * plot_h;
        let mut out = format!(
            r#"<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-labelledby="{id}-t" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{title}</title>"#,
            id = Esc(self.id),
            title = Esc(self.title),
        );
        // Axis and the top value.
        let base = H - BOTTOM;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{base}" x2="{W}" y2="{base}" stroke="#444"/><text x="{x}" y="{y}" font-size="11" text-anchor="end">{max}</text><text x="{x}" y="{base}" font-size="11" text-anchor="end">0</text>"##,
            x = LEFT - 4.0,
            y = TOP + 4.0,
        );
        let every = n.div_ceil(14);
        for (i, label) in self.labels.iter().enumerate() {
            let x0 = LEFT + slot * i as f64 + slot * 0.15;
            let width = slot * 0.7;
            let mut y = base;
            let k = self.series.len().max(1) as f64;
            for (j, (_, color, values)) in self.series.iter().enumerate() {
                let v = values.get(i).copied().unwrap_or(0);
                let h = scale(v);
                let (x, w, top) = if self.grouped {
                    (x0 + width / k * j as f64, width / k, base - h)
                } else {
                    y -= h;
                    (x0, width, y)
                };
                if v > 0 {
                    let _ = write!(
                        out,
                        r#"<rect x="{x:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"/>"#
                    );
                }
            }
            if i % every == 0 {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                    x0 + width / 2.0,
                    base + 14.0,
                    Esc(label)
                );
            }
        }
        // Legend.
        let mut x = LEFT;
        for (name, color, _) in &self.series {
            let _ = write!(
                out,
                r#"<rect x="{x}" y="6" width="10" height="10" fill="{color}"/><text x="{}" y="15" font-size="11">{}</text>"#,
                x + 14.0,
                Esc(name)
            );
            #[allow(clippy::cast_precision_loss)]
            {
                x += 24.0 + 6.5 * name.chars().count() as f64;
            }
        }
        out.push_str("</svg>");
        out
    }
}

fn table_html(caption: &str, (head, rows): &Rows) -> String {
    let mut out = format!(
        r#"<div class="table"><table><caption>{}</caption><thead><tr>"#,
        Esc(caption)
    );
    for h in head {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, Esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, r#"<th scope="row">{}</th>"#, Esc(c));
            } else {
                let _ = write!(out, "<td>{}</td>", Esc(c));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

fn short_day(date: &str) -> String {
    date.get(5..).unwrap_or(date).to_owned()
}

fn period_form(period: &Period) -> String {
    let option = |value: &str, label: &str| {
        let selected = if period.kind.as_str() == value {
            " selected"
        } else {
            ""
        };
        format!(r#"<option value="{value}"{selected}>{label}</option>"#)
    };
    let (from, to) = if period.kind == Kind::Custom {
        (iso(period.first), iso(period.last))
    } else {
        (String::new(), String::new())
    };
    format!(
        r#"<form method="get" action="/console/tableau" class="filters">
<label for="period">Période</label>
<select id="period" name="period">{}{}{}{}</select>
<label for="date">Jour de référence</label>
<input id="date" name="date" type="date" value="{}">
<label for="from">Du (personnalisée)</label>
<input id="from" name="from" type="date" value="{from}">
<label for="to">Au (personnalisée)</label>
<input id="to" name="to" type="date" value="{to}">
<button type="submit">Afficher</button>
</form>"#,
        option("day", "Jour"),
        option("week", "Semaine"),
        option("month", "Mois"),
        option("custom", "Personnalisée"),
        iso(period.first),
    )
}

fn section(id: &str, title: &str, chart: &Chart<'_>, rows: &Rows, query: &str) -> String {
    section_with(id, title, &chart.svg(), chart.id, rows, query)
}

/// A section whose chart may have nothing to draw: `empty` is said instead of empty axes when
/// the table has no row (the table stays, with its headers, and its CSV).
fn section_or_empty(
    id: &str,
    title: &str,
    chart: &Chart<'_>,
    rows: &Rows,
    query: &str,
    empty: &str,
) -> String {
    if rows.1.is_empty() {
        let said = format!(r#"<p class="muted empty">{}</p>"#, Esc(empty));
        section_with(id, title, &said, chart.id, rows, query)
    } else {
        section(id, title, chart, rows, query)
    }
}

fn section_with(
    id: &str,
    title: &str,
    figure: &str,
    table: &str,
    rows: &Rows,
    query: &str,
) -> String {
    format!(
        r#"<section class="card" aria-labelledby="{id}"><h2 id="{id}">{title}</h2>
<div class="chart-and-table">{figure}{rows}</div>
<p><a href="/console/tableau.csv?table={table}&amp;{query}" download>Télécharger en CSV</a></p></section>"#,
        id = Esc(id),
        title = Esc(title),
        rows = table_html(title, rows),
        query = Esc(query),
    )
}

#[allow(clippy::too_many_lines)] // the page, section by section
fn render(period: &Period, v: &StatsView) -> String {
    let query = if period.kind == Kind::Custom {
        format!("period=custom&from={}&to={}", v.period.from, v.period.to)
    } else {
        format!("period={}&date={}", v.period.kind, v.period.from)
    };
    let t = &v.totals;
    let conversion = t.conversion.map_or_else(
        || "—".to_owned(),
        |c| format!("{:.1} %", c * 100.0).replace('.', ","),
    );
    let days: Vec<String> = v.days.iter().map(|d| short_day(&d.date)).collect();
    let per_day =
        |f: fn(&DayCounts) -> u64| -> Vec<u64> { v.days.iter().map(|d| f(&d.counts)).collect() };
    let mut body = format!(
        r#"<h1>Tableau de bord</h1>
{form}
<p>Du {from} au {to} ({tz}).</p>
<dl class="totals" id="totaux">
<div><dt>Appels</dt><dd>{calls}</dd></div>
<div><dt>Leads</dt><dd>{leads}</dd></div>
<div><dt>Qualifiés</dt><dd>{qualified}</dd></div>
<div><dt>Conversion (qualifiés ÷ appels)</dt><dd>{conversion}</dd></div>
<div><dt>Urgents</dt><dd>{urgent}</dd></div>
<div><dt>Appels hors heures</dt><dd>{after}</dd></div>
<div><dt>Transferts</dt><dd>{transfers}</dd></div>
<div><dt>Messages vocaux</dt><dd>{voicemails}</dd></div>
<div><dt>À traiter depuis plus de 24 h</dt><dd>{overdue}</dd></div>
</dl>"#,
        form = period_form(period),
        from = v.period.from,
        to = v.period.to,
        tz = Esc(&v.period.timezone),
        calls = t.calls,
        leads = t.leads,
        qualified = t.qualified,
        urgent = t.urgent,
        after = t.after_hours,
        transfers = t.transfers,
        voicemails = t.voicemails,
        overdue = t.overdue,
    );
    body.push_str(&section(
        "appels",
        "Appels par jour",
        &Chart {
            id: "calls",
            title: "Appels par jour, par traitement",
            labels: days.clone(),
            series: vec![
                ("Vapi", PALETTE[3], per_day(|c| c.bridge)),
                ("RVI", PALETTE[0], per_day(|c| c.ivr)),
                (
                    "Autre",
                    PALETTE[4],
                    per_day(|c| c.calls.saturating_sub(c.bridge + c.ivr)),
                ),
            ],
            grouped: false,
        },
        &calls_rows(v),
        &query,
    ));
    body.push_str(&section(
        "leads",
        "Leads par jour",
        &Chart {
            id: "leads",
            title: "Leads par jour, par statut",
            labels: days,
            series: vec![
                ("Qualifiés", PALETTE[0], per_day(|c| c.qualifie)),
                ("Abandonnés", PALETTE[1], per_day(|c| c.abandonne)),
                (
                    "Transférés ou à rappeler",
                    PALETTE[2],
                    per_day(|c| c.transfere + c.rappel),
                ),
                ("En cours", PALETTE[4], per_day(|c| c.nouveau + c.en_cours)),
            ],
            grouped: false,
        },
        &leads_rows(v),
        &query,
    ));
    let labels: Vec<String> = v
        .funnel
        .iter()
        .map(|s| question(&s.field).to_owned())
        .collect();
    let step = |f: fn(&FunnelStep) -> u64| -> Vec<u64> { v.funnel.iter().map(f).collect() };
    body.push_str(&section(
        "entonnoir",
        "Entonnoir par question",
        &Chart {
            id: "funnel",
            title: "Par question : ont répondu, ont raccroché, ont demandé une personne",
            labels,
            series: vec![
                ("Ont répondu", PALETTE[0], step(|s| s.answered)),
                ("Ont raccroché", PALETTE[1], step(|s| s.hung_up)),
                (
                    "Ont demandé une personne",
                    PALETTE[2],
                    step(|s| s.asked_person),
                ),
                ("En cours", PALETTE[4], step(|s| s.open)),
            ],
            grouped: false,
        },
        &funnel_rows(v),
        &query,
    ));
    let tr = &v.transfers;
    body.push_str(&section(
        "transferts",
        "Transferts et messages vocaux",
        &Chart {
            id: "transfers",
            title: "Transferts par issue, et messages vocaux",
            labels: ["Répondus", "Occupé", "Sans réponse", "Autres", "Messages"]
                .map(str::to_owned)
                .to_vec(),
            series: vec![(
                "Nombre",
                PALETTE[3],
                vec![tr.answered, tr.busy, tr.no_answer, tr.other, t.voicemails],
            )],
            grouped: false,
        },
        &transfer_rows(v),
        &query,
    ));
    let cb = &v.callbacks;
    body.push_str(&section(
        "rappels",
        "Rappels depuis la console",
        &Chart {
            id: "callbacks",
            title: "Rappels par issue",
            labels: [
                "Joints",
                "Occupé",
                "Sans réponse",
                "Échec",
                "Pas de 1",
                "Opérateur",
                "En cours",
            ]
            .map(str::to_owned)
            .to_vec(),
            series: vec![(
                "Nombre",
                PALETTE[1],
                vec![
                    cb.connected,
                    cb.busy,
                    cb.no_answer,
                    cb.failed,
                    cb.not_confirmed,
                    cb.operator_unreached,
                    cb.open,
                ],
            )],
            grouped: false,
        },
        &callback_rows(v),
        &query,
    ));
    body.push_str(&section(
        "suivi",
        "Délai avant le premier suivi",
        &Chart {
            id: "follow_up",
            title: "Minutes entre l'arrivée d'un lead et son premier suivi, par semaine",
            labels: v.follow_up.iter().map(|w| short_day(&w.from)).collect(),
            series: vec![
                (
                    "Médiane",
                    PALETTE[0],
                    v.follow_up
                        .iter()
                        .map(|w| w.median_seconds.unwrap_or(0).div_ceil(60))
                        .collect(),
                ),
                (
                    "90e centile",
                    PALETTE[2],
                    v.follow_up
                        .iter()
                        .map(|w| w.p90_seconds.unwrap_or(0).div_ceil(60))
                        .collect(),
                ),
            ],
            grouped: true,
        },
        &follow_up_rows(v),
        &query,
    ));
    body.push_str(&section_or_empty(
        "alertes",
        "Alertes SMS",
        &Chart {
            id: "alerts",
            title: "Alertes SMS au personnel, par état de livraison",
            labels: v.alerts.iter().map(|a| alert_label(&a.status)).collect(),
            series: vec![(
                "Alertes",
                PALETTE[3],
                v.alerts.iter().map(|a| a.count).collect(),
            )],
            grouped: false,
        },
        &alert_rows(v),
        &query,
        "Aucune alerte SMS pour cette période.",
    ));
    body
}

/// A conversation turn's time on the lead page: `<time datetime="…Z">09:03:05</time> `, local;
/// nothing for turns stored before turns had times.
pub fn turn_time(at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else {
        return String::new();
    };
    let utc = at.to_offset(time::UtcOffset::UTC);
    let Ok(stamp) = utc.format(&time::format_description::well_known::Rfc3339) else {
        return String::new();
    };
    let local = at.to_offset(super::html::montreal_offset(at));
    format!(
        r#"<time datetime="{stamp}">{:02}:{:02}:{:02}</time> "#,
        local.hour(),
        local.minute(),
        local.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn q(period: &str, date: &str, from: &str, to: &str) -> PeriodQuery {
        let some = |s: &str| Some(s.to_owned());
        PeriodQuery {
            period: some(period),
            date: some(date),
            from: some(from),
            to: some(to),
            table: None,
        }
    }

    #[test]
    fn periods_resolve_in_local_days() {
        let today = date!(2026 - 12 - 09); // a Wednesday
        let week = Period::resolve(&PeriodQuery::default(), today).unwrap();
        assert_eq!(
            (week.kind, week.first, week.last),
            (Kind::Week, date!(2026 - 12 - 07), date!(2026 - 12 - 13))
        );
        let month = Period::resolve(&q("month", "2026-02-10", "", ""), today).unwrap();
        assert_eq!(
            (month.first, month.last),
            (date!(2026 - 02 - 01), date!(2026 - 02 - 28))
        );
        let day = Period::resolve(&q("day", "", "", ""), today).unwrap();
        assert_eq!((day.first, day.last), (today, today));
        let custom = Period::resolve(&q("", "", "2026-11-28", "2026-12-02"), today).unwrap();
        assert_eq!((custom.kind, custom.dates().len()), (Kind::Custom, 5));
        for bad in [
            q("year", "", "", ""),
            q("day", "2026-13-01", "", ""),
            q("day", "26-1-1", "", ""),
            q("day", "1900-01-01", "", ""),
            q("custom", "", "2026-12-02", ""),
            q("custom", "", "2026-12-02", "2026-12-01"),
            q("custom", "", "2026-01-01", "2026-12-31"),
            q("day", "２０２６-01-01", "", ""),
        ] {
            assert!(
                matches!(
                    Period::resolve(&bad, today),
                    Err(ConsoleError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_week_across_the_dst_change_has_seven_local_days() {
        let hours = BusinessHours::parse("mon-fri 08:00-17:00", "America/Toronto").unwrap();
        let period =
            Period::resolve(&q("week", "2026-11-02", "", ""), date!(2026 - 11 - 02)).unwrap();
        let query = period.query(&hours, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(query.days.len(), 7);
        assert_eq!(query.weeks.len(), 1);
        assert_eq!(query.open.len(), 5);
        assert!(query.days.windows(2).all(|w| w[0].1 == w[1].0));
        // Sunday 2026-11-01 ended summer time: the Monday starts at 05:00 UTC.
        assert_eq!(
            query.days[0].0,
            time::macros::datetime!(2026-11-02 05:00 UTC)
        );
    }

    #[test]
    fn charts_are_svg_with_a_title_and_no_script() {
        let chart = Chart {
            id: "c",
            title: "Appels <test>",
            labels: vec!["12-07".to_owned(), "12-08".to_owned()],
            series: vec![
                ("Vapi", PALETTE[0], vec![2, 0]),
                ("RVI", PALETTE[1], vec![1, 3]),
            ],
            grouped: false,
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title id=\"c-t\">Appels &lt;test&gt;</title>"));
        assert_eq!(
            svg.matches("<rect").count(),
            3 + 2,
            "three bars, two legend keys"
        );
        assert!(!svg.contains("script") && !svg.contains("style"));
        assert_eq!(cell("=1+1"), "\"'=1+1\"");
    }
}
