//! Issue 21: appointment text messages go to the provider's HTTP API (Twilio's Messages
//! resource) exactly as Twilio documents the request, short and in the patient's
//! language, and the provider's answers decide whether the outbox tries again.
//!
//! The provider is a local axum server on port 0 that records each request as it arrived
//! (method, path, Authorization, Content-Type, the form fields) and answers what the test
//! scripts: it stands in for Twilio, which cannot run here (no network but the package
//! registries). Everything on our side of the wire is the real courier.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use chrono::{TimeZone, Utc};
use examroom::config::{Secret, Settings, TextProvider, TextSettings};
use examroom::notify::{
    self, AppointmentFacts, Channel, CourierError, Notice, NoticeKind, NoticeLinks, Recipient,
    Status,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-0123456789abcdef";
const FROM: &str = "+15550100";
const TO: &str = "+34600111222";

/// One request as the provider received it.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    /// The form fields in the order sent, decoded.
    form: Vec<(String, String)>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the stand-in provider answers: a status, a JSON body and how long it waits first.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: Value,
    delay: Duration,
}

fn created() -> Answer {
    Answer {
        status: 201,
        body: json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
        delay: Duration::ZERO,
    }
}

/// Twilio's error body: `{"code", "message", "more_info", "status"}`.
fn twilio_error(status: u16, code: u32, message: &str) -> Answer {
    Answer {
        status,
        body: json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
        delay: Duration::ZERO,
    }
}

