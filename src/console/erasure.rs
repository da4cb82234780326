//! An erasure (Québec Law 25), as the erase page and the API both carry it out
//! ([`erase_and_audit`]), and its pages: what it erased in the gateway's store, where each
//! deletion at Twilio and Vapi stands, and what cannot be erased from here (SMS already on staff
//! phones) with how to finish by hand. Server-rendered; reloading the status page is how an
//! operator follows the deletions being retried.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::Html;
use uuid::Uuid;

use super::auth::PageUser;
use super::error::{ConsoleError, PageError};
use super::html::{Chrome, Esc, layout};
use super::state::ConsoleState;
use crate::domain::PhoneNumber;
use crate::store::{RemoteErasure, RemoteErasures as _, RemoteService, RemoteStatus};

/// How long an erasure request waits for its remote deletions before it answers; what is not
/// done by then is retried in the background and shown as pending.
pub const REMOTE_ERASURE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What an erasure did: the rows removed, and where each remote deletion stands.
#[derive(Debug, Clone)]
pub struct ErasureReport {
    pub erasure: crate::store::console::Erasure,
    pub lead_ids: Vec<String>,
    pub remote: Vec<crate::store::RemoteErasure>,
}

impl ErasureReport {
    /// `(done, waiting, failed for good)` among the remote deletions.
    pub fn remote_counts(&self) -> (usize, usize, usize) {
        use crate::store::RemoteStatus;
        let count =
            |f: &dyn Fn(RemoteStatus) -> bool| self.remote.iter().filter(|r| f(r.status)).count();
        (
            count(&|s| s == RemoteStatus::Done),
            count(&|s| matches!(s, RemoteStatus::Pending | RemoteStatus::Claimed)),
            count(&|s| s == RemoteStatus::Dead),
        )
    }
}

/// Erases every record of `phone`, tries the deletions it owes at Twilio and Vapi for up to
/// [`REMOTE_ERASURE_WAIT`] (the rest is retried by the background eraser), and writes the audit
/// entry (the lead ids, the erasure's id and the counts, never caller data or remote ids): what
/// the erase page and the API both do.
pub async fn erase_and_audit(
    console: &ConsoleState,
    principal: &crate::operators::Principal,
    phone: &PhoneNumber,
) -> Result<ErasureReport, crate::store::StoreError> {
    use crate::store::RemoteErasures as _;
    use crate::store::console::ConsoleStore as _;
    let erasure = console.store.erase_caller(phone).await?;
    let ids: Vec<String> = erasure.lead_ids.iter().map(ToString::to_string).collect();
    let mut remote = Vec::new();
    if !erasure.remote.is_empty() {
        match tokio::time::timeout(REMOTE_ERASURE_WAIT, console.eraser.round(Some(erasure.id)))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, erasure_id = %erasure.id, "remote deletions left to the background eraser");
            }
            Err(_) => {
                tracing::warn!(erasure_id = %erasure.id, "remote deletions still running; left to the background eraser");
            }
        }
        console.eraser.wake();
        remote = console
            .store
            .remote_erasures_of(erasure.id)
            .await
            .unwrap_or_default();
    }
    let report = ErasureReport {
        erasure,
        lead_ids: ids,
        remote,
    };
    let (done, waiting, failed) = report.remote_counts();
    let e = &report.erasure;
    crate::operators::audit_by(
        &console.store,
        principal,
        crate::store::console::AuditAction::Erase,
        (!report.lead_ids.is_empty()).then(|| report.lead_ids.join(",")),
        Some(format!(
            "erasure={} leads={} calls={} events={} outbox={} dead_letters={} alerts={} \
             remote_deleted={done} remote_pending={waiting} remote_failed={failed} \
             sms_on_staff_phones={} (not erasable from here)",
            e.id,
            report.lead_ids.len(),
            e.calls,
            e.events,
            e.outbox,
            e.dead_letters,
            e.alerts,
            e.sms_sent,
        )),
    )
    .await;
    Ok(report)
}

/// Twilio's documentation of the Message resource's DELETE, for the logs an operator purges by
/// hand.
pub const TWILIO_MESSAGE_DELETE_DOC: &str =
    "https://www.twilio.com/docs/messaging/api/message-resource#delete-a-message-resource";

fn what(service: RemoteService) -> &'static str {
    match service {
        RemoteService::TwilioRecording => "Message vocal (enregistrement Twilio)",
        RemoteService::TwilioCall => "Journal d'appel Twilio",
        RemoteService::TwilioMessage => "SMS d'alerte au personnel (journal des messages Twilio)",
        RemoteService::VapiCall => "Appel Vapi (enregistrement et transcription)",
    }
}

fn state(row: &RemoteErasure) -> String {
    match row.status {
        RemoteStatus::Done => "Supprimé".to_owned(),
        RemoteStatus::Pending | RemoteStatus::Claimed => format!(
            "En attente : nouvel essai automatique{}",
            row.last_error
                .as_deref()
                .map(|e| format!(" (dernière erreur : {})", Esc(e)))
                .unwrap_or_default()
        ),
        RemoteStatus::Dead => format!(
            "Échec : à supprimer à la main ({})",
            Esc(row.last_error.as_deref().unwrap_or("refusé"))
        ),
    }
}

