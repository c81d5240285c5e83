//! One test per transition and per refusal, with explicit time.

use super::*;

const SEC: Millis = 1000;

fn pid(s: &str) -> ParticipantId {
    ParticipantId::parse(s).unwrap()
}
fn vid(s: &str) -> VisitId {
    VisitId::parse(s).unwrap()
}
fn sid(s: &str) -> StaffId {
    StaffId::parse(s).unwrap()
}

fn config(kind: RoomKind, physicians: &[&str]) -> RoomConfig {
    RoomConfig {
        id: RoomId::parse("r_a").unwrap(),
        name: "Room A".into(),
        kind,
        physicians: physicians.iter().map(|s| sid(s)).collect(),
        waiting_message: "The doctor will be with you shortly.".into(),
        waiting_messages: Default::default(),
        max_wait_secs: 600,
        max_participants: 4,
        chat_allowed: true,
        invites_allowed: true,
        archived: false,
    }
}

fn room(kind: RoomKind, physicians: &[&str]) -> Room {
    Room::new(
        config(kind, physicians),
        Timing {
            grace_ms: 120 * SEC,
            offer_ms: 30 * SEC,
            replay_buffer: 8,
        },
    )
}

fn doctor(id: &str) -> Member {
    Member {
        role: Role::Physician,
        name: format!("Dr {id}"),
        staff: Some(sid(id)),
        visit: None,
        patient_ref: None,
        reason: None,
        languages: vec!["en".into()],
        ..patient(id, "v_0")
    }
}

fn patient(id: &str, visit: &str) -> Member {
    Member {
        id: pid(id),
        role: Role::Patient,
        name: format!("Patient {id}"),
        staff: None,
        visit: Some(vid(visit)),
        patient_ref: Some(PatientRef::parse("demo-patient-1").unwrap()),
        reason: Some("cough".into()),
        lang: None,
        prefers_gender: None,
        languages: vec![],
        gender: None,
    }
}

fn connect(r: &mut Room, m: Member, now: Millis) -> Vec<Output> {
    r.handle(
        Input::Connect {
            member: m,
            resume: None,
            new_resume_token: "t0".into(),
            resume_only: false,
        },
        now,
    )
}

/// Comes back with the resume token `t0` (the one `connect` hands out).
fn resume(r: &mut Room, m: Member, now: Millis) -> Vec<Output> {
    r.handle(
        Input::Connect {
            member: m,
            resume: Some("t0".into()),
            new_resume_token: "t1".into(),
            resume_only: false,
        },
        now,
    )
}

fn act(r: &mut Room, who: &str, a: Act, now: Millis) -> Vec<Output> {
    r.handle(
        Input::Act {
            who: pid(who),
            act: a,
        },
        now,
    )
}

fn admit(visit: &str) -> Act {
    Act::Admit { visit: vid(visit) }
}
fn send_back(visit: &str) -> Act {
    Act::SendBack { visit: vid(visit) }
}
fn end_visit(visit: &str) -> Act {
    Act::EndVisit { visit: vid(visit) }
}
fn accept(visit: &str) -> Act {
    Act::WalkInAccept { visit: vid(visit) }
}
fn chat(text: &str) -> Act {
    Act::Chat { text: text.into() }
}
fn available(available: bool) -> Act {
    Act::Availability { available }
}

/// `from` relays an SDP offer to `to`.
fn send_offer(r: &mut Room, from: &str, to: &str, sdp: &str, now: Millis) -> Vec<Output> {
    let msg = ServerMsg::Offer {
        from: pid(from),
        sdp: sdp.into(),
    };
    act(r, from, Act::Relay { to: pid(to), msg }, now)
}

/// `from` relays an SDP answer to `to`.
fn send_answer(r: &mut Room, from: &str, to: &str, sdp: &str, now: Millis) -> Vec<Output> {
    let msg = ServerMsg::Answer {
        from: pid(from),
        sdp: sdp.into(),
    };
    act(r, from, Act::Relay { to: pid(to), msg }, now)
}

fn sent_to<'a>(out: &'a [Output], who: &str) -> Vec<&'a ServerMsg> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } if to.as_str() == who => Some(msg),
            _ => None,
        })
        .collect()
}

/// Whether `who` was sent a message matching the pattern.
macro_rules! told {
    ($out:expr, $who:expr, $($msg:tt)+) => {
        sent_to(&$out, $who).iter().any(|m| matches!(m, $($msg)+))
    };
}

