//! A referral as the FHIR R4 `ServiceRequest` it becomes in the patient's record (issue 22).
//! Pure: no I/O, no clock.
//!
//! What is written ([`service_request`]), and why:
//! - `status`: `active` while the referral waits for an answer and once it is accepted (the
//!   request stands: the receiving physician has yet to see the patient); `revoked` once
//!   declined (the request ends without being carried out). `completed` is not written:
//!   examroom does not know when the receiving physician has done what was asked; the EHR
//!   or that physician closes it.
//! - `intent: order`, `category` SNOMED CT 3457005 "Patient referral".
//! - `priority` from the urgency, one to one: routine, urgent, asap (`stat` is never used:
//!   a video referral is not an emergency route).
//! - `subject` the patient; `requester` and `performer` the two physicians as a display
//!   and an identifier in [`STAFF_SYSTEM`] — not `Practitioner` references: the record
//!   source has no Practitioner for our staff accounts (the Encounter's participant is
//!   written the same way).
//! - `reasonCode.text` the reason; `note` the reason by the requester and, once answered,
//!   the answer ("Accepted" / "Declined", with the receiving physician's note) by the
//!   performer.
//! - `authoredOn` when the referral was made; `encounter` the visit's Encounter when the
//!   visit's note wrote one (found when the write is sent, so a note written after the
//!   referral still links it at the next write).
//! - `identifier` [`REFERRAL_SYSTEM`] + the referral id: what makes a write idempotent.

use super::visit_note::{STAFF_SYSTEM, fhir_instant};
use crate::ids::{PatientRef, ReferralId, StaffId, VisitId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Identifier system of the ServiceRequest a referral becomes (value: the referral id).
pub const REFERRAL_SYSTEM: &str = "urn:examroom:referral";
/// SNOMED CT "Patient referral", the ServiceRequest's category.
pub const PATIENT_REFERRAL: &str = "3457005";

/// `ServiceRequest.status` as examroom writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Active,
    Revoked,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Active => "active",
            RequestStatus::Revoked => "revoked",
        }
    }
}

/// The receiving physician's answer, as it goes into the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAnswer {
    pub accepted: bool,
    pub note: Option<String>,
    /// Unix ms.
    pub at: i64,
}

/// Everything the record gets of one referral, built from the stored referral when the
/// write is sent (the referral row is the frozen copy: its reason and urgency never
/// change, its answer only once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralWrite {
    pub referral: ReferralId,
    pub visit: VisitId,
    pub patient: PatientRef,
    pub requester: StaffId,
    pub requester_name: String,
    pub performer: StaffId,
    pub performer_name: String,
    pub reason: String,
    /// `routine`, `urgent` or `asap` (FHIR request-priority codes).
    pub priority: String,
    /// Unix ms: when the referral was made.
    pub authored_on: i64,
    pub answer: Option<RequestAnswer>,
    /// `Encounter/<id>` of the visit, when its note put one in the record.
    pub encounter: Option<String>,
}

impl ReferralWrite {
    /// Active until declined; see the module doc.
    pub fn status(&self) -> RequestStatus {
        match &self.answer {
            Some(a) if !a.accepted => RequestStatus::Revoked,
            _ => RequestStatus::Active,
        }
    }
}

/// The `identifier` search value that finds the ServiceRequest of a referral.
pub fn request_token(referral: &ReferralId) -> String {
    format!("{REFERRAL_SYSTEM}|{}", referral.as_str())
}

fn staff(name: &str, id: &StaffId) -> Value {
    json!({"display": name, "identifier": {"system": STAFF_SYSTEM, "value": id.as_str()}})
}

/// The ServiceRequest of a referral (without `id`: the source assigns it, or the caller
/// sets it).
pub fn service_request(w: &ReferralWrite) -> Value {
    let mut notes = vec![json!({
        "authorString": w.requester_name,
        "time": fhir_instant(w.authored_on),
        "text": w.reason,
    })];
    if let Some(a) = &w.answer {
        let head = if a.accepted { "Accepted" } else { "Declined" };
        let text = match &a.note {
            Some(n) => format!("{head}: {n}"),
            None => head.to_owned(),
        };
        notes.push(
            json!({"authorString": w.performer_name, "time": fhir_instant(a.at), "text": text}),
        );
    }
    let mut r = json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": REFERRAL_SYSTEM, "value": w.referral.as_str()}],
        "status": w.status().as_str(),
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": PATIENT_REFERRAL,
                                   "display": "Patient referral"}]}],
        "priority": w.priority,
        "code": {"text": "Referral"},
        "subject": {"reference": format!("Patient/{}", w.patient.as_str())},
        "authoredOn": fhir_instant(w.authored_on),
        "requester": staff(&w.requester_name, &w.requester),
        "performer": [staff(&w.performer_name, &w.performer)],
        "reasonCode": [{"text": w.reason}],
        "note": notes,
    });
    if let Some(e) = &w.encounter {
        r["encounter"] = json!({"reference": e});
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::visit_note::has_identifier;

    fn write() -> ReferralWrite {
        ReferralWrite {
            referral: ReferralId::parse("f_0123abcd").unwrap(),
            visit: VisitId::parse("v_0123abcd").unwrap(),
            patient: PatientRef::parse("pat-1").unwrap(),
            requester: StaffId::parse("s_grey").unwrap(),
            requester_name: "Dr Grey".into(),
            performer: StaffId::parse("s_shep").unwrap(),
            performer_name: "Dr Shepherd".into(),
            reason: "Murmur; echo please.".into(),
            priority: "urgent".into(),
            authored_on: 1_700_000_000_000,
            answer: None,
            encounter: None,
        }
    }

    #[test]
    fn a_new_referral_is_an_active_order_from_one_physician_to_another() {
        let r = service_request(&write());
        assert_eq!(r["status"], "active");
        assert_eq!(r["intent"], "order");
        assert_eq!(r["priority"], "urgent");
        assert_eq!(r["subject"]["reference"], "Patient/pat-1");
        assert_eq!(r["requester"]["display"], "Dr Grey");
        assert_eq!(r["performer"][0]["identifier"]["value"], "s_shep");
        assert_eq!(r["reasonCode"][0]["text"], "Murmur; echo please.");
        assert_eq!(r["authoredOn"], "2023-11-14T22:13:20.000Z");
        assert_eq!(r["note"].as_array().unwrap().len(), 1);
        assert!(r.get("encounter").is_none());
        assert!(has_identifier(&r, REFERRAL_SYSTEM, "f_0123abcd"));
    }

    #[test]
    fn an_answer_sets_the_status_and_adds_the_performers_note() {
        let mut w = write();
        w.encounter = Some("Encounter/e1".into());
        w.answer = Some(RequestAnswer {
            accepted: false,
            note: Some("Not my field; try cardiology.".into()),
            at: 1_700_000_060_000,
        });
        let r = service_request(&w);
        assert_eq!(r["status"], "revoked");
        assert_eq!(r["encounter"]["reference"], "Encounter/e1");
        assert_eq!(r["note"][1]["authorString"], "Dr Shepherd");
        assert_eq!(
            r["note"][1]["text"],
            "Declined: Not my field; try cardiology."
        );
        w.answer = Some(RequestAnswer {
            accepted: true,
            note: None,
            at: 1_700_000_060_000,
        });
        let r = service_request(&w);
        assert_eq!(
            (r["status"].as_str(), r["note"][1]["text"].as_str()),
            (Some("active"), Some("Accepted"))
        );
    }
}
