use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, StatusCode, header};

use super::{BodyTooLarge, HttpRequest};
use crate::error::BoxError;
use crate::error::find_in_chain;
use crate::retry::{RetryDecision, RetryRules, is_local_rejection};

/// The header that makes a POST or PATCH safe to send twice: the server answers a repeat with
/// the original response instead of acting again.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// HTTP retry rules.
///
/// - A request may be retried when its method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE,
///   TRACE) or it carries an `Idempotency-Key` header.
/// - Any request whose connection was refused is retried at once and for free
///   ([`RetryDecision::RetryNeverSent`]): it provably never reached the server.
/// - A replayable request whose connection broke (reset, closed before the answer was whole) is
///   retried at once, within the budget ([`RetryDecision::RetryAtOnce`]): that endpoint is gone,
///   not busy, and another can answer now. Timeouts and 5xx answers wait out the backoff.
/// - Retried results: transport errors, timeouts and broken bodies, and the answers 429, 500,
///   502, 503 and 504. A `Retry-After` on such an answer sets the delay.
/// - Never retried: this crate's own rejections ([`is_local_rejection`]), a body over the cap
///   ([`BodyTooLarge`]: another replica would send the same), and requests whose body is a
///   stream. Those are sent once; the policy counts them in
///   [`RetryMetrics::not_cloneable`](crate::retry::RetryMetrics::not_cloneable) and logs why.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRetryRules;

impl HttpRetryRules {
    /// Whether sending `request` twice is harmless: an idempotent method, or an
    /// `Idempotency-Key` the server deduplicates by.
    pub fn is_replayable<R: HttpRequest>(request: &R) -> bool {
        matches!(
            *request.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        ) || request.headers().contains_key(IDEMPOTENCY_KEY)
    }

    fn is_retryable_status(status: StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
    }
}

impl<R: HttpRequest, B> RetryRules<R, http::Response<B>, BoxError> for HttpRetryRules {
    fn clone_request(&self, request: &R) -> Option<R> {
        let copy = request.try_clone();
        if copy.is_none() {
            tracing::warn!(
                target: "resilience::retry",
                method = %request.method(),
                "the request body is a stream and cannot be copied: sending it once, without retries"
            );
        }
        copy
    }

    fn prepare_resend(&self, request: &mut R, resend_count: u32) {
        request.set_resend_count(resend_count);
    }

    fn classify(&self, request: &R, result: &Result<http::Response<B>, BoxError>) -> RetryDecision {
        match result {
            Err(error) => {
                let error: &(dyn std::error::Error + 'static) = error.as_ref();
                if is_local_rejection(error) {
                    tracing::debug!(target: "resilience::retry", %error, "not retrying: a rejection of this client's own, no upstream failed");
                    RetryDecision::DoNotRetry
                } else if find_in_chain::<BodyTooLarge>(error).is_some() {
                    tracing::debug!(target: "resilience::retry", "not retrying: the answer is over the body cap, another endpoint would send the same");
                    RetryDecision::DoNotRetry
                } else if never_sent(error) {
                    RetryDecision::RetryNeverSent
                } else if !Self::is_replayable(request) {
                    tracing::debug!(target: "resilience::retry", method = %request.method(), "not retrying: the method is not idempotent and there is no Idempotency-Key");
                    RetryDecision::DoNotRetry
                } else if connection_broke(error) {
                    RetryDecision::RetryAtOnce
                } else {
                    RetryDecision::Retry
                }
            }
            Ok(response)
                if Self::is_retryable_status(response.status())
                    && !Self::is_replayable(request) =>
            {
                tracing::debug!(target: "resilience::retry", method = %request.method(), status = response.status().as_u16(), "not retrying: the method is not idempotent and there is no Idempotency-Key");
                RetryDecision::DoNotRetry
            }
            Ok(response) if Self::is_retryable_status(response.status()) => {
                match response.headers().get(header::RETRY_AFTER) {
                    Some(value) => match parse_retry_after(value, SystemTime::now()) {
                        Some(delay) => RetryDecision::RetryAfter(delay),
                        None => RetryDecision::Retry,
                    },
                    None => RetryDecision::Retry,
                }
            }
            Ok(_) => RetryDecision::DoNotRetry,
        }
    }
}

/// Whether the error happened while connecting, so the request was never sent: a refused
/// connection anywhere in the chain (hyper-util and reqwest both keep the `io::Error`), or,
/// with the `reqwest` feature, any connect failure reqwest reports (DNS, TLS handshake).
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let refused = find_in_chain::<std::io::Error>(error)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    #[cfg(feature = "reqwest")]
    let refused =
        refused || find_in_chain::<reqwest::Error>(error).is_some_and(reqwest::Error::is_connect);
    refused
}

