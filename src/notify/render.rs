//! A notice in words: the e-mail's subject, plain text and HTML, and the text message's
//! body, in the patient's language (English and Spanish; anything else falls back to
//! English), with times shown in the appointment's zone.
//!
//! Pure: no I/O, no clock (the caller passes what it needs). The words name the clinic,
//! the physician, the time and the links the caller gave — nothing else, because a
//! notice carries nothing else (see the module doc of [`crate::notify`]).

use super::{AppointmentFacts, Notice, NoticeKind};
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// The languages the messages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    /// The language of a tag such as `es`, `es-MX` or `ES_es`; English for anything else.
    pub fn of(tag: &str) -> Lang {
        let primary = tag
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match primary.as_str() {
            "es" => Lang::Es,
            _ => Lang::En,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }
}

/// Why a notice cannot be put in words. The notice itself is wrong, so a courier refuses
/// it rather than trying again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("a {0} notice needs the appointment's facts")]
    NoAppointment(&'static str),
    #[error("the confirmation code must be 1 to 12 letters or digits")]
    BadCode,
}

/// What the sender adds to every message: who it comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The clinic's name from the configuration, for notices without an appointment (the
    /// contact code). Empty: "the clinic".
    pub clinic_name: String,
}

/// A notice as an e-mail, before MIME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailWords {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The opt-out link, for the `List-Unsubscribe` header (reminders only).
    pub unsubscribe: Option<String>,
}

/// The longest a clinic or physician name may run in a text message before it is cut.
const SMS_NAME_CHARS: usize = 24;

/// The kind's name in English, for errors and logs (never the notice's contents).
pub fn kind_name(kind: &NoticeKind) -> &'static str {
    match kind {
        NoticeKind::ContactCode { .. } => "contact code",
        NoticeKind::Booked => "booked",
        NoticeKind::Reminder { .. } => "reminder",
        NoticeKind::Moved => "moved",
        NoticeKind::Cancelled => "cancelled",
    }
}

/// The appointment a notice is about, or the reason it cannot be rendered.
pub fn facts(notice: &Notice) -> Result<&AppointmentFacts, RenderError> {
    notice
        .appointment
        .as_ref()
        .ok_or(RenderError::NoAppointment(kind_name(&notice.kind)))
}

fn checked_code(code: &str) -> Result<&str, RenderError> {
    let ok =
        (1..=12).contains(&code.chars().count()) && code.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(code)
    } else {
        Err(RenderError::BadCode)
    }
}

/// One paragraph or one link of a message, the same in text and HTML.
enum Block {
    Para(String),
    Link { label: String, url: String },
}

