//! Free appointment slots from a physician's schedule (issue 21).
//!
//! A schedule is wall-clock hours in the physician's time zone: weekly hours, dated
//! exceptions (leave, or other hours that day), the visit types a patient picks from (each
//! with its own length) and a buffer after each visit. Slots are computed for a window and
//! a visit type, never stored one by one.
//!
//! The grid: every length and buffer is a multiple of [`GRID_MS`] (5 minutes), and hours
//! start on it, so every appointment covers whole grid units. The store claims one
//! row per unit an appointment (with its buffer) covers under a unique key, which is what
//! makes double booking impossible across visit types ([`units`]). A time off the grid
//! (a schedule stored before the grid was enforced) is widened to the units it touches,
//! here and in the store alike.
//!
//! Daylight saving: slots are laid out on the wall clock, then placed in time.
//! - A start that does not exist (the hour skipped in spring) is not offered.
//! - A start that exists twice (the hour repeated in autumn) is offered once, at its first
//!   occurrence; a slot lasts its real length, so one that crosses the change ends at the
//!   wall-clock time that length gives.
//!
//! Pure: [`Schedule::free_slots`] takes the window and the taken appointments, so it is
//! tested without a clock or a store.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The longest window one call may ask for: bounds the work a public booking page can cause.
pub const MAX_WINDOW_DAYS: i64 = 62;

/// The grid appointments are laid on, in milliseconds since the epoch (5 minutes). Every
/// zone in use today is offset from UTC by a multiple of it, so wall-clock times on the
/// grid are on it in UTC too.
pub const GRID_MS: i64 = 300_000;

/// At most this many visit types per schedule.
pub const MAX_VISIT_TYPES: usize = 12;

/// The grid units `[first, end)` (unix ms, steps of [`GRID_MS`]) that the occupied time
/// `[start, until)` covers, widened outward to whole units.
pub fn units(start: i64, until: i64) -> (i64, i64) {
    (
        start.div_euclid(GRID_MS) * GRID_MS,
        (until + GRID_MS - 1).div_euclid(GRID_MS) * GRID_MS,
    )
}

/// A visit type's short key (`first`, `follow-up`): 1–32 of `a-z 0-9 - _`. What a booking
/// names; the clinic's words for it are [`VisitType::name`].
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct VisitTypeKey(String);

impl VisitTypeKey {
    /// The one type of a schedule stored before visit types existed.
    pub const DEFAULT: &'static str = "visit";

    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(VisitTypeKey(s.to_owned()))
        } else {
            Err(ScheduleError::VisitTypeKey)
        }
    }

    pub fn default_key() -> Self {
        VisitTypeKey(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VisitTypeKey {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<VisitTypeKey> for String {
    fn from(k: VisitTypeKey) -> String {
        k.0
    }
}

impl std::fmt::Display for VisitTypeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A kind of visit a patient can book, with its own length ("first visit", 40 min).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VisitType {
    pub key: VisitTypeKey,
    /// In the clinic's words; may be empty for a schedule's only type.
    pub name: String,
    #[serde(with = "minutes")]
    pub length: Duration,
}

impl VisitType {
    /// The implicit single type of a schedule without visit types.
    pub fn single(length: Duration) -> Self {
        VisitType {
            key: VisitTypeKey::default_key(),
            name: String::new(),
            length,
        }
    }
}

/// Stored as whole minutes (`"length": 40`).
mod minutes {
    use chrono::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_minutes())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let m = <i64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::minutes(m))
    }
}

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
    /// What a patient can book, at least one; the first is the default.
    pub visit_types: Vec<VisitType>,
    /// Time kept free after each visit (notes, a late start).
    pub buffer: Duration,
}

/// One bookable appointment time (the visit itself, without the buffer). As a taken
/// appointment passed to [`Schedule::free_slots`], the time it occupies: its visit and the
/// buffer it was booked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a visit lasts between 5 minutes and 8 hours, in steps of 5 minutes")]
    VisitLength,
    #[error("the buffer after a visit is between 0 and 2 hours, in steps of 5 minutes")]
    BufferLength,
    #[error("working hours must end after they start")]
    EmptySpan,
    #[error("working hours start on a multiple of 5 minutes (09:05, not 09:07)")]
    OffGrid,
    #[error("give between 1 and {MAX_VISIT_TYPES} visit types")]
    VisitTypeCount,
    #[error("a visit type's key is 1–32 characters of a-z, 0-9, - and _")]
    VisitTypeKey,
    #[error("two visit types have the same key")]
    DuplicateVisitType,
    #[error("a visit type's name is at most 60 characters")]
    VisitTypeName,
    #[error("this physician has no such visit type")]
    UnknownVisitType,
    #[error("an exception's last day is before its first")]
    ExceptionOrder,
    #[error("the window must end after it starts and span at most {MAX_WINDOW_DAYS} days")]
    Window,
}

