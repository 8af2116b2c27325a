//! Request ids: made only when the request did not bring one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes ids `<random prefix>-<counter>`: unique across replicas (random prefix per process)
/// and cheap (no UUID dependency, one atomic increment).
#[derive(Debug, Clone)]
pub(crate) struct CounterRequestId {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl CounterRequestId {
    pub(crate) fn new() -> Self {
        Self {
            prefix: format!("{:08x}", rand::random::<u32>()).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for CounterRequestId {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
