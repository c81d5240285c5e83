//! The `.ics` attached to booked, moved and cancelled mails (RFC 5545, with the iTIP
//! methods of RFC 5546): `METHOD:REQUEST` puts the appointment in the patient's calendar
//! or, with the same UID and a higher SEQUENCE, moves it there; `METHOD:CANCEL` takes it
//! out. Times are in UTC (`…Z`), so no VTIMEZONE is needed. Pure: the caller passes the
//! time stamp.

use super::render::{self, Lang, RenderError, one_line};
use super::{Notice, NoticeKind};
use chrono::{DateTime, Utc};

/// What the calendar file asks of the patient's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Request,
    Cancel,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }
}

/// A rendered calendar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub method: Method,
    /// The whole file, CRLF line ends, folded at 75 octets.
    pub body: String,
}

/// Who the invitation is from and to, as calendar addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties<'a> {
    /// The host part of every UID (the clinic's public host name), so UIDs are unique
    /// across deployments.
    pub uid_host: &'a str,
    /// The address mails come from: the ORGANIZER.
    pub organizer: &'a str,
    /// The patient's address and name: the ATTENDEE.
    pub attendee: &'a str,
    pub attendee_name: &'a str,
}

/// The calendar file for `notice`, or `None` for kinds that carry none (the contact code,
/// reminders).
pub fn invitation(
    notice: &Notice,
    parties: &Parties<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Invitation>, RenderError> {
    let method = match notice.kind {
        NoticeKind::Booked | NoticeKind::Moved => Method::Request,
        NoticeKind::Cancelled => Method::Cancel,
        NoticeKind::ContactCode { .. } | NoticeKind::Reminder { .. } => return Ok(None),
    };
    let f = render::facts(notice)?;
    let lang = Lang::of(&notice.lang);
    let clinic = one_line(&f.clinic_name);
    let doctor = one_line(&f.physician_name);
    let summary = match (lang, clinic.is_empty()) {
        (Lang::En, false) => format!("Video appointment: {doctor} ({clinic})"),
        (Lang::En, true) => format!("Video appointment: {doctor}"),
        (Lang::Es, false) => format!("Cita por vídeo: {doctor} ({clinic})"),
        (Lang::Es, true) => format!("Cita por vídeo: {doctor}"),
    };
    let mut description = Vec::new();
    let (join_label, manage_label) = match lang {
        Lang::En => ("Join", "View, reschedule or cancel"),
        Lang::Es => ("Entrar", "Ver, cambiar o cancelar"),
    };
    if let Some(u) = &notice.links.join {
        description.push(format!("{join_label}: {u}"));
    }
    if let Some(u) = &notice.links.manage {
        description.push(format!("{manage_label}: {u}"));
    }
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//examroom//appointments//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{}", method.as_str()),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", uid(&f.id, parties.uid_host)),
        format!("SEQUENCE:{}", f.sequence),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART:{}", stamp(f.starts_at)),
        format!("DTEND:{}", stamp(f.ends_at)),
        format!("SUMMARY:{}", text_value(&summary)),
        format!(
            "ORGANIZER;CN={}:mailto:{}",
            param_value(&clinic),
            parties.organizer
        ),
        format!(
            "ATTENDEE;CN={};ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:{}",
            param_value(&one_line(parties.attendee_name)),
            parties.attendee
        ),
    ];
    if !description.is_empty() {
        lines.push(format!(
            "DESCRIPTION:{}",
            text_value(&description.join("\n"))
        ));
    }
    if let Some(u) = notice.links.join.as_ref().or(notice.links.manage.as_ref()) {
        lines.push(format!("URL:{}", uri_value(u)));
    }
    lines.push(
        match method {
            Method::Request => "STATUS:CONFIRMED",
            Method::Cancel => "STATUS:CANCELLED",
        }
        .to_owned(),
    );
    lines.push("TRANSP:OPAQUE".to_owned());
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut body = String::new();
    for l in lines {
        body.push_str(&fold(&l));
    }
    Ok(Some(Invitation { method, body }))
}

/// `id@host`, one per appointment for its whole life: a calendar matches a move or a
/// cancellation to the entry it made by this.
pub fn uid(appointment_id: &str, host: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | ':' | '\\' | '"'))
            .collect::<String>()
    };
    let host = clean(host);
    if host.is_empty() {
        clean(appointment_id)
    } else {
        format!("{}@{host}", clean(appointment_id))
    }
}

/// A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and line breaks escaped.
fn text_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value (RFC 5545 3.2): always quoted; a quoted string cannot hold a DQUOTE
/// or a control character, so those go.
fn param_value(s: &str) -> String {
    let inner: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{inner}\"")
}