impl Schedule {
    /// What a schedule being set must satisfy: [`Self::check`], every length, buffer and
    /// start of working hours on the grid ([`GRID_MS`]), visit types with distinct keys.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        self.check()?;
        let on_grid = |d: Duration| d.num_milliseconds() % GRID_MS == 0;
        if !self.visit_types.iter().all(|t| on_grid(t.length)) {
            return Err(ScheduleError::VisitLength);
        }
        if !on_grid(self.buffer) {
            return Err(ScheduleError::BufferLength);
        }
        let grid_mins = (GRID_MS / 60_000) as u32;
        let on = |t: NaiveTime| t.second() == 0 && t.minute().is_multiple_of(grid_mins);
        // Slots start at a span's start plus whole steps; where a span ends only bounds them.
        if !self.spans().all(|s| on(s.start)) {
            return Err(ScheduleError::OffGrid);
        }
        let mut keys: Vec<_> = self.visit_types.iter().map(|t| &t.key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != self.visit_types.len() {
            return Err(ScheduleError::DuplicateVisitType);
        }
        if self.visit_types.iter().any(|t| t.name.chars().count() > 60) {
            return Err(ScheduleError::VisitTypeName);
        }
        Ok(())
    }

    /// Refuses what cannot be laid out: zero-length or reversed spans, silly lengths, no
    /// visit type. (Lenient about the grid: a schedule stored before it still lists slots.)
    pub fn check(&self) -> Result<(), ScheduleError> {
        if self.visit_types.is_empty() || self.visit_types.len() > MAX_VISIT_TYPES {
            return Err(ScheduleError::VisitTypeCount);
        }
        if self
            .visit_types
            .iter()
            .any(|t| t.length < Duration::minutes(5) || t.length > Duration::hours(8))
        {
            return Err(ScheduleError::VisitLength);
        }
        if self.buffer < Duration::zero() || self.buffer > Duration::hours(2) {
            return Err(ScheduleError::BufferLength);
        }
        if self.spans().any(|s| s.end <= s.start) {
            return Err(ScheduleError::EmptySpan);
        }
        if self.exceptions.iter().any(|e| e.last < e.first) {
            return Err(ScheduleError::ExceptionOrder);
        }
        Ok(())
    }

    fn spans(&self) -> impl Iterator<Item = &Span> {
        self.weekly
            .iter()
            .flatten()
            .chain(self.exceptions.iter().flat_map(|e| &e.hours))
    }

    /// The default visit type (the first).
    pub fn default_type(&self) -> Option<&VisitType> {
        self.visit_types.first()
    }

