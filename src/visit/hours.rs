//! Opening hours: a small text format an admin writes and a patient page can explain.
//!
//! ```text
//! Mon-Fri 08:00-17:00; Sat 09:00-12:00
//! Mon,Wed 08:00-12:00, 13:00-17:00; Sun closed
//! ```
//! Rules are separated by `;`. Each rule is a day list (`Mon`, `Mon-Fri`, `Mon,Wed,Fri`,
//! ranges may wrap: `Fri-Mon`) then one or more `HH:MM-HH:MM` spans separated by `,`
//! (24-hour clock, start before end, `24:00` allowed as an end), or the word `closed`.
//! A day named by several rules is open during any of their spans. Times are UTC until
//! examroom has a clinic time-zone setting. Empty text means "always open".
//!
//! Pure: [`OpeningHours::status_at`] takes the time, so it is tested without a clock.

use super::Millis;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Minutes since midnight, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    /// Index 0 is Monday. Spans sorted by start.
    week: [Vec<Span>; 7],
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursStatus {
    pub open: bool,
    /// When it next opens, if closed and it opens within a week.
    pub opens_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HoursError(String);

fn err<T>(m: impl Into<String>) -> Result<T, HoursError> {
    Err(HoursError(m.into()))
}

fn day(s: &str) -> Result<usize, HoursError> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s.trim()))
        .map_or_else(
            || err(format!("`{}` is not a day (Mon, Tue, … Sun)", s.trim())),
            Ok,
        )
}

fn time(s: &str) -> Result<u32, HoursError> {
    let s = s.trim();
    let bad = || HoursError(format!("`{s}` is not a time (HH:MM, 24-hour)"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl OpeningHours {
    pub fn parse(text: &str) -> Result<Self, HoursError> {
        let mut week: [Vec<Span>; 7] = Default::default();
        let mut canonical = Vec::new();
        for rule in text.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (days_part, spans_part) = rule
                .split_once(char::is_whitespace)
                .ok_or_else(|| HoursError(format!("`{rule}`: expected days then times")))?;
            let mut days = Vec::new();
            for item in days_part.split(',') {
                match item.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut d = a;
                        loop {
                            days.push(d);
                            if d == b {
                                break;
                            }
                            d = (d + 1) % 7;
                        }
                    }
                    None => days.push(day(item)?),
                }
            }
            let spans_part = spans_part.trim();
            let mut spans = Vec::new();
            if !spans_part.eq_ignore_ascii_case("closed") {
                for span in spans_part.split(',') {
                    let (a, b) = span.split_once('-').ok_or_else(|| {
                        HoursError(format!("`{}` is not HH:MM-HH:MM", span.trim()))
                    })?;
                    let (start, end) = (time(a)?, time(b)?);
                    if start >= end {
                        return err(format!(
                            "`{}`: the start must be before the end",
                            span.trim()
                        ));
                    }
                    spans.push(Span { start, end });
                }
            }
            for &d in &days {
                week[d].extend(spans.iter().copied());
            }
            canonical.push(format!(
                "{} {}",
                days_part.trim(),
                if spans.is_empty() {
                    "closed".to_owned()
                } else {
                    spans
                        .iter()
                        .map(|s| format!("{}-{}", hhmm(s.start), hhmm(s.end)))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        if canonical.is_empty() {
            return err("no rules; leave it empty (null) for always open");
        }
        for spans in &mut week {
            spans.sort_by_key(|s| s.start);
        }
        Ok(OpeningHours {
            week,
            text: canonical.join("; "),
        })
    }

    /// The hours written back in one spacing, as stored.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn status_at(&self, now: Millis) -> HoursStatus {
        let Some(now) = Utc.timestamp_millis_opt(now).single() else {
            return HoursStatus {
                open: true,
                opens_at: None,
            };
        };
        let today = now.weekday().num_days_from_monday() as usize;
        let minute = now.hour() * 60 + now.minute();
        let open = self.week[today]
            .iter()
            .any(|s| s.start <= minute && minute < s.end);
        if open {
            return HoursStatus {
                open,
                opens_at: None,
            };
        }
        let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
        let opens_at = (0..=7).find_map(|offset| {
            let d = (today + offset) % 7;
            self.week[d]
                .iter()
                .find(|s| offset > 0 || s.start > minute)
                .map(|s| at(midnight, offset as i64, s.start))
        });
        HoursStatus { open, opens_at }
    }
}

fn at(midnight: DateTime<Utc>, days: i64, minute: u32) -> Millis {
    (midnight + Duration::days(days) + Duration::minutes(minute as i64)).timestamp_millis()
}

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// "Mon 08:00 UTC", for messages to patients.
pub fn describe(ms: Millis) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| {
            format!(
                "{} {} UTC",
                DAYS[t.weekday().num_days_from_monday() as usize],
                t.format("%H:%M")
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01 was a Monday.
    fn utc(day: u32, h: u32, m: u32) -> Millis {
        Utc.with_ymd_and_hms(2024, 1, day, h, m, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn parses_the_documented_forms() {
        let h = OpeningHours::parse("mon-fri 08:00-17:00;Sat 09:00-12:00, 13:00-14:00").unwrap();
        assert_eq!(
            h.text(),
            "mon-fri 08:00-17:00; Sat 09:00-12:00, 13:00-14:00"
        );
        assert!(OpeningHours::parse("Fri-Mon 00:00-24:00").is_ok());
        assert!(OpeningHours::parse("Mon,Wed 08:00-12:00; Sun closed").is_ok());
    }

    #[test]
    fn refuses_nonsense_with_a_reason() {
        for bad in [
            "",
            " ; ",
            "Mon",
            "Funday 08:00-17:00",
            "Mon 8:00-17:00",
            "Mon 17:00-08:00",
            "Mon 08:00-25:00",
            "Mon 08:00-24:30",
            "Mon 08:00",
            "Mon 08:60-09:00",
        ] {
            assert!(OpeningHours::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn open_and_next_opening() {
        let h = OpeningHours::parse("Mon-Fri 08:00-17:00; Sat 09:00-12:00").unwrap();
        // Monday 10:00: open.
        let open_now = HoursStatus {
            open: true,
            opens_at: None,
        };
        assert_eq!(h.status_at(utc(1, 10, 0)), open_now);
        // Monday 07:59: opens at 08:00 today.
        assert_eq!(h.status_at(utc(1, 7, 59)).opens_at, Some(utc(1, 8, 0)));
        // Monday 17:00 sharp: closed, opens Tuesday 08:00.
        let s = h.status_at(utc(1, 17, 0));
        assert!(!s.open);
        assert_eq!(s.opens_at, Some(utc(2, 8, 0)));
        // Saturday 12:30: next is Monday 08:00.
        assert_eq!(h.status_at(utc(6, 12, 30)).opens_at, Some(utc(8, 8, 0)));
        assert_eq!(describe(utc(8, 8, 0)), "Mon 08:00 UTC");
    }

    #[test]
    fn a_week_with_no_hours_never_opens() {
        let h = OpeningHours::parse("Mon-Sun closed").unwrap();
        let s = h.status_at(utc(3, 12, 0));
        assert!(!s.open);
        assert_eq!(s.opens_at, None);
    }
}
