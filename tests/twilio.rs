//! Twilio webhooks over real HTTP: signatures per environment and behind a proxy, bad input, the
//! speech IVR end to end in French and English, retries that change nothing, status callbacks.

mod helpers;

use helpers::{TestApp, spawn_app_with};
use myriam::config::{PublicBaseUrl, Settings};
use myriam::domain::{CallSid, LeadStatus};
use myriam::environment::Environment;
use myriam::store::Store;
use myriam::twilio::signature::{sign, signed_data};
use myriam::twilio::twiml;
use secrecy::SecretString;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const PUBLIC: &str = "https://Myriam.bp-emondage.test";

fn production(s: &mut Settings) {
    s.environment = Environment::Production;
    s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
    s.twilio.account_sid = Some(ACCOUNT.to_owned());
    // The public URL differs from the bind address, as behind a proxy or tunnel.
    s.public_base_url = Some(PublicBaseUrl::new(PUBLIC));
}

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

/// Plays Twilio: posts forms to the gateway, signed over the public URL.
struct Twilio<'a> {
    app: &'a TestApp,
    base: Option<&'a str>,
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Twilio<'_> {
    /// `target` is the path and query Twilio requests (as in a TwiML action).
    async fn post(&self, target: &str, params: &[(&str, &str)], signature: Sig) -> Answer {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let mut request = self
            .app
            .client
            .post(self.app.url(target))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let url = format!("{}{target}", self.base.unwrap_or(PUBLIC));
        match signature {
            Sig::Good => {
                request = request.header(
                    "x-twilio-signature",
                    sign(TOKEN, &signed_data(&url, &owned)),
                );
            }
            Sig::Wrong => {
                request = request.header(
                    "x-twilio-signature",
                    sign("wrong-token", &signed_data(&url, &owned)),
                );
            }
            Sig::None => {}
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: response.text().await.unwrap(),
        }
    }
}

#[derive(Clone, Copy)]
enum Sig {
    Good,
    Wrong,
    None,
}

/// One request Twilio made: target, form fields, and the TwiML answered.
type Exchange = (String, Vec<(&'static str, String)>, String);

fn voice_params(call: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CallSid", call.to_owned()),
        ("AccountSid", ACCOUNT.to_owned()),
        ("From", "+15145550199".to_owned()),
        ("To", "+14505550100".to_owned()),
        ("CallStatus", "ringing".to_owned()),
        ("Direction", "inbound".to_owned()),
        ("ApiVersion", "2010-04-01".to_owned()),
        ("Caller", "+15145550199".to_owned()),
    ]
}

fn refs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The `<Gather action>` of a TwiML answer, as a path and query relative to the public base.
fn action(twiml: &str) -> Option<String> {
    let url = twiml::gather_action(twiml)?;
    Some(url.strip_prefix(PUBLIC).map_or(url.clone(), str::to_owned))
}

/// Everything Myriam says in a TwiML answer.
fn said(twiml: &str) -> String {
    twiml::spoken_lines(twiml).join(" ")
}

#[tokio::test]
async fn production_requires_a_valid_signature_over_the_public_url() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let params = voice_params(&sid(1));

    let ok = twilio
        .post("/twilio/voice", &refs(&params), Sig::Good)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.content_type, "text/xml; charset=utf-8");
    assert!(
        ok.body
            .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather")
    );
    assert!(
        said(&ok.body).starts_with(
            "Bonjour, vous parlez à Myriam, l'assistante virtuelle de BP Émondage; l'appel peut être enregistré pour traiter votre demande."
        ),
        "{}",
        ok.body
    );
    assert_eq!(
        action(&ok.body).as_deref(),
        Some("/twilio/gather?turn=1&silence=0")
    );

    let unsigned = twilio
        .post("/twilio/voice", &refs(&params), Sig::None)
        .await;
    assert_eq!(
        (unsigned.status, unsigned.body.as_str()),
        (401, "missing X-Twilio-Signature\n")
    );
    let wrong = twilio
        .post("/twilio/voice", &refs(&params), Sig::Wrong)
        .await;
    assert_eq!(
        (wrong.status, wrong.body.as_str()),
        (403, "invalid X-Twilio-Signature\n")
    );

    // Signed over the address the gateway listens on instead of the public URL: refused.
    let local = format!("http://{}", app.addr);
    let behind = Twilio {
        app: &app,
        base: Some(&local),
    };
    assert_eq!(
        behind
            .post("/twilio/voice", &refs(&params), Sig::Good)
            .await
            .status,
        403
    );

    // Every Twilio route is protected.
    for route in ["/twilio/gather", "/twilio/status", "/twilio/stream-ended"] {
        assert_eq!(
            twilio.post(route, &refs(&params), Sig::None).await.status,
            401,
            "{route}"
        );
    }
}

