// The same mistake with a closure as the classifier. A closure's argument type is checked as a
// closure signature (E0631), so `Classify`'s own message does not show; the compiler names the
// signature expected instead, `&Result<u32, Box<dyn Error + Send + Sync>>`, which is the fix.

use std::time::Duration;

use resilience::{BoxError, CircuitBreakerConfig, CircuitBreakerLayer, Outcome, TimeoutLayer};
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

fn main() {
    let service = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(CircuitBreakerConfig::default())
                .reject_when_open()
                .with_classifier(|result: &Result<u32, Refused>| match result {
                    Ok(_) => Outcome::Success,
                    Err(Refused) => Outcome::Failure,
                }),
        )
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(service_fn(|id: u32| async move { Ok::<_, Refused>(id) }));
    let _: BoxCloneService<u32, u32, BoxError> = BoxCloneService::new(service);
}