/// The e-mail for `notice` to a patient called `name`.
pub fn email(notice: &Notice, name: &str, sender: &Sender) -> Result<EmailWords, RenderError> {
    let lang = Lang::of(&notice.lang);
    let es = lang == Lang::Es;
    let name = one_line(name);
    let greeting = match (es, name.is_empty()) {
        (false, true) => "Hello,".to_owned(),
        (false, false) => format!("Hello {name},"),
        (true, true) => "Hola:".to_owned(),
        (true, false) => format!("Hola, {name}:"),
    };
    let links = &notice.links;
    let mut blocks = Vec::new();
    let link = |label: &str, url: &Option<String>| {
        url.as_ref().map(|u| Block::Link {
            label: label.to_owned(),
            url: u.clone(),
        })
    };
    let subject;
    let mut unsubscribe = None;
    let clinic_of = |f: &AppointmentFacts| clinic_or_default(&f.clinic_name, lang);
    match &notice.kind {
        NoticeKind::ContactCode { code } => {
            let code = checked_code(code)?;
            let clinic = clinic_or_default(&sender.clinic_name, lang);
            if es {
                subject = format!("Tu código de confirmación: {code}");
                blocks.push(Block::Para(format!(
                    "Tu código de confirmación para {clinic} es: {code}"
                )));
                blocks.push(Block::Para(
                    "Escríbelo en la página de reserva para confirmar esta dirección. \
                     Si no lo has pedido, puedes ignorar este mensaje."
                        .into(),
                ));
            } else {
                subject = format!("Your confirmation code: {code}");
                blocks.push(Block::Para(format!(
                    "Your confirmation code for {clinic} is: {code}"
                )));
                blocks.push(Block::Para(
                    "Type it on the booking page to confirm this address. \
                     If you did not ask for it, you can ignore this message."
                        .into(),
                ));
            }
        }
        NoticeKind::Booked => {
            let f = facts(notice)?;
            let (when, short) = (long_time(f, lang), short_time(f, lang));
            let (doctor, clinic) = (one_line(&f.physician_name), clinic_of(f));
            if es {
                subject = format!("Cita reservada: {short}");
                blocks.push(Block::Para(format!(
                    "Tu cita por vídeo con {doctor} en {clinic} está reservada para el {when}."
                )));
            } else {
                subject = format!("Appointment booked: {short}");
                blocks.push(Block::Para(format!(
                    "Your video appointment with {doctor} at {clinic} is booked for {when}."
                )));
            }
            blocks.extend(join_and_manage(notice, lang));
            blocks.push(Block::Para(calendar_line(lang, false).into()));
        }
        NoticeKind::Reminder { lead } => {
            let f = facts(notice)?;
            let (when, short, lead) = (
                long_time(f, lang),
                short_time(f, lang),
                in_lead(*lead, lang),
            );
            let (doctor, clinic) = (one_line(&f.physician_name), clinic_of(f));
            if es {
                subject = format!("Recordatorio: cita {lead} ({short})");
                blocks.push(Block::Para(format!(
                    "Te recordamos que tu cita por vídeo con {doctor} en {clinic} empieza {lead}, el {when}."
                )));
            } else {
                subject = format!("Reminder: appointment {lead} ({short})");
                blocks.push(Block::Para(format!(
                    "A reminder: your video appointment with {doctor} at {clinic} starts {lead}, on {when}."
                )));
            }
            blocks.extend(join_and_manage(notice, lang));
            let label = if es {
                "Dejar de recibir recordatorios de esta cita"
            } else {
                "Stop reminders for this appointment"
            };
            blocks.extend(link(label, &links.opt_out));
            unsubscribe = links.opt_out.clone();
        }
        NoticeKind::Moved => {
            let f = facts(notice)?;
            let (when, short) = (long_time(f, lang), short_time(f, lang));
            let (doctor, clinic) = (one_line(&f.physician_name), clinic_of(f));
            if es {
                subject = format!("Cita cambiada: {short}");
                blocks.push(Block::Para(format!(
                    "Tu cita por vídeo con {doctor} en {clinic} ha cambiado al {when}."
                )));
            } else {
                subject = format!("Appointment moved: {short}");
                blocks.push(Block::Para(format!(
                    "Your video appointment with {doctor} at {clinic} has moved to {when}."
                )));
            }
            blocks.extend(join_and_manage(notice, lang));
            blocks.push(Block::Para(calendar_line(lang, false).into()));
        }
        NoticeKind::Cancelled => {
            let f = facts(notice)?;
            let (when, short) = (long_time(f, lang), short_time(f, lang));
            let (doctor, clinic) = (one_line(&f.physician_name), clinic_of(f));
            if es {
                subject = format!("Cita cancelada: {short}");
                blocks.push(Block::Para(format!(
                    "Tu cita por vídeo con {doctor} en {clinic} del {when} está cancelada."
                )));
            } else {
                subject = format!("Appointment cancelled: {short}");
                blocks.push(Block::Para(format!(
                    "Your video appointment with {doctor} at {clinic} on {when} is cancelled."
                )));
            }
            let label = if es {
                "Ver la cita"
            } else {
                "View the appointment"
            };
            blocks.extend(link(label, &links.manage));
            blocks.push(Block::Para(calendar_line(lang, true).into()));
        }
    }
    let clinic = match &notice.appointment {
        Some(f) => clinic_or_default(&f.clinic_name, lang),
        None => clinic_or_default(&sender.clinic_name, lang),
    };
    let footer = if es {
        format!("Mensaje automático de {clinic}.")
    } else {
        format!("Sent automatically by {clinic}.")
    };
    Ok(EmailWords {
        subject,
        text: as_text(&greeting, &blocks, &footer),
        html: as_html(lang, &greeting, &blocks, &footer),
        unsubscribe,
    })
}

