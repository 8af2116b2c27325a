//! One OpenTelemetry client span per attempt, and W3C trace context on every request that
//! leaves (feature `opentelemetry`).
//!
//! [`AttemptSpan`] makes a `tracing` span per call, shaped by OpenTelemetry's HTTP client
//! conventions, and writes a `traceparent` (and the trace's `tracestate`) naming that span into
//! the request, so the service that receives the attempt makes its own span a child of it. The
//! span carries `http.request.method`, `server.address`, `server.port`, `url.full`,
//! `http.request.resend_count`, then `http.response.status_code`, or `error.type` when the
//! attempt failed (`timeout`, `connection_refused`, the status code of a 4xx or 5xx, ...) or
//! was dropped unfinished (`cancelled`: a hedge won, the deadline passed).
//!
//! **Where it goes.** Once per endpoint, inside the balancer, outside the endpoint's breaker and
//! attempt timeout:
//!
//! ```text
//! deadline → retry → hedge → balancer ─┬─ attempt span → breaker → timeout → client → endpoint 1
//!                                      └─ attempt span → breaker → timeout → client → endpoint 2
//! ```
//!
//! Inside the balancer, it sees every attempt, retries and hedge copies included, with the
//! endpoint it reached (`server.address` is the endpoint's, so the request must carry the
//! endpoint's URL when it gets here). Outside the timeout and the breaker, it sees an attempt
//! that timed out fail as `timeout`, and a breaker that opens on this attempt's failure logs
//! the transition inside the span, where it becomes a span event. Retry decisions and hedges
//! are logged by the layers outside it, so they are events of the caller's span.
//!
//! **Resend count.** [`HttpRetryRules`](crate::http::HttpRetryRules) records on the copy it
//! re-sends which resend it is ([`HttpRequest::set_resend_count`](crate::http::HttpRequest),
//! kept in an `http::Request`'s extensions as [`ResendCount`](crate::http::ResendCount)); the
//! span reports it as `http.request.resend_count` (0 on the first attempt). A hedge copy carries
//! the count of the attempt it races.
//!
//! **What it takes from the application.** The spans are `tracing` spans: they become
//! OpenTelemetry spans where the application installs
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry)'s layer, and the header is
//! written by OpenTelemetry's *global* text map propagator, which the application sets (for W3C
//! trace context, `opentelemetry_sdk::propagation::TraceContextPropagator`), as libraries
//! instrumented for OpenTelemetry do. An application that only propagates (exports nothing)
//! need not pay for tracing-opentelemetry: when the span has no OpenTelemetry context, the
//! attempt continues the task's current OpenTelemetry context (`opentelemetry::Context::current`,
//! e.g. attached to the request's future with `opentelemetry::context::FutureExt`) with a span
//! of the global tracer's, so an SDK provider without an exporter gives each attempt its own
//! span id at the cost of an id and a header. With no context anywhere, the layer costs a
//! disabled span and writes no header.
//!
//! Tower-http's `TraceLayer` makes a span per request too, but no client span per attempt and
//! no `traceparent`; the `opentelemetry-http` crate gives propagation primitives, not a tower
//! layer.
//!
//! ```
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::propagation::TraceContextPropagator;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use resilience::http::trace::AttemptSpanLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resilience::BoxError> {
//! // The application's part: a propagator, a tracer provider (here without an exporter), and
//! // the bridge from `tracing` spans to OpenTelemetry spans.
//! opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
//! let provider = SdkTracerProvider::builder().build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("example")));
//! let _default = tracing::subscriber::set_default(subscriber);
//!
//! // The endpoint: it answers with the traceparent it received.
//! let endpoint = service_fn(|request: http::Request<String>| async move {
//!     let traceparent = request.headers()["traceparent"].to_str()?.to_owned();
//!     Ok::<_, resilience::BoxError>(http::Response::new(traceparent))
//! });
//! let client = ServiceBuilder::new().layer(AttemptSpanLayer::new()).service(endpoint);
//! let request = http::Request::get("http://127.0.0.1:8081/users/1").body(String::new())?;
//! let traceparent = client.oneshot(request).await?.into_body();
//! // version 00, a trace id, this attempt's span id, sampled.
//! assert_eq!(traceparent.split('-').count(), 4);
//! assert!(traceparent.starts_with("00-") && traceparent.ends_with("-01"));
//! # Ok(())
//! # }
//! ```

pub mod future;
mod layer;
mod request;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::Injector;
use tower_service::Service;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use self::future::ResponseFuture;
pub use self::layer::AttemptSpanLayer;
pub use self::request::AttemptRequest;
use crate::error::BoxError;

/// Makes one client span per call and writes a `traceparent` naming it into the request; see
/// [the module docs](self).
///
/// It takes OpenTelemetry's global tracer when it is made (for attempts whose `tracing` span
/// has no OpenTelemetry context): install the application's tracer provider first.
#[derive(Clone)]
pub struct AttemptSpan<S> {
    inner: S,
    tracer: Arc<BoxedTracer>,
}

impl<S> AttemptSpan<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            tracer: Arc::new(opentelemetry::global::tracer("resilience")),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for AttemptSpan<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptSpan")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, R, B> Service<R> for AttemptSpan<S>
where
    R: AttemptRequest,
    S: Service<R, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: R) -> Self::Future {
        let span = attempt_span(&request);
        inject(&span, &self.tracer, &mut request);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span)
    }
}

