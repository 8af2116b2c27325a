use crate::circuit_breaker::{Classify, Outcome};

/// Counts errors (refused connections, timeouts) and 5xx answers as failures; a 4xx is the
/// client's mistake and says nothing about the service's health.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpClassifier;

fn by_status(status: http::StatusCode) -> Outcome {
    if status.is_server_error() {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

impl<B, E> Classify<http::Response<B>, E> for HttpClassifier {
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(response) => by_status(response.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(result: Result<http::Response<()>, &str>) -> Outcome {
        HttpClassifier.classify(&result)
    }

    fn status(code: u16) -> Result<http::Response<()>, &'static str> {
        Ok(http::Response::builder().status(code).body(()).unwrap())
    }

    #[test]
    fn server_errors_and_transport_errors_are_failures() {
        assert_eq!(classify(status(500)), Outcome::Failure);
        assert_eq!(classify(status(503)), Outcome::Failure);
        assert_eq!(classify(Err("connection refused")), Outcome::Failure);
    }

    #[test]
    fn client_errors_are_not() {
        assert_eq!(classify(status(200)), Outcome::Success);
        assert_eq!(classify(status(404)), Outcome::Success);
        assert_eq!(classify(status(422)), Outcome::Success);
        assert_eq!(classify(status(429)), Outcome::Success);
    }
}
