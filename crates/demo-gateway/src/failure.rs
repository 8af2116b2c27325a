//! Every upstream failure mapped to a status, in this one place.
//!
//! | what happened | status |
//! |---|---|
//! | every endpoint's breaker is open, or none admits traffic | 503, with `Retry-After` |
//! | an attempt timed out, or the deadline passed | 504 |
//! | the upstream could not be reached, or broke the protocol | 502 |
//! | the upstream answered 5xx | 502 (its body is logged, not passed on) |
//!
//! Upstream 4xx answers are not failures: they go back to the client as they are.

use std::time::Duration;

use demo_kit::{AppError, ErrorCode};
use http::StatusCode;
use resilience::{
    BoxError, CircuitOpen, DeadlineExceeded, Elapsed, NoAvailableEndpoint, find_in_chain,
};

use crate::upstream::Upstream;

/// `Retry-After` when no breaker says when it will probe.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The answer for a request the resilience stack could not complete.
pub fn upstream(upstream: &Upstream, error: &BoxError) -> AppError {
    let service = upstream.service;
    let chain: &(dyn std::error::Error + 'static) = error.as_ref();
    if let Some(open) = find_in_chain::<CircuitOpen>(chain) {
        let retry_after = open
            .retry_after()
            .or_else(|| upstream.next_probe_in())
            .unwrap_or(DEFAULT_RETRY_AFTER);
        tracing::warn!(%service, error = %open, "upstream unavailable");
        return unavailable(service, retry_after);
    }
    if find_in_chain::<NoAvailableEndpoint>(chain).is_some() {
        let retry_after = upstream.next_probe_in().unwrap_or(DEFAULT_RETRY_AFTER);
        tracing::warn!(%service, "upstream unavailable: no endpoint admits traffic");
        return unavailable(service, retry_after);
    }
    if find_in_chain::<Elapsed>(chain).is_some()
        || find_in_chain::<DeadlineExceeded>(chain).is_some()
    {
        tracing::warn!(%service, error = %chain_text(chain), "upstream timed out");
        return AppError::new(
            ErrorCode::GatewayTimeout,
            format!("the {service} did not answer in time"),
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
pub fn server_error(upstream: &Upstream, status: StatusCode, body: &[u8]) -> AppError {
    let service = upstream.service;
    tracing::warn!(%service, %status, body = %String::from_utf8_lossy(&body[..body.len().min(512)]), "upstream failed");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} failed ({status})"),
    )
}

/// The answer for an upstream whose answer is too large to pass on.
pub fn oversized(upstream: &Upstream) -> AppError {
    let service = upstream.service;
    tracing::warn!(%service, "upstream answer over the size limit");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} answered with more than the gateway passes on"),
    )
}

/// The answer for an upstream whose answer is not the JSON it promises.
pub fn not_json(upstream: &Upstream, status: StatusCode) -> AppError {
    let service = upstream.service;
    tracing::warn!(%service, %status, "upstream answered something other than JSON");
    AppError::new(
        ErrorCode::BadGateway,
        format!("the {service} answered something other than JSON"),
    )
}

fn unavailable(service: &str, retry_after: Duration) -> AppError {
    AppError::new(
        ErrorCode::ServiceUnavailable,
        format!("the {service} is unavailable: every replica's circuit breaker is open"),
    )
    .with_retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64)
}

fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}
