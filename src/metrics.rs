//! The catalogue of every metric the gateway exports, and the recorders that are not owned by one
//! module (call outcomes, qualification progress, store latency, process CPU and memory).
//!
//! Every metric is described here once: its name, kind, help text and labels. Labels take values
//! from small fixed sets (route templates, reasons, field names); none carries a phone number, a
//! CallSid or caller text. Counters and gauges with fixed label sets are registered at zero at
//! start-up so that alerts on `rate()` and absence work from the first scrape.

use std::time::{Duration, Instant};

use crate::domain::ConversationMode;
use crate::qualification::{Field, Lead, Outcome, OutcomeStatus};

/// What kind of Prometheus series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Label names and, for labels with a fixed set of values, those values (registered at zero).
    pub labels: &'static [(&'static str, &'static [&'static str])],
}

/// Every metric name, in one place: modules record through these, and the catalogue below
/// describes them. Nothing here imports the modules that record.
pub mod names {
    pub const HTTP_REQUESTS: &str = "myriam_http_requests_total";
    pub const HTTP_DURATION: &str = "myriam_http_request_duration_seconds";
    pub const BUILD_INFO: &str = "myriam_build_info";
    pub const CLIENT_IP_HEADER_MALFORMED: &str = "myriam_client_ip_header_malformed_total";
    pub const TWILIO_SIGNATURE_REJECTIONS: &str = "myriam_twilio_signature_rejections_total";
    pub const VAPI_WEBHOOKS: &str = "myriam_vapi_webhooks_total";
    pub const VAPI_AUTH_REJECTIONS: &str = "myriam_vapi_auth_rejections_total";
    pub const CALLS: &str = "myriam_calls_total";
    pub const QUALIFICATION_STEPS: &str = "myriam_qualification_steps_total";
    pub const VALIDATION_FAILURES: &str = "myriam_qualification_validation_failures_total";
    pub const BRIDGE_LIVE_CALLS: &str = "myriam_bridge_live_calls";
    pub const BRIDGE_FAILURES: &str = "myriam_bridge_failures_total";
    pub const MEDIA_STREAM_REFUSALS: &str = "myriam_media_stream_refusals_total";
    pub const MEDIA_SOCKET_FAULTS: &str = "myriam_media_socket_faults_total";
    pub const VAPI_CREATE_CALL_SECONDS: &str = "myriam_vapi_create_call_duration_seconds";
    pub const VAPI_CREATE_CALL_FAILURES: &str = "myriam_vapi_create_call_failures_total";
    pub const BRIDGE_FRAMES: &str = "myriam_bridge_frames_total";
    pub const BRIDGE_BYTES: &str = "myriam_bridge_bytes_total";
    pub const BRIDGE_RELAY_SECONDS: &str = "myriam_bridge_relay_seconds";
    pub const BRIDGE_CLEARS: &str = "myriam_bridge_clears_total";
    pub const OUTBOX_DEPTH: &str = "myriam_outbox_depth";
    pub const OUTBOX_OLDEST_AGE: &str = "myriam_outbox_oldest_age_seconds";
    pub const OUTBOX_ENQUEUED: &str = "myriam_outbox_enqueued_total";
    pub const OUTBOX_REPLAYS: &str = "myriam_outbox_replays_total";
    pub const OUTBOX_DEAD_LETTERS: &str = "myriam_outbox_dead_letters_total";
    pub const ERASED_WRITES_DROPPED: &str = "myriam_erased_writes_dropped_total";
    pub const REMOTE_ERASURES: &str = "myriam_remote_erasures_total";
    pub const REMOTE_ERASURES_PENDING: &str = "myriam_remote_erasures_pending";
    pub const REMOTE_ERASURES_DEAD: &str = "myriam_remote_erasures_dead";
    pub const LEAD_WRITE_CONFLICTS: &str = "myriam_lead_write_conflicts_total";
    pub const IVR_HOLDS: &str = "myriam_ivr_answers_held_total";
    pub const SUPABASE_REFUSING: &str = "myriam_supabase_refusing";
    pub const STORE_SECONDS: &str = "myriam_store_operation_duration_seconds";
    pub const ALERTS: &str = "myriam_alerts_total";
    pub const ALERT_QUEUE_DEPTH: &str = "myriam_alert_queue_depth";
    pub const ALERT_QUEUE_OLDEST_AGE: &str = "myriam_alert_queue_oldest_age_seconds";
    pub const TRANSFERS: &str = "myriam_transfers_total";
    pub const VOICEMAILS: &str = "myriam_voicemails_total";
    pub const HAND_OFFS: &str = "myriam_hand_offs_total";
    pub const CONSOLE_LOGINS: &str = "myriam_console_logins_total";
    pub const ACCOUNT_GUESSED: &str = "myriam_console_account_guessed_total";
    pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
    pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
    pub const PROCESS_FDS: &str = "process_open_fds";
    pub const PROCESS_START: &str = "process_start_time_seconds";
}

