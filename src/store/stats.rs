//! The business dashboard's numbers (`/console/tableau`, `GET /api/v1/stats`), summed in the store
//! with SQL aggregates, never by loading the leads: calls per day by how they were handled and by
//! language, leads per day by status, the funnel by question, transfers by outcome, the time to a
//! lead's first follow-up, SMS alerts by delivery status.
//!
//! The caller gives the period as instants already cut in `BUSINESS_TIMEZONE` ([`StatsQuery`]):
//! the local days, the weeks, the office's opening ranges. SQLite has no time zones, so both
//! stores only compare instants; the same question asks the same thing of each. SQLite runs the
//! queries below; Supabase one SQL function, `bp.console_stats` (migration
//! `20261207010000_stats.sql`), answering the same JSON.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

use super::any::AnyStore;
use super::outbox::OutboxStore;
use super::rows::StoreError;
use super::sqlite::SqliteStore;
use super::supabase::SupabaseStore;

/// A half-open range of instants `[start, end)`.
pub type Span = (OffsetDateTime, OffsetDateTime);

/// What to count. `days` and `weeks` are consecutive and cover the period; `open` the office's
/// opening ranges within it (a call outside every one is after hours); `now` judges the leads
/// still waiting for a follow-up after 24 hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    pub days: Vec<Span>,
    pub weeks: Vec<Span>,
    pub open: Vec<Span>,
    pub now: OffsetDateTime,
}

impl StatsQuery {
    fn period(&self) -> Option<Span> {
        Some((self.days.first()?.0, self.days.last()?.1))
    }

    /// The parameters as JSON, instants as `2026-12-07T05:00:00.000Z` (the SQLite columns' own
    /// text form, so they compare as text).
    fn json(&self) -> Result<serde_json::Value, StoreError> {
        let spans = |spans: &[Span]| -> Result<Vec<[String; 2]>, StoreError> {
            spans
                .iter()
                .map(|(s, e)| Ok([stamp(*s)?, stamp(*e)?]))
                .collect()
        };
        let (from, to) = self
            .period()
            .ok_or_else(|| StoreError::Corrupt("stats: an empty period".to_owned()))?;
        // Each opening range with the index of the local day it starts in (SQLite counts the
        // calls inside them per day with one index search per range).
        let open_by_day = self
            .open
            .iter()
            .filter_map(|(s, e)| {
                let i = self.days.iter().position(|(ds, de)| ds <= s && s < de)?;
                Some(Ok(serde_json::json!([i, stamp(*s).ok()?, stamp(*e).ok()?])))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(serde_json::json!({
            "open_by_day": open_by_day,
            "days": spans(&self.days)?,
            "weeks": spans(&self.weeks)?,
            "open": spans(&self.open)?,
            "from": stamp(from)?,
            "to": stamp(to)?,
            "overdue_before": stamp(self.now - time::Duration::hours(24))?,
        }))
    }
}

fn stamp(t: OffsetDateTime) -> Result<String, StoreError> {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .map_err(|_| StoreError::Corrupt("stats: an instant out of range".to_owned()))
}

/// One local day: its calls (inbound) and the leads that arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct DayCounts {
    pub calls: u64,
    /// Bridged to the Vapi assistant.
    pub bridge: u64,
    /// Answered by the gateway's own speech IVR.
    pub ivr: u64,
    /// Handed to the office line.
    pub transfer: u64,
    /// A voicemail was recorded.
    pub voicemail: u64,
    pub french: u64,
    pub english: u64,
    /// Outside `BUSINESS_HOURS`.
    pub after_hours: u64,
    pub leads: u64,
    pub nouveau: u64,
    pub en_cours: u64,
    pub qualifie: u64,
    pub abandonne: u64,
    pub transfere: u64,
    pub rappel: u64,
    pub urgent: u64,
}

/// One of the six questions: how many leads answered it, and of the others, how many stopped
/// there, by how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunnelStep {
    /// `nom_complet`, `telephone`, `adresse_complete`, `type_service`, `description`, `urgence`.
    pub field: String,
    pub answered: u64,
    /// Stopped here: hung up (`abandonne`).
    pub hung_up: u64,
    /// Stopped here: asked for a person (`transfere` or `rappel`).
    pub asked_person: u64,
    /// Stopped here: the call is still going or its end was not recorded.
    pub open: u64,
}

