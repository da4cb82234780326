//! The embedded store: one SQLite file (`DATABASE_PATH`, default `data/myriam.db`) in WAL mode with
//! `synchronous=FULL`, so a write acknowledged is on disk even if the process is killed.
//!
//! The connection lives on a dedicated thread; async callers send it closures and await the answer,
//! so no blocking call ever runs on the async runtime's worker threads. The same file holds the
//! Supabase outbox tables.
//!
//! **Group commit.** Jobs that queue up while the thread is busy (an `fsync` in flight) run together
//! in one transaction and share one commit, so a burst of calls costs one `fsync` per batch rather
//! than one per write. Nobody is answered before the commit that holds their write: a batch whose
//! commit fails, or whose transaction SQLite rolls back on its own, answers its jobs with the error. A job that needs its writes to be atomic
//! uses a savepoint (`Connection::savepoint`), which nests inside the batch; a job that fails
//! rolls back its own savepoint and leaves the others' writes alone, as a failed statement does.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use rusqlite::{Connection, OptionalExtension, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

use super::rows::{CallRecord, CallUpdate, MAX_PAGE, Store, StoreError};
use super::rows::{LeadRow, Saved};
use crate::domain::{CallSid, ConversationMode, LeadId, LeadStatus};
use crate::qualification::Lead;

/// Work for the SQLite thread. It runs, and returns how to answer its caller once the outcome of
/// the commit that holds its writes is known.
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;
/// Answers a job's caller: with the job's result when its commit succeeded, else with the commit's
/// error.
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Most jobs one commit holds: a bound on how long the first of them waits for its answer.
pub const GROUP_COMMIT_MAX: usize = 64;