#[allow(clippy::wildcard_imports)] // the catalogue names every metric
use names::*;

const FIELDS: &[&str] = &[
    "nom_complet",
    "telephone",
    "adresse_complete",
    "type_service",
    "description",
    "urgence",
];
const STEPS: &[&str] = &[
    "nom_complet",
    "telephone",
    "adresse_complete",
    "type_service",
    "description",
    "urgence",
    "complete",
];
const DIRECTIONS: &[&str] = &["up", "down"];

/// Every metric, in the order `docs/OPERATIONS.md` lists them.
pub const CATALOGUE: &[MetricSpec] = &[
    MetricSpec {
        name: HTTP_REQUESTS,
        kind: Kind::Counter,
        help: "HTTP requests (Twilio and Vapi webhooks, health) answered, by route template, method and status code",
        labels: &[("route", &[]), ("method", &[]), ("status", &[])],
    },
    MetricSpec {
        name: HTTP_DURATION,
        kind: Kind::Histogram,
        help: "HTTP request latency in seconds, by route template and method",
        labels: &[("route", &[]), ("method", &[])],
    },
    MetricSpec {
        name: TWILIO_SIGNATURE_REJECTIONS,
        kind: Kind::Counter,
        help: "Twilio requests refused for their signature, by reason",
        labels: &[(
            "reason",
            &[
                "missing",
                "mismatch",
                "body_hash_mismatch",
                "no_body_hash",
                "no_token",
                "unsupported_media_type",
            ],
        )],
    },
    MetricSpec {
        name: VAPI_AUTH_REJECTIONS,
        kind: Kind::Counter,
        help: "Vapi webhooks refused for their credential, by reason",
        labels: &[("reason", &["missing", "invalid", "stale", "no_secret"])],
    },
    MetricSpec {
        name: VAPI_WEBHOOKS,
        kind: Kind::Counter,
        help: "Vapi server messages received, by message type (other: types the gateway only acknowledges)",
        labels: &[(
            "type",
            &[
                "tool-calls",
                "assistant-request",
                "status-update",
                "end-of-call-report",
                "other",
            ],
        )],
    },
    MetricSpec {
        name: CALLS,
        kind: Kind::Counter,
        help: "Calls ended, by conversation mode (bridge, ivr) and outcome (qualifie, abandonne, error)",
        labels: &[
            ("mode", &["bridge", "ivr"]),
            ("outcome", &["qualifie", "abandonne", "error"]),
        ],
    },
    MetricSpec {
        name: QUALIFICATION_STEPS,
        kind: Kind::Counter,
        help: "Qualification steps reached (the question a lead moved on to, or complete)",
        labels: &[("step", STEPS)],
    },
    MetricSpec {
        name: VALIDATION_FAILURES,
        kind: Kind::Counter,
        help: "Answers the qualification could not accept, by the field asked",
        labels: &[("field", FIELDS)],
    },
    MetricSpec {
        name: BRIDGE_LIVE_CALLS,
        kind: Kind::Gauge,
        help: "Calls bridged to Vapi right now",
        labels: &[],
    },
    MetricSpec {
        name: BRIDGE_FAILURES,
        kind: Kind::Counter,
        help: "Bridged calls handed to the IVR or ended abnormally, by reason",
        labels: &[(
            "reason",
            &[
                "capacity",
                "vapi_not_configured",
                "unknown_lead",
                "vapi_timeout",
                "vapi_unavailable",
                "vapi_concurrency_limit",
                "vapi_rejected",
                "vapi_outage",
                "vapi_bad_response",
                "vapi_untrusted_socket_url",
                "vapi_socket_failed",
                "vapi_lost",
            ],
        )],
    },
    MetricSpec {
        name: MEDIA_STREAM_REFUSALS,
        kind: Kind::Counter,
        help: "Media Streams refused before any call state was touched (no Vapi call, no row, no permit), by reason",
        labels: &[(
            "reason",
            &[
                "no_start",
                "missing_token",
                "token_malformed",
                "token_bad_signature",
                "token_expired",
                "call_mismatch",
                "wrong_account",
                "not_waiting",
                "already_used",
                "store_unavailable",
            ],
        )],
    },
    MetricSpec {
        name: MEDIA_SOCKET_FAULTS,
        kind: Kind::Counter,
        help: "WebSocket peers cut off for breaking a limit, by leg and fault",
        labels: &[
            ("leg", &["twilio", "vapi"]),
            ("fault", &["too_big", "protocol", "bad_data", "ping_flood"]),
        ],
    },
    MetricSpec {
        name: VAPI_CREATE_CALL_SECONDS,
        kind: Kind::Histogram,
        help: "Latency of Vapi call creation (POST /call) in seconds",
        labels: &[],
    },
    MetricSpec {
        name: VAPI_CREATE_CALL_FAILURES,
        kind: Kind::Counter,
        help: "Vapi call creations that failed, by reason",
        labels: &[(
            "reason",
            &[
                "vapi_timeout",
                "vapi_unavailable",
                "vapi_concurrency_limit",
                "vapi_rejected",
                "vapi_outage",
                "vapi_bad_response",
            ],
        )],
    },
    MetricSpec {
        name: BRIDGE_FRAMES,
        kind: Kind::Counter,
        help: "Audio frames relayed, by direction (up: caller to Vapi, down: Vapi to caller)",
        labels: &[("direction", DIRECTIONS)],
    },
    MetricSpec {
        name: BRIDGE_BYTES,
        kind: Kind::Counter,
        help: "Audio bytes relayed, by direction",
        labels: &[("direction", DIRECTIONS)],
    },
    MetricSpec {
        name: BRIDGE_RELAY_SECONDS,
        kind: Kind::Histogram,
        help: "Time a frame spends in the gateway (receipt to write), one frame in eight sampled, by direction",
        labels: &[("direction", DIRECTIONS)],
    },
    MetricSpec {
        name: BRIDGE_CLEARS,
        kind: Kind::Counter,
        help: "Twilio clear messages sent on barge-in",
        labels: &[],
    },
    MetricSpec {
        name: OUTBOX_DEPTH,
        kind: Kind::Gauge,
        help: "Writes waiting in the outbox for Supabase",
        labels: &[],
    },
    MetricSpec {
        name: OUTBOX_OLDEST_AGE,
        kind: Kind::Gauge,
        help: "Age in seconds of the oldest write waiting in the outbox (0 when empty)",
        labels: &[],
    },
    MetricSpec {
        name: OUTBOX_ENQUEUED,
        kind: Kind::Counter,
        help: "Writes queued in the outbox",
        labels: &[],
    },
    MetricSpec {
        name: OUTBOX_REPLAYS,
        kind: Kind::Counter,
        help: "Outbox writes replayed to Supabase",
        labels: &[],
    },
    MetricSpec {
        name: OUTBOX_DEAD_LETTERS,
        kind: Kind::Counter,
        help: "Outbox writes Supabase refused for good (moved to dead letters)",
        labels: &[],
    },
    MetricSpec {
        name: ERASED_WRITES_DROPPED,
        kind: Kind::Counter,
        help: "Late or replayed writes about a caller a Law 25 erasure removed, dropped instead of bringing the caller back",
        labels: &[],
    },
    MetricSpec {
        name: REMOTE_ERASURES,
        kind: Kind::Counter,
        help: "Deletions at Twilio and Vapi after an erasure, by service and result: done (deleted, or 404: already gone), retried (5xx, 429, timeout, call in progress), dead (refused for good)",
        labels: &[
            (
                "service",
                &[
                    "twilio_recording",
                    "twilio_call",
                    "twilio_message",
                    "vapi_call",
                ],
            ),
            ("result", &["done", "retried", "dead"]),
        ],
    },
    MetricSpec {
        name: REMOTE_ERASURES_PENDING,
        kind: Kind::Gauge,
        help: "Deletions at Twilio and Vapi still owed (waiting or being retried)",
        labels: &[],
    },
    MetricSpec {
        name: REMOTE_ERASURES_DEAD,
        kind: Kind::Gauge,
        help: "Deletions at Twilio and Vapi refused for good: to be done by hand (see the erasure's page)",
        labels: &[],
    },
    MetricSpec {
        name: ALERTS,
        kind: Kind::Counter,
        help: "SMS alerts to staff, by channel and result: sent (Twilio accepted it), found (an earlier send that had timed out had gone through), retried (429, 5xx, timeout), dead (refused for good)",
        labels: &[
            ("channel", &["sms"]),
            ("result", &["sent", "found", "retried", "dead"]),
        ],
    },
    MetricSpec {
        name: ALERT_QUEUE_DEPTH,
        kind: Kind::Gauge,
        help: "SMS alerts waiting to be sent (pending or claimed)",
        labels: &[],
    },
    MetricSpec {
        name: ALERT_QUEUE_OLDEST_AGE,
        kind: Kind::Gauge,
        help: "Age in seconds of the oldest SMS alert waiting to be sent (0 when none)",
        labels: &[],
    },
    MetricSpec {
        name: LEAD_WRITE_CONFLICTS,
        kind: Kind::Counter,
        help: "Lead saves that lost a race to another writer (another instance) and were re-applied on the fresh lead",
        labels: &[],
    },
    MetricSpec {
        name: IVR_HOLDS,
        kind: Kind::Counter,
        help: "IVR answers held (a pause, then sent again through the load balancer) because the instance they reached was behind on the call (Supabase unreachable, or another instance's writes not replayed yet)",
        labels: &[],
    },
    MetricSpec {
        name: SUPABASE_REFUSING,
        kind: Kind::Gauge,
        help: "1 while Supabase refuses this instance for good (401, 403, 404: a rotated key, a revoked grant, a dropped table); the instance is then unready",
        labels: &[],
    },
    MetricSpec {
        name: HAND_OFFS,
        kind: Kind::Counter,
        help: "Callers handed to people, by how they asked (speech, key 0, the assistant's tool) and where they went (transfer, voicemail)",
        labels: &[
            ("via", &["speech", "key", "assistant"]),
            ("to", &["transfer", "voicemail"]),
        ],
    },
    MetricSpec {
        name: TRANSFERS,
        kind: Kind::Counter,
        help: "Transfers to the office line, by outcome (answered, busy, no-answer, failed, canceled)",
        labels: &[(
            "outcome",
            &["answered", "busy", "no-answer", "failed", "canceled"],
        )],
    },
    MetricSpec {
        name: VOICEMAILS,
        kind: Kind::Counter,
        help: "Voicemail recordings reported by Twilio, by status (completed, absent = empty)",
        labels: &[("status", &["completed", "absent", "in-progress", "unknown"])],
    },
    MetricSpec {
        name: STORE_SECONDS,
        kind: Kind::Histogram,
        help: "Store operation latency in seconds, by operation and result",
        labels: &[("operation", &[]), ("result", &[])],
    },
    MetricSpec {
        name: BUILD_INFO,
        kind: Kind::Gauge,
        help: "Always 1; labels carry the version, the git revision and the environment",
        labels: &[("version", &[]), ("revision", &[]), ("environment", &[])],
    },
    MetricSpec {
        name: CLIENT_IP_HEADER_MALFORMED,
        kind: Kind::Counter,
        help: "Requests from a trusted proxy whose client address header was malformed (the proxy's address was used)",
        labels: &[("header", crate::client_addr::ClientIpHeader::NAMES)],
    },
    MetricSpec {
        name: PROCESS_CPU,
        kind: Kind::Gauge,
        help: "CPU time (user + system) used by the process, in seconds",
        labels: &[],
    },
    MetricSpec {
        name: PROCESS_RSS,
        kind: Kind::Gauge,
        help: "Resident memory of the process, in bytes",
        labels: &[],
    },
    MetricSpec {
        name: PROCESS_FDS,
        kind: Kind::Gauge,
        help: "Open file descriptors (sockets included)",
        labels: &[],
    },
    MetricSpec {
        name: CONSOLE_LOGINS,
        kind: Kind::Counter,
        help: "Console logins, by outcome (ok, failed, throttled: too many failures of this address or this e-mail from it, busy: every place to check a password taken)",
        labels: &[("outcome", &["ok", "failed", "throttled", "busy"])],
    },
    MetricSpec {
        name: ACCOUNT_GUESSED,
        kind: Kind::Counter,
        help: "Times an operator's e-mail reached the failed-login count of a guessing attack (from any address, within the throttling window)",
        labels: &[],
    },
    MetricSpec {
        name: PROCESS_START,
        kind: Kind::Gauge,
        help: "Start time of the process, seconds since the Unix epoch",
        labels: &[],
    },
];