/// Transfers to the office line by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transfers {
    pub answered: u64,
    pub busy: u64,
    pub no_answer: u64,
    /// `failed` or `canceled`.
    pub other: u64,
}

/// The time from a lead's arrival to its first follow-up change by staff, for the leads of one
/// week (nearest-rank percentiles, in seconds; `None` when no lead was followed up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FollowUpWeek {
    pub followed_up: u64,
    pub median_seconds: Option<u64>,
    pub p90_seconds: Option<u64>,
}

/// SMS alerts by delivery status (Twilio's, or the alert's own state before Twilio reported).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertCount {
    pub status: String,
    pub count: u64,
}

/// Callbacks placed from the console (Rappeler) by outcome: not inbound calls, counted apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Callbacks {
    pub placed: u64,
    /// The operator pressed 1 and the lead answered (`DialCallStatus` `completed`).
    pub connected: u64,
    /// The lead's line was busy.
    pub busy: u64,
    /// The lead did not answer.
    pub no_answer: u64,
    /// The lead's leg failed or was canceled.
    pub failed: u64,
    /// The operator answered but did not press 1 (another key, nothing before the timeout, or
    /// hung up during the announcement).
    pub not_confirmed: u64,
    /// The operator's own phone did not answer, was busy, or the call failed.
    pub operator_unreached: u64,
    /// Not finished yet (ringing, or in progress).
    pub open: u64,
}

/// Classifies `(dial_status, ended_reason, status, count)` rows (empty text for none).
fn callbacks(rows: &[(String, String, String, u64)]) -> Callbacks {
    let mut c = Callbacks::default();
    for (dial, ended, status, n) in rows {
        c.placed += n;
        let bucket = match (dial.as_str(), ended.as_str(), status.as_str()) {
            ("completed" | "answered", _, _) => &mut c.connected,
            ("busy", _, _) => &mut c.busy,
            ("no-answer", _, _) => &mut c.no_answer,
            (d, _, _) if !d.is_empty() => &mut c.failed,
            // Answered, then no 1 (or hung up during the announcement).
            (_, e, _) if e.starts_with("operator-") => &mut c.not_confirmed,
            (_, _, "completed") => &mut c.not_confirmed,
            (_, _, "busy" | "no-answer" | "failed" | "canceled") => &mut c.operator_unreached,
            _ => &mut c.open,
        };
        *bucket += n;
    }
    c
}

/// The numbers of a period, days and weeks in the order of the query's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub days: Vec<DayCounts>,
    pub funnel: Vec<FunnelStep>,
    pub transfers: Transfers,
    pub follow_up: Vec<FollowUpWeek>,
    /// Leads of the period still `nouveau` (to be handled) 24 hours after they arrived.
    pub overdue: u64,
    pub alerts: Vec<AlertCount>,
    /// Callbacks placed from the console in the period.
    #[serde(default)]
    pub callbacks: Callbacks,
}

const FIELDS: [&str; 6] = [
    "nom_complet",
    "telephone",
    "adresse_complete",
    "type_service",
    "description",
    "urgence",
];

/// Builds the funnel from `(stop step 0..=6, how, count)` rows: a lead stops at the first field it
/// lacks (6: qualified, answered every question).
fn funnel(rows: &[(usize, String, u64)]) -> Vec<FunnelStep> {
    FIELDS
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut step = FunnelStep {
                field: (*field).to_owned(),
                ..FunnelStep::default()
            };
            for (stop, how, n) in rows {
                if *stop > i {
                    step.answered += n;
                } else if *stop == i {
                    match how.as_str() {
                        "hung_up" => step.hung_up += n,
                        "asked_person" => step.asked_person += n,
                        _ => step.open += n,
                    }
                }
            }
            step
        })
        .collect()
}