/// The I/O error kinds of a connection that broke under a request: reset, aborted, or closed
/// before the answer was whole. The retry rules and the attempt span's `error.type` agree on
/// them through this one list.
pub(crate) fn is_broken_connection(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind;
    matches!(
        kind,
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}

/// Whether the connection broke under the request: reset, aborted, or closed before the answer
/// was whole. A dying process does this; an overloaded one times out or answers 503 instead.
fn connection_broke(error: &(dyn std::error::Error + 'static)) -> bool {
    let broke =
        find_in_chain::<std::io::Error>(error).is_some_and(|io| is_broken_connection(io.kind()));
    #[cfg(feature = "reqwest")]
    let broke = broke
        || find_in_chain::<hyper::Error>(error).is_some_and(hyper::Error::is_incomplete_message);
    broke
}

/// Reads a `Retry-After` value: delay-seconds (`120`) or an HTTP date, which is measured from
/// `now`. A date in the past means "now"; anything else unreadable is `None`.
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Request = http::Request<String>;

    fn request(method: Method, idempotency_key: bool) -> Request {
        let mut builder = http::Request::builder()
            .method(method)
            .uri("http://upstream/orders");
        if idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY, "k-1");
        }
        builder.body(String::new()).unwrap()
    }

    type Response = http::Response<()>;

    fn response(status: u16, retry_after: Option<&str>) -> Result<Response, BoxError> {
        let mut builder = http::Response::builder().status(status);
        if let Some(value) = retry_after {
            builder = builder.header(header::RETRY_AFTER, value);
        }
        Ok(builder.body(()).unwrap())
    }

    fn upstream_error() -> Result<Response, BoxError> {
        Err(crate::timeout::Elapsed::new(Duration::from_secs(1)).into())
    }

    #[test]
    fn idempotent_methods_are_retried_after_failures() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            let request = request(method.clone(), false);
            assert_eq!(
                HttpRetryRules.classify(&request, &upstream_error()),
                RetryDecision::Retry,
                "{method}"
            );
            assert_eq!(
                HttpRetryRules.classify(&request, &response(503, None)),
                RetryDecision::Retry,
                "{method}"
            );
        }
    }

    #[test]
    fn post_and_patch_need_an_idempotency_key() {
        for method in [Method::POST, Method::PATCH] {
            assert_eq!(
                HttpRetryRules.classify(&request(method.clone(), false), &upstream_error()),
                RetryDecision::DoNotRetry
            );
            assert_eq!(
                HttpRetryRules.classify(&request(method.clone(), false), &response(502, None)),
                RetryDecision::DoNotRetry
            );
            assert_eq!(
                HttpRetryRules.classify(&request(method, true), &upstream_error()),
                RetryDecision::Retry
            );
        }
    }

    #[test]
    fn client_errors_and_successes_are_final() {
        let get = request(Method::GET, false);
        for status in [200, 201, 400, 404, 409, 422, 501] {
            assert_eq!(
                HttpRetryRules.classify(&get, &response(status, None)),
                RetryDecision::DoNotRetry,
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_sets_the_delay() {
        let get = request(Method::GET, false);
        assert_eq!(
            HttpRetryRules.classify(&get, &response(503, Some("2"))),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            HttpRetryRules.classify(&get, &response(429, Some("soon"))),
            RetryDecision::Retry
        );
    }

    #[test]
    fn local_rejections_are_never_retried() {
        let get = request(Method::GET, false);
        let open: Result<Response, BoxError> = Err(crate::circuit_breaker::CircuitOpen::new(
            "users-1".into(),
            crate::circuit_breaker::State::Open,
            Some(Duration::from_secs(1)),
        )
        .into());
        assert_eq!(
            HttpRetryRules.classify(&get, &open),
            RetryDecision::DoNotRetry
        );
        let none: Result<Response, BoxError> =
            Err(crate::balance::NoAvailableEndpoint::new(2).into());
        assert_eq!(
            HttpRetryRules.classify(&get, &none),
            RetryDecision::DoNotRetry
        );
    }

    #[test]
    fn an_oversized_body_is_not_retried() {
        let get = request(Method::GET, false);
        let body = futures::executor::block_on(crate::http::ReadBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"too long")),
            3,
        ));
        let result: Result<Response, BoxError> = body.map(|_| http::Response::new(()));
        assert!(result.is_err());
        assert_eq!(
            HttpRetryRules.classify(&get, &result),
            RetryDecision::DoNotRetry
        );
    }

    #[test]
    fn a_refused_connection_is_retried_at_once_whatever_the_method() {
        let refused: Result<Response, BoxError> = Err(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(
            HttpRetryRules.classify(&request(Method::POST, false), &refused),
            RetryDecision::RetryNeverSent
        );
        let reset: Result<Response, BoxError> = Err(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(
            HttpRetryRules.classify(&request(Method::POST, false), &reset),
            RetryDecision::DoNotRetry,
            "a reset POST may have reached the server"
        );
        assert_eq!(
            HttpRetryRules.classify(&request(Method::GET, false), &reset),
            RetryDecision::RetryAtOnce,
            "a reset GET goes elsewhere now: that endpoint is gone, not busy"
        );
        assert_eq!(
            HttpRetryRules.classify(&request(Method::GET, false), &upstream_error()),
            RetryDecision::Retry,
            "a timeout waits out the backoff"
        );
    }

    #[test]
    fn parses_both_forms_of_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let seconds = HeaderValue::from_static("120");
        assert_eq!(
            parse_retry_after(&seconds, now),
            Some(Duration::from_secs(120))
        );
        let date =
            HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(30))).unwrap();
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past =
            HeaderValue::from_str(&httpdate::fmt_http_date(now - Duration::from_secs(30))).unwrap();
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("-1"), now),
            None
        );
    }
}