/// Histograms appear in `/metrics` from their first sample; these two only get one on a bridged
/// call (`tests/bridge.rs` checks them after one, `tests/observability.rs` everything else after an
/// IVR call).
pub const BRIDGE_ONLY: &[&str] = &[VAPI_CREATE_CALL_SECONDS, BRIDGE_RELAY_SECONDS];

/// Describes every metric (HELP lines) and registers the fixed label sets at zero.
pub fn describe_and_register() {
    for spec in CATALOGUE {
        match spec.kind {
            Kind::Counter => metrics::describe_counter!(spec.name, spec.help),
            Kind::Gauge => metrics::describe_gauge!(spec.name, spec.help),
            Kind::Histogram => {
                metrics::describe_histogram!(spec.name, metrics::Unit::Seconds, spec.help);
            }
        }
        let fixed: Vec<&(&str, &[&str])> =
            spec.labels.iter().filter(|(_, v)| !v.is_empty()).collect();
        // Only series whose every label has a fixed set can be pre-registered.
        if fixed.len() != spec.labels.len() {
            continue;
        }
        for labels in cartesian(&fixed) {
            match spec.kind {
                Kind::Counter => metrics::counter!(spec.name, labels.clone()).increment(0),
                Kind::Gauge => metrics::gauge!(spec.name, labels.clone()).increment(0.0),
                Kind::Histogram => {}
            }
        }
    }
}