/// The table of remote deletions.
fn remote_table(rows: &[RemoteErasure]) -> String {
    if rows.is_empty() {
        return "<p>Rien à supprimer chez Twilio ni chez Vapi : aucun appel, message vocal ni SMS \
                d'alerte n'était associé à ce numéro.</p>"
            .to_owned();
    }
    let body = rows.iter().fold(String::new(), |mut out, r| {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            what(r.service),
            Esc(&r.remote_id),
            state(r)
        );
        out
    });
    format!(
        "<table><caption>Suppressions chez Twilio et Vapi</caption>\
         <thead><tr><th scope=\"col\">Donnée</th><th scope=\"col\">Identifiant</th>\
         <th scope=\"col\">État</th></tr></thead><tbody>{body}</tbody></table>"
    )
}

/// What cannot be erased from the gateway, and how to finish by hand.
fn not_erasable(sms_sent: usize) -> String {
    let phones = if sms_sent == 0 {
        "<li>Aucun SMS d'alerte n'avait été envoyé au personnel au sujet de cet appelant.</li>"
            .to_owned()
    } else {
        format!(
            "<li><strong>{sms_sent} SMS d'alerte</strong> ont été remis aux téléphones du \
             personnel : leur texte (nom, numéro, adresse) y reste. Demandez à chaque \
             destinataire de supprimer ces messages de son téléphone.</li>"
        )
    };
    format!(
        "<h2>Ce qui ne peut pas être effacé d'ici</h2><ul>{phones}\
         <li>Journaux de messages de Twilio : la passerelle supprime elle-même les SMS d'alerte \
         qu'elle a envoyés (tableau ci-dessus). Un SMS en échec se supprime dans la console \
         Twilio (Monitor → Logs → Messaging, ouvrir le message, Delete) ou par l'API \
         <code>DELETE /2010-04-01/Accounts/{{AccountSid}}/Messages/{{Sid}}.json</code> \
         (<a href=\"{TWILIO_MESSAGE_DELETE_DOC}\">documentation Twilio</a>). Twilio indique \
         qu'un enregistrement supprimé peut rester visible jusqu'à 14 jours dans ses \
         journaux.</li>\
         <li>Un appel, un journal ou un enregistrement en échec ci-dessus se supprime de même \
         dans la console Twilio (Monitor → Logs → Calls, ou Recordings) ou dans le tableau de \
         bord de Vapi (Call Logs).</li></ul>"
    )
}

/// The page after `POST /console/erase`.
pub fn result_page(chrome: &Chrome<'_>, report: &ErasureReport) -> String {
    let e = &report.erasure;
    let (done, waiting, failed) = report.remote_counts();
    let follow = if waiting + failed > 0 {
        format!(
            "<p><a href=\"/console/erasures/{}\">Suivre les suppressions en attente</a> \
             (cette page se met à jour à chaque visite).</p>",
            e.id
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Appelant effacé</h1>\
         <p role=\"status\">{} lead(s), {} appel(s), {} événement(s), {} écriture(s) en \
         attente, {} lettre(s) mortes et {} alerte(s) SMS effacés définitivement de la base de \
         Myriam. Chez Twilio et Vapi : {done} supprimé(s), {waiting} en attente, {failed} en \
         échec.</p>\
         <p>Le numéro est retenu sous forme de condensé (SHA-256) : une écriture retardée ou \
         rejouée ne peut pas faire revenir l'appelant. S'il rappelle, c'est un nouveau lead.</p>\
         {}{follow}{}<p>Numéro de la demande : <code>{}</code> (dans le \
         <a href=\"/console/audit\">journal</a>).</p>\
         <p><a href=\"/console/leads\">Retour aux leads</a></p>",
        report.lead_ids.len(),
        e.calls,
        e.events,
        e.outbox,
        e.dead_letters,
        e.alerts,
        remote_table(&report.remote),
        not_erasable(e.sms_sent),
        e.id,
    );
    layout(chrome, &body)
}

/// `GET /console/erasures/{id}` (administrators): where the remote deletions of an erasure
/// stand now.
pub async fn status(
    State(console): State<ConsoleState>,
    user: PageUser,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    user.require_admin()?;
    let id = Uuid::parse_str(id.trim()).map_err(|_| ConsoleError::NotFound)?;
    let rows = console.store.remote_erasures_of(id).await?;
    if rows.is_empty() {
        return Err(ConsoleError::NotFound.into());
    }
    let waiting = rows
        .iter()
        .filter(|r| matches!(r.status, RemoteStatus::Pending | RemoteStatus::Claimed))
        .count();
    let failed = rows
        .iter()
        .filter(|r| r.status == RemoteStatus::Dead)
        .count();
    let summary = if waiting + failed == 0 {
        "Tout est supprimé chez Twilio et Vapi.".to_owned()
    } else {
        format!("{waiting} suppression(s) en attente, {failed} en échec.")
    };
    let body = format!(
        "<h1>Effacement <code>{id}</code></h1><p role=\"status\">{summary}</p>{}\
         <p><a href=\"/console/audit\">Journal</a></p>",
        remote_table(&rows)
    );
    let chrome = Chrome {
        title: "Suivi d'un effacement",
        user: Some((&user.principal.actor, &user.csrf)),
        admin: user.principal.is_admin(),
    };
    Ok(Html(layout(&chrome, &body)))
}
