//! The physician's note of a virtual visit, and the FHIR R4 resources it becomes in the
//! patient's record (issue 22, write-back). Pure: no I/O, no clock.
//!
//! A note has four parts (reason, findings, plan, follow-up), each bounded, the whole
//! bounded ([`VisitNote::check`]). What goes to the record source is a [`VisitWrite`]: the
//! note plus who, whom and when, frozen at submit time so every retry sends the same.
//! It becomes:
//! - an `Encounter` ([`encounter`]): status `finished`, class `VR` (v3-ActCode "virtual"),
//!   the visit's period, the physician as participant (a display and an identifier: the
//!   record source has no `Practitioner` for our staff), the patient as subject, the
//!   reason as `reasonCode.text`; identified by [`VISIT_SYSTEM`] + the visit id;
//! - a `DocumentReference` ([`document_reference`]): LOINC 11506-3 "Progress note", the
//!   note as a `text/plain` attachment (base64), `context.encounter` → the Encounter,
//!   `subject` → the patient; identified by [`NOTE_SYSTEM`] + the visit id.
//!
//! Why a DocumentReference and not a Composition: a Composition is only a document inside a
//! `document` Bundle (with its own signing and section rules), which many EHRs do not
//! accept through plain REST; a text/plain DocumentReference is what US Core calls a
//! clinical note, every server we test against stores it, and any EHR can show it.
//!
//! The identifiers are what makes a write idempotent: a retry finds what the first attempt
//! made (conditional create, or a search where the server ignores `If-None-Exist`).

use crate::ids::{PatientRef, StaffId, VisitId};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Identifier system of the Encounter a visit becomes (value: the visit id).
pub const VISIT_SYSTEM: &str = "urn:examroom:visit";
/// Identifier system of the DocumentReference a visit's note becomes (value: the visit id).
pub const NOTE_SYSTEM: &str = "urn:examroom:visit-note";
/// Identifier system of examroom staff accounts (the Encounter's participant).
pub const STAFF_SYSTEM: &str = "urn:examroom:staff";
/// v3-ActCode, whose `VR` is "virtual".
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// LOINC "Progress note", the DocumentReference's type.
pub const PROGRESS_NOTE: &str = "11506-3";

/// Longest reason, characters.
pub const MAX_REASON: usize = 500;
/// Longest findings, characters.
pub const MAX_FINDINGS: usize = 4000;
/// Longest plan, characters.
pub const MAX_PLAN: usize = 4000;
/// Longest follow-up, characters.
pub const MAX_FOLLOW_UP: usize = 1000;
/// Longest note, all four parts together, characters.
pub const MAX_NOTE: usize = 8000;

/// What the physician wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VisitNote {
    pub reason: String,
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub follow_up: String,
}

/// Why a note is refused. Names the field, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("say why the patient came (the reason is required)")]
    ReasonMissing,
    #[error("{field}: at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("the note is longer than {MAX_NOTE} characters in all")]
    NoteTooLong,
    #[error("{field}: control characters are not allowed")]
    ControlCharacters { field: &'static str },
}

impl NoteError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            NoteError::ReasonMissing => "reason",
            NoteError::TooLong { field, .. } | NoteError::ControlCharacters { field } => field,
            NoteError::NoteTooLong => "note",
        }
    }
}

impl VisitNote {
    /// The note trimmed, or why it cannot be kept.
    pub fn check(self) -> Result<VisitNote, NoteError> {
        let note = VisitNote {
            reason: self.reason.trim().to_owned(),
            findings: self.findings.trim().to_owned(),
            plan: self.plan.trim().to_owned(),
            follow_up: self.follow_up.trim().to_owned(),
        };
        let mut total = 0;
        for (field, text, max) in note.parts() {
            if text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
            {
                return Err(NoteError::ControlCharacters { field });
            }
            let n = text.chars().count();
            if n > max {
                return Err(NoteError::TooLong { field, max });
            }
            total += n;
        }
        if note.reason.is_empty() {
            return Err(NoteError::ReasonMissing);
        }
        if total > MAX_NOTE {
            return Err(NoteError::NoteTooLong);
        }
        Ok(note)
    }