fn cartesian(labels: &[&(&'static str, &'static [&'static str])]) -> Vec<Vec<metrics::Label>> {
    let mut out: Vec<Vec<metrics::Label>> = vec![Vec::new()];
    for (name, values) in labels {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(metrics::Label::new(*name, *v));
                    next
                })
            })
            .collect();
    }
    out
}

/// How a finished call is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Qualifie,
    Abandonne,
    Error,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Qualifie => "qualifie",
            CallOutcome::Abandonne => "abandonne",
            CallOutcome::Error => "error",
        }
    }
}

/// A lead save lost a race and is re-applied on the fresh lead.
pub fn lead_write_conflict() {
    metrics::counter!(LEAD_WRITE_CONFLICTS).increment(1);
}

/// An IVR answer was held: this instance was behind on the call.
pub fn ivr_answer_held() {
    metrics::counter!(IVR_HOLDS).increment(1);
}

/// Whether Supabase refuses this instance for good right now (see [`names::SUPABASE_REFUSING`]).
pub fn supabase_refusing(refusing: bool) {
    metrics::gauge!(SUPABASE_REFUSING).set(if refusing { 1.0 } else { 0.0 });
}

/// Counts one ended call.
/// A caller handed to people: `via` speech, key or assistant; `to` transfer or voicemail.
pub fn hand_off(via: &'static str, to: &'static str) {
    metrics::counter!(HAND_OFFS, "via" => via, "to" => to).increment(1);
}

