// An endpoint whose error is only `Debug`: a breaker (like every layer of this crate, and tower's
// own) turns the inner error into a `BoxError`, which needs `std::error::Error`.
//
// The bound is std's `Into<BoxError>` on the breaker's `Service` impl, so no attribute of this
// crate can reword the message. Where the stack meets a `Service` bound the compiler names the
// missing trait (`Refused: std::error::Error`), which is the fix: implement `Display` and
// `std::error::Error` for the error, or map it into one (`map_err`) before the breaker.

use resilience::{BoxError, CircuitBreakerConfig, CircuitBreakerLayer};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, service_fn};

#[derive(Debug)]
struct Refused;

fn main() {
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default()).reject_when_open())
        .service(service_fn(|id: u32| async move {
            if id == 0 { Err(Refused) } else { Ok(id) }
        }));
    let _: BoxCloneService<u32, u32, BoxError> = BoxCloneService::new(service);
}