    fn parts(&self) -> [(&'static str, &str, usize); 4] {
        [
            ("reason", &self.reason, MAX_REASON),
            ("findings", &self.findings, MAX_FINDINGS),
            ("plan", &self.plan, MAX_PLAN),
            ("follow_up", &self.follow_up, MAX_FOLLOW_UP),
        ]
    }

    /// The note as the plain text the DocumentReference carries: one headed paragraph per
    /// part that has text.
    pub fn as_text(&self) -> String {
        let heads = ["Reason", "Findings", "Plan", "Follow-up"];
        self.parts()
            .iter()
            .zip(heads)
            .filter(|((_, text, _), _)| !text.is_empty())
            .map(|((_, text, _), head)| format!("{head}:\n{text}"))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// Everything sent to the record source for one visit, fixed when the note is saved.
/// Stored as JSON in the outbox: a versioned, explicit format (`v`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitWrite {
    /// Format version of this JSON; 1.
    pub v: u32,
    pub visit: VisitId,
    pub patient: PatientRef,
    pub physician: StaffId,
    /// The physician's name as the staff account has it.
    pub physician_name: String,
    /// Unix ms: when the call began (or the patient was admitted), and when it ended (or
    /// the note was saved, for a note written before the call ended).
    pub start: i64,
    pub end: i64,
    /// Unix ms: when the note was saved.
    pub written_at: i64,
    pub note: VisitNote,
}

/// Where a visit landed in the record source: `Encounter/<id>`, `DocumentReference/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReceipt {
    pub encounter: String,
    pub document: String,
}

/// A FHIR `instant` (UTC, milliseconds) from unix ms.
pub fn fhir_instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A FHIR id made from a visit id (FHIR ids allow `[A-Za-z0-9.-]`, visit ids also `_`
/// and `:`), for sources where we choose the id (the embedded store).
pub fn fhir_id(prefix: &str, visit: &VisitId) -> String {
    let body: String = visit
        .as_str()
        .chars()
        .map(|c| if c == '_' || c == ':' { '-' } else { c })
        .collect();
    format!("{prefix}{body}")
}

/// The `identifier` search value (`system|value`) that finds the Encounter of a visit.
pub fn encounter_token(visit: &VisitId) -> String {
    format!("{VISIT_SYSTEM}|{}", visit.as_str())
}

/// The `identifier` search value that finds the DocumentReference of a visit's note.
pub fn document_token(visit: &VisitId) -> String {
    format!("{NOTE_SYSTEM}|{}", visit.as_str())
}

/// Whether a resource carries `system|value` among its identifiers (checked here, never
/// trusted to a server's search: some ignore the parameter).
pub fn has_identifier(resource: &Value, system: &str, value: &str) -> bool {
    resource["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["system"] == system && i["value"] == value)
}

/// The Encounter of a visit (without `id`: the source assigns it, or the caller sets it).
pub fn encounter(w: &VisitWrite) -> Value {
    json!({
        "resourceType": "Encounter",
        "identifier": [{"system": VISIT_SYSTEM, "value": w.visit.as_str()}],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
        "type": [{"text": "Video visit"}],
        "subject": {"reference": format!("Patient/{}", w.patient.as_str())},
        "participant": [{
            "type": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "PPRF",
                "display": "primary performer"
            }]}],
            "individual": {
                "display": w.physician_name,
                "identifier": {"system": STAFF_SYSTEM, "value": w.physician.as_str()}
            }
        }],
        "period": {"start": fhir_instant(w.start), "end": fhir_instant(w.end.max(w.start))},
        "reasonCode": [{"text": w.note.reason}],
    })
}