/// A transfer to the office line ended with `outcome`.
pub fn transfer_ended(outcome: &'static str) {
    metrics::counter!(TRANSFERS, "outcome" => outcome).increment(1);
}

/// Twilio reported a voicemail recording's status (bounded: unknown statuses count as `unknown`).
pub fn voicemail_recorded(status: &str) {
    let status = match status {
        "completed" => "completed",
        "absent" => "absent",
        "in-progress" => "in-progress",
        _ => "unknown",
    };
    metrics::counter!(VOICEMAILS, "status" => status).increment(1);
}

/// A console login ended with `outcome` (`ok`, `failed`, `throttled`, `busy`).
pub fn console_login(outcome: &'static str) {
    metrics::counter!(CONSOLE_LOGINS, "outcome" => outcome).increment(1);
}

/// An operator's account is being guessed at (the audit log has the entry).
pub fn account_guessed() {
    metrics::counter!(ACCOUNT_GUESSED).increment(1);
}

/// One SMS alert's send ended with `result` (`sent`, `found`, `retried`, `dead`).
/// A write about an erased caller was dropped.
pub fn erased_write_dropped() {
    metrics::counter!(ERASED_WRITES_DROPPED).increment(1);
}

/// One remote deletion's outcome.
pub fn remote_erasure(service: &'static str, result: &'static str) {
    metrics::counter!(REMOTE_ERASURES, "service" => service, "result" => result).increment(1);
}

