use std::time::Duration;

/// One attempt took longer than its [`Timeout`](super::Timeout).
///
/// An upstream failure: the breaker counts it and an idempotent request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("attempt timed out after {}ms", .limit.as_millis())]
pub struct Elapsed {
    limit: Duration,
}

impl Elapsed {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { limit }
    }

    /// The limit that passed.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// A whole request, retries included, took longer than its [`Deadline`](super::Deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request deadline of {}ms exceeded", .limit.as_millis())]
pub struct DeadlineExceeded {
    limit: Duration,
}

impl DeadlineExceeded {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { limit }
    }

    /// The deadline that passed.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}