/// The DocumentReference of a visit's note, pointing at `encounter` (`Encounter/<id>`).
pub fn document_reference(w: &VisitWrite, encounter: &str) -> Value {
    let text = w.note.as_text();
    json!({
        "resourceType": "DocumentReference",
        "identifier": [{"system": NOTE_SYSTEM, "value": w.visit.as_str()}],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": PROGRESS_NOTE, "display": "Progress note"}],
                 "text": "Video visit note"},
        "category": [{"coding": [{
            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
            "code": "clinical-note", "display": "Clinical Note"}]}],
        "subject": {"reference": format!("Patient/{}", w.patient.as_str())},
        "date": fhir_instant(w.written_at),
        "author": [{
            "display": w.physician_name,
            "identifier": {"system": STAFF_SYSTEM, "value": w.physician.as_str()}
        }],
        "description": format!("Video visit: {}", w.note.reason),
        "content": [{"attachment": {
            "contentType": "text/plain; charset=utf-8",
            "language": "en",
            "data": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            "title": "Video visit note",
            "creation": fhir_instant(w.written_at),
        }}],
        "context": {
            "encounter": [{"reference": encounter}],
            "period": {"start": fhir_instant(w.start), "end": fhir_instant(w.end.max(w.start))}
        },
    })
}

/// A visit note read back from the record: which Encounter it belongs to, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteDoc {
    /// `Encounter/<id>` (a full URL is cut to its last two segments).
    pub encounter: String,
    pub text: String,
}

/// Longest note text read back, bytes; a longer one is not shown (the EHR has it).
pub const MAX_NOTE_TEXT_BYTES: usize = 32 * 1024;

