//! A fake of Twilio's REST API (2010-04-01) on a real socket, faithful to what the gateway uses:
//! - `POST /2010-04-01/Accounts/{AC}/Messages.json`: HTTP Basic `AccountSid:AuthToken` checked
//!   (401, code 20003), form fields checked (`To`, `Body`, `From` or `MessagingServiceSid`; 400,
//!   code 21604), then the next scripted answer: 201 with the Message JSON (`sid` `SM…`, `status`
//!   `queued`, or `accepted` with a Messaging Service), 429 with `Retry-After` (code 20429), 500,
//!   a 400 with a Twilio error code (21211, 21610 …), or a message created but answered late;
//! - `GET …/Messages.json?To=&From=`: the messages sent, newest first;
//! - `POST …/Calls/{CallSid}.json` with `Url`: a live-call redirect, recorded;
//! - `GET …/Recordings/{RE}.mp3`: the recording (HTTP Basic required, 401 code 20003), with
//!   `Accept-Ranges: bytes`; one `Range: bytes=…` gives 206 and `Content-Range`, a range outside
//!   it 416 with `Content-Range: bytes */len`. The body can be set, and held after its first
//!   chunk until the test releases it (a slow upstream).
//! - `POST …/Calls.json`: a created call (`To`, `From`, `Url` or `Twiml` required; 400, code
//!   21205/21201/21213), then the next scripted answer of its own script: 201 with the Call JSON
//!   (`sid` `CA…`, `status` `queued`), 429 (code 20429), 500, a 400 with a Twilio error code, or
//!   created but answered late. Every created call is kept with all its form fields (repeated
//!   ones too) and the instant it arrived.
//! - `DELETE …/Recordings/{RE}.json`, `…/Calls/{CA}.json`, `…/Messages/{SM}.json`: 204 the first
//!   time, 404 (code 20404) once deleted, or the statuses scripted for that SID first
//!   ([`FakeTwilio::fail_deletes`]: 500, 429 with `Retry-After`, 400 with code 20009 …); every
//!   DELETE is recorded with its answer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::json;

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// What the fake answers to the next `POST Messages.json`.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 201 and the message.
    Created,
    /// 429 with `Retry-After: secs` (not created).
    TooMany { retry_after_secs: u64 },
    /// 500 (not created).
    ServerError,
    /// The message is created, but the answer comes after `delay` (the client times out or dies).
    CreatedLate { delay: Duration },
    /// 400 with Twilio's error code (not created).
    Refused { code: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub status_callback: Option<String>,
    pub validity_period: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub call_sid: String,
    pub url: String,
    pub method: Option<String>,
}

/// A call created through `POST Calls.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCall {
    pub sid: String,
    /// Every form field, in the order sent (`StatusCallbackEvent` repeats).
    pub fields: Vec<(String, String)>,
    pub at: std::time::Instant,
}

impl CreatedCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One DELETE the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// `Recordings`, `Calls` or `Messages`.
    pub resource: String,
    pub sid: String,
    /// What the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    deletions: Vec<Deletion>,
    deleted: std::collections::HashSet<String>,
    delete_script: std::collections::HashMap<String, VecDeque<u16>>,
    script: VecDeque<Reply>,
    call_script: VecDeque<Reply>,
    created_calls: Vec<CreatedCall>,
    /// Every Calls.json POST, answered or not.
    call_attempts: usize,
    messages: Vec<Message>,
    redirects: Vec<Redirect>,
    /// Every Messages.json POST, answered or not.
    attempts: usize,
    /// Recording fetches (`GET …/Recordings/{RE}.mp3`), authorized or not.
    recording_fetches: usize,
    /// The `Range` header of each recording fetch.
    recording_ranges: Vec<Option<String>>,
    /// The recording's bytes (`RECORDING_MP3` when unset).
    recording: Option<Arc<Vec<u8>>>,
    /// When set, a recording's body stops after its first chunk until this is released.
    hold: Option<Arc<tokio::sync::Semaphore>>,
    /// Recording bodies sent to their end.
    recordings_finished: usize,
    unauthorized: usize,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
    );
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({
            "code": code, "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })
        .to_string(),
    )
        .into_response()
}