struct Provider {
    base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    answer: Arc<Mutex<Answer>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Provider {
    async fn start() -> Provider {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let answer = Arc::new(Mutex::new(created()));
        let (rec, ans) = (requests.clone(), answer.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (rec, ans) = (rec.clone(), ans.clone());
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .map(|v| v.to_str().unwrap_or_default().to_owned())
                    };
                    rec.lock().unwrap().push(Recorded {
                        method,
                        path: uri.path().to_owned(),
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        form: url::form_urlencoded::parse(&body).into_owned().collect(),
                    });
                    let a = ans.lock().unwrap().clone();
                    tokio::time::sleep(a.delay).await;
                    (
                        StatusCode::from_u16(a.status).unwrap(),
                        [("content-type", "application/json")],
                        a.body.to_string(),
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Provider {
            base_url: format!("http://{addr}"),
            requests,
            answer,
            server,
        }
    }

    fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Server settings with `[text]` pointing here, validated like a real start.
    fn settings(&self) -> Settings {
        let mut s = Settings {
            text: TextSettings {
                provider: TextProvider::Twilio,
                account_id: SID.into(),
                auth_token: Secret::new(TOKEN),
                from_number: FROM.into(),
                messaging_service_id: String::new(),
                base_url: self.base_url.clone(),
                timeout_ms: 2_000,
            },
            ..Default::default()
        };
        s.clinic.name = "Clínica Norte".into();
        s.validate().expect("valid test settings");
        s
    }
}

fn appointment() -> AppointmentFacts {
    let starts_at = chrono_tz::America::Mexico_City
        .with_ymd_and_hms(2026, 12, 14, 10, 30, 0)
        .unwrap()
        .with_timezone(&Utc);
    AppointmentFacts {
        id: "apt-4f2c9e".into(),
        starts_at,
        ends_at: starts_at + chrono::Duration::minutes(20),
        zone: chrono_tz::America::Mexico_City,
        physician_name: "Dra. Lucía Gómez".into(),
        clinic_name: "Clínica Norte".into(),
        sequence: 0,
    }
}

/// Links about as long as the booking side makes them (a 22-character token).
fn notice(kind: NoticeKind, lang: &str) -> Notice {
    let appointment = match kind {
        NoticeKind::ContactCode { .. } => None,
        _ => Some(appointment()),
    };
    Notice {
        kind,
        lang: lang.into(),
        appointment,
        links: NoticeLinks {
            manage: Some("https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b".into()),
            join: Some("https://citas.example/j/Hq4sW8eR2tY6uI0oP3aS5d".into()),
            opt_out: Some("https://citas.example/o/Zx9cV7bN5mL3kJ1hG8fD2s".into()),
        },
    }
}

fn phone(number: &str) -> Recipient {
    Recipient {
        channel: Channel::Text,
        address: number.into(),
        name: "María Pérez".into(),
    }
}

#[tokio::test]
async fn every_kind_is_one_short_request_as_twilio_documents_it() {
    let provider = Provider::start().await;
    let courier = notify::open(&provider.settings());
    assert_eq!(courier.channels(), vec![Channel::Text]);
    let lead = chrono::Duration::hours(1);
    let code = || NoticeKind::ContactCode {
        code: "482913".into(),
    };
    let cases = [
        (
            code(),
            "en",
            "482913 is your Clinica Norte confirmation code.",
        ),
        (
            code(),
            "es",
            "482913 es tu codigo de confirmacion de Clinica Norte.",
        ),
        (
            NoticeKind::Booked,
            "es",
            "Clinica Norte: cita reservada para el lun 14 dic 10:30 CST. Gestionar: https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b",
        ),
        (
            NoticeKind::Booked,
            "en",
            "Clinica Norte: appointment booked for Mon 14 Dec 10:30 CST. Manage: https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b",
        ),
        (
            NoticeKind::Reminder { lead },
            "es",
            "Clinica Norte: cita el lun 14 dic 10:30 CST. Entrar: https://citas.example/j/Hq4sW8eR2tY6uI0oP3aS5d Baja: https://citas.example/o/Zx9cV7bN5mL3kJ1hG8fD2s",
        ),
        (
            NoticeKind::Reminder { lead },
            "en",
            "Clinica Norte: appointment Mon 14 Dec 10:30 CST. Join: https://citas.example/j/Hq4sW8eR2tY6uI0oP3aS5d Stop: https://citas.example/o/Zx9cV7bN5mL3kJ1hG8fD2s",
        ),
        (
            NoticeKind::Moved,
            "es",
            "Clinica Norte: cita cambiada al lun 14 dic 10:30 CST. Gestionar: https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b",
        ),
        (
            NoticeKind::Moved,
            "en",
            "Clinica Norte: appointment moved to Mon 14 Dec 10:30 CST. Manage: https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b",
        ),
        (
            NoticeKind::Cancelled,
            "es",
            "Clinica Norte: cita del lun 14 dic 10:30 CST cancelada. Gestionar: https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b",
        ),
        (
            NoticeKind::Cancelled,
            "en",
            "Clinica Norte: appointment Mon 14 Dec 10:30 CST cancelled. Manage: https://citas.example/m/Xk3pQ9vL2mN8rT5wY7zA1b",
        ),
    ];
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    );
    let mut lengths = Vec::new();
    for (i, (kind, lang, body)) in cases.into_iter().enumerate() {
        courier
            .deliver(&phone(TO), &notice(kind, lang))
            .await
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        let requests = provider.requests();
        assert_eq!(requests.len(), i + 1, "one request per message");
        let r = &requests[i];
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(r.authorization.as_deref(), Some(basic.as_str()));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        let names: Vec<&str> = r.form.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["To", "From", "Body"]);
        assert_eq!(r.field("To"), Some(TO));
        assert_eq!(r.field("From"), Some(FROM));
        let sent = r.field("Body").unwrap();
        assert_eq!(sent, body);
        // Cheapest encoding, one segment with links of this length (a reminder's two
        // included), and no patient name.
        assert!(notify::gsm::is_gsm7(sent), "{sent}");
        assert!(!sent.contains("María") && !sent.contains("Maria"), "{sent}");
        assert_eq!(notify::gsm::segments(sent), 1, "{sent}");
        lengths.push(sent.chars().count());
    }
    println!("text message lengths (characters): {lengths:?}");
}

#[tokio::test]
async fn a_messaging_service_sends_instead_of_a_number() {
    let provider = Provider::start().await;
    let mut settings = provider.settings();
    settings.text.from_number.clear();
    settings.text.messaging_service_id = "MG0123456789abcdef0123456789abcdef".into();
    settings.validate().unwrap();
    notify::open(&settings)
        .deliver(&phone(TO), &notice(NoticeKind::Booked, "en"))
        .await
        .unwrap();
    let r = &provider.requests()[0];
    let names: Vec<&str> = r.form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "MessagingServiceSid", "Body"]);
    assert_eq!(
        r.field("MessagingServiceSid"),
        Some("MG0123456789abcdef0123456789abcdef")
    );
}