#[tokio::test]
async fn signatures_accept_the_default_port_variant() {
    let app = spawn_app_with(|s| {
        production(s);
        s.public_base_url = Some(PublicBaseUrl::new("https://Myriam.bp-emondage.test:443"));
    })
    .await;
    // Twilio signed without the port.
    let twilio = Twilio {
        app: &app,
        base: Some(PUBLIC),
    };
    let answer = twilio
        .post("/twilio/voice", &refs(&voice_params(&sid(2))), Sig::Good)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn the_bypass_exists_only_in_development_with_the_flag_and_in_test() {
    let params = voice_params(&sid(3));
    for (environment, flag, expected) in [
        (Environment::Development, true, 200),
        (Environment::Development, false, 401),
        (Environment::Test, false, 200),
        (Environment::Production, true, 401),
    ] {
        let app = spawn_app_with(|s| {
            production(s);
            s.environment = environment;
            s.twilio.test_mode = flag;
        })
        .await;
        let twilio = Twilio {
            app: &app,
            base: None,
        };
        let answer = twilio
            .post("/twilio/voice", &refs(&params), Sig::None)
            .await;
        assert_eq!(answer.status, expected, "{environment:?} flag={flag}");
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };

    let json = app
        .client
        .post(app.url("/twilio/voice"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    assert_eq!(
        json.text().await.unwrap(),
        "expected application/x-www-form-urlencoded\n"
    );

    let no_sid = twilio
        .post("/twilio/voice", &[("AccountSid", ACCOUNT)], Sig::Good)
        .await;
    assert_eq!(
        (no_sid.status, no_sid.body.as_str()),
        (400, "missing CallSid\n")
    );
    let bad_sid = twilio
        .post(
            "/twilio/voice",
            &[("CallSid", "CA123"), ("AccountSid", ACCOUNT)],
            Sig::Good,
        )
        .await;
    assert_eq!(
        (bad_sid.status, bad_sid.body.as_str()),
        (400, "malformed CallSid\n")
    );

    let mut other = voice_params(&sid(4));
    other[1].1 = "ACffffffffffffffffffffffffffffffff".to_owned();
    let wrong_account = twilio.post("/twilio/voice", &refs(&other), Sig::Good).await;
    assert_eq!(
        (wrong_account.status, wrong_account.body.as_str()),
        (403, "AccountSid is not this account's\n")
    );

    let huge = "x".repeat(70 * 1024);
    let too_big = twilio
        .post(
            "/twilio/voice",
            &[("CallSid", &sid(5)), ("Junk", &huge)],
            Sig::Good,
        )
        .await;
    assert_eq!(too_big.status, 413);

    // Garbage form bytes are decoded leniently and still need a valid signature.
    let garbage = app
        .client
        .post(app.url("/twilio/gather"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "AAAA")
        .body(vec![0xff, 0xfe, b'&', b'=', b'%', b'z'])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 403);
}

/// Plays a whole call; returns every request made (target, params) and Myriam's lines.
async fn play_call(
    twilio: &Twilio<'_>,
    call: &str,
    answers: &[&str],
) -> (Vec<Exchange>, Vec<String>) {
    let mut requests = Vec::new();
    let mut lines = Vec::new();
    let params = voice_params(call);
    let first = twilio
        .post("/twilio/voice", &refs(&params), Sig::Good)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let retry = twilio
        .post("/twilio/voice", &refs(&params), Sig::Good)
        .await;
    assert_eq!(
        retry.body, first.body,
        "a retried incoming call gets the same TwiML"
    );
    requests.push(("/twilio/voice".to_owned(), params, first.body.clone()));
    lines.push(said(&first.body));
    let mut next = action(&first.body);
    for answer in answers {
        let target = next.clone().expect("a Gather to answer");
        let params = vec![
            ("CallSid", call.to_owned()),
            ("AccountSid", ACCOUNT.to_owned()),
            ("SpeechResult", (*answer).to_owned()),
            ("Confidence", "0.91".to_owned()),
        ];
        let reply = twilio.post(&target, &refs(&params), Sig::Good).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        // Twilio retries the same webhook: the same TwiML, and the answer is not applied twice.
        let retry = twilio.post(&target, &refs(&params), Sig::Good).await;
        assert_eq!(
            retry.body, reply.body,
            "a retry of {target} must get the same TwiML"
        );
        lines.push(said(&reply.body));
        next = action(&reply.body);
        requests.push((target, params, reply.body));
    }
    assert!(next.is_none(), "the call should end after the last answer");
    assert!(requests.last().unwrap().2.ends_with("<Hangup/></Response>"));
    let status = vec![
        ("CallSid", call.to_owned()),
        ("AccountSid", ACCOUNT.to_owned()),
        ("CallStatus", "completed".to_owned()),
        ("CallDuration", "95".to_owned()),
        ("SequenceNumber", "3".to_owned()),
    ];
    let done = twilio
        .post("/twilio/status", &refs(&status), Sig::Good)
        .await;
    assert_eq!(done.status, 204);
    requests.push(("/twilio/status".to_owned(), status, String::new()));
    (requests, lines)
}

/// Replays every request of a finished call: nothing in the store may change.
async fn replay_changes_nothing(
    app: &TestApp,
    twilio: &Twilio<'_>,
    call: &str,
    requests: &[Exchange],
) {
    let sid = CallSid::try_from(call).unwrap();
    let before_lead = app
        .state_store()
        .find_lead_by_call(&sid)
        .await
        .unwrap()
        .unwrap();
    let before_call = app.state_store().get_call(&sid).await.unwrap().unwrap();
    for (target, params, _) in requests {
        let again = twilio.post(target, &refs(params), Sig::Good).await;
        assert!(
            again.status == 200 || again.status == 204,
            "{target}: {}",
            again.status
        );
    }
    let after_lead = app
        .state_store()
        .find_lead_by_call(&sid)
        .await
        .unwrap()
        .unwrap();
    let after_call = app.state_store().get_call(&sid).await.unwrap().unwrap();
    assert_eq!(after_lead.conversation, before_lead.conversation);
    assert_eq!(after_lead.data(), before_lead.data());
    assert_eq!(after_call.fields, before_call.fields);
}

#[tokio::test]
async fn a_full_french_call_qualifies_the_lead_and_replays_change_nothing() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(10);
    let (requests, lines) = play_call(
        &twilio,
        &call,
        &[
            "euh je m'appelle Marie-Ève Côté",
            "oui c'est ça",
            "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
            "de l'élagage",
            "un gros érable penche vers la maison",
            "non ça peut attendre",
        ],
    )
    .await;
    assert_eq!(
        lines[1],
        "Merci, Marie-Ève. Est-ce qu'on peut vous rappeler au 5 1 4, 5 5 5, 0 1 9 9?"
    );
    assert!(lines[6].starts_with("Merci, Marie-Ève Côté. Je récapitule : on vous rappelle au 5 1 4, 5 5 5, 0 1 9 9, pour de l'élagage."), "{}", lines[6]);

    let sid = CallSid::try_from(call.as_str()).unwrap();
    let lead = app
        .state_store()
        .find_lead_by_call(&sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, LeadStatus::Qualifie);
    let data = serde_json::to_value(lead.data()).unwrap();
    assert_eq!(data["nom_complet"], "Marie-Ève Côté");
    assert_eq!(data["telephone"], "+15145550199");
    assert_eq!(
        data["adresse_complete"],
        "4567 boulevard Saint-Laurent Montréal H2X 1Y4"
    );
    assert_eq!(data["type_service"], "elagage");
    assert_eq!(data["description"], "un gros érable penche vers la maison");
    assert_eq!(data["urgence"], false);
    let record = app.state_store().get_call(&sid).await.unwrap().unwrap();
    assert_eq!(record.fields.status.as_deref(), Some("completed"));
    assert_eq!(record.fields.duration, Some(95));
    assert_eq!(record.fields.from_number.as_deref(), Some("+15145550199"));

    replay_changes_nothing(&app, &twilio, &call, &requests).await;
}

#[tokio::test]
async fn a_full_english_call_qualifies_the_lead() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(11);
    let (requests, lines) = play_call(
        &twilio,
        &call,
        &[
            "hi my name is John Smith",
            "no",
            "four one six, five five five, twelve thirty four",
            "55 Maple Street Westmount",
            "I need a stump removed",
            "old oak stump in the back yard",
            "yes it is urgent",
        ],
    )
    .await;
    assert!(lines[1].starts_with("Thank you, John."), "{}", lines[1]);
    assert!(
        requests[1].2.contains("language=\"en-US\""),
        "Gather switches to English"
    );
    let sid = CallSid::try_from(call.as_str()).unwrap();
    let lead = app
        .state_store()
        .find_lead_by_call(&sid)
        .await
        .unwrap()
        .unwrap();
    let data = serde_json::to_value(lead.data()).unwrap();
    assert_eq!(data["status"], "qualifie");
    assert_eq!(data["telephone"], "+14165551234");
    assert_eq!(data["type_service"], "essouchement");
    assert_eq!(data["urgence"], true);
    assert_eq!(data["language"], "en");
    replay_changes_nothing(&app, &twilio, &call, &requests).await;
}

#[tokio::test]
async fn silence_is_reprompted_twice_then_the_call_ends_with_a_callback_offer() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(12);
    let first = twilio
        .post("/twilio/voice", &refs(&voice_params(&call)), Sig::Good)
        .await;
    let mut target = action(&first.body).unwrap();
    let params = [("CallSid", call.as_str()), ("AccountSid", ACCOUNT)];
    for expected in [
        "/twilio/gather?turn=1&silence=1",
        "/twilio/gather?turn=1&silence=2",
    ] {
        let reply = twilio.post(&target, &params, Sig::Good).await;
        assert!(
            said(&reply.body).starts_with("Je n'ai rien entendu. Pour commencer"),
            "{}",
            reply.body
        );
        target = action(&reply.body).unwrap();
        assert_eq!(target, expected);
    }
    let last = twilio.post(&target, &params, Sig::Good).await;
    assert!(last.body.ends_with("<Hangup/></Response>"), "{}", last.body);
    assert!(
        said(&last.body).contains("vous rappellera au 5 1 4, 5 5 5, 0 1 9 9"),
        "{}",
        last.body
    );
    let lead = app
        .state_store()
        .find_lead_by_call(&CallSid::try_from(call.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, LeadStatus::Abandonne);
}

#[tokio::test]
async fn status_callbacks_never_go_back_and_end_incomplete_leads() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(13);
    twilio
        .post("/twilio/voice", &refs(&voice_params(&call)), Sig::Good)
        .await;
    let status = |s: &'static str, seq: &'static str| {
        vec![
            ("CallSid", call.clone()),
            ("AccountSid", ACCOUNT.to_owned()),
            ("CallStatus", s.to_owned()),
            ("SequenceNumber", seq.to_owned()),
        ]
    };
    assert_eq!(
        twilio
            .post(
                "/twilio/status",
                &refs(&status("completed", "2")),
                Sig::Good
            )
            .await
            .status,
        204
    );
    // A late "in-progress" arrives after "completed".
    assert_eq!(
        twilio
            .post(
                "/twilio/status",
                &refs(&status("in-progress", "1")),
                Sig::Good
            )
            .await
            .status,
        204
    );
    let sid = CallSid::try_from(call.as_str()).unwrap();
    let record = app.state_store().get_call(&sid).await.unwrap().unwrap();
    assert_eq!(record.fields.status.as_deref(), Some("completed"));
    let lead = app
        .state_store()
        .find_lead_by_call(&sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lead.status,
        LeadStatus::Abandonne,
        "hung up before the six answers"
    );
}