fn join_and_manage(notice: &Notice, lang: Lang) -> Vec<Block> {
    let (join, manage) = match lang {
        Lang::Es => (
            "Entrar en la sala de espera (se abre poco antes de la hora)",
            "Ver, cambiar o cancelar la cita",
        ),
        Lang::En => (
            "Join the waiting room (opens shortly before the time)",
            "View, reschedule or cancel",
        ),
    };
    let mut out = Vec::new();
    for (label, url) in [(join, &notice.links.join), (manage, &notice.links.manage)] {
        if let Some(url) = url {
            out.push(Block::Link {
                label: label.to_owned(),
                url: url.clone(),
            });
        }
    }
    out
}

fn calendar_line(lang: Lang, cancel: bool) -> &'static str {
    match (lang, cancel) {
        (Lang::En, false) => "The attached invitation (invite.ics) puts it in your calendar.",
        (Lang::En, true) => "The attached file (invite.ics) takes it off your calendar.",
        (Lang::Es, false) => "La invitación adjunta (invite.ics) la añade a tu calendario.",
        (Lang::Es, true) => "El archivo adjunto (invite.ics) la quita de tu calendario.",
    }
}

fn as_text(greeting: &str, blocks: &[Block], footer: &str) -> String {
    let mut out = format!("{greeting}\n\n");
    for b in blocks {
        match b {
            Block::Para(p) => out.push_str(&format!("{p}\n\n")),
            Block::Link { label, url } => out.push_str(&format!("{label}:\n{url}\n\n")),
        }
    }
    out.push_str(&format!("-- \n{footer}\n"));
    out
}

fn as_html(lang: Lang, greeting: &str, blocks: &[Block], footer: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5\">\n<p>{}</p>\n",
        lang.tag(),
        escape_html(greeting)
    );
    for b in blocks {
        match b {
            Block::Para(p) => out.push_str(&format!("<p>{}</p>\n", escape_html(p))),
            Block::Link { label, url } => out.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>\n",
                escape_html(url),
                escape_html(label)
            )),
        }
    }
    out.push_str(&format!(
        "<p style=\"color: #666; font-size: smaller\">{}</p>\n</body>\n</html>\n",
        escape_html(footer)
    ));
    out
}

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as given, on one line: control characters (a line break typed into a form)
/// become spaces, so a name can never start a new header or paragraph.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn clinic_or_default(name: &str, lang: Lang) -> String {
    let name = one_line(name);
    match (name.is_empty(), lang) {
        (false, _) => name,
        (true, Lang::En) => "the clinic".into(),
        (true, Lang::Es) => "la clínica".into(),
    }
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const DAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const DAYS_ES: [&str; 7] = [
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];

/// The start as a sentence says it, in the appointment's zone: "Monday 14 December 2026,
/// 10:30 (Europe/Madrid time)" / "lunes 14 de diciembre de 2026, 10:30 (hora de
/// Europe/Madrid)".
pub fn long_time(f: &AppointmentFacts, lang: Lang) -> String {
    long_at(f.starts_at, f.zone, lang)
}

pub fn long_at(at: DateTime<Utc>, zone: Tz, lang: Lang) -> String {
    let t = at.with_timezone(&zone);
    let (day, month) = (
        t.weekday().num_days_from_monday() as usize,
        t.month0() as usize,
    );
    let zone_name = zone.name().replace('_', " ");
    match lang {
        Lang::En => format!(
            "{} {} {} {}, {:02}:{:02} ({zone_name} time)",
            DAYS_EN[day],
            t.day(),
            MONTHS_EN[month],
            t.year(),
            t.hour(),
            t.minute()
        ),
        Lang::Es => format!(
            "{} {} de {} de {}, {:02}:{:02} (hora de {zone_name})",
            DAYS_ES[day],
            t.day(),
            MONTHS_ES[month],
            t.year(),
            t.hour(),
            t.minute()
        ),
    }
}