/// Remote deletions still owed, and refused for good.
#[allow(clippy::cast_precision_loss)]
pub fn remote_erasure_backlog(pending: usize, dead: usize) {
    metrics::gauge!(REMOTE_ERASURES_PENDING).set(pending as f64);
    metrics::gauge!(REMOTE_ERASURES_DEAD).set(dead as f64);
}

pub fn alert(result: &'static str) {
    metrics::counter!(ALERTS, "channel" => "sms", "result" => result).increment(1);
}

/// The alert queue: how many wait and the age of the oldest.
#[allow(clippy::cast_precision_loss)]
pub fn alert_queue(depth: usize, oldest: std::time::Duration) {
    metrics::gauge!(ALERT_QUEUE_DEPTH).set(depth as f64);
    metrics::gauge!(ALERT_QUEUE_OLDEST_AGE).set(oldest.as_secs_f64());
}

pub fn call_ended(mode: ConversationMode, outcome: CallOutcome) {
    metrics::counter!(CALLS, "mode" => mode.as_str(), "outcome" => outcome.as_str()).increment(1);
}

/// What one answer did to the qualification, counted once the lead is saved (so a retried
/// request that failed to save is not counted twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The lead moved on to this step (`None`: complete).
    Reached(Option<Field>),
    /// The answer to this field was not accepted.
    Rejected(Field),
    /// Nothing to count (same step, or an error outcome).
    Nothing,
}

