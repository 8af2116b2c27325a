//! Every upstream outcome that is not a usable answer, mapped to a status, in this one place.
//!
//! | what happened | status |
//! |---|---|
//! | every endpoint's breaker is open, or none admits traffic | 503, with `Retry-After` |
//! | the deadline was spent, or the last attempt timed out, waiting for the upstream | 504 |
//! | the upstream could not be reached, broke the connection or its body, or broke the protocol | 502 |
//! | the upstream answered more than the gateway passes on | 502 |
//! | the upstream answered 5xx | 502 (its body is logged, not passed on) |
//! | the upstream answered something other than JSON, or a status the route does not expect | 502 |
//!
//! Upstream 2xx and 4xx JSON answers are not failures: [`check`] hands them back as a
//! [`Reply`], and the 4xx go back to the client as they are.
//!
//! Every function here takes plain values (the service's name and what the stack returned; the
//! client's `UpstreamUnavailable` carries the soonest probe), not the upstream's client: the mapping can be read and tested on its own,
//! and `upstream` depends on it, not the other way round.

use std::time::Duration;

use bytes::Bytes;
use demo_kit::{AppError, ErrorCode};
use http::StatusCode;
use resilience::http::{BodyFailed, BodyTooLarge, UpstreamUnavailable};
use resilience::{
    BoxError, CircuitOpen, DeadlineExceeded, Elapsed, NoAvailableEndpoint, chain_text,
    find_in_chain,
};

/// `Retry-After` when no breaker says when it will probe.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A usable upstream answer: 2xx or 4xx, JSON (or 204 without a body).
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
    /// Which replica answered (its `x-served-by`).
    pub served_by: Option<http::HeaderValue>,
}

/// Turns what the resilience stack returned for `service` into a reply the routes can use, or
/// the error the client gets.
pub fn check(
    service: &str,
    outcome: Result<http::Response<Bytes>, BoxError>,
) -> Result<Reply, AppError> {
    let response = outcome.map_err(|error| unreachable(service, &error))?;
    let (parts, body) = response.into_parts();
    let status = parts.status;
    if status.is_server_error() {
        return Err(server_error(service, status, &body));
    }
    let is_json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json && status != StatusCode::NO_CONTENT {
        return Err(not_json(service, status));
    }
    Ok(Reply {
        status,
        body,
        served_by: parts.headers.get(demo_kit::SERVED_BY).cloned(),
    })
}

/// The answer for a request the resilience stack could not complete.
fn unreachable(service: &str, error: &BoxError) -> AppError {
    let chain: &(dyn std::error::Error + 'static) = error.as_ref();
    // When the upstream's first open breaker will admit a probe, as the client saw it when it
    // found no endpoint admitting the request.
    let next_probe_in =
        find_in_chain::<UpstreamUnavailable>(chain).and_then(UpstreamUnavailable::next_probe_in);
    if let Some(open) = find_in_chain::<CircuitOpen>(chain) {
        let retry_after = open
            .retry_after()
            .or(next_probe_in)
            .unwrap_or(DEFAULT_RETRY_AFTER);
        tracing::warn!(%service, error = %open, "upstream unavailable");
        return unavailable(service, retry_after);
    }
    if find_in_chain::<NoAvailableEndpoint>(chain).is_some() {
        let retry_after = next_probe_in.unwrap_or(DEFAULT_RETRY_AFTER);
        tracing::warn!(%service, "upstream unavailable: no endpoint admits traffic");
        return unavailable(service, retry_after);
    }
    if find_in_chain::<BodyTooLarge>(chain).is_some() {
        tracing::warn!(%service, error = %chain_text(chain), "upstream answer over the size limit");
        return AppError::new(
            ErrorCode::BadGateway,
            format!("the {service} answered with more than the gateway passes on"),
        );
    }
    if find_in_chain::<DeadlineExceeded>(chain).is_some()
        || find_in_chain::<Elapsed>(chain).is_some()
    {
        tracing::warn!(%service, error = %chain_text(chain), "upstream timed out");
        return AppError::new(
            ErrorCode::GatewayTimeout,
            format!("the {service} did not answer in time"),
        );
    }
    if find_in_chain::<BodyFailed>(chain).is_some() {
        tracing::warn!(%service, error = %chain_text(chain), "upstream broke off its answer");
        return AppError::new(
            ErrorCode::BadGateway,
            format!("the {service} broke off its answer"),
        );
    }
    tracing::warn!(%service, error = %chain_text(chain), "upstream unreachable");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} could not be reached"),
    )
}

/// The answer for an upstream that answered 5xx: the client learns which service failed, the
/// log gets what it said.
fn server_error(service: &str, status: StatusCode, body: &[u8]) -> AppError {
    tracing::warn!(%service, %status, body = %String::from_utf8_lossy(&body[..body.len().min(512)]), "upstream failed");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} failed ({status})"),
    )
}

/// The answer for an upstream whose answer is not the JSON it promises.
pub fn not_json(service: &str, status: StatusCode) -> AppError {
    tracing::warn!(%service, %status, "upstream answered something other than JSON");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} answered something other than JSON"),
    )
}

/// The answer for an upstream whose status the route cannot use (a 4xx where only a 2xx makes
/// sense, as for the order list of an aggregation).
pub fn unexpected_status(service: &str, status: StatusCode) -> AppError {
    tracing::warn!(%service, %status, "upstream answered a status the route cannot use");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} answered {status}"),
    )
}

fn unavailable(service: &str, retry_after: Duration) -> AppError {
    AppError::new(
        ErrorCode::ServiceUnavailable,
        format!("the {service} is unavailable: every replica's circuit breaker is open"),
    )
    .with_retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<http::Response<Bytes>, BoxError>;

    fn answer(status: u16, content_type: Option<&'static str>, body: &'static str) -> Outcome {
        let mut response = http::Response::new(Bytes::from_static(body.as_bytes()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(value) = content_type {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(value),
            );
        }
        Ok(response)
    }

    fn status_of(outcome: Outcome) -> u16 {
        match check("user-service", outcome) {
            Ok(reply) => reply.status.as_u16(),
            Err(error) => error.status().as_u16(),
        }
    }

    #[test]
    fn json_2xx_and_4xx_are_replies_and_204_needs_no_body() {
        assert_eq!(status_of(answer(200, Some("application/json"), "{}")), 200);
        assert_eq!(status_of(answer(404, Some("application/json"), "{}")), 404);
        assert_eq!(status_of(answer(204, None, "")), 204);
    }

    #[test]
    fn upstream_5xx_and_answers_other_than_json_are_502() {
        assert_eq!(status_of(answer(500, Some("application/json"), "{}")), 502);
        assert_eq!(status_of(answer(503, None, "down")), 502);
        assert_eq!(status_of(answer(200, Some("text/html"), "<p>")), 502);
    }

    #[test]
    fn an_error_the_stack_does_not_name_is_an_unreachable_upstream_502() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = check("user-service", Err(Box::new(refused))).unwrap_err();
        assert_eq!(error.status().as_u16(), 502);
        assert!(
            error
                .message()
                .contains("user-service could not be reached")
        );
    }
}
