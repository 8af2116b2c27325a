/// Every endpoint of a balancer refused traffic (their breakers are open), or there are none.
///
/// A local rejection: the request reached no endpoint, so [`RetryPolicy`](crate::RetryPolicy)
/// does not retry it, and a gateway answers `503 Service Unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no endpoint is admitting traffic ({endpoints} endpoints, none available)")]
pub struct NoAvailableEndpoint {
    endpoints: usize,
}

impl NoAvailableEndpoint {
    pub(crate) fn new(endpoints: usize) -> Self {
        Self { endpoints }
    }

    /// How many endpoints the balancer had.
    pub fn endpoints(&self) -> usize {
        self.endpoints
    }
}