fn form(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn message_json(m: &Message) -> serde_json::Value {
    json!({
        "sid": m.sid, "to": m.to, "from": m.from, "body": m.body,
        "messaging_service_sid": m.messaging_service_sid,
        "status": if m.messaging_service_sid.is_some() { "accepted" } else { "queued" },
        "num_segments": if m.messaging_service_sid.is_some() { "0" } else { "1" },
        "error_code": null, "error_message": null,
    })
}

/// What Twilio checks before creating a message or a call: the account in the path and its HTTP
/// Basic credentials (401, code 20003), then a form body (400, code 20001). Counts the attempt
/// (`queue` names the resource's counter and script) and takes its next scripted answer.
fn admit(
    fake: &FakeTwilio,
    account: &str,
    headers: &HeaderMap,
    queue: impl FnOnce(&mut Inner) -> (&mut usize, &mut VecDeque<Reply>),
) -> Result<Reply, Box<Response>> {
    let allowed = account == ACCOUNT && authorized(headers);
    let reply = {
        let mut inner = fake.inner.lock().unwrap();
        if !allowed {
            inner.unauthorized += 1;
        }
        let (attempts, script) = queue(&mut inner);
        *attempts += 1;
        if !allowed {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                20003,
                "Authenticate",
            )));
        }
        script.pop_front().unwrap_or(Reply::Created)
    };
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            20001,
            "form body expected",
        )));
    }
    Ok(reply)
}

async fn messages_create(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let reply = match admit(&fake, &account, &headers, |i| {
        (&mut i.attempts, &mut i.script)
    }) {
        Ok(reply) => reply,
        Err(refused) => return *refused,
    };
    let fields = form(&body);
    let (Some(to), Some(text)) = (field(&fields, "To"), field(&fields, "Body")) else {
        return error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let from = field(&fields, "From").map(str::to_owned);
    let service = field(&fields, "MessagingServiceSid").map(str::to_owned);
    if from.is_none() && service.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.",
        );
    }
    let create = |fake: &FakeTwilio| {
        let mut inner = fake.inner.lock().unwrap();
        let message = Message {
            sid: format!("SM{:032x}", inner.messages.len() + 1),
            to: to.to_owned(),
            from: from.clone(),
            messaging_service_sid: service.clone(),
            body: text.to_owned(),
            status_callback: field(&fields, "StatusCallback").map(str::to_owned),
            validity_period: field(&fields, "ValidityPeriod").map(str::to_owned),
        };
        inner.messages.push(message.clone());
        message
    };
    match reply {
        Reply::Created => {
            let m = create(&fake);
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                message_json(&m).to_string(),
            )
                .into_response()
        }
        Reply::CreatedLate { delay } => {
            let m = create(&fake);
            tokio::time::sleep(delay).await;
            (StatusCode::CREATED, message_json(&m).to_string()).into_response()
        }
        Reply::TooMany { retry_after_secs } => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            response
                .headers_mut()
                .insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            response
        }
        Reply::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        ),
        Reply::Refused { code } => error(
            StatusCode::BAD_REQUEST,
            code,
            match code {
                21211 => "The 'To' number is not a valid phone number.",
                21610 => "Attempt to send to unsubscribed recipient",
                _ => "Refused",
            },
        ),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(rename = "To")]
    to: Option<String>,
    #[serde(rename = "From")]
    from: Option<String>,
}

async fn messages_list(
    State(fake): State<FakeTwilio>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let inner = fake.inner.lock().unwrap();
    let messages: Vec<serde_json::Value> = inner
        .messages
        .iter()
        .rev()
        .filter(|m| query.to.as_deref().is_none_or(|t| t == m.to))
        .filter(|m| {
            query
                .from
                .as_deref()
                .is_none_or(|f| Some(f) == m.from.as_deref())
        })
        .map(message_json)
        .collect();
    (
        [("content-type", "application/json")],
        json!({ "messages": messages, "page": 0, "page_size": 50 }).to_string(),
    )
        .into_response()
}

