//! Appointments (issue 21): what a physician's schedule makes bookable.
//!
//! So far only the pure part: [`availability`] turns a schedule (weekly hours, exceptions,
//! visit types with their lengths, a buffer, in the physician's time zone) into free slots. Booking,
//! manage links and reminders build on it.

pub mod availability;

pub use availability::{
    Exception, GRID_MS, Schedule, ScheduleError, Slot, Span, VisitType, VisitTypeKey, units,
};