#[tokio::test]
async fn provider_errors_say_whether_to_try_again() {
    let provider = Provider::start().await;
    let courier = notify::open(&provider.settings());
    let n = notice(NoticeKind::Booked, "es");
    let cases = [
        (
            twilio_error(
                400,
                21211,
                "The 'To' number +34600111222 is not a valid phone number.",
            ),
            false,
            "21211",
        ),
        (
            twilio_error(
                400,
                21614,
                "'To' number +34600111222 is not a valid mobile number",
            ),
            false,
            "21614",
        ),
        (
            twilio_error(
                400,
                21610,
                "Attempt to send to unsubscribed recipient +34600111222",
            ),
            false,
            "21610",
        ),
        (
            twilio_error(401, 20003, "Authentication Error - invalid username"),
            false,
            "20003",
        ),
        (twilio_error(429, 20429, "Too Many Requests"), true, "429"),
        (
            twilio_error(500, 20500, "Internal Server Error"),
            true,
            "500",
        ),
        (twilio_error(503, 20503, "Service Unavailable"), true, "503"),
    ];
    for (answer, retry, names) in cases {
        provider.answer(answer);
        let err = courier.deliver(&phone(TO), &n).await.unwrap_err();
        match (&err, retry) {
            (CourierError::Retry(why), true) | (CourierError::Refused(why), false) => {
                assert!(why.contains(names), "{why}");
                // Twilio's own message quotes the number; what the outbox keeps does not.
                assert!(!why.contains("600111222"), "{why}");
            }
            _ => panic!("{names}: want retry={retry}, got {err:?}"),
        }
    }
}

#[tokio::test]
async fn a_provider_that_is_slow_or_away_is_retried() {
    let provider = Provider::start().await;
    let mut settings = provider.settings();
    settings.text.timeout_ms = 1_000;
    let courier = notify::open(&settings);
    provider.answer(Answer {
        delay: Duration::from_secs(4),
        ..created()
    });
    let started = Instant::now();
    let err = courier
        .deliver(&phone(TO), &notice(NoticeKind::Booked, "en"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, CourierError::Retry(_)), "{err:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "gave up after {took:?}"
    );
    println!("a silent provider: Retry after {took:?} (timeout_ms = 1000)");

    settings.text.base_url = format!("http://127.0.0.1:{}", crate::kit::services::free_port());
    let err = notify::open(&settings)
        .deliver(&phone(TO), &notice(NoticeKind::Booked, "en"))
        .await
        .unwrap_err();
    assert!(matches!(err, CourierError::Retry(_)), "{err:?}");
}

#[tokio::test]
async fn a_number_that_is_not_e164_is_refused_without_a_request() {
    let provider = Provider::start().await;
    let courier = notify::open(&provider.settings());
    for bad in ["600 111 222", "0034600111222", "+34", "+34600111222; DROP"] {
        let err = courier
            .deliver(&phone(bad), &notice(NoticeKind::Booked, "en"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CourierError::Refused("the mobile number is not in E.164 form".into())
        );
    }
    assert!(provider.requests().is_empty());
    // An e-mail recipient is not this courier's, and says so.
    let email = Recipient {
        channel: Channel::Email,
        address: "pat@example.org".into(),
        name: "Pat".into(),
    };
    assert_eq!(
        courier
            .deliver(&email, &notice(NoticeKind::Booked, "en"))
            .await,
        Err(CourierError::NotConfigured(Channel::Email))
    );
}

#[tokio::test]
async fn the_admin_status_names_each_channel() {
    let provider = Provider::start().await;
    let mut settings = provider.settings();
    assert_eq!(
        Status::of(notify::open(&settings).as_ref()),
        Status {
            email: false,
            text: true
        }
    );
    settings.mail.host = "smtp.clinic.example".into();
    settings.mail.from_address = "appointments@clinic.example".into();
    settings.validate().unwrap();
    let status = Status::of(notify::open(&settings).as_ref());
    assert_eq!(
        status,
        Status {
            email: true,
            text: true
        }
    );
    assert_eq!(status.describe(), "reminders by e-mail: on, by text: on");
}
