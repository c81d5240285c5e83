//! Free appointment slots from a physician's schedule (issue 21).
//!
//! A schedule is wall-clock hours in the physician's time zone: weekly hours, dated
//! exceptions (leave, or other hours that day), the length of a visit and a buffer after
//! each. Slots are computed for a window, never stored one by one.
//!
//! Daylight saving: slots are laid out on the wall clock, then placed in time.
//! - A start that does not exist (the hour skipped in spring) is not offered.
//! - A start that exists twice (the hour repeated in autumn) is offered once, at its first
//!   occurrence; a slot lasts its real length, so one that crosses the change ends at the
//!   wall-clock time that length gives.
//!
//! Pure: [`Schedule::free_slots`] takes the window and the taken appointments, so it is
//! tested without a clock or a store.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The longest window one call may ask for: bounds the work a public booking page can cause.
pub const MAX_WINDOW_DAYS: i64 = 62;

/// Wall-clock working hours, `[start, end)`, in the schedule's zone. Serialised as
/// `{"start": "09:00:00", "end": "12:30:00"}` (the stored form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// Dated change to the weekly hours, for each day from `first` to `last` (inclusive).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exception {
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// The hours on those days instead of the weekly ones; empty for a day off.
    pub hours: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub zone: Tz,
    /// Index 0 is Monday.
    pub weekly: [Vec<Span>; 7],
    pub exceptions: Vec<Exception>,
    /// How long one visit lasts.
    pub visit: Duration,
    /// Time kept free after each visit (notes, a late start).
    pub buffer: Duration,
}

/// One bookable appointment time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a visit lasts between 5 minutes and 8 hours")]
    VisitLength,
    #[error("the buffer after a visit is between 0 and 2 hours")]
    BufferLength,
    #[error("working hours must end after they start")]
    EmptySpan,
    #[error("an exception's last day is before its first")]
    ExceptionOrder,
    #[error("the window must end after it starts and span at most {MAX_WINDOW_DAYS} days")]
    Window,
}

