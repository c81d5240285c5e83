//! The text-message courier: Twilio's Programmable Messaging API.
//!
//! One `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//! `To`, `From` (or `MessagingServiceSid`) and `Body`, HTTP basic auth with the Account SID
//! and auth token; `201 Created` means Twilio took the message. Its errors come as JSON
//! `{"code", "message", "more_info", "status"}`:
//! - 429, 5xx, a timeout or no connection: [`CourierError::Retry`];
//! - 401/403 (code 20003, the credentials) and every other 4xx — among them 21211 (the
//!   `To` number is invalid), 21614 (not a mobile number), 21610 (the patient answered
//!   STOP), 21408 (the region is not enabled): [`CourierError::Refused`], with the code.
//!
//! Twilio's own `message` often quotes the number, so errors carry the code and a sentence
//! of ours, never the provider's text.

use super::render::{self, Sender};
use super::{Channel, Courier, CourierError, Notice, Recipient};
use crate::config::{Secret, TextSettings, is_e164};
use async_trait::async_trait;
use std::time::Duration;

/// Who the message comes from, as Twilio takes it.
#[derive(Debug, Clone)]
enum From {
    Number(String),
    MessagingService(String),
}

pub struct TextCourier {
    http: reqwest::Client,
    /// `…/2010-04-01/Accounts/{sid}/Messages.json`.
    url: String,
    account: String,
    token: Secret,
    from: From,
    sender: Sender,
}

impl TextCourier {
    /// A courier for the account in `settings` (already validated by `config`), naming
    /// `clinic` where a notice has no appointment.
    pub fn new(settings: &TextSettings, clinic: &str) -> TextCourier {
        let from = if settings.from_number.is_empty() {
            From::MessagingService(settings.messaging_service_id.clone())
        } else {
            From::Number(settings.from_number.clone())
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            // The API answers; it never redirects a message elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        TextCourier {
            http,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                settings.base_url.trim_end_matches('/'),
                settings.account_id
            ),
            account: settings.account_id.clone(),
            token: settings.auth_token.clone(),
            from,
            sender: Sender {
                clinic_name: clinic.to_owned(),
            },
        }
    }

    /// The form fields of the request for `notice` to `to`, in the order sent.
    pub fn form(
        &self,
        to: &Recipient,
        notice: &Notice,
    ) -> Result<Vec<(&'static str, String)>, CourierError> {
        let number = to.address.trim();
        if !is_e164(number) {
            return Err(CourierError::Refused(
                "the mobile number is not in E.164 form".into(),
            ));
        }
        let body =
            render::sms(notice, &self.sender).map_err(|e| CourierError::Refused(e.to_string()))?;
        let from = match &self.from {
            From::Number(n) => ("From", n.clone()),
            From::MessagingService(s) => ("MessagingServiceSid", s.clone()),
        };
        Ok(vec![("To", number.to_owned()), from, ("Body", body)])
    }
}

/// Twilio's error body, the part we read.
#[derive(serde::Deserialize)]
struct ApiError {
    code: Option<u32>,
}

/// What the outbox should do about an answer that was not `2xx`.
fn classify(status: u16, code: Option<u32>) -> CourierError {
    let code_text = code.map(|c| format!(", code {c}")).unwrap_or_default();
    let what = match (status, code) {
        (_, Some(21211)) => "the number is not a valid phone number",
        (_, Some(21614)) => "the number is not a mobile number",
        (_, Some(21610)) => "the patient has opted out of texts from this sender (STOP)",
        (_, Some(21408)) => "texts to this number's region are not enabled on the account",
        (401 | 403, _) | (_, Some(20003)) => "the provider refused the account's credentials",
        (429, _) | (_, Some(20429)) => "the provider asks to slow down",
        (s, _) if s >= 500 => "the provider failed",
        _ => "the provider refused the message",
    };
    let text = format!("{what} (HTTP {status}{code_text})");
    match status {
        408 | 425 | 429 => CourierError::Retry(text),
        s if s >= 500 => CourierError::Retry(text),
        _ => CourierError::Refused(text),
    }
}

#[async_trait]
impl Courier for TextCourier {
    fn channels(&self) -> Vec<Channel> {
        vec![Channel::Text]
    }

    async fn deliver(&self, to: &Recipient, notice: &Notice) -> Result<(), CourierError> {
        if to.channel != Channel::Text {
            return Err(CourierError::NotConfigured(to.channel));
        }
        let form = self.form(to, notice)?;
        let sent = self
            .http
            .post(&self.url)
            .basic_auth(&self.account, Some(self.token.expose()))
            .form(&form)
            .send()
            .await;
        let res = match sent {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    "the provider did not answer in time"
                } else if e.is_connect() {
                    "the provider could not be reached"
                } else {
                    "the request to the provider failed"
                };
                tracing::warn!(
                    kind = render::kind_name(&notice.kind),
                    why,
                    "text delivery failed"
                );
                return Err(CourierError::Retry(why.into()));
            }
        };
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Ok(());
        }
        // A body that is not Twilio's JSON (a proxy's error page) leaves the code unknown.
        let code = res
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<ApiError>(&b).ok())
            .and_then(|e| e.code);
        let err = classify(status, code);
        tracing::warn!(kind = render::kind_name(&notice.kind), error = %err, "text delivery failed");
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_answers_map_to_retry_or_refused() {
        let retry = |s, c| matches!(classify(s, c), CourierError::Retry(_));
        assert!(retry(429, Some(20429)));
        assert!(retry(500, None));
        assert!(retry(503, None));
        assert!(!retry(400, Some(21211)));
        assert!(!retry(400, Some(21614)));
        assert!(!retry(401, Some(20003)));
        assert!(!retry(404, None));
        assert_eq!(
            classify(400, Some(21211)),
            CourierError::Refused(
                "the number is not a valid phone number (HTTP 400, code 21211)".into()
            )
        );
    }
}