fn error_code(out: &[Output], who: &str) -> Option<ErrorCode> {
    sent_to(out, who).into_iter().find_map(|m| match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    })
}

/// Whether `who` was told the visit ended with (`true`) or without a survey.
fn ended_with_survey(out: &[Output], who: &str) -> Option<bool> {
    sent_to(out, who).into_iter().find_map(|m| match m {
        ServerMsg::VisitEnded { survey, .. } => Some(*survey),
        _ => None,
    })
}

/// The error `who`'s connection was closed with, if it was.
fn closed_with(out: &[Output], who: &str) -> Option<ErrorCode> {
    out.iter().find_map(|o| match o {
        Output::Close {
            who: w,
            msg: ServerMsg::Error { code, .. },
        } if w.as_str() == who => Some(*code),
        _ => None,
    })
}

fn recorded(out: &[Output]) -> Vec<VisitState> {
    out.iter()
        .filter_map(|o| match o {
            Output::Record(t) => Some(t.state),
            _ => None,
        })
        .collect()
}

/// Doctor `s_doc` present and patient `p_pat` waiting in visit `v_1`.
fn waiting_room() -> Room {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, doctor("s_doc"), 0);
    connect(&mut r, patient("p_pat", "v_1"), SEC);
    r
}

/// Doctor `s_doc` and patient `p_pat` in visit `v_1`, admitted.
fn admitted_room() -> Room {
    let mut r = waiting_room();
    act(&mut r, "s_doc", admit("v_1"), 2 * SEC);
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Admitted));
    r
}

#[test]
fn patient_arrival_creates_a_waiting_visit_and_prefetches() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, doctor("s_doc"), 0);
    let out = connect(&mut r, patient("p_pat", "v_1"), SEC);
    assert_eq!(recorded(&out), vec![VisitState::Waiting]);
    assert!(out.iter().any(|o| matches!(o, Output::Prefetch { .. })));
    assert!(told!(out, "p_pat", ServerMsg::Waiting { position: 1, .. }));
    let queue = sent_to(&out, "s_doc");
    assert!(queue.iter().any(|m| matches!(m, ServerMsg::Queue { entries, .. } if entries.len() == 1 && entries[0].reason == "cough")));
}

#[test]
fn early_arrival_waits_until_a_physician_comes() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, patient("p_pat", "v_1"), 0);
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Waiting));
    let out = connect(&mut r, doctor("s_doc"), 60 * SEC);
    assert!(told!(out, "s_doc", ServerMsg::Queue { entries, .. } if entries.len() == 1));
    act(&mut r, "s_doc", admit("v_1"), 61 * SEC);
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Admitted));
}

#[test]
fn waiting_to_admitted_tells_both_with_opposite_politeness() {
    let mut r = waiting_room();
    let out = act(&mut r, "s_doc", admit("v_1"), 2 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::Admitted]);
    let polite = |who: &str| {
        sent_to(&out, who).iter().find_map(|m| match m {
            ServerMsg::Admitted { peers, .. } => Some(peers[0].polite),
            _ => None,
        })
    };
    assert_eq!(polite("s_doc").unwrap(), !polite("p_pat").unwrap());
}

#[test]
fn patient_cannot_admit_themself() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, patient("p_pat", "v_1"), 0);
    let out = act(&mut r, "p_pat", admit("v_1"), SEC);
    assert_eq!(error_code(&out, "p_pat"), Some(ErrorCode::Forbidden));
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Waiting));
}

#[test]
fn physician_of_another_room_cannot_join_or_admit() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, patient("p_pat", "v_1"), 0);
    let out = connect(&mut r, doctor("s_other"), SEC);
    assert_eq!(closed_with(&out, "s_other"), Some(ErrorCode::NotYourRoom));
    let out = act(&mut r, "s_other", admit("v_1"), 2 * SEC);
    assert_eq!(
        error_code(&out, "s_other"),
        None,
        "not present: nothing is sent to them"
    );
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Waiting));
}

#[test]
fn admitted_to_in_call_on_first_answer() {
    let mut r = admitted_room();
    let out = send_offer(&mut r, "s_doc", "p_pat", "o", 3 * SEC);
    assert!(recorded(&out).is_empty());
    assert!(matches!(sent_to(&out, "p_pat")[0], ServerMsg::Offer { .. }));
    let out = send_answer(&mut r, "p_pat", "s_doc", "a", 4 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::InCall]);
}