/// A URI value: no escaping exists, so anything that could break the line goes.
fn uri_value(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect()
}

/// One content line, folded (RFC 5545 3.1): at most 75 octets a line, continuation lines
/// start with a space, never splitting a UTF-8 character; CRLF after each.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{AppointmentFacts, NoticeLinks};
    use chrono::TimeZone;

    fn notice(kind: NoticeKind, sequence: u32) -> Notice {
        let starts_at = Utc.with_ymd_and_hms(2026, 12, 14, 9, 30, 0).unwrap();
        Notice {
            kind,
            lang: "en".into(),
            appointment: Some(AppointmentFacts {
                id: "apt-7f3a".into(),
                starts_at,
                ends_at: starts_at + chrono::Duration::minutes(20),
                zone: chrono_tz::Europe::Madrid,
                physician_name: "Dr. Ana Ruiz".into(),
                clinic_name: "Riverside, Family; Practice".into(),
                sequence,
            }),
            links: NoticeLinks {
                manage: Some("https://visits.example/m/abc".into()),
                join: Some("https://visits.example/j/def".into()),
                opt_out: None,
            },
        }
    }

    fn parties() -> Parties<'static> {
        Parties {
            uid_host: "visits.example",
            organizer: "appointments@visits.example",
            attendee: "pat@example.org",
            attendee_name: "Pat \"PJ\" Doe",
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 5).unwrap()
    }

    /// The content lines, unfolded.
    fn lines(body: &str) -> Vec<String> {
        body.replace("\r\n ", "")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_booking_is_a_request_with_uid_sequence_and_utc_times() {
        let inv = invitation(&notice(NoticeKind::Booked, 0), &parties(), now())
            .unwrap()
            .unwrap();
        assert_eq!(inv.method, Method::Request);
        let l = lines(&inv.body);
        for want in [
            "METHOD:REQUEST",
            "UID:apt-7f3a@visits.example",
            "SEQUENCE:0",
            "DTSTAMP:20261201T080005Z",
            "DTSTART:20261214T093000Z",
            "DTEND:20261214T095000Z",
            "SUMMARY:Video appointment: Dr. Ana Ruiz (Riverside\\, Family\\; Practice)",
            "ORGANIZER;CN=\"Riverside, Family; Practice\":mailto:appointments@visits.example",
            "ATTENDEE;CN=\"Pat PJ Doe\";ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:pat@example.org",
            "DESCRIPTION:Join: https://visits.example/j/def\\nView\\, reschedule or cancel: https://visits.example/m/abc",
            "STATUS:CONFIRMED",
        ] {
            assert!(l.contains(&want.to_owned()), "{want} missing in {l:#?}");
        }
        assert_eq!(l.first().unwrap(), "BEGIN:VCALENDAR");
        assert_eq!(l.last().unwrap(), "END:VCALENDAR");
    }

    #[test]
    fn a_move_keeps_the_uid_and_raises_the_sequence_a_cancel_says_so() {
        let moved = invitation(&notice(NoticeKind::Moved, 2), &parties(), now())
            .unwrap()
            .unwrap();
        let l = lines(&moved.body);
        assert!(l.contains(&"UID:apt-7f3a@visits.example".to_owned()));
        assert!(l.contains(&"SEQUENCE:2".to_owned()));
        let cancel = invitation(&notice(NoticeKind::Cancelled, 3), &parties(), now())
            .unwrap()
            .unwrap();
        assert_eq!(cancel.method, Method::Cancel);
        let l = lines(&cancel.body);
        assert!(l.contains(&"METHOD:CANCEL".to_owned()));
        assert!(l.contains(&"STATUS:CANCELLED".to_owned()));
        assert!(l.contains(&"SEQUENCE:3".to_owned()));
    }

    #[test]
    fn reminders_and_codes_carry_no_calendar() {
        let r = NoticeKind::Reminder {
            lead: chrono::Duration::hours(1),
        };
        assert_eq!(invitation(&notice(r, 0), &parties(), now()), Ok(None));
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let mut n = notice(NoticeKind::Booked, 0);
        n.lang = "es".into();
        n.appointment.as_mut().unwrap().physician_name = "Dra. Señora ñ".repeat(10);
        let inv = invitation(&n, &parties(), now()).unwrap().unwrap();
        for line in inv.body.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        assert!(inv.body.ends_with("END:VCALENDAR\r\n"));
        let summary = lines(&inv.body)
            .into_iter()
            .find(|l| l.starts_with("SUMMARY:"))
            .unwrap();
        assert!(summary.contains(&"Dra. Señora ñ".repeat(10)));
    }
}