/// Schema changes, applied in order; `schema_version` records how many ran. Never edit one that has
/// shipped: append.
const MIGRATIONS: &[&str] = &[
    // 1: leads, calls, processed events, the outbox and its dead letters.
    r"
    CREATE TABLE leads (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        nom_complet TEXT,
        telephone TEXT,
        telephone_raw TEXT,
        adresse_complete TEXT,
        type_service TEXT,
        description TEXT,
        urgence INTEGER NOT NULL DEFAULT 0 CHECK (urgence IN (0, 1)),
        status TEXT NOT NULL DEFAULT 'nouveau'
            CHECK (status IN ('nouveau', 'en_cours', 'qualifie', 'abandonne')),
        language TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
        offered_phone TEXT,
        attempts TEXT NOT NULL DEFAULT '{}',
        conversation TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX leads_newest ON leads (created_at DESC, seq DESC);
    CREATE TABLE calls (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        lead_id TEXT REFERENCES leads (id) ON DELETE SET NULL,
        call_sid TEXT NOT NULL UNIQUE,
        vapi_call_id TEXT,
        from_number TEXT,
        to_number TEXT,
        direction TEXT,
        mode TEXT CHECK (mode IN ('bridge', 'ivr')),
        mode_reason TEXT,
        status TEXT,
        duration INTEGER CHECK (duration >= 0),
        recording_url TEXT,
        transcript TEXT,
        ended_reason TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX calls_lead ON calls (lead_id);
    CREATE INDEX calls_vapi ON calls (vapi_call_id) WHERE vapi_call_id IS NOT NULL;
    CREATE TABLE processed_events (
        key TEXT PRIMARY KEY,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        entity TEXT NOT NULL,
        op TEXT NOT NULL,
        enqueued_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX outbox_entity ON outbox (entity, seq);
    CREATE TABLE dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_seq INTEGER,
        entity TEXT NOT NULL,
        op TEXT NOT NULL,
        enqueued_at TEXT NOT NULL,
        failed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        attempts INTEGER NOT NULL,
        error TEXT NOT NULL
    );
    ",
    // 2: reaching a human — lead statuses transfere and rappel (a CHECK cannot be altered in
    // SQLite: the table is rebuilt, foreign keys off, see `migrate`), the transfer and voicemail
    // columns of calls, and the SMS alerts.
    r"
    CREATE TABLE leads_new (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        nom_complet TEXT,
        telephone TEXT,
        telephone_raw TEXT,
        adresse_complete TEXT,
        type_service TEXT,
        description TEXT,
        urgence INTEGER NOT NULL DEFAULT 0 CHECK (urgence IN (0, 1)),
        status TEXT NOT NULL DEFAULT 'nouveau'
            CHECK (status IN ('nouveau', 'en_cours', 'qualifie', 'abandonne', 'transfere', 'rappel')),
        language TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
        offered_phone TEXT,
        attempts TEXT NOT NULL DEFAULT '{}',
        conversation TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    INSERT INTO leads_new SELECT * FROM leads;
    DROP TABLE leads;
    ALTER TABLE leads_new RENAME TO leads;
    CREATE INDEX leads_newest ON leads (created_at DESC, seq DESC);
    ALTER TABLE calls ADD COLUMN dial_status TEXT
        CHECK (dial_status IN ('answered', 'busy', 'no-answer', 'failed', 'canceled'));
    ALTER TABLE calls ADD COLUMN dial_duration INTEGER CHECK (dial_duration >= 0);
    ALTER TABLE calls ADD COLUMN recording_sid TEXT;
    ALTER TABLE calls ADD COLUMN recording_duration INTEGER CHECK (recording_duration >= 0);
    ALTER TABLE calls ADD COLUMN recording_status TEXT;
    CREATE TABLE alerts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        lead_id TEXT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
        event TEXT NOT NULL CHECK (event IN ('qualified', 'voicemail')),
        channel TEXT NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms')),
        recipient TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'claimed', 'sent', 'dead')),
        message_sid TEXT UNIQUE,
        delivery_status TEXT,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        lease_until TEXT,
        error_code INTEGER,
        last_error TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        UNIQUE (lead_id, event, recipient)
    );
    CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE status IN ('pending', 'claimed');
    ",
    // 3: several instances — versioned rows (every lead save is conditional on the version it
    // read), lead statuses that only move forward (`LeadStatus::can_become`), and the probe row
    // readiness rewrites to prove the file takes durable writes.
    r"
    ALTER TABLE leads ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
    ALTER TABLE calls ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
    CREATE TRIGGER leads_status_forward BEFORE UPDATE OF status ON leads
    WHEN NOT (
        NEW.status = OLD.status
        OR (CASE NEW.status WHEN 'nouveau' THEN 0 WHEN 'en_cours' THEN 1 ELSE 2 END)
            > (CASE OLD.status WHEN 'nouveau' THEN 0 WHEN 'en_cours' THEN 1 ELSE 2 END)
        OR (OLD.status = 'transfere' AND NEW.status = 'rappel')
        OR (OLD.status = 'abandonne' AND NEW.status IN ('transfere', 'rappel'))
    )
    BEGIN
        SELECT RAISE(ABORT, 'lead status cannot move backwards');
    END;
    CREATE TABLE readiness_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at TEXT NOT NULL
    );
    ",
    // 4: the operators' console (issue 14): operators, their sessions and API tokens, login
    // failures, the audit log; the staff's follow-up of a lead (`suivi`, separate from the
    // machine's `status`, with a version refusing stale edits); indexes for the list and erasure.
    r"
    ALTER TABLE leads ADD COLUMN suivi TEXT NOT NULL DEFAULT 'nouveau'
        CHECK (suivi IN ('nouveau', 'contacte', 'planifie', 'termine', 'perdu'));
    ALTER TABLE leads ADD COLUMN suivi_note TEXT;
    ALTER TABLE leads ADD COLUMN suivi_version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE leads ADD COLUMN suivi_by TEXT;
    ALTER TABLE leads ADD COLUMN suivi_updated_at TEXT;
    CREATE INDEX leads_created_id ON leads (created_at DESC, id DESC);
    -- The console's search: a trigram full-text index (substrings of 3+ characters, any case,
    -- accents ignored) of names, addresses and numbers, kept in step with `leads` by triggers.
    CREATE VIRTUAL TABLE leads_text USING fts5(nom_complet, adresse_complete, telephone,
        content = 'leads', content_rowid = 'seq', tokenize = 'trigram remove_diacritics 1');
    CREATE TRIGGER leads_text_insert AFTER INSERT ON leads BEGIN
        INSERT INTO leads_text (rowid, nom_complet, adresse_complete, telephone)
        VALUES (new.seq, new.nom_complet, new.adresse_complete, new.telephone);
    END;
    CREATE TRIGGER leads_text_delete AFTER DELETE ON leads BEGIN
        INSERT INTO leads_text (leads_text, rowid, nom_complet, adresse_complete, telephone)
        VALUES ('delete', old.seq, old.nom_complet, old.adresse_complete, old.telephone);
    END;
    CREATE TRIGGER leads_text_update AFTER UPDATE OF nom_complet, adresse_complete, telephone
    ON leads BEGIN
        INSERT INTO leads_text (leads_text, rowid, nom_complet, adresse_complete, telephone)
        VALUES ('delete', old.seq, old.nom_complet, old.adresse_complete, old.telephone);
        INSERT INTO leads_text (rowid, nom_complet, adresse_complete, telephone)
        VALUES (new.seq, new.nom_complet, new.adresse_complete, new.telephone);
    END;
    INSERT INTO leads_text (leads_text) VALUES ('rebuild');
    CREATE INDEX leads_telephone ON leads (telephone);
    CREATE INDEX leads_offered_phone ON leads (offered_phone);
    CREATE INDEX calls_from_number ON calls (from_number);
    CREATE TABLE operators (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE operator_sessions (
        id_hash TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        last_seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        revoked_at TEXT
    );
    CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        revoked_at TEXT
    );
    CREATE TABLE login_failures (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX login_failures_key_at ON login_failures (key, at);
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
    );
    ",
    // 5: the last answer may still qualify a lead the call's end abandoned (Twilio's `completed`
    // can be processed before the caller's last answer): abandonne → qualifie.
    r"
    DROP TRIGGER leads_status_forward;
    CREATE TRIGGER leads_status_forward BEFORE UPDATE OF status ON leads
    WHEN NOT (
        NEW.status = OLD.status
        OR (CASE NEW.status WHEN 'nouveau' THEN 0 WHEN 'en_cours' THEN 1 ELSE 2 END)
            > (CASE OLD.status WHEN 'nouveau' THEN 0 WHEN 'en_cours' THEN 1 ELSE 2 END)
        OR (OLD.status = 'transfere' AND NEW.status = 'rappel')
        OR (OLD.status = 'abandonne' AND NEW.status IN ('transfere', 'rappel', 'qualifie'))
    )
    BEGIN
        SELECT RAISE(ABORT, 'lead status cannot move backwards');
    END;
    ",
    // 6: the audit log records the client's address and aggregates repeated entries (a count);
    // login failures are pruned by age and throttled attempts are looked up by key; API tokens
    // belong to an operator, may expire and record their last use; live updates find changed
    // leads by `updated_at`.
    r"
    ALTER TABLE audit_log ADD COLUMN client TEXT;
    ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX audit_log_action_target ON audit_log (action, target, seq);
    CREATE INDEX login_failures_at ON login_failures (at);
    ALTER TABLE api_tokens ADD COLUMN operator_id TEXT REFERENCES operators (id) ON DELETE CASCADE;
    ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
    ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;
    CREATE INDEX leads_updated_at ON leads (updated_at);
    ",
    // 7: the dashboard: when staff first followed a lead up (set once, by a trigger, whoever
    // writes `suivi`), and calls by time.
    r"
    ALTER TABLE leads ADD COLUMN suivi_first_at TEXT;
    UPDATE leads SET suivi_first_at = suivi_updated_at WHERE suivi <> 'nouveau';
    CREATE TRIGGER leads_suivi_first AFTER UPDATE OF suivi ON leads
    WHEN OLD.suivi_first_at IS NULL AND NEW.suivi <> 'nouveau'
    BEGIN
        UPDATE leads SET suivi_first_at = coalesce(NEW.suivi_updated_at,
            strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) WHERE seq = NEW.seq;
    END;
    CREATE INDEX calls_created ON calls (created_at);
    CREATE INDEX alerts_created ON alerts (created_at);
    -- Covers the dashboard's per-day statuses and the leads waiting for a follow-up: the rows
    -- (wide, the conversation is inline) are not read.
    CREATE INDEX leads_created_stats ON leads (created_at, status, urgence, suivi);
    ",
    // 8: a bridged call's Vapi recording, summary, structured data and transcript turns, apart
    // from the voicemail. A URL that is not a Twilio recording (`…/Recordings/RE…`) in the
    // voicemail column was Vapi's: it moves to its own column.
    r"
    ALTER TABLE calls ADD COLUMN vapi_recording_url TEXT;
    ALTER TABLE calls ADD COLUMN vapi_summary TEXT;
    ALTER TABLE calls ADD COLUMN vapi_structured_data TEXT;
    ALTER TABLE calls ADD COLUMN vapi_turns TEXT;
    UPDATE calls SET vapi_recording_url = recording_url, recording_url = NULL
    WHERE recording_url IS NOT NULL AND recording_url NOT LIKE '%/Recordings/RE%';
    ",
    // 9: callbacks from the console
    // (issue 27 §2) — an operator's own phone, where a callback rings first; a call's operator
    // (the callback rows are `direction = 'outbound-callback'`), and an index for the
    // per-operator rate limit.
    r"
    ALTER TABLE operators ADD COLUMN phone TEXT CHECK (phone IS NULL OR phone GLOB '+1[2-9][0-9][0-9][2-9][0-9][0-9][0-9][0-9][0-9][0-9]');
    ALTER TABLE calls ADD COLUMN operator TEXT;
    CREATE INDEX calls_operator ON calls (operator, created_at) WHERE operator IS NOT NULL;
    ",
    // 10: the caller's confirmation SMS (issue 27 §3) — alerts of event
    // `confirmation`, to the caller's own number (a CHECK cannot be altered in SQLite: the table
    // is rebuilt, foreign keys off, see `migrate`).
    r"
    CREATE TABLE alerts_new (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        lead_id TEXT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
        event TEXT NOT NULL CHECK (event IN ('qualified', 'voicemail', 'confirmation')),
        channel TEXT NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms')),
        recipient TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'claimed', 'sent', 'dead')),
        message_sid TEXT UNIQUE,
        delivery_status TEXT,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        lease_until TEXT,
        error_code INTEGER,
        last_error TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        UNIQUE (lead_id, event, recipient)
    );
    INSERT INTO alerts_new SELECT * FROM alerts;
    DROP TABLE alerts;
    ALTER TABLE alerts_new RENAME TO alerts;
    CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE status IN ('pending', 'claimed');
    CREATE INDEX alerts_created ON alerts (created_at);
    ",
    // 11: erasure that erases (issue 26). `erased`: what an erasure removed, so that no late or
    // replayed write brings it back — `lead:<uuid>` (a lead id, not personal data), and
    // `number:<sha256>` / `call:<sha256>` (SHA-256 of the E.164 number or the CallSid, hex). A lead
    // whose id was erased is never inserted again. `remote_erasures`: the deletions owed at Twilio
    // and Vapi, created in the erasure's transaction and claimed with a lease like the alerts.
    r"
    CREATE TABLE erased (
        key TEXT PRIMARY KEY,
        erased_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TRIGGER leads_not_erased BEFORE INSERT ON leads
    WHEN EXISTS (SELECT 1 FROM erased WHERE key = 'lead:' || NEW.id)
    BEGIN
        SELECT RAISE(ABORT, 'myriam_erased: this lead was erased');
    END;
    CREATE TABLE remote_erasures (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        erasure_id TEXT NOT NULL,
        service TEXT NOT NULL
            CHECK (service IN ('twilio_recording', 'twilio_call', 'twilio_message', 'vapi_call')),
        remote_id TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'claimed', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        lease_until TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        UNIQUE (erasure_id, service, remote_id)
    );
    CREATE INDEX remote_erasures_due ON remote_erasures (next_attempt_at)
        WHERE status IN ('pending', 'claimed');
    CREATE INDEX remote_erasures_erasure ON remote_erasures (erasure_id);
    ",
];