    /// The visit type with this key.
    pub fn visit_type(&self, key: &VisitTypeKey) -> Result<&VisitType, ScheduleError> {
        self.visit_types
            .iter()
            .find(|t| t.key == *key)
            .ok_or(ScheduleError::UnknownVisitType)
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

    /// Free slots of the default visit type (see [`Self::free_slots_for`]).
    pub fn free_slots(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        taken: &[Slot],
    ) -> Result<Vec<Slot>, ScheduleError> {
        let kind = self
            .default_type()
            .ok_or(ScheduleError::VisitTypeCount)?
            .clone();
        self.free_slots_for(&kind, from, to, taken)
    }

    /// Free slots of `kind` starting in `[from, to)`, in time order, leaving out any whose
    /// visit and buffer overlap the time a `taken` appointment occupies (on the grid).
    /// Slots are laid out from the start of each span, one visit and buffer apart.
    pub fn free_slots_for(
        &self,
        kind: &VisitType,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        taken: &[Slot],
    ) -> Result<Vec<Slot>, ScheduleError> {
        self.check()?;
        if to <= from || to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(ScheduleError::Window);
        }
        // A local date can hold instants a day either side of the UTC ones.
        let first = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let last = to.with_timezone(&self.zone).date_naive() + Duration::days(1);
        let step = kind.length + self.buffer;
        let taken: Vec<(i64, i64)> = taken
            .iter()
            .map(|t| units(t.start.timestamp_millis(), t.end.timestamp_millis()))
            .collect();
        let mut slots = Vec::new();
        for date in first.iter_days().take_while(|d| *d <= last) {
            for span in self.hours_on(date) {
                let end = date.and_time(span.end);
                let mut at = date.and_time(span.start);
                // The real time the previous slot and its buffer end: a slot across the
                // spring change is longer on the wall clock, and the next one waits for it.
                let mut after: Option<DateTime<Utc>> = None;
                while at + kind.length <= end {
                    let Some(start) = self.first_instant(at) else {
                        at += step;
                        continue;
                    };
                    if let Some(m) = after.filter(|m| start < *m) {
                        let wall = m.with_timezone(&self.zone).naive_local();
                        at = if wall > at { wall } else { at + step };
                        continue;
                    }
                    let slot = Slot {
                        start,
                        end: start + kind.length,
                    };
                    after = Some(slot.end + self.buffer);
                    let (a, b) = units(
                        start.timestamp_millis(),
                        (slot.end + self.buffer).timestamp_millis(),
                    );
                    let free = !taken.iter().any(|(c, d)| a < *d && *c < b);
                    if free && from <= start && start < to {
                        slots.push(slot);
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
            visit_types: vec![VisitType::single(Duration::minutes(30))],
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
        s.visit_types[0].length = Duration::hours(1);
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
        s.visit_types[0].length = Duration::minutes(20);
        s.buffer = Duration::minutes(10);
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z", &[]);
        // 09:00–09:20, 09:30–09:50; 10:00 would end past the hours.
        assert_eq!(slots, ["2027-02-01T09:00Z", "2027-02-01T09:30Z"]);
        s.visit_types[0].length = Duration::minutes(45);
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z", &[]);
        assert_eq!(slots, ["2027-02-01T09:00Z"]);
    }

    #[test]
    fn a_taken_appointment_and_its_buffer_block_the_slots_they_overlap() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (11, 0))]);
        s.buffer = Duration::minutes(5);
        // A taken one occupies its visit and its buffer: 09:35–10:05, then 5 min.
        let taken = [Slot {
            start: utc("2027-02-01T09:35:00Z"),
            end: utc("2027-02-01T10:10:00Z"),
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
        s.visit_types[0].length = Duration::minutes(1);
        assert_eq!(s.free_slots(a, b, &[]), Err(ScheduleError::VisitLength));
        s.visit_types[0].length = Duration::minutes(30);
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

    fn kind(key: &str, mins: i64) -> VisitType {
        VisitType {
            key: VisitTypeKey::parse(key).unwrap(),
            name: key.to_owned(),
            length: Duration::minutes(mins),
        }
    }

    #[test]
    fn each_visit_type_is_laid_out_with_its_own_length() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (10, 30))]);
        s.visit_types = vec![kind("first", 40), kind("follow-up", 20)];
        s.buffer = Duration::minutes(5);
        let (a, b) = (utc("2027-02-01T00:00:00Z"), utc("2027-02-02T00:00:00Z"));
        let first = s.free_slots_for(&s.visit_types[0], a, b, &[]).unwrap();
        assert_eq!(starts(&first), ["2027-02-01T09:00Z", "2027-02-01T09:45Z"]);
        assert!(
            first
                .iter()
                .all(|x| x.end - x.start == Duration::minutes(40))
        );
        let follow = s.free_slots_for(&s.visit_types[1], a, b, &[]).unwrap();
        // 10:15 would end past the hours.
        assert_eq!(
            starts(&follow),
            [
                "2027-02-01T09:00Z",
                "2027-02-01T09:25Z",
                "2027-02-01T09:50Z"
            ]
        );
        // The default type is the first.
        assert_eq!(s.free_slots(a, b, &[]).unwrap(), first);
    }

    #[test]
    fn a_booked_visit_of_one_type_blocks_the_overlapping_slots_of_another() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (10, 30))]);
        s.visit_types = vec![kind("first", 40), kind("follow-up", 20)];
        s.buffer = Duration::minutes(5);
        // A follow-up booked at 09:25 occupies 09:25–09:50 (its buffer included).
        let taken = [Slot {
            start: utc("2027-02-01T09:25:00Z"),
            end: utc("2027-02-01T09:50:00Z"),
        }];
        let (a, b) = (utc("2027-02-01T00:00:00Z"), utc("2027-02-02T00:00:00Z"));
        let first = s.free_slots_for(&s.visit_types[0], a, b, &taken).unwrap();
        // 09:00–09:40 (+5) and 09:45–10:25 overlap it: no first visit fits that morning.
        assert!(first.is_empty(), "{:?}", starts(&first));
        let follow = s.free_slots_for(&s.visit_types[1], a, b, &taken).unwrap();
        assert_eq!(starts(&follow), ["2027-02-01T09:00Z", "2027-02-01T09:50Z"]);
    }

    #[test]
    fn a_longer_visit_type_across_the_spring_change_lasts_its_length_and_the_next_waits() {
        // New York, 2027-03-14: 02:00 EST becomes 03:00 EDT. A 40-minute visit at 01:40
        // EST ends at 03:20 EDT; the wall-clock 03:00 would overlap it, so 03:20 is next.
        let mut s = every_day(chrono_tz::America::New_York, vec![span((1, 0), (4, 0))]);
        s.visit_types = vec![kind("first", 40)];
        let slots = s
            .free_slots(
                utc("2027-03-14T00:00:00Z"),
                utc("2027-03-15T00:00:00Z"),
                &[],
            )
            .unwrap();
        assert_eq!(
            starts(&slots),
            [
                "2027-03-14T06:00Z",
                "2027-03-14T06:40Z",
                "2027-03-14T07:20Z"
            ]
        );
        assert!(slots.windows(2).all(|w| w[0].end <= w[1].start));
        assert!(
            slots
                .iter()
                .all(|x| x.end - x.start == Duration::minutes(40))
        );
    }

    #[test]
    fn a_time_off_the_grid_blocks_every_unit_it_touches() {
        assert_eq!(units(0, 1), (0, GRID_MS));
        assert_eq!(units(GRID_MS, 3 * GRID_MS), (GRID_MS, 3 * GRID_MS));
        assert_eq!(units(GRID_MS + 1, 3 * GRID_MS - 1), (GRID_MS, 3 * GRID_MS));
        // A stored 09:37–09:52 appointment blocks the units 09:35–09:55: the 09:30 slot.
        let s = every_day(chrono_tz::UTC, vec![span((9, 0), (11, 0))]);
        let taken = [Slot {
            start: utc("2027-02-01T09:37:00Z"),
            end: utc("2027-02-01T09:52:00Z"),
        }];
        let slots = free(&s, "2027-02-01T00:00:00Z", "2027-02-02T00:00:00Z", &taken);
        assert_eq!(
            slots,
            [
                "2027-02-01T09:00Z",
                "2027-02-01T10:00Z",
                "2027-02-01T10:30Z"
            ]
        );
    }

    #[test]
    fn a_schedule_being_set_keeps_to_the_grid_and_distinct_visit_types() {
        let mut s = every_day(chrono_tz::UTC, vec![span((9, 0), (12, 0))]);
        assert_eq!(s.validate(), Ok(()));
        s.visit_types = vec![kind("first", 42)];
        assert_eq!(s.validate(), Err(ScheduleError::VisitLength));
        s.visit_types = vec![kind("first", 40), kind("first", 20)];
        assert_eq!(s.validate(), Err(ScheduleError::DuplicateVisitType));
        s.visit_types = vec![];
        assert_eq!(s.validate(), Err(ScheduleError::VisitTypeCount));
        s.visit_types = vec![kind("first", 40)];
        s.buffer = Duration::minutes(7);
        assert_eq!(s.validate(), Err(ScheduleError::BufferLength));
        s.buffer = Duration::zero();
        s.weekly[0] = vec![span((9, 7), (12, 0))];
        assert_eq!(s.validate(), Err(ScheduleError::OffGrid));
        // Stored before the grid: still laid out.
        assert!(s.check().is_ok());
        assert_eq!(
            VisitTypeKey::parse("Follow up"),
            Err(ScheduleError::VisitTypeKey)
        );
        assert_eq!(
            s.visit_type(&VisitTypeKey::parse("nope").unwrap()),
            Err(ScheduleError::UnknownVisitType)
        );
    }
}