fn transfers(rows: &[(String, u64)]) -> Transfers {
    let mut t = Transfers::default();
    for (outcome, n) in rows {
        match outcome.as_str() {
            "answered" | "completed" => t.answered += n,
            "busy" => t.busy += n,
            "no-answer" => t.no_answer += n,
            _ => t.other += n,
        }
    }
    t
}

/// What the dashboard needs from storage.
pub trait StatsStore: Send + Sync {
    fn stats(&self, query: &StatsQuery) -> impl Future<Output = Result<Stats, StoreError>> + Send;
}

const SPANS: &str = "SELECT CAST(key AS INTEGER) AS i, json_extract(value, '$[0]') AS s, \
                     json_extract(value, '$[1]') AS e FROM json_each(?1)";

/// Calls a callback made (`outbound…`) are not calls received.
const INBOUND: &str = "coalesce(c.direction, 'inbound') NOT LIKE 'outbound%'";

/// The stop step and how, per lead: SQL shared by both stores' reading of a lead's columns.
const STOP_STEP: &str = "CASE WHEN nom_complet IS NULL THEN 0 \
     WHEN telephone IS NULL OR telephone_raw IS NULL THEN 1 \
     WHEN adresse_complete IS NULL THEN 2 WHEN type_service IS NULL THEN 3 \
     WHEN description IS NULL THEN 4 WHEN status <> 'qualifie' THEN 5 ELSE 6 END";
const STOP_HOW: &str = "CASE status WHEN 'abandonne' THEN 'hung_up' \
     WHEN 'transfere' THEN 'asked_person' WHEN 'rappel' THEN 'asked_person' ELSE 'open' END";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[allow(clippy::too_many_lines)] // one query per figure, read top to bottom