/// A handle to the SQLite thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: Arc<PathBuf>,
    /// Operations run so far on this database (every handle's): what a test counts.
    operations: Arc<std::sync::atomic::AtomicU64>,
}

/// How many prepared statements the store's connection keeps: every statement of the store's
/// paths, including the shapes `upsert_call_sql` builds from the columns an update sets.
const STATEMENT_CACHE: usize = 128;

/// Runs SQL through the connection's cache of prepared statements (`prepare_cached`): a statement
/// the thread has run before is not parsed and planned again. Parsing took as much CPU as
/// executing on the webhooks' writes (a `perf` profile of the bridge benchmark's set-up burst:
/// `sqlite3_prepare_v3` at 15 % of the gateway's CPU).
pub(crate) trait CachedStatements {
    /// `Connection::execute` with a cached statement.
    fn execute_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
    /// `Connection::query_row` with a cached statement.
    fn query_row_cached<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Local(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted content is overwritten with zeros, in the file and in the WAL's new pages: an
    // erased caller's data does not linger in free pages (Law 25 erasure).
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    // A migration that rebuilds a table (SQLite cannot alter a CHECK) must not fire the
    // `ON DELETE` actions of the rows it moves: foreign keys are off while migrations run (the
    // pragma is a no-op inside a transaction) and checked before the commit.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = run_migrations(conn);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

fn run_migrations(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let current: usize = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|v| usize::try_from(v).unwrap_or(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Local(format!(
            "database schema version {current} is newer than this gateway ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i64::try_from(i + 1).unwrap_or(i64::MAX)],
        )?;
    }
    let broken: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    if broken > 0 {
        return Err(StoreError::Local(format!(
            "migration left {broken} row(s) whose foreign key points nowhere"
        )));
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when needed) the database at `path` and starts its thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_connection(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite".to_owned())
            .spawn(move || {
                // Ends when every handle is dropped.
                let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX);
                while let Ok(job) = rx.recv() {
                    batch.push(job);
                    while batch.len() < GROUP_COMMIT_MAX {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    run_batch(&mut conn, &mut batch);
                }
            })
            .map_err(|e| StoreError::Local(format!("cannot start the SQLite thread: {e}")))?;
        Ok(Self {
            jobs: tx,
            path: Arc::new(path.to_owned()),
            operations: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Operations (one query or one transaction each) this store has run since it was opened.
    pub fn operations(&self) -> u64 {
        self.operations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `abandonne` unless final, for the lead of the call `sid`, in one statement.
    pub async fn abandon_call_lead(&self, sid: &CallSid) -> Result<(), StoreError> {
        let sid = sid.clone();
        self.call(move |conn| abandon_call_lead_sql(conn, &sid))
            .await
    }

    /// Runs `f` on the SQLite thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.operations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.jobs
            .send(Box::new(move |conn| {
                let result = f(conn);
                Box::new(move |committed: Result<(), &StoreError>| {
                    let _ = tx.send(committed.map_err(Clone::clone).and(result));
                })
            }))
            .map_err(|_| StoreError::Local("the SQLite thread has stopped".to_owned()))?;
        rx.await
            .map_err(|_| StoreError::Local("the SQLite thread dropped a request".to_owned()))?
    }
}

/// Runs `batch` (emptied) and answers every job once its writes are committed.
///
/// One job runs on its own, as it would without batching (its statements commit as they run, or
/// with its savepoint). Several run inside one `BEGIN IMMEDIATE` … `COMMIT`; if the transaction
/// cannot begin (another process holds the write lock past the busy timeout, a read-only file) they
/// run one by one instead, each meeting that condition itself.
fn run_batch(conn: &mut Connection, batch: &mut Vec<Job>) {
    if batch.len() == 1 || conn.execute_cached("BEGIN IMMEDIATE", []).is_err() {
        for job in batch.drain(..) {
            job(conn)(Ok(()));
        }
        return;
    }
    let mut jobs = batch.drain(..);
    let mut replies: Vec<Reply> = Vec::with_capacity(jobs.len());
    for job in jobs.by_ref() {
        replies.push(job(conn));
        if conn.is_autocommit() {
            // SQLite rolled the batch's transaction back itself (a full disk, an I/O error): the
            // jobs so far are undone, and the rest run one by one rather than in autocommit
            // mode inside what was meant to be a batch.
            let error = StoreError::Local("the batch's transaction was rolled back".to_owned());
            tracing::error!(%error, jobs = replies.len(), "the SQLite batch was rolled back; its writes are refused");
            for reply in replies {
                reply(Err(&error));
            }
            for job in jobs {
                job(conn)(Ok(()));
            }
            return;
        }
    }
    let committed = conn
        .execute_cached("COMMIT", [])
        .map(drop)
        .map_err(StoreError::from);
    if let Err(error) = &committed {
        tracing::error!(%error, jobs = replies.len(), "the SQLite commit of a batch failed; every write in it is refused");
        // Whatever COMMIT left open is undone; nothing in the batch was answered as written.
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies {
        reply(committed.as_ref().copied());
    }
}

pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| StoreError::Corrupt("timestamp".to_owned()))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Local(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, column: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt(format!("{column} is not valid JSON")))
}

pub(super) const LEAD_COLUMNS: &str = "id, nom_complet, telephone, telephone_raw, adresse_complete, \
    type_service, description, urgence, status, language, offered_phone, attempts, conversation, \
    created_at, updated_at, version";
/// How many columns [`LEAD_COLUMNS`] selects: a query that selects more after them reads them from
/// this index on.
pub(super) const LEAD_COLUMN_COUNT: usize = 16;

pub(super) fn lead_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Lead, StoreError>> {
    let id: String = row.get(0)?;
    let attempts: String = row.get(11)?;
    let conversation: String = row.get(12)?;
    let created: String = row.get(13)?;
    let updated: String = row.get(14)?;
    let version: i64 = row.get(15)?;
    let build = || -> Result<Lead, StoreError> {
        Lead::try_from(LeadRow {
            id: LeadId::try_from(id.as_str())
                .map_err(|_| StoreError::Corrupt("leads.id".into()))?,
            nom_complet: row.get(1)?,
            telephone: row.get(2)?,
            telephone_raw: row.get(3)?,
            adresse_complete: row.get(4)?,
            type_service: row.get(5)?,
            description: row.get(6)?,
            urgence: row.get(7)?,
            status: row.get(8)?,
            language: row.get(9)?,
            offered_phone: row.get(10)?,
            attempts: from_json(&attempts, "leads.attempts")?,
            conversation: from_json(&conversation, "leads.conversation")?,
            version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt("leads.version".into()))?,
            created_at: Some(parse_time(&created)?),
            updated_at: Some(parse_time(&updated)?),
        })
    };
    Ok(build())
}

/// A nullable JSON column.
fn from_json_column<T: serde::de::DeserializeOwned>(
    value: Option<String>,
    column: &str,
) -> Result<Option<T>, StoreError> {
    value
        .map(|j| serde_json::from_str(&j).map_err(|_| StoreError::Corrupt(column.to_owned())))
        .transpose()
}

pub(super) const CALL_COLUMNS: &str = "id, call_sid, lead_id, vapi_call_id, from_number, to_number, \
    direction, mode, mode_reason, status, duration, recording_url, transcript, ended_reason, \
    created_at, updated_at, dial_status, dial_duration, recording_sid, recording_duration, \
    recording_status, vapi_recording_url, vapi_summary, vapi_structured_data, vapi_turns, operator";

pub(super) fn call_from_row(row: &Row<'_>) -> rusqlite::Result<Result<CallRecord, StoreError>> {
    let id: String = row.get(0)?;
    let sid: String = row.get(1)?;
    let lead: Option<String> = row.get(2)?;
    let mode: Option<String> = row.get(7)?;
    let duration: Option<i64> = row.get(10)?;
    let created: String = row.get(14)?;
    let updated: String = row.get(15)?;
    let build = || -> Result<CallRecord, StoreError> {
        let corrupt = |c: &str| StoreError::Corrupt(format!("calls.{c}"));
        let mut fields =
            CallUpdate::new(CallSid::try_from(sid.as_str()).map_err(|_| corrupt("call_sid"))?);
        fields.lead_id = lead
            .map(|l| LeadId::try_from(l.as_str()).map_err(|_| corrupt("lead_id")))
            .transpose()?;
        fields.vapi_call_id = row.get(3)?;
        fields.from_number = row.get(4)?;
        fields.to_number = row.get(5)?;
        fields.direction = row.get(6)?;
        fields.mode = mode
            .map(|m| ConversationMode::from_str_opt(&m).ok_or_else(|| corrupt("mode")))
            .transpose()?;
        fields.mode_reason = row.get(8)?;
        fields.status = row.get(9)?;
        fields.duration = duration
            .map(|d| u32::try_from(d).map_err(|_| corrupt("duration")))
            .transpose()?;
        fields.recording_url = row.get(11)?;
        fields.transcript = row.get(12)?;
        fields.ended_reason = row.get(13)?;
        fields.dial_status = row.get(16)?;
        let seconds = |v: Option<i64>, column: &str| {
            v.map(|d| u32::try_from(d).map_err(|_| corrupt(column)))
                .transpose()
        };
        fields.dial_duration = seconds(row.get(17)?, "dial_duration")?;
        fields.recording_sid = row.get(18)?;
        fields.recording_duration = seconds(row.get(19)?, "recording_duration")?;
        fields.recording_status = row.get(20)?;
        fields.vapi_recording_url = row.get(21)?;
        fields.vapi_summary = row.get(22)?;
        fields.vapi_structured_data = from_json_column(row.get(23)?, "calls.vapi_structured_data")?;
        fields.vapi_turns = from_json_column(row.get(24)?, "calls.vapi_turns")?;
        fields.operator = row.get(25)?;
        Ok(CallRecord {
            id: Some(uuid::Uuid::parse_str(&id).map_err(|_| corrupt("id"))?),
            fields,
            created_at: Some(parse_time(&created)?),
            updated_at: Some(parse_time(&updated)?),
        })
    };
    Ok(build())
}

/// The values of a lead row, in `LEAD_WRITE_COLUMNS` order (`?1` … `?13`).
fn lead_values(row: &LeadRow) -> Result<[Box<dyn rusqlite::ToSql>; 13], StoreError> {
    Ok([
        Box::new(row.id.to_string()),
        Box::new(row.nom_complet.clone()),
        Box::new(row.telephone.clone()),
        Box::new(row.telephone_raw.clone()),
        Box::new(row.adresse_complete.clone()),
        Box::new(row.type_service.clone()),
        Box::new(row.description.clone()),
        Box::new(row.urgence),
        Box::new(row.status.clone()),
        Box::new(row.language.clone()),
        Box::new(row.offered_phone.clone()),
        Box::new(json(&row.attempts)?),
        Box::new(json(&row.conversation)?),
    ])
}

const LEAD_WRITE_COLUMNS: &str = "id, nom_complet, telephone, telephone_raw, adresse_complete, \
    type_service, description, urgence, status, language, offered_phone, attempts, conversation";

const LEAD_SET: &str = "nom_complet = ?2, telephone = ?3, telephone_raw = ?4, \
    adresse_complete = ?5, type_service = ?6, description = ?7, urgence = ?8, status = ?9, \
    language = ?10, offered_phone = ?11, attempts = ?12, conversation = ?13, \
    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Saves a lead inside an open connection, conditionally: a row based on version 0 is inserted
/// only if the lead does not exist; otherwise the update applies only where the stored version is
/// still `row.version`, and makes it one more.
pub(super) fn save_lead_sql(conn: &Connection, row: &LeadRow) -> Result<Saved, StoreError> {
    let values = lead_values(row)?;
    let changed = if row.version == 0 {
        conn.execute_cached(
            &format!(
                "INSERT INTO leads ({LEAD_WRITE_COLUMNS}, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            rusqlite::params_from_iter(values.iter()),
        )?
    } else {
        let mut params: Vec<Box<dyn rusqlite::ToSql>> = values.into_iter().collect();
        params.push(Box::new(i64::from(row.version)));
        conn.execute_cached(
            &format!(
                "UPDATE leads SET {LEAD_SET}, version = version + 1 WHERE id = ?1 AND version = ?14"
            ),
            rusqlite::params_from_iter(params.iter()),
        )?
    };
    Ok(if changed == 1 {
        Saved::Applied
    } else {
        Saved::Stale
    })
}

/// Copies a lead Supabase holds (or will hold) into the local mirror, at `version`, unless the
/// mirror already has a newer one. The mirror is a cache for reads while Supabase is unreachable,
/// never the truth.
pub(super) fn mirror_lead_sql(
    conn: &Connection,
    row: &LeadRow,
    version: u32,
) -> Result<(), StoreError> {
    let mut params: Vec<Box<dyn rusqlite::ToSql>> = lead_values(row)?.into_iter().collect();
    params.push(Box::new(i64::from(version.max(1))));
    conn.execute_cached(
        &format!(
            "INSERT INTO leads ({LEAD_WRITE_COLUMNS}, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (id) DO UPDATE SET {LEAD_SET}, version = excluded.version \
             WHERE excluded.version > leads.version"
        ),
        rusqlite::params_from_iter(params.iter()),
    )?;
    Ok(())
}

/// `abandonne` unless final, in one statement; the status afterwards (`None`: no such lead).
fn abandon_lead_sql(conn: &Connection, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
    let id = id.to_string();
    conn.execute_cached(
        "UPDATE leads SET status = 'abandonne', version = version + 1, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
         WHERE id = ?1 AND status IN ('nouveau', 'en_cours')",
        [&id],
    )?;
    let status: Option<String> = conn
        .query_row_cached("SELECT status FROM leads WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .optional()?;
    status
        .map(|s| {
            LeadStatus::try_from(s.as_str())
                .map_err(|_| StoreError::Corrupt("leads.status".to_owned()))
        })
        .transpose()
}

/// `abandonne` unless final, for the lead of the call `sid` (none: nothing changes).
fn abandon_call_lead_sql(conn: &Connection, sid: &CallSid) -> Result<(), StoreError> {
    conn.execute_cached(
        "UPDATE leads SET status = 'abandonne', version = version + 1, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
         WHERE id = (SELECT lead_id FROM calls WHERE call_sid = ?1) \
           AND status IN ('nouveau', 'en_cours')",
        [sid.as_str()],
    )?;
    Ok(())
}

/// A call's lead, insert-or-get by CallSid, in one transaction: the call row is created if
/// missing; when it has no lead yet, `row` is inserted and the call points at it; otherwise the
/// call's lead is returned and `row` is not stored.
pub(super) fn start_call_sql(
    conn: &mut Connection,
    row: &LeadRow,
    call: &CallUpdate,
) -> Result<Lead, StoreError> {
    let tx = conn.savepoint()?;
    let sid = call.call_sid.as_str().to_owned();
    let existing: Option<Option<String>> = tx
        .query_row_cached(
            "SELECT lead_id FROM calls WHERE call_sid = ?1",
            [&sid],
            |r| r.get(0),
        )
        .optional()?;
    let lead_id = if let Some(id) = existing.flatten() {
        id
    } else {
        let mut fresh = row.clone();
        fresh.version = 0;
        if save_lead_sql(&tx, &fresh)? == Saved::Stale {
            return Err(StoreError::Local("lead id already taken".to_owned()));
        }
        let mut update = call.clone();
        update.lead_id = Some(row.id);
        upsert_call_sql(&tx, &update)?;
        row.id.to_string()
    };
    let lead = tx
        .query_row_cached(
            &format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?1"),
            [&lead_id],
            lead_from_row,
        )
        .optional()?
        .transpose()?
        .ok_or_else(|| StoreError::Corrupt("calls.lead_id points nowhere".to_owned()))?;
    tx.commit()?;
    Ok(lead)
}

/// `CASE <column> WHEN 'initiated' THEN 1 … ELSE 0 END`: `calls::status_rank` in SQL.
fn call_rank_sql(column: &str) -> String {
    let whens =
        crate::domain::CALL_STATUS_RANKS
            .iter()
            .fold(String::new(), |mut sql, (status, rank)| {
                let _ = write!(sql, " WHEN '{status}' THEN {rank}");
                sql
            });
    format!("(CASE {column}{whens} ELSE 0 END)")
}

fn upsert_call_sql(conn: &Connection, u: &CallUpdate) -> Result<(), StoreError> {
    // Only the columns the update sets: a partial update never clears what it does not name.
    let mut columns: Vec<&str> = vec!["id", "call_sid"];
    let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
        Box::new(uuid::Uuid::new_v4().to_string()),
        Box::new(u.call_sid.as_str().to_owned()),
    ];
    macro_rules! col {
        ($name:literal, $value:expr) => {
            if let Some(v) = $value {
                columns.push($name);
                values.push(Box::new(v));
            }
        };
    }
    col!("lead_id", u.lead_id.map(|l| l.to_string()));
    col!("vapi_call_id", u.vapi_call_id.clone());
    col!("from_number", u.from_number.clone());
    col!("to_number", u.to_number.clone());
    col!("direction", u.direction.clone());
    col!("mode", u.mode.map(|m| m.as_str().to_owned()));
    col!("mode_reason", u.mode_reason.clone());
    col!("status", u.status.clone());
    col!("duration", u.duration);
    col!("recording_url", u.recording_url.clone());
    col!("transcript", u.transcript.clone());
    col!("ended_reason", u.ended_reason.clone());
    col!("dial_status", u.dial_status.clone());
    col!("dial_duration", u.dial_duration);
    col!("recording_sid", u.recording_sid.clone());
    col!("recording_duration", u.recording_duration);
    col!("recording_status", u.recording_status.clone());
    col!("vapi_recording_url", u.vapi_recording_url.clone());
    col!("vapi_summary", u.vapi_summary.clone());
    col!(
        "vapi_structured_data",
        u.vapi_structured_data.as_ref().map(ToString::to_string)
    );
    col!(
        "vapi_turns",
        u.vapi_turns
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".to_owned()))
    );
    col!("operator", u.operator.clone());
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    // A status never moves backwards and a call's lead, once set, is never re-pointed: both
    // decided here, in the statement, whoever writes.
    let updates: Vec<String> = columns[2..]
        .iter()
        .map(|c| match *c {
            "status" => format!(
                "status = CASE WHEN calls.status IS NULL OR {} >= {} \
                 THEN excluded.status ELSE calls.status END",
                call_rank_sql("excluded.status"),
                call_rank_sql("calls.status")
            ),
            "lead_id" => "lead_id = COALESCE(calls.lead_id, excluded.lead_id)".to_owned(),
            c => format!("{c} = excluded.{c}"),
        })
        .chain([
            "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')".to_owned(),
            "version = calls.version + 1".to_owned(),
        ])
        .collect();
    let sql = format!(
        "INSERT INTO calls ({}) VALUES ({}) ON CONFLICT (call_sid) DO UPDATE SET {}",
        columns.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    );
    conn.execute_cached(&sql, rusqlite::params_from_iter(values.iter()))?;
    Ok(())
}

pub(super) fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<Result<T, StoreError>>>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

impl Store for SqliteStore {
    async fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError> {
        let row = LeadRow::from(lead);
        self.call(move |conn| save_lead_sql(conn, &row)).await
    }

    async fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
        self.call(move |conn| abandon_lead_sql(conn, id)).await
    }

    async fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError> {
        let row = LeadRow::from(lead);
        let call = call.clone();
        self.call(move |conn| start_call_sql(conn, &row, &call))
            .await
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?1"),
                [id.to_string()],
                lead_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError> {
        let sid = call_sid.as_str().to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!(
                    "SELECT {} FROM leads l JOIN calls c ON c.lead_id = l.id WHERE c.call_sid = ?1",
                    LEAD_COLUMNS
                        .split(", ")
                        .map(|c| format!("l.{}", c.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                [sid],
                lead_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError> {
        let update = update.clone();
        self.call(move |conn| upsert_call_sql(conn, &update)).await
    }

    async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        let sid = call_sid.as_str().to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {CALL_COLUMNS} FROM calls WHERE call_sid = ?1"),
                [sid],
                call_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        let id = vapi_call_id.to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {CALL_COLUMNS} FROM calls WHERE vapi_call_id = ?1 ORDER BY seq DESC LIMIT 1"),
                [id],
                call_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn record_event(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            let inserted = conn.execute_cached(
                "INSERT INTO processed_events (key) VALUES (?1) ON CONFLICT (key) DO NOTHING",
                [key],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn event_processed(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row_cached(
                    "SELECT 1 FROM processed_events WHERE key = ?1",
                    [key],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_PAGE)).unwrap_or(0);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LEAD_COLUMNS} FROM leads ORDER BY created_at DESC, seq DESC LIMIT ?1 OFFSET ?2"
            ))?;
            let rows = stmt.query_map([limit, offset], lead_from_row)?;
            collect(rows)
        })
        .await
    }

    async fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE lead_id = ?1 ORDER BY created_at, seq"
            ))?;
            let rows = stmt.query_map([lead_id.to_string()], call_from_row)?;
            collect(rows)
        })
        .await
    }