#[test]
fn relay_only_reaches_the_same_visit() {
    let mut r = admitted_room();
    connect(&mut r, patient("p_two", "v_2"), 3 * SEC);
    // A waiting patient cannot relay at all, nor be reached.
    let out = send_offer(&mut r, "p_two", "s_doc", "x", 4 * SEC);
    assert_eq!(error_code(&out, "p_two"), Some(ErrorCode::NotInVisit));
    assert!(sent_to(&out, "s_doc").is_empty());
    let out = send_offer(&mut r, "s_doc", "p_two", "x", 5 * SEC);
    assert_eq!(error_code(&out, "s_doc"), Some(ErrorCode::UnknownPeer));
    assert!(sent_to(&out, "p_two").is_empty());
}

#[test]
fn waiting_to_denied() {
    let mut r = waiting_room();
    let deny = Act::Deny {
        visit: vid("v_1"),
        reason: None,
    };
    let out = act(&mut r, "s_doc", deny, 2 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::Denied]);
    assert!(told!(out, "p_pat", ServerMsg::Denied { .. }));
    // Final: cannot be admitted any more, and the patient cannot come back to it.
    let out = act(&mut r, "s_doc", admit("v_1"), 3 * SEC);
    let refusal = error_code(&out, "s_doc");
    assert_eq!(refusal, Some(ErrorCode::IllegalTransition));
    r.handle(Input::Disconnect { who: pid("p_pat") }, 4 * SEC);
    r.handle(Input::Tick, 200 * SEC);
    let out = connect(&mut r, patient("p_pat", "v_1"), 201 * SEC);
    assert_eq!(closed_with(&out, "p_pat"), Some(ErrorCode::VisitClosed));
}

#[test]
fn waiting_to_left_on_leave() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, patient("p_pat", "v_1"), 0);
    let out = act(&mut r, "p_pat", Act::Leave, SEC);
    assert_eq!(recorded(&out), vec![VisitState::Left]);
}

#[test]
fn waiting_to_left_after_grace() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, patient("p_pat", "v_1"), 0);
    r.handle(Input::Disconnect { who: pid("p_pat") }, SEC);
    let within_grace = recorded(&r.handle(Input::Tick, 100 * SEC));
    assert!(within_grace.is_empty(), "still within grace");
    let after_grace = recorded(&r.handle(Input::Tick, 121 * SEC));
    assert_eq!(after_grace, vec![VisitState::Left]);
}

#[test]
fn reload_within_grace_keeps_queue_position() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, doctor("s_doc"), 0);
    connect(&mut r, patient("p_a", "v_a"), SEC);
    connect(&mut r, patient("p_b", "v_b"), 2 * SEC);
    r.handle(Input::Disconnect { who: pid("p_a") }, 3 * SEC);
    let out = connect(&mut r, patient("p_a", "v_a"), 60 * SEC);
    assert!(told!(out, "p_a", ServerMsg::Waiting { position: 1, .. }));
    assert!(recorded(&out).is_empty(), "no new visit");
}

#[test]
fn waiting_to_no_show_after_room_limit() {
    let mut r = room(RoomKind::Physician, &["s_doc"]);
    connect(&mut r, patient("p_pat", "v_1"), 0);
    assert!(recorded(&r.handle(Input::Tick, 599 * SEC)).is_empty());
    let out = r.handle(Input::Tick, 600 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::NoShow]);
    assert_eq!(ended_with_survey(&out, "p_pat"), Some(false));
}

#[test]
fn in_call_back_to_waiting_keeps_original_place() {
    let mut r = admitted_room();
    connect(&mut r, patient("p_two", "v_2"), 3 * SEC);
    let out = act(&mut r, "s_doc", send_back("v_1"), 4 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::Waiting]);
    assert!(told!(out, "p_pat", ServerMsg::SentBack { .. }));
    assert!(
        told!(out, "p_pat", ServerMsg::Waiting { position: 1, .. }),
        "arrived first, still first"
    );
    // And can be admitted again.
    act(&mut r, "s_doc", admit("v_1"), 5 * SEC);
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Admitted));
}

#[test]
fn physician_ends_visit_and_patient_gets_the_survey() {
    let mut r = admitted_room();
    let out = act(&mut r, "s_doc", end_visit("v_1"), 10 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::Ended]);
    assert_eq!(ended_with_survey(&out, "p_pat"), Some(true));
    assert_eq!(ended_with_survey(&out, "s_doc"), Some(false));
}

