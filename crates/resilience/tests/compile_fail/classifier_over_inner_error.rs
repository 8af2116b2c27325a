// A classifier written for the endpoint's own error type, with a `TimeoutLayer` between it and
// the breaker: the breaker's inner service now fails with `BoxError`, so the classifier does not
// fit.
//
// `Classify`'s own message does not show here: the crate's blanket `impl<F: Fn(&Result<T, E>)>
// Classify<T, E> for F` makes rustc report the closure bound it tried last ("expected a `Fn(..)`
// closure"). The fix is still named, in the note "required for `RefusedIsFailure` to implement
// `Classify<u32, Box<dyn Error + Send + Sync>>`": implement it for `BoxError`.
//
// The mistake shows where the stack meets a `Service` bound (here `BoxCloneService::new`, the
// usual way to name a stack's type). Calling a `ServiceExt` method on it instead
// (`service.oneshot(7)`) gives rustc's E0599 ("the method `oneshot` exists ... but its trait
// bounds were not satisfied"), which lists no bound and so shows no trait's message.

use std::time::Duration;

use resilience::{
    BoxError, CircuitBreakerConfig, CircuitBreakerLayer, Classify, Outcome, TimeoutLayer,
};
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
struct RefusedIsFailure;

impl Classify<u32, Refused> for RefusedIsFailure {
    fn classify(&self, result: &Result<u32, Refused>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(Refused) => Outcome::Failure,
        }
    }
}

fn main() {
    let service = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(CircuitBreakerConfig::default())
                .reject_when_open()
                .with_classifier(RefusedIsFailure),
        )
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(service_fn(|id: u32| async move { Ok::<_, Refused>(id) }));
    let _: BoxCloneService<u32, u32, BoxError> = BoxCloneService::new(service);
}
