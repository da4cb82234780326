//! The console's pages: thin handlers (parse, one operation, render) over the store and
//! `operators`. Forms post a `csrf` field that must be the session's token.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::auth::{ClientAddress, PageUser, clear_cookie, session_cookie};
use super::erasure::erase_and_audit;
use super::error::{ConsoleError, PageError};
use super::export;
use super::html::{Chrome, Esc, follow_up_label, layout, local_time, status_label};
use super::query::{ListQuery, erasure_target, lead_id};
use super::state::ConsoleState;
use crate::domain::{Language, LeadStatus};
use crate::operators::{self, LoginError};
use crate::qualification::Speaker;
use crate::store::console::{
    AUDIT_PAGE, AuditAction, ConsoleStore, FollowUp, FollowUpChange, FollowUpState, LeadFilter,
    ListedLead, Note,
};
use crate::store::{Alerts as _, Store};

const SCRIPT: &str = include_str!("console.js");
const STYLESHEET: &str = include_str!("console.css");
const FAVICON: &str = include_str!("favicon.svg");

pub async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON).into_response()
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

fn chrome<'a>(title: &'a str, user: &'a PageUser) -> Chrome<'a> {
    Chrome {
        title,
        user: Some((&user.principal.actor, &user.csrf)),
        admin: user.principal.is_admin(),
    }
}

pub async fn home() -> Redirect {
    Redirect::to("/console/leads")
}