fn sqlite_stats(conn: &Connection, p: &serde_json::Value) -> Result<Stats, StoreError> {
    let days = p["days"].to_string();
    let weeks = p["weeks"].to_string();
    let open = p["open_by_day"].to_string();
    let from = p["from"].as_str().unwrap_or_default();
    let to = p["to"].as_str().unwrap_or_default();
    let n_days = p["days"].as_array().map_or(0, Vec::len);
    let n_weeks = p["weeks"].as_array().map_or(0, Vec::len);
    let mut stats = Stats {
        days: vec![DayCounts::default(); n_days],
        follow_up: vec![FollowUpWeek::default(); n_weeks],
        ..Stats::default()
    };

    // The spans are materialised once (else SQLite re-reads the JSON for every row), and the days
    // (weeks) alone bound the scans: they cover the period, and a bound on the period as well made
    // SQLite search the whole period's index range once per day (3 to 4 times the work for a
    // month; docs/PERFORMANCE.md).
    let mut calls = conn.prepare_cached(&format!(
        "WITH d AS MATERIALIZED ({SPANS}) \
         SELECT d.i, count(*), count(CASE WHEN c.mode = 'bridge' THEN 1 END), \
                count(CASE WHEN c.mode = 'ivr' THEN 1 END), \
                count(c.dial_status), count(c.recording_sid), \
                count(CASE WHEN l.language = 'fr' THEN 1 END), \
                count(CASE WHEN l.language = 'en' THEN 1 END) \
         FROM calls c JOIN d ON c.created_at >= d.s AND c.created_at < d.e \
         LEFT JOIN leads l ON l.id = c.lead_id \
         WHERE {INBOUND} \
         GROUP BY d.i"
    ))?;
    let mut rows = calls.query(params![days])?;
    while let Some(r) = rows.next()? {
        let i: i64 = r.get(0)?;
        if let Some(day) = usize::try_from(i).ok().and_then(|i| stats.days.get_mut(i)) {
            day.calls = count(r.get(1)?);
            day.bridge = count(r.get(2)?);
            day.ivr = count(r.get(3)?);
            day.transfer = count(r.get(4)?);
            day.voicemail = count(r.get(5)?);
            day.french = count(r.get(6)?);
            day.english = count(r.get(7)?);
            day.after_hours = day.calls;
        }
    }
    // After hours: the day's calls less those inside an opening range.
    let mut inside = conn.prepare_cached(&format!(
        "WITH o AS MATERIALIZED (SELECT json_extract(value, '$[0]') AS i, \
                                        json_extract(value, '$[1]') AS s, \
                                        json_extract(value, '$[2]') AS e FROM json_each(?1)) \
         SELECT o.i, count(*) FROM o JOIN calls c ON c.created_at >= o.s AND c.created_at < o.e \
         WHERE {INBOUND} GROUP BY o.i"
    ))?;
    let mut rows = inside.query(params![open])?;
    while let Some(r) = rows.next()? {
        let i: i64 = r.get(0)?;
        if let Some(day) = usize::try_from(i).ok().and_then(|i| stats.days.get_mut(i)) {
            day.after_hours = day.after_hours.saturating_sub(count(r.get(1)?));
        }
    }

    let mut leads = conn.prepare_cached(&format!(
        "WITH d AS MATERIALIZED ({SPANS}) \
         SELECT d.i, count(*), count(CASE WHEN l.status = 'nouveau' THEN 1 END), \
                count(CASE WHEN l.status = 'en_cours' THEN 1 END), \
                count(CASE WHEN l.status = 'qualifie' THEN 1 END), \
                count(CASE WHEN l.status = 'abandonne' THEN 1 END), \
                count(CASE WHEN l.status = 'transfere' THEN 1 END), \
                count(CASE WHEN l.status = 'rappel' THEN 1 END), \
                count(CASE WHEN l.urgence = 1 THEN 1 END) \
         FROM leads l JOIN d ON l.created_at >= d.s AND l.created_at < d.e \
         GROUP BY d.i"
    ))?;
    let mut rows = leads.query(params![days])?;
    while let Some(r) = rows.next()? {
        let i: i64 = r.get(0)?;
        if let Some(day) = usize::try_from(i).ok().and_then(|i| stats.days.get_mut(i)) {
            day.leads = count(r.get(1)?);
            day.nouveau = count(r.get(2)?);
            day.en_cours = count(r.get(3)?);
            day.qualifie = count(r.get(4)?);
            day.abandonne = count(r.get(5)?);
            day.transfere = count(r.get(6)?);
            day.rappel = count(r.get(7)?);
            day.urgent = count(r.get(8)?);
        }
    }

    let mut stops = conn.prepare_cached(&format!(
        "SELECT {STOP_STEP} AS step, {STOP_HOW} AS how, count(*) FROM leads \
         WHERE created_at >= ?1 AND created_at < ?2 GROUP BY step, how"
    ))?;
    let rows = stops
        .query_map(params![from, to], |r| {
            Ok((
                usize::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                r.get::<_, String>(1)?,
                count(r.get(2)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    stats.funnel = funnel(&rows);

    let mut dials = conn.prepare_cached(&format!(
        "SELECT c.dial_status, count(*) FROM calls c \
         WHERE c.created_at >= ?1 AND c.created_at < ?2 AND c.dial_status IS NOT NULL \
           AND {INBOUND} GROUP BY c.dial_status"
    ))?;
    let rows = dials
        .query_map(params![from, to], |r| Ok((r.get(0)?, count(r.get(1)?))))?
        .collect::<Result<Vec<_>, _>>()?;
    stats.transfers = transfers(&rows);

    let mut follow = conn.prepare_cached(&format!(
        "WITH w AS MATERIALIZED ({SPANS}), \
         t AS (SELECT w.i, (julianday(l.suivi_first_at) - julianday(l.created_at)) * 86400.0 AS secs \
               FROM leads l JOIN w ON l.created_at >= w.s AND l.created_at < w.e \
               WHERE l.suivi_first_at IS NOT NULL), \
         r AS (SELECT i, secs, row_number() OVER (PARTITION BY i ORDER BY secs) AS n, \
                      count(*) OVER (PARTITION BY i) AS total FROM t) \
         SELECT i, max(total), \
                max(CASE WHEN n = (total + 1) / 2 THEN secs END), \
                max(CASE WHEN n = (9 * total + 9) / 10 THEN secs END) \
         FROM r GROUP BY i"
    ))?;
    let mut rows = follow.query(params![weeks])?;
    while let Some(r) = rows.next()? {
        let i: i64 = r.get(0)?;
        if let Some(week) = usize::try_from(i)
            .ok()
            .and_then(|i| stats.follow_up.get_mut(i))
        {
            let seconds = |v: Option<f64>| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                v.map(|s| s.max(0.0).round() as u64)
            };
            week.followed_up = count(r.get(1)?);
            week.median_seconds = seconds(r.get(2)?);
            week.p90_seconds = seconds(r.get(3)?);
        }
    }

    stats.overdue = count(
        conn.prepare_cached(
            "SELECT count(*) FROM leads WHERE created_at >= ?1 AND created_at < ?2 \
         AND created_at < ?3 AND suivi = 'nouveau'",
        )?
        .query_row(
            params![from, to, p["overdue_before"].as_str().unwrap_or_default()],
            |r| r.get(0),
        )?,
    );

    let mut alerts = conn.prepare_cached(
        "SELECT coalesce(delivery_status, status) AS s, count(*) FROM alerts \
         WHERE created_at >= ?1 AND created_at < ?2 GROUP BY s ORDER BY s",
    )?;
    stats.alerts = alerts
        .query_map(params![from, to], |r| {
            Ok(AlertCount {
                status: r.get(0)?,
                count: count(r.get(1)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;

    let mut placed = conn.prepare_cached(
        "SELECT coalesce(dial_status, ''), coalesce(ended_reason, ''), coalesce(status, ''), \
                count(*) FROM calls \
         WHERE created_at >= ?1 AND created_at < ?2 AND direction = 'outbound-callback' \
         GROUP BY 1, 2, 3",
    )?;
    let rows = placed
        .query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, count(r.get(3)?)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    stats.callbacks = callbacks(&rows);
    Ok(stats)
}

impl StatsStore for SqliteStore {
    async fn stats(&self, query: &StatsQuery) -> Result<Stats, StoreError> {
        let p = query.json()?;
        self.call(move |conn| sqlite_stats(conn, &p)).await
    }
}

impl StatsStore for SupabaseStore {
    async fn stats(&self, query: &StatsQuery) -> Result<Stats, StoreError> {
        let value = self
            .rpc_value("console_stats", &serde_json::json!({ "p": query.json()? }))
            .await?;
        // The answer holds counts only, no caller data: serde's message may be logged.
        let raw: RawStats = serde_json::from_value(value)
            .map_err(|e| StoreError::Corrupt(format!("rpc/console_stats answered: {e}")))?;
        let mut stats = raw.into_stats(query.days.len(), query.weeks.len());
        // Callbacks (migration `20261208020000_callback.sql`): their own function, so the
        // dashboard's main one stays as merged.
        let value = self
            .rpc_value(
                "console_callbacks",
                &serde_json::json!({ "p": query.json()? }),
            )
            .await?;
        let rows: Vec<(String, String, String, u64)> = serde_json::from_value(value)
            .map_err(|e| StoreError::Corrupt(format!("rpc/console_callbacks answered: {e}")))?;
        stats.callbacks = callbacks(&rows);
        Ok(stats)
    }
}

/// What `bp.console_stats` answers: the same grouped rows as the SQLite queries.
#[derive(Deserialize)]
struct RawStats {
    #[serde(default)]
    calls: Vec<RawIndexed<DayCounts>>,
    #[serde(default)]
    leads: Vec<RawIndexed<DayCounts>>,
    #[serde(default)]
    stops: Vec<(usize, String, u64)>,
    #[serde(default)]
    dials: Vec<(String, u64)>,
    #[serde(default)]
    follow_up: Vec<RawIndexed<RawWeek>>,
    overdue: u64,
    #[serde(default)]
    alerts: Vec<AlertCount>,
}

#[derive(Deserialize)]
struct RawIndexed<T> {
    i: usize,
    #[serde(flatten)]
    value: T,
}

#[derive(Deserialize)]
struct RawWeek {
    total: u64,
    median: Option<f64>,
    p90: Option<f64>,
}

impl RawStats {
    fn into_stats(self, n_days: usize, n_weeks: usize) -> Stats {
        let mut days = vec![DayCounts::default(); n_days];
        for row in self.calls {
            if let Some(day) = days.get_mut(row.i) {
                let c = row.value;
                day.calls = c.calls;
                day.bridge = c.bridge;
                day.ivr = c.ivr;
                day.transfer = c.transfer;
                day.voicemail = c.voicemail;
                day.french = c.french;
                day.english = c.english;
                day.after_hours = c.after_hours;
            }
        }
        for row in self.leads {
            if let Some(day) = days.get_mut(row.i) {
                let l = row.value;
                day.leads = l.leads;
                day.nouveau = l.nouveau;
                day.en_cours = l.en_cours;
                day.qualifie = l.qualifie;
                day.abandonne = l.abandonne;
                day.transfere = l.transfere;
                day.rappel = l.rappel;
                day.urgent = l.urgent;
            }
        }
        let mut follow_up = vec![FollowUpWeek::default(); n_weeks];
        for row in self.follow_up {
            if let Some(week) = follow_up.get_mut(row.i) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let seconds = |v: Option<f64>| v.map(|s| s.max(0.0).round() as u64);
                week.followed_up = row.value.total;
                week.median_seconds = seconds(row.value.median);
                week.p90_seconds = seconds(row.value.p90);
            }
        }
        Stats {
            days,
            funnel: funnel(&self.stops),
            transfers: transfers(&self.dials),
            follow_up,
            overdue: self.overdue,
            alerts: self.alerts,
            callbacks: Callbacks::default(),
        }
    }
}

impl StatsStore for OutboxStore {
    async fn stats(&self, query: &StatsQuery) -> Result<Stats, StoreError> {
        self.remote().stats(query).await
    }
}

delegate_trait! {
    StatsStore;
    fn stats(&self, query: &StatsQuery) -> Result<Stats, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_funnel_counts_who_answered_and_where_the_others_stopped() {
        let rows = vec![
            (6, "open".to_owned(), 3),
            (0, "hung_up".to_owned(), 2),
            (2, "asked_person".to_owned(), 1),
            (2, "hung_up".to_owned(), 4),
            (5, "open".to_owned(), 1),
        ];
        let f = funnel(&rows);
        let answered: Vec<u64> = f.iter().map(|s| s.answered).collect();
        assert_eq!(answered, [9, 9, 4, 4, 4, 3]);
        assert_eq!((f[0].hung_up, f[2].hung_up, f[2].asked_person), (2, 4, 1));
        assert_eq!(f[5].open, 1);
    }

    #[test]
    fn callbacks_are_counted_by_outcome() {
        let row = |d: &str, e: &str, s: &str, n| (d.to_owned(), e.to_owned(), s.to_owned(), n);
        let c = callbacks(&[
            row("completed", "", "completed", 3),
            row("busy", "", "completed", 1),
            row("no-answer", "", "completed", 2),
            row("canceled", "", "completed", 1),
            row("failed", "", "completed", 1),
            row("", "operator-timeout", "completed", 1),
            row("", "operator-declined", "completed", 1),
            row("", "", "completed", 1),
            row("", "", "no-answer", 2),
            row("", "", "ringing", 1),
        ]);
        assert_eq!(
            c,
            Callbacks {
                placed: 14,
                connected: 3,
                busy: 1,
                no_answer: 2,
                failed: 2,
                not_confirmed: 3,
                operator_unreached: 2,
                open: 1,
            }
        );
    }

    #[test]
    fn instants_compare_as_the_sqlite_columns_text() {
        let t = time::macros::datetime!(2026-12-07 00:00 -5);
        assert_eq!(stamp(t).unwrap(), "2026-12-07T05:00:00.000Z");
    }
}