async fn call_update(
    State(fake): State<FakeTwilio>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if account != ACCOUNT || !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let call_sid = call.trim_end_matches(".json").to_owned();
    let fields = form(&body);
    let Some(url) = field(&fields, "Url") else {
        return error(StatusCode::BAD_REQUEST, 21205, "Url or Twiml is required");
    };
    fake.inner.lock().unwrap().redirects.push(Redirect {
        call_sid: call_sid.clone(),
        url: url.to_owned(),
        method: field(&fields, "Method").map(str::to_owned),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({ "sid": call_sid, "status": "in-progress" }).to_string(),
    )
        .into_response()
}

async fn calls_create(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let reply = match admit(&fake, &account, &headers, |i| {
        (&mut i.call_attempts, &mut i.call_script)
    }) {
        Ok(reply) => reply,
        Err(refused) => return *refused,
    };
    let fields = form(&body);
    if field(&fields, "To").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            21201,
            "No 'To' number is specified",
        );
    }
    if field(&fields, "From").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            21213,
            "No 'From' number is specified",
        );
    }
    if field(&fields, "Url").is_none() && field(&fields, "Twiml").is_none() {
        return error(StatusCode::BAD_REQUEST, 21205, "Url or Twiml is required");
    }
    let create = |fake: &FakeTwilio| {
        let mut inner = fake.inner.lock().unwrap();
        let call = CreatedCall {
            sid: format!("CA{:032x}", 0xca11_0000 + inner.created_calls.len() + 1),
            fields: fields.clone(),
            at: std::time::Instant::now(),
        };
        inner.created_calls.push(call.clone());
        json!({
            "sid": call.sid, "status": "queued", "direction": "outbound-api",
            "to": field(&fields, "To"), "from": field(&fields, "From"),
        })
        .to_string()
    };
    match reply {
        Reply::Created => (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            create(&fake),
        )
            .into_response(),
        Reply::CreatedLate { delay } => {
            let body = create(&fake);
            tokio::time::sleep(delay).await;
            (StatusCode::CREATED, body).into_response()
        }
        Reply::TooMany { retry_after_secs } => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            response
                .headers_mut()
                .insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            response
        }
        Reply::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        ),
        Reply::Refused { code } => error(StatusCode::BAD_REQUEST, code, "Refused"),
    }
}

/// The MP3 every recording of the fake is.
pub const RECORDING_MP3: &[u8] = b"ID3\x04\x00fake-mp3-voicemail";

/// The first chunk of a held recording.
pub const FIRST_CHUNK: usize = 64 * 1024;

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `len`: the inclusive range, `Err` if unsatisfiable.
fn byte_range(value: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let (first, last) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let parse = |s: &str| s.parse::<usize>().ok();
    let range = match (first.is_empty(), last.is_empty()) {
        (false, false) => (parse(first)?, parse(last)?.min(len.saturating_sub(1))),
        (false, true) => (parse(first)?, len.saturating_sub(1)),
        (true, false) => (len.saturating_sub(parse(last)?), len.saturating_sub(1)),
        (true, true) => return None,
    };
    Some(if len == 0 || range.0 > range.1 || range.0 >= len {
        Err(())
    } else {
        Ok(range)
    })
}

async fn recording(
    State(fake): State<FakeTwilio>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let range_header = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (bytes, hold) = {
        let mut inner = fake.inner.lock().unwrap();
        inner.recording_fetches += 1;
        inner.recording_ranges.push(range_header.clone());
        (
            inner
                .recording
                .clone()
                .unwrap_or_else(|| Arc::new(RECORDING_MP3.to_vec())),
            inner.hold.clone(),
        )
    };
    // "Enforce HTTP Auth on Media URLs": the account's credentials are required.
    if account != ACCOUNT || !authorized(&headers) {
        fake.inner.lock().unwrap().unauthorized += 1;
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if !(file.starts_with("RE") && file.strip_suffix(".mp3").is_some()) {
        return error(StatusCode::NOT_FOUND, 20404, "not found");
    }
    let len = bytes.len();
    let (status, start, end) = match range_header.as_deref().and_then(|r| byte_range(r, len)) {
        None => (StatusCode::OK, 0, len),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        Some(Err(())) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    ("content-range", format!("bytes */{len}")),
                    ("accept-ranges", "bytes".to_owned()),
                ],
            )
                .into_response();
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "audio/mpeg")
        .header("accept-ranges", "bytes")
        .header("content-length", end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header("content-range", format!("bytes {start}-{}/{len}", end - 1));
    }
    // The body in chunks; a held one stops after the first until the test releases it.
    let chunks: Vec<bytes::Bytes> = bytes[start..end]
        .chunks(FIRST_CHUNK)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let finished = fake.clone();
    let body = futures_util::stream::unfold(
        (chunks.into_iter(), 0_usize, hold, finished),
        |(mut chunks, n, hold, fake)| async move {
            if n == 1 {
                if let Some(hold) = &hold {
                    drop(hold.acquire().await);
                }
            }
            let chunk = chunks.next()?;
            if chunks.len() == 0 {
                // The last chunk is handed over (the server may not poll past the length).
                fake.inner.lock().unwrap().recordings_finished += 1;
            }
            Some((
                Ok::<_, std::convert::Infallible>(chunk),
                (chunks, n + 1, hold, fake),
            ))
        },
    );
    response.body(axum::body::Body::from_stream(body)).unwrap()
}

