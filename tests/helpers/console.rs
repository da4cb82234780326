//! Console test helpers: operators created in the app's store, a browser-like client that does
//! not follow redirects, login, the CSRF token of a page, leads planted in the store.

use myriam::domain::{LeadId, LeadStatus, PhoneNumber};
use myriam::operators::{self, NewPassword};
use myriam::qualification::{Address, Description, Lead, PersonName, ServiceType};
use myriam::store::Store;
use myriam::store::console::{Email, Role};
use secrecy::SecretString;

use super::TestApp;

pub const PASSWORD: &str = "Érable-rouge-2026!";

/// A client that shows redirects instead of following them, and keeps no cookies of its own.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Adds an operator with [`PASSWORD`].
pub async fn add_operator(app: &TestApp, email: &str, role: Role) {
    let password = NewPassword::try_from(SecretString::from(PASSWORD.to_owned())).unwrap();
    operators::add(&app.store, Email::try_from(email).unwrap(), role, &password)
        .await
        .unwrap();
}

/// A signed-in browser: the session cookie (`name=value`) and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// An urlencoded form body.
pub fn form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

pub async fn post_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    post_login_from(app, std::net::IpAddr::from([127, 0, 0, 1]), email, password).await
}

/// A login posted from `from`, a loopback address (`127.x.y.z`): another client address.
pub async fn post_login_from(
    app: &TestApp,
    from: std::net::IpAddr,
    email: &str,
    password: &str,
) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .unwrap()
        .post(app.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("email", email), ("password", password)]))
        .send()
        .await
        .unwrap()
}

/// Logs in and reads the CSRF token from the leads page.
pub async fn login(app: &TestApp, email: &str) -> Session {
    let response = post_login(app, email, PASSWORD).await;
    assert_eq!(response.status(), 303, "login of {email}");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = get(app, "/console/leads", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    Session {
        csrf: csrf_of(&html),
        cookie,
    }
}

/// The value of the page's first `name="csrf"` field.
pub fn csrf_of(html: &str) -> String {
    let needle = r#"name="csrf" value=""#;
    let start = html.find(needle).expect("a csrf field") + needle.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

pub async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

pub async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(app.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(self::form(fields))
        .send()
        .await
        .unwrap()
}

/// A qualified lead with every field, planted in the store.
pub async fn plant_lead(
    store: &impl Store,
    name: &str,
    phone: &str,
    address: &str,
    urgent: bool,
) -> Lead {
    let mut lead = Lead::new(LeadId::new());
    lead.nom_complet = Some(PersonName::try_from(name).unwrap());
    lead.telephone = Some(PhoneNumber::try_from(phone).unwrap());
    // As heard: a qualified lead's number was answered.
    lead.telephone_raw = Some(phone.to_owned());
    lead.adresse_complete = Some(Address::try_from(address).unwrap());
    lead.type_service = Some(ServiceType::Abattage);
    lead.description =
        Some(Description::try_from("Un grand érable penche vers la maison").unwrap());
    lead.urgence = Some(urgent);
    lead.status = LeadStatus::Qualifie;
    assert_eq!(
        store.save_lead(&lead).await.unwrap(),
        myriam::store::Saved::Applied
    );
    lead
}