fn login_page(message: Option<&str>) -> String {
    let alert = message.map_or_else(String::new, |m| {
        format!(r#"<p class="error" role="alert">{}</p>"#, Esc(m))
    });
    layout(
        &Chrome {
            title: "Connexion",
            ..Chrome::default()
        },
        &format!(
            r#"<h1>Connexion</h1>{alert}
<form method="post" action="/console/login" class="card">
<label for="email">Courriel</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus>
<label for="password">Mot de passe</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Se connecter</button>
</form>"#
        ),
    )
}

pub async fn login_form() -> Html<String> {
    Html(login_page(None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm")
    }
}

/// `POST /console/login`: one message for an unknown e-mail, a wrong password or a disabled
/// operator; 429 with `Retry-After` when throttled.
pub async fn login(
    State(console): State<ConsoleState>,
    ClientAddress(client): ClientAddress,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let password = SecretString::from(form.password);
    match operators::login(&console.store, &form.email, &password, client).await {
        Ok(session) => {
            let mut response = Redirect::to("/console/leads").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(console.production, &session.secret),
            );
            Ok(response)
        }
        Err(LoginError::Invalid) => Ok((
            StatusCode::UNAUTHORIZED,
            Html(login_page(Some("Courriel ou mot de passe invalide."))),
        )
            .into_response()),
        Err(LoginError::Throttled(wait)) => {
            let minutes = wait.as_secs().div_ceil(60);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Html(login_page(Some(&format!(
                    "Trop de tentatives. Réessayez dans {minutes} minute(s)."
                )))),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(response)
        }
        Err(LoginError::Busy) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Html(login_page(Some(
                    "Trop de connexions en même temps. Réessayez dans un instant.",
                ))),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        Err(LoginError::Store(e)) => Err(e.into()),
        Err(LoginError::Random) => Err(ConsoleError::Store(crate::store::StoreError::Local(
            "no randomness".to_owned(),
        ))
        .into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`: the session is revoked in the store and the cookie cleared.
pub async fn logout(
    State(console): State<ConsoleState>,
    user: PageUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf)?;
    operators::logout(&console.store, &user.principal).await?;
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(console.production));
    Ok(response)
}

fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| Esc(v).to_string())
}

/// One row of the leads list (also what live updates send).
pub fn lead_row(listed: &ListedLead) -> String {
    let lead = &listed.lead;
    let urgent = lead.urgence == Some(true);
    format!(
        r#"<tr id="lead-{id}"{class}><td>{created}</td><td><a href="/console/leads/{id}">{name}</a></td><td>{phone}</td><td>{address}</td><td>{service}</td><td>{urgent}</td><td>{status}</td><td>{suivi}</td></tr>"#,
        id = lead.id,
        class = if urgent { r#" class="urgent""# } else { "" },
        created = lead.created_at.map(local_time).unwrap_or_default(),
        name = lead
            .nom_complet
            .as_ref()
            .map_or_else(|| "(sans nom)".to_owned(), |n| Esc(n.as_str()).to_string()),
        phone = super::tel::link_or_dash(lead.telephone.as_ref()),
        address = or_dash(
            lead.adresse_complete
                .as_ref()
                .map(crate::qualification::Address::as_str)
        ),
        service = or_dash(lead.type_service.map(|s| s.label(Language::Fr))),
        urgent = if urgent {
            r#"<strong class="badge">URGENT</strong>"#
        } else {
            "non"
        },
        status = status_label(lead.status),
        suivi = follow_up_label(listed.follow_up.suivi),
    )
}

fn select(name: &str, label: &str, current: Option<&String>, options: &[(&str, &str)]) -> String {
    let current = current.map_or("", String::as_str);
    let mut html = format!(
        r#"<div><label for="{name}">{label}</label><select id="{name}" name="{name}"><option value="">Tous</option>"#
    );
    for (value, text) in options {
        let selected = if *value == current { " selected" } else { "" };
        let _ = write!(html, r#"<option value="{value}"{selected}>{text}</option>"#);
    }
    html.push_str("</select></div>");
    html
}

fn filter_form(q: &ListQuery) -> String {
    let statuses: Vec<(&str, &str)> = LeadStatus::ALL
        .iter()
        .map(|s| (s.as_str(), status_label(*s)))
        .collect();
    let suivis: Vec<(&str, &str)> = FollowUp::ALL
        .iter()
        .map(|f| (f.as_str(), follow_up_label(*f)))
        .collect();
    let value = |v: &Option<String>| Esc(v.as_deref().unwrap_or("")).to_string();
    format!(
        r#"<form method="get" action="/console/leads" class="filters" role="search">
<div><label for="q">Recherche (nom, téléphone, adresse)</label><input id="q" name="q" type="search" value="{q}"></div>
{status}{suivi}{urgent}
<div><label for="from">Du</label><input id="from" name="from" type="date" value="{from}"></div>
<div><label for="to">Au</label><input id="to" name="to" type="date" value="{to}"></div>
<div class="actions"><button type="submit">Filtrer</button> <a href="/console/leads">Effacer les filtres</a></div>
</form>"#,
        q = value(&q.q),
        status = select("status", "Statut", q.status.as_ref(), &statuses),
        suivi = select("suivi", "Suivi", q.suivi.as_ref(), &suivis),
        urgent = select(
            "urgent",
            "Urgence",
            q.urgent.as_ref(),
            &[("true", "Urgents"), ("false", "Non urgents")]
        ),
        from = value(&q.from),
        to = value(&q.to),
    )
}

/// `GET /console/leads`: newest first, urgent rows stand out, filters, search, cursor, live.
pub async fn leads(
    State(console): State<ConsoleState>,
    user: PageUser,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let filter = LeadFilter::try_from(&query)?;
    let page = console.store.search_leads(&filter).await?;
    let base = query.without_cursor();
    let rows: String = page.leads.iter().map(lead_row).collect();
    let empty = if page.leads.is_empty() {
        r#"<p class="empty">Aucun lead ne correspond.</p>"#
    } else {
        ""
    };
    let next = page.next.map_or_else(String::new, |c| {
        let sep = if base.is_empty() { "" } else { "&" };
        format!(
            r#"<p><a class="next" href="/console/leads?{}{sep}cursor={}">Page suivante →</a></p>"#,
            Esc(&base),
            c.encode()
        )
    });
    // Live updates only on the first page (a later page is a snapshot).
    let live = if filter.cursor.is_none() {
        format!(r#" data-live="/console/events?{}""#, Esc(&base))
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>Leads</h1>
{filters}
<p><a href="/console/leads/export.csv?{base}" download>Exporter en CSV (filtre actuel)</a></p>
<p id="live-status" role="status" aria-live="polite"></p>
<div class="table"><table id="leads">
<caption>Leads, les plus récents d'abord</caption>
<thead><tr><th scope="col">Reçu</th><th scope="col">Nom</th><th scope="col">Téléphone</th><th scope="col">Adresse</th><th scope="col">Service</th><th scope="col">Urgence</th><th scope="col">Statut</th><th scope="col">Suivi</th></tr></thead>
<tbody{live}>{rows}</tbody></table></div>{empty}{next}"#,
        filters = filter_form(&query),
        base = Esc(&base),
    );
    Ok(Html(layout(&chrome("Leads", &user), &body)))
}

/// `GET /console/leads/export.csv`: the current filter as CSV; audited.
pub async fn export(
    State(console): State<ConsoleState>,
    user: PageUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let filter = LeadFilter::try_from(&query)?;
    let leads = export::all_leads(&console.store, &filter).await?;
    operators::audit_by(
        &console.store,
        &user.principal,
        AuditAction::Export,
        None,
        Some(format!("rows={} {}", leads.len(), query.audit_summary())),
    )
    .await;
    Ok(export::download(&leads))
}

fn follow_up_form(id: &str, state: &FollowUpState, csrf: &str) -> String {
    let options: String = FollowUp::ALL
        .iter()
        .map(|f| {
            let selected = if *f == state.suivi { " selected" } else { "" };
            format!(
                r#"<option value="{}"{selected}>{}</option>"#,
                f.as_str(),
                follow_up_label(*f)
            )
        })
        .collect::<Vec<String>>()
        .concat();
    format!(
        r#"<form method="post" action="/console/leads/{id}/suivi" class="card">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="version" value="{version}">
<label for="suivi">Suivi</label><select id="suivi" name="suivi">{options}</select>
<label for="note">Note</label><textarea id="note" name="note" rows="3" maxlength="2000">{note}</textarea>
<button type="submit">Enregistrer</button>
</form>"#,
        csrf = Esc(csrf),
        version = state.version,
        note = Esc(state.note.as_deref().unwrap_or("")),
    )
}

#[allow(clippy::too_many_lines)] // one page's template, read top to bottom
async fn lead_page(
    console: &ConsoleState,
    user: &PageUser,
    raw_id: &str,
    alert: Option<&str>,
    callback_placed: bool,
) -> Result<String, PageError> {
    let id = lead_id(raw_id)?;
    let lead = console
        .store
        .get_lead(id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let follow_up = console.store.follow_up(id).await?.unwrap_or_default();
    let operator_phone = match crate::store::console::Email::try_from(user.principal.actor.as_str())
    {
        Ok(email) => console
            .store
            .operator_by_email(&email)
            .await?
            .and_then(|o| o.phone)
            .and_then(|p| crate::domain::PhoneNumber::try_from(p.as_str()).ok()),
        Err(_) => None,
    };
    let rappel = super::callback::section(
        &lead,
        &user.csrf,
        console.callback_unavailable,
        operator_phone.as_ref(),
        console.business_number.as_ref(),
        callback_placed,
    );
    let calls = console.store.calls_of_lead(id).await?;
    let alerts = alerts_table(&console.store.alerts_of_lead(id).await?);
    let field = |label: &str, value: Option<String>| {
        format!(
            "<dt>{label}</dt><dd>{}</dd>",
            value.map_or_else(|| "—".to_owned(), |v| Esc(&v).to_string())
        )
    };
    let fields = [
        field(
            "Nom complet",
            lead.nom_complet.as_ref().map(|v| v.as_str().to_owned()),
        ),
        format!(
            "<dt>Téléphone</dt><dd>{}</dd>",
            super::tel::link_or_dash(lead.telephone.as_ref())
        ),
        field(
            "Adresse",
            lead.adresse_complete
                .as_ref()
                .map(|a| a.as_str().to_owned()),
        ),
        field(
            "Type de service",
            lead.type_service.map(|s| s.label(Language::Fr).to_owned()),
        ),
        field(
            "Description",
            lead.description.as_ref().map(|d| d.as_str().to_owned()),
        ),
        field(
            "Urgence",
            lead.urgence
                .map(|u| if u { "URGENT" } else { "non" }.to_owned()),
        ),
        field(
            "Relecture",
            if lead.disputed() {
                Some("contestée par l'appelant — adresse et numéro à vérifier".to_owned())
            } else if lead
                .conversation
                .iter()
                .any(|t| t.note == Some(crate::qualification::Note::Confirmed))
            {
                Some("confirmée par l'appelant".to_owned())
            } else {
                None
            },
        ),
        field("Statut", Some(status_label(lead.status).to_owned())),
        field("Langue", Some(lead.language.as_str().to_owned())),
        field("Reçu", lead.created_at.map(local_time)),
        format!(
            "<dt>Numéro de l'afficheur</dt><dd>{}</dd>",
            super::tel::link_or_dash(lead.offered_phone.as_ref())
        ),
    ]
    .concat();
    let turns: String = lead
        .conversation
        .iter()
        .map(|t| {
            let who = match t.speaker {
                Speaker::Caller => "Appelant",
                Speaker::Myriam => "Myriam",
            };
            let rejected = if t.accepted == Some(false) {
                r#" <span class="muted">(réponse refusée)</span>"#
            } else if t.note == Some(crate::qualification::Note::Disputed) {
                " <strong>(relecture contestée)</strong>"
            } else {
                ""
            };
            format!(
                "<li>{}<strong>{who}</strong> : {}{rejected}</li>",
                super::dashboard::turn_time(t.at),
                Esc(&t.text)
            )
        })
        .collect::<Vec<String>>()
        .concat();
    let call_rows: String = calls
        .iter()
        .map(|c| {
            let f = &c.fields;
            let mode = if f.direction.as_deref() == Some(crate::callback::DIRECTION) {
                format!(
                    "rappel par {}",
                    f.operator.as_deref().unwrap_or("un opérateur")
                )
            } else {
                f.mode.map_or("—", |m| m.as_str()).to_owned()
            };
            let mode = mode.as_str();
            let transfer = f.dial_status.as_deref().map_or_else(
                || "—".to_owned(),
                |d| {
                    format!(
                        "{}{}",
                        Esc(dial_label(d)),
                        f.dial_duration
                            .map_or_else(String::new, |s| format!(" ({s} s)"))
                    )
                },
            );
            let voicemail = voicemail_cell(c);
            let vapi_recording = super::bridged::recording_link(f.vapi_recording_url.as_deref());
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                c.created_at.map(local_time).unwrap_or_default(),
                Esc(mode),
                or_dash(f.mode_reason.as_deref()),
                or_dash(f.status.as_deref()),
                f.duration.map_or_else(|| "—".to_owned(), |d| format!("{d} s")),
                super::bridged::ended_reason_html(f.ended_reason.as_deref()),
                transfer,
                voicemail,
                vapi_recording,
            )
        })
        .collect::<Vec<String>>()
        .concat();
    let transcripts: String = calls
        .iter()
        .enumerate()
        .map(|(n, c)| super::bridged::call_section(c, n))
        .collect::<Vec<String>>()
        .concat();
    let alert = alert.map_or_else(String::new, |m| {
        format!(r#"<p class="error" role="alert">{}</p>"#, Esc(m))
    });
    let by = follow_up.by.as_deref().map_or_else(String::new, |b| {
        format!(
            r#"<p class="muted">Dernière modification du suivi : {} {}</p>"#,
            Esc(b),
            follow_up.updated_at.map(local_time).unwrap_or_default()
        )
    });
    let body = format!(
        r#"<p><a href="/console/leads">← Leads</a></p>
<h1>{title}</h1>{alert}
<section aria-labelledby="h-fields"><h2 id="h-fields">Demande</h2><dl class="fields">{fields}</dl></section>
{rappel}
<section aria-labelledby="h-suivi"><h2 id="h-suivi">Suivi ({suivi})</h2>{by}{form}</section>
<section aria-labelledby="h-conv"><h2 id="h-conv">Conversation</h2><ol class="conversation">{turns}</ol></section>
<section aria-labelledby="h-calls"><h2 id="h-calls">Appels</h2>
<div class="table"><table><thead><tr><th scope="col">Début</th><th scope="col">Mode</th><th scope="col">Pourquoi</th><th scope="col">État</th><th scope="col">Durée</th><th scope="col">Fin</th><th scope="col">Transfert</th><th scope="col">Message vocal</th><th scope="col">Enregistrement de l'appel</th></tr></thead>
<tbody>{call_rows}</tbody></table></div>{transcripts}</section>
<section aria-labelledby="h-alerts"><h2 id="h-alerts">Alertes SMS</h2>{alerts}</section>"#,
        title = lead.nom_complet.as_ref().map_or_else(
            || "Lead sans nom".to_owned(),
            |n| Esc(n.as_str()).to_string()
        ),
        suivi = follow_up_label(follow_up.suivi),
        form = follow_up_form(&id.to_string(), &follow_up, &user.csrf),
    );
    Ok(layout(&chrome("Lead", user), &body))
}

/// How a transfer to the office line ended, in French.
fn dial_label(status: &str) -> &str {
    match status {
        "answered" | "completed" => "répondu",
        "busy" => "occupé",
        "no-answer" => "sans réponse",
        "failed" => "échec",
        "canceled" => "annulé",
        other => other,
    }
}

/// A call's voicemail: a player (through the gateway, which holds Twilio's credentials), its
/// length; or that it was empty.
fn voicemail_cell(call: &crate::store::CallRecord) -> String {
    let f = &call.fields;
    match (f.recording_url.as_deref(), f.recording_status.as_deref()) {
        (Some(_), _) => format!(
            r#"<audio controls preload="none" src="/console/calls/{sid}/recording" aria-label="Message vocal de l'appel"></audio>{len}"#,
            sid = Esc(f.call_sid.as_str()),
            len = f.recording_duration.map_or_else(String::new, |d| format!(
                " <span class=\"muted\">{d} s</span>"
            )),
        ),
        (None, Some("absent")) => "vide (rappel demandé)".to_owned(),
        (None, _) => "—".to_owned(),
    }
}

/// The SMS alerts sent about a lead, and where each stands.
fn alerts_table(alerts: &[crate::store::AlertRecord]) -> String {
    if alerts.is_empty() {
        return r#"<p class="muted">Aucune alerte.</p>"#.to_owned();
    }
    let mut rows = String::new();
    for a in alerts {
        let event = match a.event {
            crate::store::AlertEvent::Qualified => "demande qualifiée",
            crate::store::AlertEvent::Voicemail => "message vocal hors heures",
            crate::store::AlertEvent::Confirmation => "confirmation à l'appelant",
        };
        let status = match a.status {
            crate::store::AlertStatus::Pending => "en attente",
            crate::store::AlertStatus::Claimed => "en cours d'envoi",
            crate::store::AlertStatus::Sent => "envoyée",
            crate::store::AlertStatus::Dead => "refusée",
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            local_time(a.created_at),
            event,
            Esc(&a.recipient),
            status,
            or_dash(a.delivery_status.as_deref()),
            a.error_code
                .map_or_else(|| "—".to_owned(), |c| c.to_string()),
        );
    }
    format!(
        r#"<div class="table"><table><thead><tr><th scope="col">Créée</th><th scope="col">Pour</th><th scope="col">Destinataire</th><th scope="col">État</th><th scope="col">Livraison</th><th scope="col">Code d'erreur</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

/// Longest voicemail the console relays (Twilio's MP3 of the 120 s maximum is about 1 MB): a
/// body announced larger is refused, one that streams past it is cut.
const MAX_RECORDING_BYTES: u64 = 8 * 1024 * 1024;

/// A request that starts listening (no range, or one from the first byte), rather than a
/// player's seek or its next piece: what the audit counts.
fn starts_listening(range: Option<&str>) -> bool {
    range.is_none_or(|r| {
        r.trim()
            .strip_prefix("bytes=")
            .is_none_or(|spec| spec.starts_with("0-") || !spec.contains('-'))
    })
}

/// `GET /console/calls/{sid}/recording`: the call's voicemail as MP3, fetched from Twilio with
/// the account's credentials, which never reach the browser. `Range` is forwarded to Twilio and
/// its 206 (`Content-Range`, `Accept-Ranges`) relayed, as iOS Safari's `<audio>` requires; the
/// body streams through, never held whole. Audited (`recording_played`) once per listening, not
/// per range.
pub async fn recording(
    State(console): State<ConsoleState>,
    user: PageUser,
    Path(raw_sid): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    let sid =
        crate::domain::CallSid::try_from(raw_sid.as_str()).map_err(|_| ConsoleError::NotFound)?;
    let url = console
        .store
        .get_call(&sid)
        .await?
        .and_then(|c| c.fields.recording_url)
        .ok_or(ConsoleError::NotFound)?;
    let Some(twilio) = &console.twilio else {
        return Err(ConsoleError::BadRequest(
            "the recording needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN".to_owned(),
        )
        .into());
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|r| r.len() <= 64);
    match twilio
        .fetch_recording(&url, range, MAX_RECORDING_BYTES)
        .await
    {
        Ok(recording) => {
            if recording.status != 416 && starts_listening(range) {
                // Listening is audited: one entry per call, operator and window, with a count.
                operators::audit_aggregated(
                    &console.store,
                    &user.principal,
                    AuditAction::RecordingPlayed,
                    format!("call:{sid} by:{}", user.principal.actor),
                )
                .await;
            }
            let status = StatusCode::from_u16(recording.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "audio/mpeg")
                .header(
                    header::CONTENT_DISPOSITION,
                    "inline; filename=\"message-vocal.mp3\"",
                )
                .header(
                    header::ACCEPT_RANGES,
                    if recording.accept_ranges.as_deref() == Some("none") {
                        "none"
                    } else {
                        "bytes"
                    },
                );
            if let Some(range) = recording
                .content_range
                .as_deref()
                .and_then(|r| HeaderValue::from_str(r).ok())
            {
                response = response.header(header::CONTENT_RANGE, range);
            }
            if let Some(length) = recording.content_length {
                response = response.header(header::CONTENT_LENGTH, length);
            }
            let body = axum::body::Body::from_stream(recording.into_stream());
            // Every header above is valid (the relayed `Content-Range` was checked).
            Ok(response
                .body(body)
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()))
        }
        Err(error) => {
            tracing::warn!(call_sid = %sid, %error, "voicemail recording not fetched");
            Ok((
                StatusCode::BAD_GATEWAY,
                Html(layout(
                    &Chrome::default(),
                    "<p>Le message vocal n'a pas pu être récupéré chez Twilio.</p>",
                )),
            )
                .into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LeadQuery {
    /// Set after a callback was placed: the page says the operator's phone will ring.
    #[serde(default)]
    rappel: Option<String>,
}

/// `GET /console/leads/{id}`.
pub async fn lead(
    State(console): State<ConsoleState>,
    user: PageUser,
    Path(id): Path<String>,
    Query(query): Query<LeadQuery>,
) -> Result<Html<String>, PageError> {
    Ok(Html(
        lead_page(&console, &user, &id, None, query.rappel.is_some()).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct FollowUpForm {
    #[serde(default)]
    csrf: String,
    version: i64,
    suivi: String,
    #[serde(default)]
    note: String,
}

/// `POST /console/leads/{id}/suivi`: applied only if nobody changed the lead since the form was
/// shown; otherwise 412 and the current state, nothing overwritten.
pub async fn change_follow_up(
    State(console): State<ConsoleState>,
    user: PageUser,
    Path(raw_id): Path<String>,
    Form(form): Form<FollowUpForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf)?;
    let id = lead_id(&raw_id)?;
    let suivi = FollowUp::try_from(form.suivi.as_str())
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let note =
        Note::try_from(form.note.as_str()).map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let note = (!note.as_str().is_empty()).then_some(note);
    match console
        .store
        .change_follow_up(
            id,
            form.version,
            suivi,
            note.as_ref(),
            &user.principal.actor,
        )
        .await?
    {
        FollowUpChange::Applied(state) => {
            operators::audit_by(
                &console.store,
                &user.principal,
                AuditAction::FollowUpChanged,
                Some(id.to_string()),
                Some(format!(
                    "suivi={} version={}",
                    suivi.as_str(),
                    state.version
                )),
            )
            .await;
            Ok(Redirect::to(&format!("/console/leads/{id}")).into_response())
        }
        FollowUpChange::Stale(_) => {
            let message = "Quelqu'un d'autre a modifié ce lead pendant que vous l'éditiez. \
                           Votre modification n'a pas été enregistrée : voici l'état actuel, \
                           recommencez si elle est toujours utile.";
            let page = lead_page(&console, &user, &raw_id, Some(message), false).await?;
            Ok((StatusCode::PRECONDITION_FAILED, Html(page)).into_response())
        }
        FollowUpChange::NotFound => Err(ConsoleError::NotFound.into()),
    }
}

fn erase_page(user: &PageUser, alert: Option<&str>) -> String {
    let alert = alert.map_or_else(String::new, |m| {
        format!(r#"<p class="error" role="alert">{}</p>"#, Esc(m))
    });
    layout(
        &chrome("Effacer un appelant", user),
        &format!(
            r#"<h1>Effacer un appelant (Loi 25)</h1>{alert}
<p>Efface définitivement, dans la base de données, tous les leads, appels, événements traités, alertes et écritures en attente de ce numéro, puis supprime chez Twilio ses messages vocaux, ses journaux d'appels et les SMS d'alerte envoyés à son sujet, et chez Vapi ses appels (enregistrement, transcription). Irréversible.</p>
<form method="post" action="/console/erase" class="card">
<input type="hidden" name="csrf" value="{}">
<label for="phone">Numéro de téléphone de l'appelant</label>
<input id="phone" name="phone" type="tel" autocomplete="off" required>
<label for="confirm">Tapez EFFACER pour confirmer</label>
<input id="confirm" name="confirm" type="text" autocomplete="off" required>
<button type="submit" class="danger">Effacer définitivement</button>
</form>"#,
            Esc(&user.csrf)
        ),
    )
}

/// `GET /console/erase` (administrators).
pub async fn erase_form(user: PageUser) -> Result<Html<String>, PageError> {
    user.require_admin()?;
    Ok(Html(erase_page(&user, None)))
}

#[derive(Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    csrf: String,
    phone: String,
    confirm: String,
}

impl std::fmt::Debug for EraseForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EraseForm")
    }
}

/// `POST /console/erase` (administrators, typed confirmation): audited with the erased lead ids
/// and counts, never the number.
pub async fn erase(
    State(console): State<ConsoleState>,
    user: PageUser,
    Form(form): Form<EraseForm>,
) -> Result<Response, PageError> {
    user.require_admin()?;
    user.check_csrf(&form.csrf)?;
    let phone = match erasure_target(&form.phone, &form.confirm) {
        Ok(phone) => phone,
        Err(error) => {
            let message = match error {
                ConsoleError::BadRequest(_) if form.confirm.trim() != "EFFACER" => {
                    "Tapez EFFACER pour confirmer."
                }
                _ => "Ce numéro n'est pas un numéro nord-américain valide.",
            };
            return Ok((
                StatusCode::BAD_REQUEST,
                Html(erase_page(&user, Some(message))),
            )
                .into_response());
        }
    };
    let report = erase_and_audit(&console, &user.principal, &phone).await?;
    Ok(Html(super::erasure::result_page(
        &chrome("Appelant effacé", &user),
        &report,
    ))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Entries older than this one (the previous page's last).
    before: Option<String>,
}

/// `GET /console/audit` (administrators): the log, newest first, [`AUDIT_PAGE`] entries a page;
/// "Plus anciennes" pages on (`?before=ID`), so no entry is ever out of reach.
pub async fn audit(
    State(console): State<ConsoleState>,
    user: PageUser,
    Query(query): Query<AuditQuery>,
) -> Result<Html<String>, PageError> {
    user.require_admin()?;
    let before = match query.before.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| ConsoleError::BadRequest("before is an entry number".to_owned()))?,
        ),
    };
    let entries = console.store.audit_page(before, AUDIT_PAGE + 1).await?;
    let more = entries.len() > AUDIT_PAGE;
    let entries = &entries[..entries.len().min(AUDIT_PAGE)];
    let rows: String = entries
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.at.map(local_time).unwrap_or_default(),
                Esc(&e.actor),
                e.action.as_str(),
                e.count,
                or_dash(e.client.as_deref()),
                or_dash(e.target.as_deref()),
                or_dash(e.detail.as_deref()),
            )
        })
        .collect::<Vec<String>>()
        .concat();
    let next = match entries.last().and_then(|e| e.id) {
        Some(last) if more => format!(
            r#"<p><a rel="next" href="/console/audit?before={last}">Plus anciennes</a></p>"#
        ),
        _ => String::new(),
    };
    let first = if before.is_some() {
        r#"<p><a href="/console/audit">Les plus récentes</a></p>"#
    } else {
        ""
    };
    let body = format!(
        r#"<h1>Journal d'audit</h1>{first}
<div class="table"><table><caption>Actions, les plus récentes d'abord ({AUDIT_PAGE} par page)</caption><thead><tr><th scope="col">Quand</th><th scope="col">Qui</th><th scope="col">Action</th><th scope="col">Fois</th><th scope="col">Adresse</th><th scope="col">Identifiants</th><th scope="col">Détail</th></tr></thead><tbody>{rows}</tbody></table></div>{next}"#
    );
    Ok(Html(layout(&chrome("Journal d'audit", &user), &body)))
}