/// A call this instance does not know (another instance started it and Supabase is unreachable,
/// or its start is not replayed yet): the answer is held, a pause then sent again through the
/// load balancer with the answer carried in the URL (Twilio's `<Redirect>` posts only the call's
/// parameters), up to `MAX_HOLDS` times; nobody knowing it by then, a fresh qualification starts
/// rather than failing the caller.
#[tokio::test]
async fn an_unknown_call_at_gather_is_held_then_starts_a_fresh_qualification() {
    use myriam::ivr::MAX_HOLDS;
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(14);
    let sid = CallSid::try_from(call.as_str()).unwrap();
    let mut target = "/twilio/gather?turn=7&silence=0".to_owned();
    let mut params = vec![
        ("CallSid", call.as_str()),
        ("AccountSid", ACCOUNT),
        ("SpeechResult", "allo? c'est Zoé"),
    ];
    for held in 1..=MAX_HOLDS {
        let reply = twilio.post(&target, &params, Sig::Good).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains("<Pause length=\"1\"/>"),
            "{}",
            reply.body
        );
        let url = twiml::redirect_target(&reply.body).expect("held: a Redirect");
        target = url.strip_prefix(PUBLIC).expect("absolute").to_owned();
        assert_eq!(
            target,
            format!("/twilio/gather?turn=7&silence=0&held={held}&speech=allo%3F+c%27est+Zo%C3%A9"),
            "the same turn, the answer carried"
        );
        // What `<Redirect>` posts: the call's parameters, no SpeechResult.
        params = vec![("CallSid", call.as_str()), ("AccountSid", ACCOUNT)];
        assert!(
            app.state_store()
                .find_lead_by_call(&sid)
                .await
                .unwrap()
                .is_none(),
            "nothing started while held"
        );
    }
    let reply = twilio.post(&target, &params, Sig::Good).await;
    assert_eq!(reply.status, 200);
    assert!(
        twiml::redirect_target(&reply.body).is_none(),
        "held no more"
    );
    assert!(said(&reply.body).starts_with("Bonjour, vous parlez à Myriam, l'assistante virtuelle"));
    assert!(
        app.state_store()
            .find_lead_by_call(&sid)
            .await
            .unwrap()
            .is_some()
    );
}