#[test]
fn patient_cannot_end_or_send_back() {
    let mut r = admitted_room();
    let out = act(&mut r, "p_pat", end_visit("v_1"), 3 * SEC);
    assert_eq!(error_code(&out, "p_pat"), Some(ErrorCode::Forbidden));
    let out = act(&mut r, "p_pat", send_back("v_1"), 3 * SEC);
    assert_eq!(error_code(&out, "p_pat"), Some(ErrorCode::Forbidden));
}

#[test]
fn last_participant_leaving_ends_the_visit() {
    let mut r = admitted_room();
    let out = act(&mut r, "p_pat", Act::Leave, 3 * SEC);
    assert!(recorded(&out).is_empty(), "the physician is still there");
    assert!(told!(out, "s_doc", ServerMsg::PeerLeft { .. }));
    let out = act(&mut r, "s_doc", Act::Leave, 4 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::Ended]);
}

#[test]
fn physician_drop_never_locks_the_patient_out() {
    let mut r = admitted_room();
    let out = r.handle(Input::Disconnect { who: pid("s_doc") }, 3 * SEC);
    assert!(told!(out, "p_pat", ServerMsg::PeerReconnecting { .. }));
    // Comes back within grace with its resume token: the call resumes, no re-admission.
    let out = resume(&mut r, doctor("s_doc"), 30 * SEC);
    assert!(told!(out, "p_pat", ServerMsg::PeerResumed { .. }));
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Admitted));
    // Drops for good: the patient goes back to waiting, where any physician can admit.
    r.handle(Input::Disconnect { who: pid("s_doc") }, 40 * SEC);
    let out = r.handle(Input::Tick, 161 * SEC);
    assert_eq!(recorded(&out), vec![VisitState::Waiting]);
    assert!(told!(out, "p_pat", ServerMsg::SentBack { .. }));
}

#[test]
fn fresh_page_gets_the_call_state_and_peers_rebuild() {
    let mut r = admitted_room();
    r.handle(Input::Disconnect { who: pid("p_pat") }, 3 * SEC);
    let out = connect(&mut r, patient("p_pat", "v_1"), 5 * SEC);
    assert!(told!(out, "p_pat", ServerMsg::Admitted { .. }));
    assert!(told!(out, "s_doc", ServerMsg::PeerJoined { .. }));
}

#[test]
fn messages_missed_while_reconnecting_are_replayed_on_resume() {
    let mut r = admitted_room();
    r.handle(Input::Disconnect { who: pid("p_pat") }, 3 * SEC);
    let out = send_offer(&mut r, "s_doc", "p_pat", "restart", 4 * SEC);
    assert!(
        sent_to(&out, "p_pat").is_empty(),
        "held, not sent to a dead socket"
    );
    let out = resume(&mut r, patient("p_pat", "v_1"), 5 * SEC);
    assert!(told!(out, "p_pat", ServerMsg::Offer { sdp, .. } if sdp == "restart"));
}

/// The database is away, so a patient's link could not be checked: her page may resume
/// (the room holds her with the resume token she presents), nobody else may enter.
#[test]
fn a_resume_only_connect_lets_back_the_held_participant_and_nobody_else() {
    let mut r = admitted_room();
    r.handle(Input::Disconnect { who: pid("p_pat") }, 3 * SEC);
    let resume_only = |member: Member, resume: Option<&str>| Input::Connect {
        member: Member {
            reason: None,
            ..member
        },
        resume: resume.map(str::to_owned),
        new_resume_token: "t1".into(),
        resume_only: true,
    };
    let refused = |out: &[Output], who: &str| closed_with(out, who) == Some(ErrorCode::Unavailable);
    // A wrong resume token, a stranger with a token for a new visit: refused, unchanged.
    let out = r.handle(resume_only(patient("p_pat", "v_1"), Some("guess")), 4 * SEC);
    assert!(refused(&out, "p_pat"));
    let out = r.handle(resume_only(patient("p_new", "v_9"), Some("t0")), 4 * SEC);
    assert!(refused(&out, "p_new"));
    assert_eq!(r.visit_state(&vid("v_9")), None);
    // Her own resume token: back in the call, her reason kept.
    let out = r.handle(resume_only(patient("p_pat", "v_1"), Some("t0")), 5 * SEC);
    assert!(!refused(&out, "p_pat"));
    assert!(told!(out, "s_doc", ServerMsg::PeerResumed { .. }));
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Admitted));
    let snap = r.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    assert!(json.contains("cough"), "the reason from her link is kept");
}

