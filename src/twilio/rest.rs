//! Twilio's REST API (`TWILIO_API_BASE_URL`, API version 2010-04-01): sending an SMS, finding a
//! message already sent, creating a call (a console callback), redirecting a live call to new
//! TwiML, and deleting recordings, call logs and messages (a Law 25 erasure).
//!
//! Authentication is HTTP Basic `AccountSid:AuthToken`; bodies are form-encoded. Twilio's Messages
//! API has no idempotency key, so failures are told apart by what they mean for a resend:
//! - [`RestError::Retryable`]: Twilio did not process the request (429, or the connection failed
//!   before it was sent): safe to send again, after `Retry-After` when given;
//! - [`RestError::Unknown`]: a timeout or a 5xx after the request left: the message may exist, so
//!   the caller looks for it ([`TwilioRest::find_message`]) before sending again;
//! - [`RestError::Refused`]: a 4xx with Twilio's error code (21211 invalid number, 21610
//!   unsubscribed, 20003 authentication …): sending again would fail the same way.
//!
//! Nothing here logs a message body, a phone number or a credential.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::SmsSender;

/// Per-request deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a REST request failed. Messages carry Twilio's code and message, never request data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    #[error("Twilio did not process the request ({reason}); safe to retry")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error("outcome unknown ({reason}); look before resending")]
    Unknown { reason: String },
    #[error("Twilio refused the request: HTTP {status}, code {code:?}: {message}")]
    Refused {
        status: u16,
        code: Option<i64>,
        message: String,
    },
}

/// A call Twilio created (`POST Calls.json`): its SID and first status (`queued`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedCall {
    pub sid: String,
    pub status: String,
}

/// What `POST Calls.json` creates: a call from `from` (a number of the account) to `to`; when
/// answered, Twilio fetches the TwiML at `url`; `status_callback` gets every progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall<'a> {
    pub to: &'a str,
    pub from: &'a str,
    pub url: &'a str,
    pub status_callback: &'a str,
    /// Seconds `to` rings before `no-answer`.
    pub timeout_secs: u32,
}

/// A message Twilio accepted (or found).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub sid: String,
    pub status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct ListedMessage {
    sid: String,
    status: String,
    #[serde(default)]
    body: String,
}

/// A client of Twilio's REST API for one account. Cheap to clone.
#[derive(Clone)]
pub struct TwilioRest {
    http: reqwest::Client,
    base: Url,
    account_sid: String,
    auth_token: SecretString,
    timeout: Duration,
}

/// Longest a recording's body may stream (a listener pausing the player holds it open).
const RECORDING_STREAM_TIMEOUT: Duration = Duration::from_secs(600);

/// `bytes=a-b`, `bytes=a-` or `bytes=-n`: the one range a player asks for. Anything else (several
/// ranges, other units, junk) is not forwarded, and the whole recording comes back.
fn single_byte_range(value: &str) -> bool {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return false;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return false;
    };
    let digits = |s: &str| s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    digits(first) && digits(last) && !(first.is_empty() && last.is_empty())
}

/// A recording Twilio answered with: 200 (whole), 206 (the range asked) or 416 (the range is
/// outside it), its headers, and the body still to read.
#[derive(Debug)]
pub struct Recording {
    pub status: u16,
    pub content_length: Option<u64>,
    pub content_range: Option<String>,
    pub accept_ranges: Option<String>,
    chunk_timeout: Duration,
    max_bytes: u64,
    response: reqwest::Response,
}

impl Recording {
    /// The body as it arrives, never held whole: it ends with an error when a chunk takes longer
    /// than the client's timeout, when the connection fails, or past `max_bytes`.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, RestError>> + Send + 'static {
        let state = (
            self.response,
            0_u64,
            self.max_bytes,
            self.chunk_timeout,
            false,
        );
        futures_util::stream::unfold(state, |(mut response, sent, max, wait, done)| async move {
            if done {
                return None;
            }
            let next = match tokio::time::timeout(wait, response.chunk()).await {
                Err(_) => Err(RestError::Unknown {
                    reason: "the recording stalled".to_owned(),
                }),
                Ok(Err(e)) => Err(RestError::Unknown {
                    reason: e.without_url().to_string(),
                }),
                Ok(Ok(None)) => return None,
                Ok(Ok(Some(chunk))) => {
                    let sent = sent + chunk.len() as u64;
                    if sent > max {
                        Err(RestError::Refused {
                            status: 400,
                            code: None,
                            message: "the recording is too large".to_owned(),
                        })
                    } else {
                        return Some((Ok(chunk), (response, sent, max, wait, false)));
                    }
                }
            };
            Some((next, (response, sent, max, wait, true)))
        })
    }
}

