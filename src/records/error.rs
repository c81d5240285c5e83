//! What can go wrong reading a patient's record, whichever source it comes from.

use std::time::Duration;

/// Why the panel could not be had. Clone so one failed fetch can answer every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordsError {
    #[error("the record source has no such patient")]
    NotFound,
    #[error("the record source is unavailable: {cause}")]
    Unavailable { cause: String },
    #[error("the record source refused our credentials: {cause}")]
    Unauthorized { cause: String },
    #[error("the record source did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the record source sent data we cannot read: {0}")]
    BadData(String),
    #[error("the record source's answer was larger than the {0}-byte limit")]
    TooLarge(usize),
    #[error("records configuration: {0}")]
    Config(String),
}