/// A held answer that reaches an instance that knows the call is applied as if it had come
/// straight there, the answer read from the URL.
#[tokio::test]
async fn a_held_answer_is_applied_where_the_call_is_known() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(15);
    let first = twilio
        .post("/twilio/voice", &refs(&voice_params(&call)), Sig::Good)
        .await;
    let gather = action(&first.body).unwrap();
    assert_eq!(gather, "/twilio/gather?turn=1&silence=0");
    // Ahead of what this instance knows (turn 3): held, the answer carried.
    let ahead = twilio
        .post(
            "/twilio/gather?turn=3&silence=0",
            &[
                ("CallSid", call.as_str()),
                ("AccountSid", ACCOUNT),
                ("Digits", "0"),
            ],
            Sig::Good,
        )
        .await;
    assert_eq!(
        twiml::redirect_target(&ahead.body),
        Some(format!(
            "{PUBLIC}/twilio/gather?turn=3&silence=0&held=1&digits=0"
        )),
        "{}",
        ahead.body
    );
    // The answer to turn 1, held once elsewhere, comes back here.
    let reply = twilio
        .post(
            "/twilio/gather?turn=1&silence=0&held=1&speech=je+m%27appelle+Marie-%C3%88ve+C%C3%B4t%C3%A9",
            &[("CallSid", call.as_str()), ("AccountSid", ACCOUNT)],
            Sig::Good,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        said(&reply.body).starts_with("Merci, Marie-Ève."),
        "{}",
        reply.body
    );
    let lead = app
        .state_store()
        .find_lead_by_call(&CallSid::try_from(call.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.nom_complet.unwrap().as_str(), "Marie-Ève Côté");
    assert_eq!(
        lead.conversation.len(),
        3,
        "the opening, the answer, the next question"
    );
}