impl std::fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRest")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// `Retry-After` in seconds (Twilio's 429s may carry it).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

impl TwilioRest {
    pub fn new(
        base: Url,
        account_sid: String,
        auth_token: SecretString,
        timeout: Duration,
    ) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(2)
                .build()
                .unwrap_or_default(),
            base,
            account_sid,
            auth_token,
            timeout,
        }
    }

    /// `{base}/2010-04-01/Accounts/{AccountSid}/{resource}`.
    fn url(&self, resource: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/2010-04-01/Accounts/{}/{resource}",
            self.base.path().trim_end_matches('/'),
            self.account_sid
        ));
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, RestError> {
        let response = request
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .send()
            .await
            .map_err(|e| {
                let connect = e.is_connect();
                let reason = e.without_url().to_string();
                if connect {
                    // Refused or unreachable before anything was sent.
                    RestError::Retryable {
                        reason,
                        retry_after: None,
                    }
                } else {
                    RestError::Unknown { reason }
                }
            })?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body = response.text().await.map_err(|e| RestError::Unknown {
            reason: e.without_url().to_string(),
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let parsed: Option<ErrorBody> = serde_json::from_str(&body).ok();
        let code = parsed.as_ref().and_then(|b| b.code);
        let message = parsed
            .and_then(|b| b.message)
            .unwrap_or_else(|| "no error body".to_owned())
            .chars()
            .take(200)
            .collect::<String>();
        Err(match status {
            429 => RestError::Retryable {
                reason: format!("HTTP 429, code {code:?}"),
                retry_after: after,
            },
            s if s >= 500 => RestError::Unknown {
                reason: format!("HTTP {s}, code {code:?}"),
            },
            _ => RestError::Refused {
                status,
                code,
                message,
            },
        })
    }

    /// `POST Messages.json`: one SMS to `to` from `sender`. `status_callback` receives the
    /// delivery statuses. `validity` bounds how long Twilio may queue it.
    pub async fn send_sms(
        &self,
        to: &str,
        sender: &SmsSender,
        body: &str,
        status_callback: Option<&str>,
        validity: Option<Duration>,
    ) -> Result<SentMessage, RestError> {
        let validity = validity.map(|v| v.as_secs().clamp(1, 36_000).to_string());
        let mut pairs = vec![("To", to), ("Body", body)];
        match sender {
            SmsSender::Number(from) => pairs.push(("From", from.as_str())),
            SmsSender::Service(sid) => pairs.push(("MessagingServiceSid", sid.as_str())),
        }
        if let Some(url) = status_callback {
            pairs.push(("StatusCallback", url));
        }
        if let Some(v) = &validity {
            pairs.push(("ValidityPeriod", v.as_str()));
        }
        let text = self
            .send(
                self.http
                    .post(self.url("Messages.json"))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form(&pairs)),
            )
            .await?;
        serde_json::from_str(&text).map_err(|_| RestError::Unknown {
            reason: "unexpected answer to Messages.json".to_owned(),
        })
    }

    /// The newest message to `to` (from `sender` when it is a number) whose body contains
    /// `reference`: a send whose outcome was unknown may have gone through.
    pub async fn find_message(
        &self,
        to: &str,
        sender: &SmsSender,
        reference: &str,
    ) -> Result<Option<SentMessage>, RestError> {
        let mut url = self.url("Messages.json");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("To", to);
            if let SmsSender::Number(from) = sender {
                query.append_pair("From", from);
            }
            query.append_pair("PageSize", "50");
        }
        let text = self.send(self.http.get(url)).await?;
        let page: MessagePage = serde_json::from_str(&text).map_err(|_| RestError::Unknown {
            reason: "unexpected answer to the Messages list".to_owned(),
        })?;
        Ok(page
            .messages
            .into_iter()
            .find(|m| m.body.contains(reference))
            .map(|m| SentMessage {
                sid: m.sid,
                status: m.status,
            }))
    }

    /// A recording of this account as MP3 (`RecordingUrl` + `.mp3`), fetched with the account's
    /// credentials (Twilio's media URLs may require them; the browser never gets them). Only URLs
    /// of this account's `Recordings` under the API's own host are fetched: a stored URL pointing
    /// elsewhere is refused, never requested. `range` (a browser's `Range: bytes=…`, one range) is
    /// forwarded; Twilio's 206 or 416 comes back as it is. The body is not read here: it streams
    /// through [`Recording::into_stream`], which stops after `max_bytes`.
    pub async fn fetch_recording(
        &self,
        recording_url: &str,
        range: Option<&str>,
        max_bytes: u64,
    ) -> Result<Recording, RestError> {
        let refused = |why: &str| RestError::Refused {
            status: 400,
            code: None,
            message: why.to_owned(),
        };
        let mut url = Url::parse(recording_url).map_err(|_| refused("not a URL"))?;
        let own_host = url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && url.scheme() == self.base.scheme();
        let prefix = format!("/2010-04-01/Accounts/{}/Recordings/", self.account_sid);
        let rest = url
            .path()
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .to_owned();
        let sid = rest.trim_end_matches(".mp3").trim_end_matches(".wav");
        let well_formed = sid.len() == 34
            && sid.starts_with("RE")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if !own_host || !well_formed {
            return Err(refused("not a recording of this account"));
        }
        url.set_path(&format!("{prefix}{sid}.mp3"));
        url.set_query(None);
        let mut request = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            // The body streams for as long as the listener reads it; `into_stream` bounds the
            // wait for each chunk instead.
            .timeout(RECORDING_STREAM_TIMEOUT);
        if let Some(range) = range.filter(|r| single_byte_range(r)) {
            request = request.header(reqwest::header::RANGE, range);
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| RestError::Unknown {
                reason: "the recording did not answer in time".to_owned(),
            })?
            .map_err(|e| RestError::Unknown {
                reason: e.without_url().to_string(),
            })?;
        let status = response.status().as_u16();
        if !matches!(status, 200 | 206 | 416) {
            return Err(RestError::Refused {
                status,
                code: None,
                message: "the recording could not be fetched".to_owned(),
            });
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(refused("the recording is too large"));
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Recording {
            status,
            content_length: response.content_length(),
            content_range: header(reqwest::header::CONTENT_RANGE),
            accept_ranges: header(reqwest::header::ACCEPT_RANGES),
            chunk_timeout: self.timeout,
            max_bytes,
            response,
        })
    }

    /// `POST Calls.json`: Twilio places a call. Calls created this way are paced by Twilio
    /// (1 a second by default, extra ones queued); a 429 is Twilio refusing the request
    /// (`Retryable`), a 5xx or a timeout may have created the call (`Unknown`).
    pub async fn create_call(&self, call: &NewCall<'_>) -> Result<CreatedCall, RestError> {
        let timeout = call.timeout_secs.to_string();
        let pairs = [
            ("To", call.to),
            ("From", call.from),
            ("Url", call.url),
            ("Method", "POST"),
            ("StatusCallback", call.status_callback),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", timeout.as_str()),
        ];
        let text = self
            .send(
                self.http
                    .post(self.url("Calls.json"))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form(&pairs)),
            )
            .await?;
        serde_json::from_str(&text).map_err(|_| RestError::Unknown {
            reason: "unexpected answer to Calls.json".to_owned(),
        })
    }

    /// `DELETE {resource}/{sid}.json` (`Recordings`, `Calls`, `Messages`): the record is gone
    /// from the API and the Console's logs (a recording's media too). `Ok` on 2xx (204); a 404 is
    /// [`RestError::Refused`] with status 404 (already deleted). A call or message not finished
    /// yet is refused with code 20009 ("Cannot delete this resource before it is complete"):
    /// try again later. `sid` must be a SID (letters and digits), never a path.
    pub async fn delete(&self, resource: &str, sid: &str) -> Result<(), RestError> {
        if sid.is_empty() || sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(RestError::Refused {
                status: 400,
                code: None,
                message: "not a SID".to_owned(),
            });
        }
        self.send(
            self.http
                .delete(self.url(&format!("{resource}/{sid}.json"))),
        )
        .await
        .map(drop)
    }

    /// `POST Calls/{CallSid}.json` with `Url`: the live call leaves its current TwiML (a Media
    /// Stream ends with `stop`) and continues with the TwiML at `url`.
    pub async fn redirect_call(&self, call_sid: &str, url: &str) -> Result<(), RestError> {
        self.send(
            self.http
                .post(self.url(&format!("Calls/{call_sid}.json")))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form(&[("Url", url), ("Method", "POST")])),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_the_account() {
        let rest = TwilioRest::new(
            Url::parse("http://127.0.0.1:9/prefix/").unwrap(),
            "AC123".to_owned(),
            SecretString::from("t".to_owned()),
            DEFAULT_TIMEOUT,
        );
        assert_eq!(
            rest.url("Messages.json").as_str(),
            "http://127.0.0.1:9/prefix/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert!(!format!("{rest:?}").contains("AC123"));
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form(&[("Body", "Arbre tombé & fils"), ("To", "+15145550100")]),
            "Body=Arbre+tomb%C3%A9+%26+fils&To=%2B15145550100"
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(reqwest::header::RETRY_AFTER, "99999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3600)));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