    /// A real durable write (the probe row, committed with `synchronous=FULL`): a full disk, a
    /// read-only file or file system fails it, where a `SELECT 1` would still pass.
    async fn health(&self) -> Result<(), StoreError> {
        self.call(|conn| {
            conn.execute_cached(
                "INSERT INTO readiness_probe (id, at) \
                 VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                [],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_lead_column_count_matches_the_list() {
        assert_eq!(LEAD_COLUMNS.split(',').count(), LEAD_COLUMN_COUNT);
    }

    /// A store whose thread is held busy by a first job until `release` is sent, so the jobs sent
    /// meanwhile queue up and run as one batch.
    async fn held_store(
        dir: &tempfile::TempDir,
        setup: &'static str,
    ) -> (SqliteStore, std::sync::mpsc::Sender<()>) {
        let store = SqliteStore::open(&dir.path().join("batch.db")).unwrap();
        store
            .call(move |c| Ok(c.execute_batch(setup)?))
            .await
            .unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = store.clone();
        tokio::spawn(async move {
            blocker
                .call(move |_| {
                    let _ = wait.recv();
                    Ok(())
                })
                .await
        });
        // The blocker is on the thread once the thread stops taking jobs.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (store, release)
    }

    fn insert(
        store: &SqliteStore,
        sql: &'static str,
    ) -> tokio::task::JoinHandle<Result<bool, StoreError>> {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .call(move |c| {
                    c.execute(sql, [])?;
                    // Inside a batch's transaction the connection is not in autocommit mode.
                    Ok(!c.is_autocommit())
                })
                .await
        })
    }

    fn count(store: &SqliteStore, table: &'static str) -> impl Future<Output = i64> {
        let store = store.clone();
        async move {
            store
                .call(move |c| {
                    Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
                })
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn writes_queued_behind_a_busy_thread_share_one_commit_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let (store, release) = held_store(&dir, "CREATE TABLE t (n INTEGER)").await;
        let writes: Vec<_> = (0..20)
            .map(|_| insert(&store, "INSERT INTO t VALUES (1)"))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
        for write in writes {
            assert!(
                write.await.unwrap().unwrap(),
                "a queued write ran outside a batch"
            );
        }
        assert_eq!(count(&store, "t").await, 20);
        // Alone, a job runs in autocommit mode as before.
        assert!(
            !insert(&store, "INSERT INTO t VALUES (2)")
                .await
                .unwrap()
                .unwrap()
        );
        // Committed for real: another connection sees every row.
        let other = Connection::open(dir.path().join("batch.db")).unwrap();
        let n: i64 = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 21);
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_only_its_own_savepoint() {
        let dir = tempfile::tempdir().unwrap();
        let (store, release) = held_store(&dir, "CREATE TABLE t (n INTEGER UNIQUE)").await;
        let first = insert(&store, "INSERT INTO t VALUES (1)");
        let failing = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .call(|c| {
                        let sp = c.savepoint()?;
                        sp.execute("INSERT INTO t VALUES (2)", [])?;
                        // A duplicate: the savepoint is dropped, undoing 2 as well.
                        sp.execute("INSERT INTO t VALUES (1)", [])?;
                        sp.commit()?;
                        Ok(())
                    })
                    .await
            })
        };
        let last = insert(&store, "INSERT INTO t VALUES (3)");
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert!(failing.await.unwrap().is_err());
        assert!(last.await.unwrap().unwrap());
        let rows = store
            .call(|c| {
                let mut stmt = c.prepare("SELECT n FROM t ORDER BY n")?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap();
        assert_eq!(rows, vec![1, 3]);
    }

    #[tokio::test]
    async fn a_batch_rolled_back_midway_refuses_its_jobs_so_far_and_runs_the_rest_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, release) = held_store(&dir, "CREATE TABLE t (n INTEGER)").await;
        let undone = insert(&store, "INSERT INTO t VALUES (1)");
        // What SQLite does on its own after a full disk or an I/O error inside a transaction.
        let rollback = insert(&store, "ROLLBACK");
        let after = insert(&store, "INSERT INTO t VALUES (3)");
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
        assert!(
            undone.await.unwrap().is_err(),
            "an undone write was answered as written"
        );
        assert!(rollback.await.unwrap().is_err());
        // Run alone, in autocommit mode, and answered as written because it is.
        assert!(!after.await.unwrap().unwrap());
        let rows = store
            .call(|c| {
                Ok(c.query_row("SELECT group_concat(n) FROM t", [], |r| {
                    r.get::<_, String>(0)
                })?)
            })
            .await
            .unwrap();
        assert_eq!(rows, "3");
    }

    #[tokio::test]
    async fn a_batch_whose_commit_fails_answers_every_job_with_the_error() {
        let dir = tempfile::tempdir().unwrap();
        // A deferred foreign key is checked at COMMIT: the one way to make a commit itself fail.
        let (store, release) = held_store(
            &dir,
            "CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .await;
        let parent = insert(&store, "INSERT INTO p VALUES (1)");
        let orphan = insert(&store, "INSERT INTO c VALUES (99)");
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
        // The parent's own statement succeeded, but its commit did not: its caller must not hear
        // "written".
        assert!(parent.await.unwrap().is_err());
        assert!(orphan.await.unwrap().is_err());
        assert_eq!(count(&store, "p").await, 0);
        assert_eq!(count(&store, "c").await, 0);
        // The thread goes on.
        insert(&store, "INSERT INTO p VALUES (2)")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(count(&store, "p").await, 1);
    }
}