/// Twilio's `completed` is processed before the caller's last answer (the caller hung up right
/// after answering; another instance or a slower request took the callback first). The answer was
/// given during the call: it still qualifies the lead, as one instance taking it first would
/// have. An unfinished answer after the end is kept, and the lead stays abandoned. (On 5521a52
/// the lead stayed `abandonne` and the last answer was ignored.)
#[tokio::test]
async fn a_last_answer_processed_after_the_calls_end_still_qualifies_the_lead() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let answers = [
        "euh je m'appelle Marie-Ève Côté",
        "oui c'est ça",
        "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
        "de l'élagage",
        "un gros érable penche vers la maison",
        "non ça peut attendre",
    ];
    for (n, answered_before_end) in [(16u32, 5usize), (17, 2), (18, 0)] {
        let call = sid(n);
        let call_sid = CallSid::try_from(call.as_str()).unwrap();
        let first = twilio
            .post("/twilio/voice", &refs(&voice_params(&call)), Sig::Good)
            .await;
        let mut next = action(&first.body).unwrap();
        let answer = |text: &str| {
            vec![
                ("CallSid", call.clone()),
                ("AccountSid", ACCOUNT.to_owned()),
                ("SpeechResult", text.to_owned()),
            ]
        };
        for text in &answers[..answered_before_end] {
            let reply = twilio.post(&next, &refs(&answer(text)), Sig::Good).await;
            next = action(&reply.body).unwrap();
        }
        let completed = vec![
            ("CallSid", call.clone()),
            ("AccountSid", ACCOUNT.to_owned()),
            ("CallStatus", "completed".to_owned()),
            ("SequenceNumber", "4".to_owned()),
        ];
        let done = twilio
            .post("/twilio/status", &refs(&completed), Sig::Good)
            .await;
        assert_eq!(done.status, 204);
        let store = app.state_store();
        let ended = store.find_lead_by_call(&call_sid).await.unwrap().unwrap();
        assert_eq!(ended.status, LeadStatus::Abandonne, "the end came first");
        // The answer to the question standing when the caller hung up.
        let late = answer(answers[answered_before_end]);
        let reply = twilio.post(&next, &refs(&late), Sig::Good).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let lead = store.find_lead_by_call(&call_sid).await.unwrap().unwrap();
        assert_eq!(
            lead.conversation.len(),
            ended.conversation.len() + 2,
            "the answer and Myriam's reply are kept"
        );
        if answered_before_end == 5 {
            assert_eq!(
                lead.status,
                LeadStatus::Qualifie,
                "the last answer qualifies"
            );
            assert_eq!(lead.urgence, Some(false));
        } else if answered_before_end == 2 {
            assert_eq!(
                lead.status,
                LeadStatus::Abandonne,
                "unfinished: still abandoned"
            );
            assert_eq!(
                lead.adresse_complete.unwrap().as_str(),
                "4567 boulevard Saint-Laurent Montréal H2X 1Y4"
            );
        }
        if answered_before_end == 0 {
            // Hung up during the greeting, the name processed after the end.
            assert_eq!(lead.status, LeadStatus::Abandonne);
            assert_eq!(lead.nom_complet.unwrap().as_str(), "Marie-Ève Côté");
        }
        // Twilio's retry of the same answer changes nothing more.
        let again = twilio.post(&next, &refs(&late), Sig::Good).await;
        assert_eq!(again.status, 200);
        let after = store.find_lead_by_call(&call_sid).await.unwrap().unwrap();
        assert_eq!(after.conversation, lead.conversation);
        assert_eq!(after.status, lead.status);
        let record = store.get_call(&call_sid).await.unwrap().unwrap();
        assert_eq!(record.fields.status.as_deref(), Some("completed"));
    }
}

