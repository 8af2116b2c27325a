// Retry rules written for the endpoint's own error type, with a breaker between `Retry` and the
// endpoint: `Retry` sees the breaker's `BoxError`, so the rules do not fit, and `RetryRules`'s
// message says to write them for `Result<Response, BoxError>`.
//
// As with a classifier, the message shows where the stack meets a `Service` bound
// (`BoxCloneService::new` here); a `ServiceExt` method call on it gives rustc's E0599 instead.

use resilience::{
    BoxError, CircuitBreakerConfig, CircuitBreakerLayer, RetryDecision, RetryPolicy, RetryRules,
};
use tower::retry::RetryLayer;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, service_fn};

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}

impl std::error::Error for Refused {}

#[derive(Clone)]
struct RetryRefused;

impl RetryRules<u32, u32, Refused> for RetryRefused {
    fn clone_request(&self, request: &u32) -> Option<u32> {
        Some(*request)
    }

    fn classify(&self, _: &u32, result: &Result<u32, Refused>) -> RetryDecision {
        match result {
            Ok(_) => RetryDecision::DoNotRetry,
            Err(Refused) => RetryDecision::RetryNeverSent,
        }
    }
}

fn main() -> Result<(), BoxError> {
    let retry = RetryPolicy::builder().rules(RetryRefused).build()?;
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry))
        .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default()).reject_when_open())
        .service(service_fn(|id: u32| async move { Ok::<_, Refused>(id) }));
    let _: BoxCloneService<u32, u32, BoxError> = BoxCloneService::new(service);
    Ok(())
}