/// The start in few characters, for a subject or a text message: "Mon 14 Dec 10:30 CET" /
/// "lun 14 dic 10:30 CET". The zone's abbreviation says which 10:30 it is.
pub fn short_time(f: &AppointmentFacts, lang: Lang) -> String {
    short_at(f.starts_at, f.zone, lang)
}

pub fn short_at(at: DateTime<Utc>, zone: Tz, lang: Lang) -> String {
    let t = at.with_timezone(&zone);
    let (day, month) = (
        t.weekday().num_days_from_monday() as usize,
        t.month0() as usize,
    );
    let (days, months) = match lang {
        Lang::En => (&DAYS_EN, &MONTHS_EN),
        Lang::Es => (&DAYS_ES, &MONTHS_ES),
    };
    let abbrev = |s: &str| s.chars().take(3).collect::<String>();
    format!(
        "{} {} {} {:02}:{:02} {}",
        abbrev(days[day]),
        t.day(),
        abbrev(months[month]),
        t.hour(),
        t.minute(),
        t.format("%Z")
    )
}

/// How long before the start a reminder is, as "in 24 hours" / "en 24 horas"; whole days
/// from two days on, whole hours, else minutes.
pub fn in_lead(lead: chrono::Duration, lang: Lang) -> String {
    let minutes = lead.num_minutes().max(0);
    let (n, unit) = if minutes >= 48 * 60 && minutes % (24 * 60) == 0 {
        (minutes / (24 * 60), 'd')
    } else if minutes >= 60 && minutes % 60 == 0 {
        (minutes / 60, 'h')
    } else {
        (minutes, 'm')
    };
    let one = n == 1;
    let word = match (lang, unit, one) {
        (Lang::En, 'd', _) => "days",
        (Lang::En, 'h', true) => "hour",
        (Lang::En, 'h', false) => "hours",
        (Lang::En, _, true) => "minute",
        (Lang::En, _, false) => "minutes",
        (Lang::Es, 'd', _) => "días",
        (Lang::Es, 'h', true) => "hora",
        (Lang::Es, 'h', false) => "horas",
        (Lang::Es, _, true) => "minuto",
        (Lang::Es, _, false) => "minutos",
    };
    match lang {
        Lang::En => format!("in {n} {word}"),
        Lang::Es => format!("en {n} {word}"),
    }
}

