use std::fmt;

/// No endpoint of a balancer would take the request now: their breakers are open (or busy,
/// behind [`FailFast`](super::FailFast)), or there are none.
///
/// A local rejection: the request reached no endpoint, so [`RetryPolicy`](crate::retry::RetryPolicy)
/// does not retry it, and a gateway answers `503 Service Unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAvailableEndpoint {
    endpoints: Option<usize>,
}

impl NoAvailableEndpoint {
    /// A balancer with this many endpoints, none available.
    pub(crate) fn new(endpoints: usize) -> Self {
        Self {
            endpoints: Some(endpoints),
        }
    }

    /// A balancer that was not ready, however many endpoints it has.
    pub(crate) fn not_ready() -> Self {
        Self { endpoints: None }
    }

    /// How many endpoints the balancer had, when it said.
    pub fn endpoints(&self) -> Option<usize> {
        self.endpoints
    }
}

impl fmt::Display for NoAvailableEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.endpoints {
            Some(0) => f.write_str("no endpoint is admitting traffic (there are none)"),
            Some(n) => write!(
                f,
                "no endpoint is admitting traffic ({n} endpoints, none available)"
            ),
            None => f.write_str("no endpoint is admitting traffic"),
        }
    }
}

impl std::error::Error for NoAvailableEndpoint {}