impl Schedule {
    /// Refuses what cannot be laid out: zero-length or reversed spans, silly lengths.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.visit < Duration::minutes(5) || self.visit > Duration::hours(8) {
            return Err(ScheduleError::VisitLength);
        }
        if self.buffer < Duration::zero() || self.buffer > Duration::hours(2) {
            return Err(ScheduleError::BufferLength);
        }
        let spans = self
            .weekly
            .iter()
            .flatten()
            .chain(self.exceptions.iter().flat_map(|e| &e.hours));
        if spans.into_iter().any(|s| s.end <= s.start) {
            return Err(ScheduleError::EmptySpan);
        }
        if self.exceptions.iter().any(|e| e.last < e.first) {
            return Err(ScheduleError::ExceptionOrder);
        }
        Ok(())
    }

    /// The hours of one local date: its exception if one covers it (the last listed wins),
    /// else the weekly hours of its weekday.
    fn hours_on(&self, date: NaiveDate) -> &[Span] {
        self.exceptions
            .iter()
            .rev()
            .find(|e| e.first <= date && date <= e.last)
            .map_or_else(
                || &self.weekly[date.weekday().num_days_from_monday() as usize][..],
                |e| &e.hours[..],
            )
    }

    /// Free slots starting in `[from, to)`, in time order, leaving out any that overlaps a
    /// `taken` appointment (each taken one also keeps its buffer).
    pub fn free_slots(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        taken: &[Slot],
    ) -> Result<Vec<Slot>, ScheduleError> {
        self.validate()?;
        if to <= from || to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(ScheduleError::Window);
        }
        // A local date can hold instants a day either side of the UTC ones.
        let first = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let last = to.with_timezone(&self.zone).date_naive() + Duration::days(1);
        let step = self.visit + self.buffer;
        let mut slots = Vec::new();
        for date in first.iter_days().take_while(|d| *d <= last) {
            for span in self.hours_on(date) {
                let end = date.and_time(span.end);
                let mut at = date.and_time(span.start);
                while at + self.visit <= end {
                    if let Some(start) = self.first_instant(at) {
                        let slot = Slot {
                            start,
                            end: start + self.visit,
                        };
                        let free = !taken.iter().any(|t| {
                            slot.start < t.end + self.buffer && t.start < slot.end + self.buffer
                        });
                        if free && from <= start && start < to {
                            slots.push(slot);
                        }
                    }
                    at += step;
                }
            }
        }
        slots.sort();
        slots.dedup();
        Ok(slots)
    }

    fn first_instant(&self, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earliest, _) => Some(earliest.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }
    fn span(a: (u32, u32), b: (u32, u32)) -> Span {
        Span {
            start: hm(a.0, a.1),
            end: hm(b.0, b.1),
        }
    }
    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }
    /// Every day the same hours, 30-minute visits, no buffer.
    fn every_day(zone: Tz, hours: Vec<Span>) -> Schedule {
        Schedule {
            zone,
            weekly: std::array::from_fn(|_| hours.clone()),
            exceptions: Vec::new(),
            visit: Duration::minutes(30),
            buffer: Duration::zero(),
        }
    }
    fn starts(slots: &[Slot]) -> Vec<String> {
        slots
            .iter()
            .map(|s| s.start.format("%Y-%m-%dT%H:%MZ").to_string())
            .collect()
    }
    /// The starts of the free slots in `[from, to)` with `taken` booked.
    fn free(s: &Schedule, from: &str, to: &str, taken: &[Slot]) -> Vec<String> {
        starts(&s.free_slots(utc(from), utc(to), taken).unwrap())
    }

    #[test]
    fn weekday_hours_in_madrid_are_placed_in_utc_by_the_season() {
        let mut s = every_day(chrono_tz::Europe::Madrid, Vec::new());
        s.weekly[0] = vec![span((9, 0), (10, 0))]; // Mondays only
        // 2027-01-04 and 2027-07-05 are Mondays: CET (+1) and CEST (+2).
        let winter = free(&s, "2027-01-04T00:00:00Z", "2027-01-11T00:00:00Z", &[]);
        assert_eq!(winter, ["2027-01-04T08:00Z", "2027-01-04T08:30Z"]);
        let summer = free(&s, "2027-07-05T00:00:00Z", "2027-07-06T00:00:00Z", &[]);
        assert_eq!(summer, ["2027-07-05T07:00Z", "2027-07-05T07:30Z"]);
    }

    #[test]
    fn the_hour_skipped_in_spring_offers_no_slot_and_a_slot_across_it_lasts_its_length() {
        // New York, 2027-03-14: 02:00 EST becomes 03:00 EDT.
        let s = every_day(chrono_tz::America::New_York, vec![span((1, 0), (4, 0))]);
        let (from, to) = (utc("2027-03-14T00:00:00Z"), utc("2027-03-15T00:00:00Z"));
        let slots = s.free_slots(from, to, &[]).unwrap();
        // 01:00 and 01:30 EST (06:00, 06:30Z); 02:00 and 02:30 do not exist; 03:00, 03:30 EDT.
        assert_eq!(
            starts(&slots),
            [
                "2027-03-14T06:00Z",
                "2027-03-14T06:30Z",
                "2027-03-14T07:00Z",
                "2027-03-14T07:30Z"
            ]
        );
        assert!(
            slots
                .iter()
                .all(|s| s.end - s.start == Duration::minutes(30))
        );
    }

    #[test]
    fn the_hour_repeated_in_autumn_is_offered_once() {
        // New York, 2027-11-07: 02:00 EDT becomes 01:00 EST, so 01:00–02:00 happens twice.
        let mut s = every_day(chrono_tz::America::New_York, vec![span((0, 0), (3, 0))]);
        s.visit = Duration::hours(1);
        let slots = free(&s, "2027-11-07T00:00:00Z", "2027-11-08T00:00:00Z", &[]);
        // 00:00 EDT (04Z), 01:00 EDT (05Z, the first 01:00), 02:00 EST (07Z).
        assert_eq!(
            slots,
            [
                "2027-11-07T04:00Z",
                "2027-11-07T05:00Z",
                "2027-11-07T07:00Z"
            ]
        );
    }

    #[test]
    fn leave_closes_its_days_and_other_hours_replace_the_weekly_ones() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (10, 0))]);
        s.exceptions = vec![
            Exception {
                first: day(2027, 2, 1),
                last: day(2027, 2, 2),
                hours: Vec::new(),
            },
            Exception {
                first: day(2027, 2, 3),
                last: day(2027, 2, 3),
                hours: vec![span((14, 0), (14, 30))],
            },
        ];
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-05T00:00:00Z", &[]);
        assert_eq!(
            slots,
            [
                "2027-02-03T14:00Z",
                "2027-02-04T09:00Z",
                "2027-02-04T09:30Z"
            ]
        );
    }

    #[test]
    fn a_buffer_follows_every_visit_and_no_slot_runs_past_the_hours() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (10, 0))]);
        s.visit = Duration::minutes(20);
        s.buffer = Duration::minutes(10);
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z", &[]);
        // 09:00–09:20, 09:30–09:50; 10:00 would end past the hours.
        assert_eq!(slots, ["2027-02-01T09:00Z", "2027-02-01T09:30Z"]);
        s.visit = Duration::minutes(45);
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z", &[]);
        assert_eq!(slots, ["2027-02-01T09:00Z"]);
    }

    #[test]
    fn a_taken_appointment_and_its_buffer_block_the_slots_they_overlap() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (11, 0))]);
        s.buffer = Duration::minutes(5);
        let taken = [Slot {
            start: utc("2027-02-01T09:35:00Z"),
            end: utc("2027-02-01T10:05:00Z"),
        }];
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z", &taken);
        // Laid out 09:00, 09:35, 10:10; 09:35 is taken; 10:10 starts after 10:05 + 5 min.
        assert_eq!(slots, ["2027-02-01T09:00Z", "2027-02-01T10:10Z"]);
    }

    #[test]
    fn only_slots_starting_inside_the_window_are_returned() {
        let s = every_day(chrono_tz::UTC, vec![span((9, 0), (10, 0))]);
        let slots = free(&s, "2027-02-01T09:15:00Z", "2027-02-01T09:45:00Z", &[]);
        assert_eq!(slots, ["2027-02-01T09:30Z"]);
    }

    #[test]
    fn bad_schedules_and_windows_are_refused_with_a_reason() {
        let mut s = every_day(chrono_tz::UTC, vec![span((10, 0), (9, 0))]);
        let (a, b) = (utc("2027-02-01T00:00:00Z"), utc("2027-02-02T00:00:00Z"));
        assert_eq!(s.free_slots(a, b, &[]), Err(ScheduleError::EmptySpan));
        s.weekly = Default::default();
        s.visit = Duration::minutes(1);
        assert_eq!(s.free_slots(a, b, &[]), Err(ScheduleError::VisitLength));
        s.visit = Duration::minutes(30);
        s.buffer = Duration::hours(3);
        assert_eq!(s.free_slots(a, b, &[]), Err(ScheduleError::BufferLength));
        s.buffer = Duration::zero();
        assert_eq!(s.free_slots(b, a, &[]), Err(ScheduleError::Window));
        assert_eq!(
            s.free_slots(a, a + Duration::days(MAX_WINDOW_DAYS + 1), &[]),
            Err(ScheduleError::Window)
        );
        s.exceptions = vec![Exception {
            first: day(2027, 2, 2),
            last: day(2027, 2, 1),
            hours: Vec::new(),
        }];
        assert_eq!(s.free_slots(a, b, &[]), Err(ScheduleError::ExceptionOrder));
    }
}
