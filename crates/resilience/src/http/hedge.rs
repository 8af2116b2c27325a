//! Which HTTP requests may be raced by a copy.

use http::Method;

use super::HttpRequest;
use crate::hedge::HedgePolicy;

/// Hedges idempotent requests only (GET, HEAD, OPTIONS, PUT, DELETE), with a body that can be
/// copied. A POST with an `Idempotency-Key` is safe to retry after a failure, but racing two
/// copies of it at once would make the server settle which one wins: it is never hedged.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdempotentHedge;

impl<R: HttpRequest> HedgePolicy<R> for IdempotentHedge {
    fn clone_request(&self, request: &R) -> Option<R> {
        let idempotent = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        if idempotent {
            request.try_clone()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, key: bool) -> http::Request<String> {
        let mut builder = http::Request::builder().method(method).uri("http://u/x");
        if key {
            builder = builder.header("idempotency-key", "k");
        }
        builder.body(String::new()).unwrap()
    }

    #[test]
    fn only_idempotent_methods_are_copied() {
        for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            assert!(
                IdempotentHedge
                    .clone_request(&request(method, false))
                    .is_some()
            );
        }
        assert!(
            IdempotentHedge
                .clone_request(&request(Method::POST, true))
                .is_none()
        );
        assert!(
            IdempotentHedge
                .clone_request(&request(Method::PATCH, false))
                .is_none()
        );
    }
}