/// One of our visit notes (a `DocumentReference` with an identifier in [`NOTE_SYSTEM`]),
/// current, pointing at an Encounter, whose first attachment is plain text we can decode.
/// Anything else is not a note of ours to show.
pub fn read_note_doc(v: &Value) -> Option<NoteDoc> {
    if v["resourceType"] != "DocumentReference" || v["status"] != "current" {
        return None;
    }
    let ours = v["identifier"]
        .as_array()?
        .iter()
        .any(|i| i["system"] == NOTE_SYSTEM);
    if !ours {
        return None;
    }
    let reference = v["context"]["encounter"][0]["reference"].as_str()?;
    let mut tail = reference.rsplit('/');
    let (id, rtype) = (tail.next()?, tail.next()?);
    if rtype != "Encounter" || id.is_empty() {
        return None;
    }
    let attachment = &v["content"][0]["attachment"];
    let plain = attachment["contentType"]
        .as_str()?
        .to_ascii_lowercase()
        .starts_with("text/plain");
    let data = attachment["data"].as_str()?;
    if !plain || data.len() > MAX_NOTE_TEXT_BYTES * 4 / 3 + 4 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    Some(NoteDoc {
        encounter: format!("Encounter/{id}"),
        text: String::from_utf8(bytes).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write() -> VisitWrite {
        VisitWrite {
            v: 1,
            visit: VisitId::parse("v_0123abcd").unwrap(),
            patient: PatientRef::parse("pat-1").unwrap(),
            physician: StaffId::parse("s_doc").unwrap(),
            physician_name: "Dr Ana Pérez".into(),
            start: 1_700_000_000_000,
            end: 1_700_000_900_000,
            written_at: 1_700_000_960_000,
            note: VisitNote {
                reason: "Cough for two weeks".into(),
                findings: "No distress; speaks in full sentences.".into(),
                plan: "Chest X-ray.".into(),
                follow_up: String::new(),
            },
        }
    }

    #[test]
    fn a_note_is_trimmed_and_bounded_part_by_part_and_as_a_whole() {
        let ok = VisitNote {
            reason: "  Cough ".into(),
            ..Default::default()
        };
        assert_eq!(ok.check().unwrap().reason, "Cough");
        let cases = [
            (VisitNote::default(), "reason"),
            (
                VisitNote {
                    reason: "x".repeat(MAX_REASON + 1),
                    ..Default::default()
                },
                "reason",
            ),
            (
                VisitNote {
                    reason: "r".into(),
                    plan: "x".repeat(MAX_PLAN + 1),
                    ..Default::default()
                },
                "plan",
            ),
            (
                VisitNote {
                    reason: "r".repeat(MAX_REASON),
                    findings: "f".repeat(MAX_FINDINGS),
                    plan: "p".repeat(MAX_PLAN),
                    follow_up: String::new(),
                },
                "note",
            ),
            (
                VisitNote {
                    reason: "r".into(),
                    follow_up: "a\u{0}b".into(),
                    ..Default::default()
                },
                "follow_up",
            ),
        ];
        for (note, field) in cases {
            assert_eq!(note.clone().check().unwrap_err().field(), field, "{note:?}");
        }
        // Characters, not bytes: 500 accented letters are a full reason, not too long.
        let accented = VisitNote {
            reason: "é".repeat(MAX_REASON),
            ..Default::default()
        };
        assert!(accented.check().is_ok());
    }

    #[test]
    fn the_encounter_is_a_finished_virtual_visit_of_this_patient_by_this_physician() {
        let e = encounter(&write());
        assert_eq!(e["status"], "finished");
        assert_eq!(e["class"]["code"], "VR");
        assert_eq!(e["class"]["system"], ACT_CODE);
        assert_eq!(e["subject"]["reference"], "Patient/pat-1");
        assert_eq!(e["participant"][0]["individual"]["display"], "Dr Ana Pérez");
        assert_eq!(e["period"]["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(e["period"]["end"], "2023-11-14T22:28:20.000Z");
        assert_eq!(e["reasonCode"][0]["text"], "Cough for two weeks");
        assert!(has_identifier(&e, VISIT_SYSTEM, "v_0123abcd"));
        assert!(!has_identifier(&e, VISIT_SYSTEM, "v_other"));
    }

    #[test]
    fn the_document_carries_the_note_as_base64_text_and_points_at_the_encounter() {
        let d = document_reference(&write(), "Encounter/e1");
        assert_eq!(d["context"]["encounter"][0]["reference"], "Encounter/e1");
        assert_eq!(d["subject"]["reference"], "Patient/pat-1");
        let data = d["content"][0]["attachment"]["data"].as_str().unwrap();
        let text = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "Reason:\nCough for two weeks\n\nFindings:\nNo distress; speaks in full sentences.\n\nPlan:\nChest X-ray."
        );
        assert!(has_identifier(&d, NOTE_SYSTEM, "v_0123abcd"));
    }

    #[test]
    fn only_our_current_plain_text_notes_are_read_back() {
        let d = document_reference(&write(), "https://ehr.example/fhir/Encounter/e1");
        let doc = read_note_doc(&d).unwrap();
        assert_eq!(doc.encounter, "Encounter/e1");
        assert!(doc.text.starts_with("Reason:\nCough"), "{}", doc.text);
        let mut other = d.clone();
        other["identifier"][0]["system"] = json!("urn:someone-else");
        let mut superseded = d.clone();
        superseded["status"] = json!("superseded");
        let mut pdf = d.clone();
        pdf["content"][0]["attachment"]["contentType"] = json!("application/pdf");
        let mut garbled = d.clone();
        garbled["content"][0]["attachment"]["data"] = json!("%%%");
        for d in [other, superseded, pdf, garbled] {
            assert_eq!(read_note_doc(&d), None, "{d}");
        }
    }

    #[test]
    fn ids_made_from_visit_ids_are_fhir_ids() {
        let id = fhir_id("examroom-", &VisitId::parse("v_ab:c").unwrap());
        assert_eq!(id, "examroom-v-ab-c");
    }
}