/// The physician ended the visit while the patient's page was away (or the message was
/// lost with her node): when her page comes back, she is told the visit is closed.
#[test]
fn a_patient_coming_back_after_her_visit_ended_is_told_it_is_closed() {
    let mut r = admitted_room();
    r.handle(Input::Disconnect { who: pid("p_pat") }, 3 * SEC);
    act(&mut r, "s_doc", end_visit("v_1"), 4 * SEC);
    let out = resume(&mut r, patient("p_pat", "v_1"), 5 * SEC);
    assert_eq!(closed_with(&out, "p_pat"), Some(ErrorCode::VisitClosed));
}

#[test]
fn chat_reaches_the_visit_only_and_respects_the_room_setting() {
    let mut r = admitted_room();
    connect(&mut r, patient("p_two", "v_2"), 3 * SEC);
    let out = act(&mut r, "p_pat", chat("hello"), 4 * SEC);
    assert!(told!(out, "s_doc", ServerMsg::Chat { text, .. } if text == "hello"));
    assert!(sent_to(&out, "p_two").is_empty());
    let mut cfg = r.config().clone();
    cfg.chat_allowed = false;
    r.reconfigure(cfg);
    let out = act(&mut r, "p_pat", chat("hello"), 5 * SEC);
    assert_eq!(error_code(&out, "p_pat"), Some(ErrorCode::ChatDisabled));
}

fn guest(id: &str) -> Member {
    Member {
        role: Role::Guest,
        reason: None,
        patient_ref: None,
        ..patient(id, "v_1")
    }
}

fn say(r: &mut Room, who: &str, text: &str, now: Millis) {
    act(r, who, chat(text), now);
}

fn history_to(out: &[Output], who: &str) -> Option<Vec<String>> {
    sent_to(out, who).into_iter().find_map(|m| match m {
        ServerMsg::ChatHistory { lines, .. } => Some(
            lines
                .iter()
                .map(|l| format!("{}: {}", l.name, l.text))
                .collect(),
        ),
        _ => None,
    })
}

#[test]
fn a_fresh_page_gets_the_chat_so_far_in_order_and_a_resumed_one_only_its_replay() {
    let mut r = admitted_room();
    say(&mut r, "p_pat", "my throat hurts", 3 * SEC);
    say(&mut r, "s_doc", "since when?", 4 * SEC);
    // The patient reloads: a new connection without her resume token.
    r.handle(Input::Disconnect { who: pid("p_pat") }, 5 * SEC);
    say(&mut r, "s_doc", "are you there?", 6 * SEC);
    let out = connect(&mut r, patient("p_pat", "v_1"), 7 * SEC);
    assert_eq!(
        history_to(&out, "p_pat").unwrap(),
        [
            "Patient p_pat: my throat hurts",
            "Dr s_doc: since when?",
            "Dr s_doc: are you there?"
        ]
    );
    // …and nothing twice: a fresh page gets no replay.
    assert!(
        !sent_to(&out, "p_pat")
            .iter()
            .any(|m| matches!(m, ServerMsg::Chat { .. }))
    );
    assert!(
        history_to(&out, "s_doc").is_none(),
        "the doctor's page kept its chat"
    );
    // The physician drops and resumes with his token: the replay, no history.
    r.handle(Input::Disconnect { who: pid("s_doc") }, 8 * SEC);
    say(&mut r, "p_pat", "yes", 9 * SEC);
    let out = resume(&mut r, doctor("s_doc"), 10 * SEC);
    assert!(history_to(&out, "s_doc").is_none());
    let replayed: Vec<&ServerMsg> = sent_to(&out, "s_doc")
        .into_iter()
        .filter(|m| matches!(m, ServerMsg::Chat { .. }))
        .collect();
    assert_eq!(replayed.len(), 1);
}