fn delete_resource(
    fake: &FakeTwilio,
    resource: &str,
    account: &str,
    file: &str,
    headers: &HeaderMap,
) -> Response {
    if account != ACCOUNT || !authorized(headers) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some(sid) = file.strip_suffix(".json") else {
        return error(StatusCode::NOT_FOUND, 20404, "not found");
    };
    let mut inner = fake.inner.lock().unwrap();
    let scripted = inner
        .delete_script
        .get_mut(sid)
        .and_then(VecDeque::pop_front);
    let status = match scripted {
        Some(status) => status,
        None if inner.deleted.contains(sid) => 404,
        None => {
            inner.deleted.insert(sid.to_owned());
            204
        }
    };
    inner.deletions.push(Deletion {
        resource: resource.to_owned(),
        sid: sid.to_owned(),
        status,
    });
    drop(inner);
    match status {
        204 => StatusCode::NO_CONTENT.into_response(),
        404 => error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        ),
        429 => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            response
        }
        400 => error(
            StatusCode::BAD_REQUEST,
            20009,
            "Cannot delete this resource before it is complete",
        ),
        other => error(
            StatusCode::from_u16(other).unwrap(),
            20500,
            "Internal Server Error",
        ),
    }
}

#[allow(clippy::unused_async)] // an axum handler
async fn recording_delete(
    State(fake): State<FakeTwilio>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    delete_resource(&fake, "Recordings", &account, &file, &headers)
}

#[allow(clippy::unused_async)] // an axum handler
async fn call_delete(
    State(fake): State<FakeTwilio>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    delete_resource(&fake, "Calls", &account, &file, &headers)
}

#[allow(clippy::unused_async)] // an axum handler
async fn message_delete(
    State(fake): State<FakeTwilio>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    delete_resource(&fake, "Messages", &account, &file, &headers)
}

impl FakeTwilio {
    /// Every DELETE received, in order.
    pub fn deletions(&self) -> Vec<Deletion> {
        self.inner.lock().unwrap().deletions.clone()
    }

    /// The next DELETEs of `sid` answer these statuses, in order (then 204, then 404).
    pub fn fail_deletes(&self, sid: &str, statuses: impl IntoIterator<Item = u16>) {
        self.inner
            .lock()
            .unwrap()
            .delete_script
            .entry(sid.to_owned())
            .or_default()
            .extend(statuses);
    }

    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeTwilio {
            addr: listener.local_addr().unwrap(),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages_create).get(messages_list),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Calls.json",
                post(calls_create),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(call_update).delete(call_delete),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Recordings/{file}",
                axum::routing::get(recording).delete(recording_delete),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Messages/{file}",
                axum::routing::delete(message_delete),
            )
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next answers to `POST Messages.json`, in order (then `Created`).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// The next answers to `POST Calls.json`, in order (then `Created`).
    pub fn script_calls(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().call_script.extend(replies);
    }

    pub fn created_calls(&self) -> Vec<CreatedCall> {
        self.inner.lock().unwrap().created_calls.clone()
    }

    pub fn call_attempts(&self) -> usize {
        self.inner.lock().unwrap().call_attempts
    }

    pub fn messages(&self) -> Vec<Message> {
        self.inner.lock().unwrap().messages.clone()
    }

    pub fn redirects(&self) -> Vec<Redirect> {
        self.inner.lock().unwrap().redirects.clone()
    }

    pub fn attempts(&self) -> usize {
        self.inner.lock().unwrap().attempts
    }

    pub fn recording_fetches(&self) -> usize {
        self.inner.lock().unwrap().recording_fetches
    }

    /// The `Range` header of each recording fetch, in order.
    pub fn recording_ranges(&self) -> Vec<Option<String>> {
        self.inner.lock().unwrap().recording_ranges.clone()
    }

    /// Every recording's bytes from now on.
    pub fn set_recording(&self, bytes: Vec<u8>) {
        self.inner.lock().unwrap().recording = Some(Arc::new(bytes));
    }

    /// Recording bodies stop after their first chunk until the returned semaphore gets a permit.
    pub fn hold_recordings(&self) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        self.inner.lock().unwrap().hold = Some(gate.clone());
        gate
    }

    /// Recording bodies the fake sent to their end.
    pub fn recordings_finished(&self) -> usize {
        self.inner.lock().unwrap().recordings_finished
    }

    pub fn unauthorized(&self) -> usize {
        self.inner.lock().unwrap().unauthorized
    }

    /// Waits until `n` messages exist (or panics after `within`).
    /// Waits until `POST Messages.json` was tried at least once (answered or not yet).
    pub async fn wait_for_an_attempt(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.attempts() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no send attempted within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_messages(&self, n: usize, within: Duration) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} messages after {within:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