/// The text message for `notice`: one line, GSM-7 characters only (accents the GSM
/// alphabet lacks are dropped, "vídeo" → "video"), so that it costs one segment where the
/// links allow. No patient name: a text may be read on a shared phone's lock screen.
pub fn sms(notice: &Notice, sender: &Sender) -> Result<String, RenderError> {
    let lang = Lang::of(&notice.lang);
    let es = lang == Lang::Es;
    let cut = |s: &str| {
        let s = one_line(s);
        if s.chars().count() <= SMS_NAME_CHARS {
            s
        } else {
            format!(
                "{}.",
                s.chars()
                    .take(SMS_NAME_CHARS - 1)
                    .collect::<String>()
                    .trim_end()
            )
        }
    };
    let links = &notice.links;
    let with = |label_en: &str, label_es: &str, url: &Option<String>| match url {
        Some(u) => format!(" {}: {u}", if es { label_es } else { label_en }),
        None => String::new(),
    };
    let body = match &notice.kind {
        NoticeKind::ContactCode { code } => {
            let code = checked_code(code)?;
            let clinic = cut(&clinic_or_default(&sender.clinic_name, lang));
            if es {
                format!("{code} es tu código de confirmación de {clinic}.")
            } else {
                format!("{code} is your {clinic} confirmation code.")
            }
        }
        kind => {
            let f = facts(notice)?;
            let clinic = cut(&clinic_or_default(&f.clinic_name, lang));
            let when = short_time(f, lang);
            let manage = with("Manage", "Gestionar", &links.manage);
            match (kind, es) {
                (NoticeKind::Booked, false) => {
                    format!("{clinic}: appointment booked for {when}.{manage}")
                }
                (NoticeKind::Booked, true) => {
                    format!("{clinic}: cita reservada para el {when}.{manage}")
                }
                (NoticeKind::Reminder { .. }, _) => {
                    let join = with("Join", "Entrar", &links.join);
                    let stop = match (&links.opt_out, es) {
                        (Some(u), false) => format!(" No more reminders: {u}"),
                        (Some(u), true) => format!(" Sin recordatorios: {u}"),
                        (None, false) => " Reply STOP to opt out.".to_owned(),
                        (None, true) => " Responde STOP para no recibir más.".to_owned(),
                    };
                    // The join link is what the patient needs now; manage only without it.
                    let go = if join.is_empty() { manage } else { join };
                    if es {
                        format!("{clinic}: recordatorio, cita el {when}.{go}{stop}")
                    } else {
                        format!("{clinic}: reminder, appointment {when}.{go}{stop}")
                    }
                }
                (NoticeKind::Moved, false) => {
                    format!("{clinic}: appointment moved to {when}.{manage}")
                }
                (NoticeKind::Moved, true) => format!("{clinic}: cita cambiada al {when}.{manage}"),
                (NoticeKind::Cancelled, false) => {
                    format!("{clinic}: appointment {when} cancelled.{manage}")
                }
                (NoticeKind::Cancelled, true) => {
                    format!("{clinic}: cita del {when} cancelada.{manage}")
                }
                (NoticeKind::ContactCode { .. }, _) => unreachable!("handled above"),
            }
        }
    };
    Ok(super::gsm::fold(&body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NoticeLinks;
    use chrono::TimeZone;

    fn facts_at(y: i32, mo: u32, d: u32, h: u32, mi: u32, zone: Tz) -> AppointmentFacts {
        let starts_at = zone
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        AppointmentFacts {
            id: "apt-1".into(),
            starts_at,
            ends_at: starts_at + chrono::Duration::minutes(20),
            zone,
            physician_name: "Dr. Ana Ruiz".into(),
            clinic_name: "Riverside Practice".into(),
            sequence: 0,
        }
    }

    fn notice(kind: NoticeKind, lang: &str) -> Notice {
        Notice {
            kind,
            lang: lang.into(),
            appointment: Some(facts_at(2026, 12, 14, 10, 30, chrono_tz::Europe::Madrid)),
            links: NoticeLinks {
                manage: Some("https://visits.example/m/abc".into()),
                join: Some("https://visits.example/j/def".into()),
                opt_out: Some("https://visits.example/o/ghi".into()),
            },
        }
    }

    fn sender() -> Sender {
        Sender {
            clinic_name: "Riverside Practice".into(),
        }
    }

    #[test]
    fn language_tags_pick_spanish_or_fall_back_to_english() {
        assert_eq!(Lang::of("es"), Lang::Es);
        assert_eq!(Lang::of("es-MX"), Lang::Es);
        assert_eq!(Lang::of("ES_es"), Lang::Es);
        assert_eq!(Lang::of("en"), Lang::En);
        assert_eq!(Lang::of("fr"), Lang::En);
        assert_eq!(Lang::of(""), Lang::En);
        assert_eq!(Lang::of("esperanto"), Lang::En);
    }

    #[test]
    fn times_are_shown_in_the_appointments_zone_and_language() {
        let f = facts_at(2026, 12, 14, 10, 30, chrono_tz::Europe::Madrid);
        assert_eq!(f.starts_at.to_rfc3339(), "2026-12-14T09:30:00+00:00");
        assert_eq!(
            long_time(&f, Lang::En),
            "Monday 14 December 2026, 10:30 (Europe/Madrid time)"
        );
        assert_eq!(
            long_time(&f, Lang::Es),
            "lunes 14 de diciembre de 2026, 10:30 (hora de Europe/Madrid)"
        );
        assert_eq!(short_time(&f, Lang::En), "Mon 14 Dec 10:30 CET");
        assert_eq!(short_time(&f, Lang::Es), "lun 14 dic 10:30 CET");
        // Summer time: the same wall clock is another UTC instant, with its own abbreviation.
        let ny = facts_at(2026, 7, 1, 9, 0, chrono_tz::America::New_York);
        assert_eq!(ny.starts_at.to_rfc3339(), "2026-07-01T13:00:00+00:00");
        assert_eq!(short_time(&ny, Lang::En), "Wed 1 Jul 09:00 EDT");
        assert_eq!(
            long_time(&ny, Lang::Es),
            "miércoles 1 de julio de 2026, 09:00 (hora de America/New York)"
        );
    }

    #[test]
    fn the_lead_reads_in_days_hours_or_minutes() {
        let h = chrono::Duration::hours;
        assert_eq!(in_lead(h(24), Lang::En), "in 24 hours");
        assert_eq!(in_lead(h(1), Lang::En), "in 1 hour");
        assert_eq!(in_lead(h(72), Lang::En), "in 3 days");
        assert_eq!(
            in_lead(chrono::Duration::minutes(30), Lang::Es),
            "en 30 minutos"
        );
        assert_eq!(in_lead(h(1), Lang::Es), "en 1 hora");
        assert_eq!(in_lead(h(48), Lang::Es), "en 2 días");
    }

    #[test]
    fn each_kind_has_its_subject_in_each_language() {
        let lead = chrono::Duration::hours(24);
        let cases = [
            (
                NoticeKind::Booked,
                "en",
                "Appointment booked: Mon 14 Dec 10:30 CET",
            ),
            (
                NoticeKind::Booked,
                "es",
                "Cita reservada: lun 14 dic 10:30 CET",
            ),
            (
                NoticeKind::Reminder { lead },
                "en",
                "Reminder: appointment in 24 hours (Mon 14 Dec 10:30 CET)",
            ),
            (
                NoticeKind::Reminder { lead },
                "es",
                "Recordatorio: cita en 24 horas (lun 14 dic 10:30 CET)",
            ),
            (
                NoticeKind::Moved,
                "en",
                "Appointment moved: Mon 14 Dec 10:30 CET",
            ),
            (
                NoticeKind::Moved,
                "es",
                "Cita cambiada: lun 14 dic 10:30 CET",
            ),
            (
                NoticeKind::Cancelled,
                "en",
                "Appointment cancelled: Mon 14 Dec 10:30 CET",
            ),
            (
                NoticeKind::Cancelled,
                "es",
                "Cita cancelada: lun 14 dic 10:30 CET",
            ),
        ];
        for (kind, lang, subject) in cases {
            let words = email(&notice(kind, lang), "Pat", &sender()).unwrap();
            assert_eq!(words.subject, subject);
        }
    }

    #[test]
    fn a_booking_mail_names_who_when_and_the_links_in_text_and_html() {
        let words = email(&notice(NoticeKind::Booked, "es"), "María", &sender()).unwrap();
        assert!(words.text.starts_with("Hola, María:\n\n"), "{}", words.text);
        assert!(
            words.text.contains(
                "Tu cita por vídeo con Dr. Ana Ruiz en Riverside Practice está reservada para el \
                 lunes 14 de diciembre de 2026, 10:30 (hora de Europe/Madrid)."
            ),
            "{}",
            words.text
        );
        assert!(words.text.contains("https://visits.example/j/def"));
        assert!(words.text.contains("https://visits.example/m/abc"));
        // Only reminders carry the opt-out link.
        assert!(!words.text.contains("/o/ghi"));
        assert_eq!(words.unsubscribe, None);
        assert!(words.html.contains("<html lang=\"es\">"));
        assert!(words.html.contains(
            "<a href=\"https://visits.example/m/abc\">Ver, cambiar o cancelar la cita</a>"
        ));
    }

    #[test]
    fn a_reminder_carries_the_opt_out_link() {
        let lead = chrono::Duration::hours(1);
        let words = email(
            &notice(NoticeKind::Reminder { lead }, "en"),
            "Pat",
            &sender(),
        )
        .unwrap();
        assert_eq!(
            words.unsubscribe.as_deref(),
            Some("https://visits.example/o/ghi")
        );
        assert!(
            words
                .text
                .contains("Stop reminders for this appointment:\nhttps://visits.example/o/ghi")
        );
        assert!(
            words
                .text
                .contains("starts in 1 hour, on Monday 14 December 2026")
        );
    }

    #[test]
    fn names_cannot_inject_markup_or_lines() {
        let mut n = notice(NoticeKind::Booked, "en");
        n.appointment.as_mut().unwrap().physician_name = "<script>x</script>".into();
        n.links.manage = Some("https://visits.example/m/a\"onmouseover=\"x".into());
        let words = email(&n, "Eve\r\nBcc: someone@example.com", &sender()).unwrap();
        assert!(!words.html.contains("<script>"));
        assert!(words.html.contains("&lt;script&gt;"));
        assert!(words.html.contains("/m/a&quot;onmouseover=&quot;x"));
        assert!(
            words
                .text
                .starts_with("Hello Eve Bcc: someone@example.com,\n")
        );
    }

    #[test]
    fn the_contact_code_needs_no_appointment_and_a_sane_code() {
        let n = Notice {
            kind: NoticeKind::ContactCode {
                code: "482913".into(),
            },
            lang: "es".into(),
            appointment: None,
            links: NoticeLinks::default(),
        };
        let words = email(&n, "", &sender()).unwrap();
        assert_eq!(words.subject, "Tu código de confirmación: 482913");
        assert!(words.text.starts_with("Hola:\n"));
        assert_eq!(
            sms(&n, &sender()).unwrap(),
            "482913 es tu codigo de confirmacion de Riverside Practice."
        );
        let bad = Notice {
            kind: NoticeKind::ContactCode {
                code: "12 34\n".into(),
            },
            ..n
        };
        assert_eq!(email(&bad, "", &sender()), Err(RenderError::BadCode));
    }

    #[test]
    fn an_appointment_notice_without_its_facts_is_refused() {
        let mut n = notice(NoticeKind::Booked, "en");
        n.appointment = None;
        assert_eq!(
            email(&n, "Pat", &sender()),
            Err(RenderError::NoAppointment("booked"))
        );
        assert_eq!(
            sms(&n, &sender()),
            Err(RenderError::NoAppointment("booked"))
        );
    }

    #[test]
    fn text_messages_are_short_gsm_and_localized() {
        let lead = chrono::Duration::hours(24);
        let cases = [
            (
                NoticeKind::Booked,
                "en",
                "Riverside Practice: appointment booked for Mon 14 Dec 10:30 CET. Manage: https://visits.example/m/abc",
            ),
            (
                NoticeKind::Reminder { lead },
                "es",
                "Riverside Practice: recordatorio, cita el lun 14 dic 10:30 CET. Entrar: https://visits.example/j/def Sin recordatorios: https://visits.example/o/ghi",
            ),
            (
                NoticeKind::Moved,
                "es",
                "Riverside Practice: cita cambiada al lun 14 dic 10:30 CET. Gestionar: https://visits.example/m/abc",
            ),
            (
                NoticeKind::Cancelled,
                "en",
                "Riverside Practice: appointment Mon 14 Dec 10:30 CET cancelled. Manage: https://visits.example/m/abc",
            ),
        ];
        for (kind, lang, want) in cases {
            let body = sms(&notice(kind, lang), &sender()).unwrap();
            assert_eq!(body, want);
            assert!(crate::notify::gsm::is_gsm7(&body), "{body}");
            assert_eq!(crate::notify::gsm::segments(&body), 1, "{body}");
        }
    }

    #[test]
    fn a_long_clinic_name_is_cut_in_a_text() {
        let mut n = notice(NoticeKind::Booked, "en");
        n.appointment.as_mut().unwrap().clinic_name =
            "The Very Long Name of a Family Practice Downtown".into();
        let body = sms(&n, &sender()).unwrap();
        assert!(body.starts_with("The Very Long Name of a.: "), "{body}");
    }

    #[test]
    fn a_reminder_without_an_opt_out_link_says_the_stop_word() {
        let mut n = notice(
            NoticeKind::Reminder {
                lead: chrono::Duration::hours(1),
            },
            "es",
        );
        n.links.opt_out = None;
        n.links.join = None;
        let body = sms(&n, &sender()).unwrap();
        assert!(
            body.ends_with(
                "Gestionar: https://visits.example/m/abc Responde STOP para no recibir mas."
            ),
            "{body}"
        );
    }
}