/// The client span of one attempt, named after the method as the HTTP conventions say of a
/// client span without a route.
fn attempt_span<R: AttemptRequest>(request: &R) -> tracing::Span {
    tracing::info_span!(
        target: "resilience::http",
        "http attempt",
        otel.name = %request.method(),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = %request.method(),
        server.address = request.server_address(),
        server.port = request.server_port().map(i64::from),
        url.full = %request.url_full(),
        http.request.resend_count = i64::from(request.resend_count()),
        http.response.status_code = Empty,
        "error.type" = Empty,
    )
}

/// Writes `traceparent` (and `tracestate`) for this attempt with the global propagator.
///
/// The attempt's context is `span`'s when tracing-opentelemetry made it an OpenTelemetry span.
/// Otherwise (no such layer, or it filtered the span out) the attempt continues the caller's
/// current OpenTelemetry context, if it has one, with a span of the global tracer's: with an
/// SDK provider that records nothing, that is a fresh span id and nothing else, so the trace
/// goes on at the cost of an id and a header. With neither, nothing is written.
fn inject<R: AttemptRequest>(span: &tracing::Span, tracer: &BoxedTracer, request: &mut R) {
    use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt, Tracer};

    let mut context = span.context();
    if !context.span().span_context().is_valid() {
        let caller = opentelemetry::Context::current();
        if !caller.span().span_context().is_valid() {
            return;
        }
        let attempt = tracer.build_with_context(
            SpanBuilder::from_name("attempt").with_kind(SpanKind::Client),
            &caller,
        );
        context = caller.with_span(attempt);
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderWriter(request.headers_mut()));
    });
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Writes a propagator's fields into the request's headers, like `opentelemetry_http`'s
/// `HeaderInjector` but for every attempt of a client: the W3C header names are made once
/// rather than parsed (and allocated) per request, and an empty field (the W3C propagator's
/// `tracestate` when the trace has none) writes no header at all.
struct HeaderWriter<'a>(&'a mut HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        let name = match key {
            "traceparent" => TRACEPARENT,
            "tracestate" => TRACESTATE,
            other => match HeaderName::from_bytes(other.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }
}

/// Records how the attempt ended: the status code (and `error.type` for 4xx and 5xx, which are
/// errors for a client span), or the kind of failure.
fn record_outcome<B>(span: &tracing::Span, result: &Result<http::Response<B>, BoxError>) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", i64::from(status.as_u16()));
            if status.is_client_error() || status.is_server_error() {
                span.record("error.type", status.as_str());
                span.record("otel.status_code", "error");
            }
        }
        Err(error) => {
            span.record("error.type", error_type(error.as_ref()));
            span.record("otel.status_description", tracing::field::display(error));
        }
    }
}

/// A low-cardinality name for what went wrong, for `error.type`.
fn error_type(error: &(dyn std::error::Error + 'static)) -> &'static str {
    use std::io::ErrorKind;

    use crate::error::find_in_chain;
    use crate::http::{BodyFailed, BodyTooLarge};

    if find_in_chain::<crate::timeout::Elapsed>(error).is_some() {
        return "timeout";
    }
    if find_in_chain::<crate::circuit_breaker::CircuitOpen>(error).is_some() {
        return "circuit_open";
    }
    if find_in_chain::<BodyTooLarge>(error).is_some() {
        return "body_too_large";
    }
    if let Some(io) = find_in_chain::<std::io::Error>(error) {
        return match io.kind() {
            ErrorKind::ConnectionRefused => "connection_refused",
            kind if crate::http::retry::is_broken_connection(kind) => "connection_broken",
            ErrorKind::TimedOut => "timeout",
            _ => "io",
        };
    }
    #[cfg(feature = "reqwest")]
    if let Some(reqwest) = find_in_chain::<reqwest::Error>(error) {
        return if reqwest.is_connect() {
            "connect"
        } else if reqwest.is_timeout() {
            "timeout"
        } else if reqwest.is_body() || reqwest.is_decode() {
            "body_failed"
        } else {
            "request"
        };
    }
    if find_in_chain::<BodyFailed>(error).is_some() {
        return "body_failed";
    }
    "_OTHER"
}

#[cfg(test)]
mod tests;