impl Progress {
    /// `asked` is the field the lead was at before the answer; `lead` is after it.
    pub fn of(asked: Option<Field>, lead: &Lead, outcome: &Outcome) -> Self {
        match outcome.status {
            OutcomeStatus::ValidationError => asked.map_or(Progress::Nothing, Progress::Rejected),
            OutcomeStatus::Continue | OutcomeStatus::Complete => {
                let reached = lead.current_field();
                if reached == asked {
                    Progress::Nothing
                } else {
                    Progress::Reached(reached)
                }
            }
            OutcomeStatus::Error | OutcomeStatus::HumanRequested => Progress::Nothing,
        }
    }

    pub fn record(self) {
        match self {
            Progress::Reached(step) => {
                let step = step.map_or("complete", Field::as_str);
                metrics::counter!(QUALIFICATION_STEPS, "step" => step).increment(1);
            }
            Progress::Rejected(field) => {
                metrics::counter!(VALIDATION_FAILURES, "field" => field.as_str()).increment(1);
            }
            Progress::Nothing => {}
        }
    }
}

/// Times one store operation.
pub fn store_operation(operation: &'static str, started: Instant, ok: bool) {
    metrics::histogram!(
        STORE_SECONDS,
        "operation" => operation,
        "result" => if ok { "ok" } else { "error" }
    )
    .record(started.elapsed().as_secs_f64());
}

/// Reads the process's CPU time, resident memory and open descriptors from `/proc` into gauges.
/// Called before each scrape; a no-op where `/proc` does not exist. (CPU seconds are fractional, so
/// `process_cpu_seconds_total` is exported as a gauge holding the running total.)
#[allow(clippy::cast_precision_loss)] // byte and descriptor counts far below 2^52
pub fn update_process_metrics() {
    let Some(usage) = ProcessUsage::read() else {
        return;
    };
    metrics::gauge!(PROCESS_CPU).set(usage.cpu.as_secs_f64());
    metrics::gauge!(PROCESS_RSS).set(usage.rss_bytes as f64);
    metrics::gauge!(PROCESS_FDS).set(usage.open_fds as f64);
    metrics::gauge!(PROCESS_START).set(usage.start_time_secs);
}

/// CPU, memory and descriptors of this process, from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    pub cpu: Duration,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub start_time_secs: f64,
}

/// Linux's `USER_HZ`: `/proc` reports CPU times in these ticks.
const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessUsage {
    #[allow(clippy::cast_precision_loss)]
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Field 3 is `state`, so field N is at index N - 3: utime 14, stime 15, starttime 22, rss 24.
        let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let cpu_ticks = ticks(14)? + ticks(15)?;
        let start_ticks = ticks(22)?;
        let rss_pages = ticks(24)?;
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let boot = now - uptime;
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        Some(Self {
            cpu: Duration::from_secs_f64(cpu_ticks as f64 / TICKS_PER_SECOND),
            rss_bytes: rss_pages * 4096,
            open_fds,
            start_time_secs: boot + start_ticks as f64 / TICKS_PER_SECOND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_usage_reads_proc() {
        let usage = ProcessUsage::read().expect("/proc/self on Linux");
        assert!(usage.rss_bytes > 1024 * 1024, "{usage:?}");
        assert!(usage.open_fds >= 3, "{usage:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(usage.start_time_secs <= now + 1.0 && usage.start_time_secs > now - 3600.0);
    }

    #[test]
    fn catalogue_names_are_unique_and_prometheus_shaped() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in CATALOGUE {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
            assert!(
                spec.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                spec.name
            );
            if spec.kind == Kind::Histogram {
                assert!(
                    spec.name.ends_with("_seconds"),
                    "{}: histograms are in seconds",
                    spec.name
                );
            }
        }
    }
}
