//! The record-access audit log: append-only and hash chained, so an edited, deleted or
//! reordered entry is detectable afterwards.
//!
//! Each entry carries `seq` (1, 2, 3, … without gaps), the previous entry's hash and its
//! own: `hash = hex(sha256(prev_hash ‖ canonical(entry)))`. The first entry's `prev_hash`
//! is [`GENESIS`] (64 zeros). [`canonical`] is the one serialisation that is hashed; it
//! covers every field except the hashes themselves, so changing any stored value breaks
//! the chain at that entry.
//!
//! This module is pure: the durable store assigns `seq` and hashes inside a write
//! transaction (see `durable`) and calls [`verify`] over what it reads back.

use crate::ids::PatientRef;
use crate::ids::VisitId;
use crate::visit::Millis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the access was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Allowed,
    Refused,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allowed => "allowed",
            AuditOutcome::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(AuditOutcome::Allowed),
            "refused" => Some(AuditOutcome::Refused),
            _ => None,
        }
    }
}

/// What the caller records; the store adds `seq` and the hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub at: Millis,
    /// Who acted: a staff id or a participant id.
    pub actor: String,
    /// What was attempted, e.g. `records.read`.
    pub action: String,
    pub patient_ref: Option<PatientRef>,
    pub visit: Option<VisitId>,
    /// Record sections touched (e.g. `allergies`, `medications`).
    pub sections: Vec<String>,
    pub outcome: AuditOutcome,
    /// Why it was refused (or any note); never patient data.
    pub reason: Option<String>,
}

/// One stored entry: what was recorded, its place in the chain and the hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: NewAuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Seal `new` as entry `seq` after an entry whose hash is `prev_hash`.
    pub fn seal(seq: i64, prev_hash: &str, new: NewAuditEntry) -> AuditEntry {
        let mut e = AuditEntry {
            seq,
            entry: new,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        e.hash = chain_hash(prev_hash, &e);
        e
    }
}

/// The bytes that are hashed for one entry: a JSON array with the fields in a fixed
/// order, `[seq, at, actor, action, patient_ref|null, visit|null, [sections…], outcome,
/// reason|null]`. JSON gives unambiguous string escaping, so no two different entries
/// serialise alike. Changing this changes every hash: never do it without a migration.
pub fn canonical(e: &AuditEntry) -> Vec<u8> {
    let (seq, e) = (e.seq, &e.entry);
    let v = serde_json::json!([
        seq,
        e.at,
        e.actor,
        e.action,
        e.patient_ref.as_ref().map(|p| p.as_str()),
        e.visit.as_ref().map(|v| v.as_str()),
        e.sections,
        e.outcome.as_str(),
        e.reason,
    ]);
    serde_json::to_vec(&v).expect("a JSON value always serialises")
}

/// `hex(sha256(prev_hash ‖ canonical(entry)))`.
pub fn chain_hash(prev_hash: &str, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(e));
    hex::encode(h.finalize())
}

/// The result of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Entries checked.
    pub entries: u64,
    pub ok: bool,
    /// The first entry at which the chain is broken (for a missing tail: the seq expected next
    /// to be present).
    pub first_bad_seq: Option<i64>,
    /// What is wrong there, in a sentence (no patient data).
    pub problem: Option<String>,
}

impl AuditVerification {
    fn bad(entries: u64, seq: i64, problem: String) -> Self {
        AuditVerification {
            entries,
            ok: false,
            first_bad_seq: Some(seq),
            problem: Some(problem),
        }
    }
}

/// Checks a chain one entry at a time, so a long log can be verified page by page
/// without holding it all in memory. Feed entries in stored order (ascending `seq`).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: String,
    expected_seq: i64,
    entries: u64,
    failure: Option<(i64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_hash: GENESIS.to_owned(),
            expected_seq: 1,
            entries: 0,
            failure: None,
        }
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Check the next entry. Returns `false` once the chain is known to be broken (the
    /// first break is kept; later entries are only counted).
    pub fn push(&mut self, e: &AuditEntry) -> bool {
        self.entries += 1;
        if self.failure.is_some() {
            return false;
        }
        let expected = self.expected_seq;
        let problem = if e.seq != expected {
            Some((
                expected.min(e.seq),
                format!(
                    "sequence gap or reorder: expected entry {expected}, found {}",
                    e.seq
                ),
            ))
        } else if e.prev_hash != self.prev_hash {
            Some((
                e.seq,
                format!(
                    "entry {} does not link to the entry before it (deleted or reordered)",
                    e.seq
                ),
            ))
        } else if chain_hash(&e.prev_hash, e) != e.hash {
            Some((
                e.seq,
                format!(
                    "entry {} was altered: its hash does not match its content",
                    e.seq
                ),
            ))
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.failure = Some(p);
                false
            }
            None => {
                self.prev_hash = e.hash.clone();
                self.expected_seq += 1;
                true
            }
        }
    }

    /// Count an entry that could not even be decoded (a value no entry could hold).
    pub fn unreadable(&mut self, seq: i64) -> bool {
        self.entries += 1;
        if self.failure.is_none() {
            self.failure = Some((seq, format!("entry {seq} holds values no entry can have")));
        }
        false
    }

    /// The verdict. `head` is the store's record of the last `(seq, hash)` appended, which
    /// also catches entries deleted from the end (they leave no gap).
    pub fn finish(self, head: Option<(i64, &str)>) -> AuditVerification {
        let n = self.entries;
        if let Some((seq, problem)) = self.failure {
            return AuditVerification::bad(n, seq, problem);
        }
        if let Some((head_seq, head_hash)) = head {
            let last_seq = self.expected_seq - 1;
            if head_seq != last_seq || (head_seq > 0 && head_hash != self.prev_hash) {
                return AuditVerification::bad(
                    n,
                    last_seq + 1,
                    format!(
                        "the chain ends at entry {last_seq} but {head_seq} entries were appended \
                         (entries removed from the end, or the last one altered)"
                    ),
                );
            }
        }
        AuditVerification {
            entries: n,
            ok: true,
            first_bad_seq: None,
            problem: None,
        }
    }
}