#[test]
fn the_kept_chat_is_bounded_and_ends_with_the_visit() {
    let mut r = admitted_room();
    for i in 0..(CHAT_KEEP_LINES + 5) {
        say(&mut r, "p_pat", &format!("line {i}"), 3 * SEC + i as Millis);
    }
    r.handle(Input::Disconnect { who: pid("s_doc") }, 4 * SEC);
    let out = connect(&mut r, doctor("s_doc"), 5 * SEC);
    let lines = history_to(&out, "s_doc").unwrap();
    assert_eq!(lines.len(), CHAT_KEEP_LINES);
    assert_eq!(lines[0], "Patient p_pat: line 5", "the oldest go first");
    // Long lines: the byte bound holds before the line bound.
    let long = "x".repeat(MAX_TEXT);
    for _ in 0..40 {
        say(&mut r, "s_doc", &long, 6 * SEC);
    }
    r.handle(Input::Disconnect { who: pid("p_pat") }, 7 * SEC);
    let out = connect(&mut r, patient("p_pat", "v_1"), 8 * SEC);
    let bytes: usize = history_to(&out, "p_pat")
        .unwrap()
        .iter()
        .map(|l| l.len())
        .sum();
    assert!(bytes <= CHAT_KEEP_BYTES + 40 * 4, "{bytes} bytes kept");
    assert!(
        bytes > CHAT_KEEP_BYTES - MAX_TEXT - 100,
        "{bytes} bytes kept"
    );
    // Ended: nothing is kept for anyone.
    act(&mut r, "s_doc", end_visit("v_1"), 9 * SEC);
    assert!(r.visits[&vid("v_1")].chat.is_empty());
}

#[test]
fn a_guest_joining_later_does_not_read_the_earlier_chat() {
    let mut r = admitted_room();
    say(&mut r, "p_pat", "something private", 3 * SEC);
    let out = connect(&mut r, guest("p_g1"), 4 * SEC);
    assert!(history_to(&out, "p_g1").is_none());
    r.handle(Input::Disconnect { who: pid("p_g1") }, 5 * SEC);
    let out = connect(&mut r, guest("p_g1"), 6 * SEC);
    assert!(history_to(&out, "p_g1").is_none());
}

#[test]
fn a_patient_admitted_again_after_being_sent_back_gets_the_earlier_chat() {
    let mut r = admitted_room();
    say(&mut r, "s_doc", "one moment", 3 * SEC);
    act(
        &mut r,
        "s_doc",
        Act::SendBack { visit: vid("v_1") },
        4 * SEC,
    );
    let out = act(&mut r, "s_doc", Act::Admit { visit: vid("v_1") }, 5 * SEC);
    assert_eq!(history_to(&out, "p_pat").unwrap(), ["Dr s_doc: one moment"]);
    assert_eq!(history_to(&out, "s_doc").unwrap(), ["Dr s_doc: one moment"]);
}

#[test]
fn the_chat_survives_a_snapshot() {
    let mut r = admitted_room();
    say(&mut r, "p_pat", "before failover", 3 * SEC);
    let json = r.snapshot().to_json();
    let mut again = Room::restore(
        snapshot::RoomSnapshot::from_json(&json).unwrap(),
        r.config().clone(),
    )
    .unwrap();
    let out = connect(&mut again, doctor("s_doc"), 4 * SEC);
    assert_eq!(
        history_to(&out, "s_doc").unwrap(),
        ["Patient p_pat: before failover"]
    );
}

#[test]
fn physician_message_reaches_a_waiting_patient() {
    let mut r = waiting_room();
    let message = Act::MessagePatient {
        visit: vid("v_1"),
        text: "running 5 minutes late".into(),
    };
    let out = act(&mut r, "s_doc", message, 2 * SEC);
    assert!(told!(out, "p_pat", ServerMsg::PhysicianMessage { text, .. } if text.contains("late")));
}

#[test]
fn device_check_shows_in_the_queue() {
    let mut r = waiting_room();
    let check = Act::DeviceCheck {
        ok: true,
        summary: "camera, mic, 40 ms".into(),
    };
    let out = act(&mut r, "p_pat", check, 2 * SEC);
    assert!(
        told!(out, "s_doc", ServerMsg::Queue { entries, .. } if entries[0].device_ok == Some(true))
    );
}

#[test]
fn physician_busy_in_a_call_cannot_admit_another() {
    let mut r = admitted_room();
    connect(&mut r, patient("p_two", "v_2"), 3 * SEC);
    let out = act(&mut r, "s_doc", admit("v_2"), 4 * SEC);
    assert_eq!(error_code(&out, "s_doc"), Some(ErrorCode::Busy));
}

