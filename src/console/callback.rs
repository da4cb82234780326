//! "Rappeler" on the lead page: the section that offers it (or says why not), and
//! `POST /console/leads/{id}/rappeler`, which asks Twilio to call the operator first
//! ([`crate::callback`]). Needs the session's CSRF token; cross-site posts are refused by the
//! router's layer; limited per operator (a 429 page with `Retry-After`).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::PageUser;
use super::error::{ConsoleError, PageError};
use super::html::{Chrome, Esc, layout};
use super::query::lead_id;
use crate::callback::{self, CallbackError};
use crate::domain::PhoneNumber;
use crate::qualification::Lead;
use crate::state::AppState;

/// The setting a callback lacks, in French, for the page.
fn missing_setting(name: &str) -> String {
    let what = match name {
        "BUSINESS_NUMBER" => "le numéro Twilio de l'entreprise",
        "PUBLIC_BASE_URL" => "l'adresse publique de la passerelle",
        _ => "les identifiants du compte Twilio",
    };
    format!(
        "Le rappel en un clic n'est pas configuré : il manque {} ({what}).",
        Esc(name)
    )
}

/// The lead page's section: the button, or why it is not there. `unavailable`: the missing
/// setting; `operator_phone`: the signed-in operator's own phone; `business`: `BUSINESS_NUMBER`.
pub fn section(
    lead: &Lead,
    csrf: &str,
    unavailable: Option<&str>,
    operator_phone: Option<&PhoneNumber>,
    business: Option<&PhoneNumber>,
    placed: bool,
) -> String {
    let body = match (unavailable, operator_phone, callback::lead_number(lead)) {
        (Some(name), _, _) => format!(r#"<p class="muted">{}</p>"#, missing_setting(name)),
        (None, None, _) => r#"<p class="muted">Pour rappeler en un clic, ajoutez d'abord votre numéro de téléphone dans <a href="/console/profil">votre profil</a>.</p>"#.to_owned(),
        (None, Some(_), None) => {
            r#"<p class="muted">Ce lead n'a pas de numéro de téléphone.</p>"#.to_owned()
        }
        (None, Some(mine), Some(theirs)) => format!(
            r#"<form method="post" action="/console/leads/{id}/rappeler" class="card">
<input type="hidden" name="csrf" value="{csrf}">
<p>Twilio appelle d'abord votre téléphone ({mine}). Répondez et appuyez sur 1 : Myriam compose alors le {theirs}, qui verra le numéro de l'entreprise{business}.</p>
<button type="submit">Rappeler</button>
</form>"#,
            id = lead.id,
            csrf = Esc(csrf),
            mine = Esc(&mine.readable()),
            theirs = Esc(&theirs.readable()),
            business = business.map_or_else(String::new, |b| format!(" ({})", Esc(&b.readable()))),
        ),
    };
    let notice = if placed {
        r#"<p class="notice" role="status">Appel lancé : votre téléphone va sonner. Répondez et appuyez sur 1.</p>"#
    } else {
        ""
    };
    format!(
        r#"<section aria-labelledby="h-rappel"><h2 id="h-rappel">Rappeler</h2>{notice}{body}</section>"#
    )
}

#[derive(Debug, Deserialize)]
pub struct CallbackForm {
    #[serde(default)]
    csrf: String,
}

/// A page saying why the callback was not placed, with its status (and `Retry-After`).
fn refusal(
    user: &PageUser,
    id: &str,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = format!(
        r#"<h1>Rappel non lancé</h1><p class="error" role="alert">{message}</p><p><a href="/console/leads/{id}">Retour au lead</a></p>"#,
        id = Esc(id)
    );
    let chrome = Chrome {
        title: "Rappel non lancé",
        user: Some((&user.principal.actor, &user.csrf)),
        admin: user.principal.is_admin(),
    };
    let mut response = (status, Html(layout(&chrome, &body))).into_response();
    if let Some(secs) = retry_after {
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// `POST /console/leads/{id}/rappeler`: Twilio calls the operator, who presses 1 to reach the
/// lead. On success, back to the lead page (303) with a notice.
pub async fn place(
    State(app): State<AppState>,
    user: PageUser,
    Path(raw_id): Path<String>,
    Form(form): Form<CallbackForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf)?;
    let id = lead_id(&raw_id)?;
    let result = app
        .callbacks
        .place(
            &app.store,
            &app.settings,
            app.twilio_rest.as_deref(),
            &user.principal,
            id,
        )
        .await;
    let id = id.to_string();
    Ok(match result {
        Ok(_) => Redirect::to(&format!("/console/leads/{id}?rappel=1")).into_response(),
        Err(CallbackError::RateLimited(wait)) => {
            let message = if wait.as_secs() > 60 {
                format!(
                    "Vous avez lancé {} rappels dans la dernière heure : c'est la limite. Réessayez plus tard.",
                    callback::HOURLY_LIMIT
                )
            } else {
                format!(
                    "Vous venez de lancer un rappel. Attendez {} secondes avant le suivant.",
                    wait.as_secs()
                )
            };
            refusal(
                &user,
                &id,
                StatusCode::TOO_MANY_REQUESTS,
                &message,
                Some(wait.as_secs()),
            )
        }
        Err(CallbackError::QueueFull) => refusal(
            &user,
            &id,
            StatusCode::SERVICE_UNAVAILABLE,
            "Trop de rappels sont en file en ce moment. Réessayez dans quelques secondes.",
            Some(5),
        ),
        Err(CallbackError::NotConfigured(name)) => refusal(
            &user,
            &id,
            StatusCode::SERVICE_UNAVAILABLE,
            &missing_setting(name),
            None,
        ),
        Err(CallbackError::NoOperatorPhone) => refusal(
            &user,
            &id,
            StatusCode::CONFLICT,
            r#"Ajoutez d'abord votre numéro de téléphone dans <a href="/console/profil">votre profil</a>."#,
            None,
        ),
        Err(CallbackError::NoLead) => return Err(ConsoleError::NotFound.into()),
        Err(CallbackError::NoLeadNumber) => refusal(
            &user,
            &id,
            StatusCode::CONFLICT,
            "Ce lead n'a pas de numéro de téléphone.",
            None,
        ),
        Err(CallbackError::Refused { code, .. }) => {
            tracing::warn!(?code, "Twilio refused a callback");
            refusal(
                &user,
                &id,
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Twilio a refusé l'appel (code {}). Vérifiez votre numéro et BUSINESS_NUMBER.",
                    code.map_or_else(|| "inconnu".to_owned(), |c| c.to_string())
                ),
                None,
            )
        }
        Err(CallbackError::Unknown(reason)) => {
            tracing::warn!(%reason, "callback outcome unknown");
            refusal(
                &user,
                &id,
                StatusCode::BAD_GATEWAY,
                "Twilio n'a pas confirmé l'appel. S'il ne sonne pas d'ici une minute, réessayez.",
                None,
            )
        }
        Err(CallbackError::Store(e)) => return Err(ConsoleError::Store(e).into()),
    })
}
