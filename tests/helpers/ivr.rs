//! Twilio playing one call through the speech IVR against one or more gateway instances (test
//! settings: unsigned), following `<Gather action>` and held answers' `<Redirect>` as Twilio does:
//! each request goes to the instance `route` picks, as a load balancer would.

use myriam::twilio::twiml;

/// One call as Twilio sees it: its CallSid and the `<Gather action>` it answers next.
#[derive(Debug, Clone)]
pub struct IvrCall {
    pub sid: String,
    pub from: String,
    /// The path and query of the next `<Gather action>` (`None`: the call is over).
    pub next: Option<String>,
    /// How many times an answer was held (`<Redirect>`ed) on the way.
    pub holds: u32,
}

/// The path and query of a URL (relative URLs as they are).
fn path_of(url: &str) -> String {
    match url.find("://") {
        Some(scheme) => {
            let rest = &url[scheme + 3..];
            rest.find('/')
                .map_or("/".to_owned(), |i| rest[i..].to_owned())
        }
        None => url.to_owned(),
    }
}

impl IvrCall {
    pub fn new(sid: &str) -> Self {
        Self {
            sid: sid.to_owned(),
            from: "+15145550199".to_owned(),
            next: None,
            holds: 0,
        }
    }

    /// `POST /twilio/voice` to `base`; the TwiML.
    pub async fn voice(&mut self, client: &reqwest::Client, base: &str) -> String {
        let (status, body) = super::post_form(
            client,
            &format!("{base}/twilio/voice"),
            &self.voice_fields(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        self.next = twiml::gather_action(&body).map(|a| path_of(&a));
        body
    }

    pub fn voice_fields(&self) -> Vec<(&str, &str)> {
        vec![
            ("CallSid", self.sid.as_str()),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", self.from.as_str()),
            ("To", "+14505550100"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ]
    }

    /// The form of an answer to the current `<Gather>`.
    pub fn answer_fields<'a>(&'a self, speech: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("CallSid", self.sid.as_str()),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("SpeechResult", speech),
            ("Confidence", "0.9"),
        ]
    }

    /// Answers the current `<Gather>` with `speech`, each request (the answer, then every
    /// `<Redirect>` of a held answer) to the instance `route` picks; the final TwiML.
    pub async fn answer(
        &mut self,
        client: &reqwest::Client,
        mut route: impl FnMut() -> String,
        speech: &str,
    ) -> String {
        let target = self.next.clone().expect("a Gather to answer");
        let (status, mut body) = super::post_form(
            client,
            &format!("{}{target}", route()),
            &self.answer_fields(speech),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        while let Some(redirect) = twiml::redirect_target(&body) {
            self.holds += 1;
            let fields = [
                ("CallSid", self.sid.as_str()),
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ];
            let (status, next) = super::post_form(
                client,
                &format!("{}{}", route(), path_of(&redirect)),
                &fields,
            )
            .await;
            assert_eq!(status, 200, "{next}");
            body = next;
        }
        self.next = twiml::gather_action(&body).map(|a| path_of(&a));
        body
    }

    /// Twilio's status callback `status` (with a sequence number) to `base`.
    pub async fn status(&self, client: &reqwest::Client, base: &str, status: &str, seq: u32) {
        let seq = seq.to_string();
        let (code, body) = super::post_form(
            client,
            &format!("{base}/twilio/status"),
            &[
                ("CallSid", self.sid.as_str()),
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                ("CallStatus", status),
                ("CallDuration", "60"),
                ("SequenceNumber", seq.as_str()),
            ],
        )
        .await;
        assert_eq!(code, 204, "{body}");
    }
}

/// The six answers of a French call that qualifies (the caller ID confirmed).
pub const QUALIFYING: [&str; 6] = [
    "je m'appelle Marie-Ève Côté",
    "oui c'est ça",
    "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
    "de l'élagage",
    "un gros érable penche vers la maison",
    "non ça peut attendre",
];