#[tokio::test]
async fn stream_ended_continues_in_ivr_or_hangs_up() {
    let app = spawn_app_with(production).await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let call = sid(15);
    let first = twilio
        .post("/twilio/voice", &refs(&voice_params(&call)), Sig::Good)
        .await;
    let target = action(&first.body).unwrap();
    twilio
        .post(
            &target,
            &[
                ("CallSid", call.as_str()),
                ("AccountSid", ACCOUNT),
                ("SpeechResult", "Luc Ouellet"),
            ],
            Sig::Good,
        )
        .await;
    let params = [("CallSid", call.as_str()), ("AccountSid", ACCOUNT)];
    let ended = twilio
        .post("/twilio/stream-ended", &params, Sig::Good)
        .await;
    assert_eq!(ended.status, 200);
    assert_eq!(
        action(&ended.body).as_deref(),
        Some("/twilio/gather?turn=3&silence=0")
    );
    assert!(
        said(&ended.body).contains("Est-ce qu'on peut vous rappeler"),
        "{}",
        ended.body
    );
    let record = app
        .state_store()
        .get_call(&CallSid::try_from(call.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.fields.mode_reason.as_deref(), Some("stream_ended"));

    let unknown = twilio
        .post(
            "/twilio/stream-ended",
            &[("CallSid", sid(16).as_str()), ("AccountSid", ACCOUNT)],
            Sig::Good,
        )
        .await;
    assert!(
        unknown.body.ends_with("<Response><Hangup/></Response>"),
        "{}",
        unknown.body
    );
}

#[tokio::test]
async fn rejections_are_counted_by_reason() {
    let app = spawn_app_with(|s| {
        production(s);
        s.telemetry.prometheus_port = Some(0);
    })
    .await;
    let twilio = Twilio {
        app: &app,
        base: None,
    };
    let params = voice_params(&sid(20));
    twilio
        .post("/twilio/voice", &refs(&params), Sig::None)
        .await;
    twilio
        .post("/twilio/voice", &refs(&params), Sig::Wrong)
        .await;
    let metrics = app.scrape_metrics().await;
    for reason in ["missing", "mismatch"] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!(
                "myriam_twilio_signature_rejections_total{{reason=\"{reason}\"}}"
            ))),
            "{reason} not counted:\n{metrics}"
        );
    }
}