#[test]
fn guest_joins_an_admitted_visit_up_to_the_limit() {
    let mut r = admitted_room();
    let guest = |id: &str| Member {
        role: Role::Guest,
        reason: None,
        patient_ref: None,
        ..patient(id, "v_1")
    };
    let out = connect(&mut r, guest("p_g1"), 3 * SEC);
    assert!(told!(out, "p_g1", ServerMsg::Admitted { peers, .. } if peers.len() == 2));
    assert!(told!(out, "s_doc", ServerMsg::PeerJoined { .. }));
    connect(&mut r, guest("p_g2"), 4 * SEC);
    let out = connect(&mut r, guest("p_g3"), 5 * SEC);
    assert_eq!(closed_with(&out, "p_g3"), Some(ErrorCode::RoomFull));
    // A guest for a visit that has not started is refused.
    let early = Member {
        visit: Some(vid("v_9")),
        ..guest("p_g4")
    };
    let out = connect(&mut r, early, 6 * SEC);
    assert_eq!(closed_with(&out, "p_g4"), Some(ErrorCode::VisitClosed));
}

// ---- walk-in ------------------------------------------------------------------

fn offers(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: ServerMsg::WalkInOffer { visit, .. },
            } => Some((to.to_string(), visit.to_string())),
            _ => None,
        })
        .collect()
}

/// The one offer `out` makes, as (physician, visit).
fn offer(physician: &str, visit: &str) -> Vec<(String, String)> {
    vec![(physician.to_string(), visit.to_string())]
}

/// A walk-in room with physicians `s_d1` (since 0) and `s_d2` (since 1 s), both free.
fn walk_in_room() -> Room {
    let mut r = room(RoomKind::WalkIn, &["s_d1", "s_d2"]);
    connect(&mut r, doctor("s_d1"), 0);
    connect(&mut r, doctor("s_d2"), SEC);
    r
}

#[test]
fn walk_in_offers_to_one_free_physician_at_a_time() {
    let mut r = walk_in_room();
    let out = connect(&mut r, patient("p_a", "v_a"), 2 * SEC);
    let o = offers(&out);
    assert_eq!(o.len(), 1, "exactly one offer: {o:?}");
    assert_eq!(o[0].0, "s_d1", "free longest goes first");
    let out = connect(&mut r, patient("p_b", "v_b"), 3 * SEC);
    assert_eq!(offers(&out), offer("s_d2", "v_b"));
    // Admitting a patient not offered to you is refused.
    let out = act(&mut r, "s_d1", accept("v_b"), 4 * SEC);
    assert_eq!(error_code(&out, "s_d1"), Some(ErrorCode::NotOfferedToYou));
    act(&mut r, "s_d1", accept("v_a"), 5 * SEC);
    assert_eq!(r.visit_state(&vid("v_a")), Some(VisitState::Admitted));
}

#[test]
fn walk_in_pass_and_timeout_offer_to_the_next() {
    let mut r = walk_in_room();
    connect(&mut r, patient("p_a", "v_a"), 2 * SEC);
    let pass = Act::WalkInPass { visit: vid("v_a") };
    let out = act(&mut r, "s_d1", pass, 3 * SEC);
    assert_eq!(offers(&out), offer("s_d2", "v_a"));
    // s_d2 does not answer in 30 s: back to s_d1 (everyone has passed: a new round).
    let out = r.handle(Input::Tick, 34 * SEC);
    assert_eq!(offers(&out), offer("s_d1", "v_a"));
    assert!(told!(out, "s_d2", ServerMsg::WalkInWithdrawn { .. }));
}

#[test]
fn walk_in_prefers_language_then_tells_the_patient_when_unmet() {
    let mut r = room(RoomKind::WalkIn, &["s_en", "s_es"]);
    connect(&mut r, doctor("s_en"), 0);
    let spanish = Member {
        languages: vec!["es".into()],
        ..doctor("s_es")
    };
    connect(&mut r, spanish, SEC);
    let speaking = |lang: &str, id: &str, visit: &str| Member {
        lang: Some(lang.into()),
        ..patient(id, visit)
    };
    let out = connect(&mut r, speaking("es-MX", "p_a", "v_a"), 2 * SEC);
    assert_eq!(offers(&out), offer("s_es", "v_a"));
    // A French speaker: nobody matches, told so, offered to the next free physician.
    let out = connect(&mut r, speaking("fr", "p_b", "v_b"), 3 * SEC);
    assert_eq!(offers(&out), offer("s_en", "v_b"));
    assert!(told!(out, "p_b", ServerMsg::PreferenceUnavailable { .. }));
}