/// Check a whole chain, given in the order it is stored (ascending `seq`, starting at 1).
///
/// Detects: an edited entry (its hash no longer matches its content), a deleted entry
/// (a gap in `seq`, or a `prev_hash` that does not match the entry before), and a reordered
/// one (out-of-order `seq` or broken links). With `head` (see [`ChainVerifier::finish`])
/// it also detects entries removed from the end.
pub fn verify(entries: &[AuditEntry], head: Option<(i64, &str)>) -> AuditVerification {
    let mut v = ChainVerifier::new();
    for e in entries {
        v.push(e);
    }
    v.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(i: i64) -> NewAuditEntry {
        NewAuditEntry {
            at: 1_700_000_000_000 + i,
            actor: "s_doc".into(),
            action: "records.read".into(),
            patient_ref: Some(PatientRef::parse("pat-1").unwrap()),
            visit: None,
            sections: vec!["allergies".into(), "medications".into()],
            outcome: AuditOutcome::Allowed,
            reason: None,
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 1..=n {
            let prev = out.last().map(|e| e.hash.clone()).unwrap_or(GENESIS.into());
            out.push(AuditEntry::seal(i, &prev, new(i)));
        }
        out
    }

    fn head(c: &[AuditEntry]) -> Option<(i64, &str)> {
        Some(
            c.last()
                .map(|e| (e.seq, e.hash.as_str()))
                .unwrap_or((0, GENESIS)),
        )
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(c[0].prev_hash, GENESIS);
        assert_eq!(c[0].hash.len(), 64);
        let v = verify(&c, head(&c));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.entries, 5);
        assert!(verify(&[], Some((0, GENESIS))).ok);
    }

    #[test]
    fn an_edited_entry_is_found() {
        let mut c = chain(5);
        c[2].entry.sections.push("notes".into());
        let v = verify(&c, head(&c));
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(3));
        // Re-hashing the edited entry does not help: the next one no longer links to it.
        c[2].hash = chain_hash(&c[2].prev_hash, &c[2]);
        let h = (5, c[4].hash.clone());
        let v = verify(&c, Some((h.0, &h.1)));
        assert_eq!(v.first_bad_seq, Some(4));
    }

    #[test]
    fn a_deleted_entry_is_found() {
        let mut c = chain(5);
        let h = (5, c[4].hash.clone());
        c.remove(1);
        let v = verify(&c, Some((h.0, &h.1)));
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(2));
        // Renumbering to hide the gap breaks the link instead.
        for (i, e) in c.iter_mut().enumerate() {
            e.seq = i as i64 + 1;
        }
        assert_eq!(verify(&c, None).first_bad_seq, Some(2));
    }

    #[test]
    fn a_deleted_tail_is_found_through_the_head() {
        let mut c = chain(5);
        let h = (5, c[4].hash.clone());
        c.pop();
        assert!(
            verify(&c, None).ok,
            "without the head a truncation is invisible"
        );
        let v = verify(&c, Some((h.0, &h.1)));
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(5));
    }

    #[test]
    fn a_reordered_entry_is_found() {
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c, None).first_bad_seq, Some(2));
        // Swapping contents while keeping seq in place breaks the hashes.
        let mut c = chain(5);
        let (a, b) = (c[1].clone(), c[2].clone());
        c[1] = AuditEntry { seq: 2, ..b };
        c[2] = AuditEntry { seq: 3, ..a };
        assert!(!verify(&c, None).ok);
    }

    #[test]
    fn canonical_form_is_stable() {
        let e = AuditEntry::seal(1, GENESIS, new(1));
        assert_eq!(
            String::from_utf8(canonical(&e)).unwrap(),
            r#"[1,1700000000001,"s_doc","records.read","pat-1",null,["allergies","medications"],"allowed",null]"#
        );
    }
}
