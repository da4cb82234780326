//! `/console/profil`: the signed-in operator's own page — their e-mail, role, and their own
//! phone, where a callback (Rappeler) rings first. The form posts the session's CSRF token;
//! cross-site posts are refused by the router's layer; a change is audited (`phone_changed`).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::PageUser;
use super::error::{ConsoleError, PageError};
use super::html::{Chrome, Esc, layout};
use super::state::ConsoleState;
use crate::domain::PhoneNumber;
use crate::operators::{self, OperatorError};
use crate::store::console::{ConsoleStore as _, Email};

fn page(user: &PageUser, phone: &str, message: Option<(&str, bool)>) -> String {
    let message = message.map_or_else(String::new, |(text, ok)| {
        if ok {
            format!(r#"<p class="notice" role="status">{}</p>"#, Esc(text))
        } else {
            format!(r#"<p class="error" role="alert">{}</p>"#, Esc(text))
        }
    });
    let body = format!(
        r#"<h1>Mon profil</h1>{message}
<dl class="fields"><dt>Courriel</dt><dd>{email}</dd><dt>Rôle</dt><dd>{role}</dd></dl>
<form method="post" action="/console/profil" class="card">
<input type="hidden" name="csrf" value="{csrf}">
<label for="phone">Mon numéro de téléphone (pour les rappels en un clic)</label>
<input id="phone" name="phone" type="tel" autocomplete="tel" value="{phone}" aria-describedby="phone-help">
<p id="phone-help" class="muted">Un numéro nord-américain, par exemple 514 555-0142. Laissez vide pour le retirer.</p>
<button type="submit">Enregistrer</button>
</form>"#,
        email = Esc(&user.principal.actor),
        role = if user.principal.is_admin() {
            "administrateur"
        } else {
            "personnel"
        },
        csrf = Esc(&user.csrf),
        phone = Esc(phone),
    );
    layout(
        &Chrome {
            title: "Mon profil",
            user: Some((&user.principal.actor, &user.csrf)),
            admin: user.principal.is_admin(),
        },
        &body,
    )
}

/// The operator's e-mail (an API token's principal is not an operator).
fn email(user: &PageUser) -> Result<Email, ConsoleError> {
    Email::try_from(user.principal.actor.as_str()).map_err(|_| ConsoleError::Forbidden)
}

#[derive(Debug, Default, Deserialize)]
pub struct ProfileQuery {
    #[serde(default)]
    ok: Option<String>,
}

/// `GET /console/profil`.
pub async fn show(
    State(console): State<ConsoleState>,
    user: PageUser,
    Query(query): Query<ProfileQuery>,
) -> Result<Html<String>, PageError> {
    let operator = console
        .store
        .operator_by_email(&email(&user)?)
        .await?
        .ok_or(ConsoleError::Forbidden)?;
    let phone = operator
        .phone
        .as_deref()
        .and_then(|p| PhoneNumber::try_from(p).ok())
        .map(|p| p.readable())
        .unwrap_or_default();
    let saved = query.ok.is_some().then_some(("Numéro enregistré.", true));
    Ok(Html(page(&user, &phone, saved)))
}

#[derive(Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
}

impl std::fmt::Debug for PhoneForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneForm")
    }
}

/// `POST /console/profil`: sets (or, empty, clears) the operator's own phone.
pub async fn save(
    State(console): State<ConsoleState>,
    user: PageUser,
    Form(form): Form<PhoneForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf)?;
    let email = email(&user)?;
    let raw = form.phone.trim();
    let phone = if raw.is_empty() {
        None
    } else if let Ok(phone) = PhoneNumber::try_from(raw) {
        Some(phone)
    } else {
        let message =
            "Ce numéro n'est pas un numéro nord-américain valide (par exemple 514 555-0142).";
        return Ok((
            StatusCode::BAD_REQUEST,
            Html(page(&user, raw, Some((message, false)))),
        )
            .into_response());
    };
    match operators::set_phone(&console.store, &user.principal, &email, phone.as_ref()).await {
        Ok(()) => Ok(Redirect::to("/console/profil?ok=1").into_response()),
        Err(OperatorError::Store(e)) => Err(ConsoleError::Store(e).into()),
        Err(_) => Err(ConsoleError::Forbidden.into()),
    }
}