#[test]
fn walk_in_away_physician_gets_no_offer_and_drop_withdraws_it() {
    let mut r = walk_in_room();
    act(&mut r, "s_d1", available(false), 2 * SEC);
    let out = connect(&mut r, patient("p_a", "v_a"), 3 * SEC);
    assert_eq!(offers(&out), offer("s_d2", "v_a"));
    let out = r.handle(Input::Disconnect { who: pid("s_d2") }, 4 * SEC);
    assert!(offers(&out).is_empty(), "the only other physician is away");
    let out = act(&mut r, "s_d1", available(true), 5 * SEC);
    assert_eq!(offers(&out), offer("s_d1", "v_a"));
}

#[test]
fn every_walk_in_patient_is_admitted_exactly_once() {
    let mut r = room(RoomKind::WalkIn, &["s_d1", "s_d2"]);
    connect(&mut r, doctor("s_d1"), 0);
    connect(&mut r, doctor("s_d2"), 0);
    for i in 0..5 {
        let p = patient(&format!("p_{i}"), &format!("v_{i}"));
        connect(&mut r, p, SEC + i);
    }
    let mut admitted = Vec::new();
    let mut now = 10 * SEC;
    while admitted.len() < 5 && now < 1000 * SEC {
        let out = r.handle(Input::Tick, now);
        let _ = out;
        for d in ["s_d1", "s_d2"] {
            let offered: Option<VisitId> = r
                .visits
                .values()
                .find(|v| v.offer.as_ref().is_some_and(|(x, _)| x.as_str() == d))
                .map(|v| v.id.clone());
            if let Some(v) = offered {
                let out = act(&mut r, d, Act::WalkInAccept { visit: v.clone() }, now);
                assert!(recorded(&out).contains(&VisitState::Admitted));
                admitted.push(v.clone());
                act(&mut r, d, Act::EndVisit { visit: v }, now + 1);
            }
        }
        now += SEC;
    }
    admitted.sort();
    admitted.dedup();
    assert_eq!(admitted.len(), 5);
}

#[test]
fn a_returning_participant_with_an_unbound_token_is_refused_not_a_panic() {
    let mut r = admitted_room();
    let mut unbound = patient("p_pat", "v_1");
    unbound.visit = None;
    let out = connect(&mut r, unbound, 3 * SEC);
    assert_eq!(closed_with(&out, "p_pat"), Some(ErrorCode::Forbidden));
    assert_eq!(r.visit_state(&vid("v_1")), Some(VisitState::Admitted));
}

/// The runtime sleeps until `next_deadline` instead of ticking every second: each timed
/// rule (walk-in offer, grace, wait limit) must fire at its deadline, and a tick just
/// before it must change nothing.
#[test]
fn next_deadline_names_each_timed_change_and_nothing_happens_before_it() {
    fn quiet_until(r: &mut Room, from: Millis) -> Millis {
        let d = r.next_deadline().expect("a timed rule is pending");
        assert!(d > from, "deadline {d} not after {from}");
        assert!(
            r.handle(Input::Tick, d - 1).is_empty(),
            "tick before {d} acted"
        );
        d
    }
    let mut r = room(RoomKind::WalkIn, &["s_d1"]);
    assert_eq!(r.next_deadline(), None, "an empty room has nothing timed");
    connect(&mut r, doctor("s_d1"), 0);
    assert_eq!(r.next_deadline(), None);
    // A walk-in offer: 30 s to answer.
    let out = connect(&mut r, patient("p_a", "v_a"), SEC);
    assert_eq!(offers(&out), offer("s_d1", "v_a"));
    let d = quiet_until(&mut r, SEC);
    assert_eq!(d, 31 * SEC);
    let out = r.handle(Input::Tick, d);
    assert!(
        !out.is_empty(),
        "the unanswered offer must be passed on at its deadline"
    );
    // The physician drops: 120 s of grace, sooner than the patient's 600 s wait limit.
    r.handle(Input::Disconnect { who: pid("s_d1") }, 40 * SEC);
    let d = quiet_until(&mut r, 40 * SEC);
    assert_eq!(d, 160 * SEC);
    let out = r.handle(Input::Tick, d);
    assert!(
        !out.is_empty(),
        "the physician must leave for good at the end of grace"
    );
    // Only the wait limit is left: the patient becomes a no-show at 1 s + 600 s.
    let d = quiet_until(&mut r, 160 * SEC);
    assert_eq!(d, 601 * SEC);
    r.handle(Input::Tick, d);
    assert_eq!(r.visit_state(&vid("v_a")), Some(VisitState::NoShow));
    assert_eq!(
        r.next_deadline(),
        None,
        "nothing is timed once the visit has ended"
    );
}
