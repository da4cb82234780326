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

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use rusqlite::{Connection, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

use super::rows::StoreError;

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

/// A lease or a delay as an SQLite date modifier (`+1.500 seconds`).
pub(in crate::store) fn retry_delay(after: std::time::Duration) -> String {
    format!("+{:.3} seconds", after.as_secs_f64())
}

pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| StoreError::Corrupt("timestamp".to_owned()))
}

pub(in crate::store) fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<Result<T, StoreError>>>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
