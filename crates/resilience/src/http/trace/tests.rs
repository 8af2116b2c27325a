use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::retry::RetryLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::backoff::ExponentialBackoff;
use crate::http::HttpRetryRules;
use crate::retry::RetryPolicy;

type Request = http::Request<String>;

/// Keeps every span it is given.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Installs a subscriber with the OpenTelemetry layer for this thread; spans land in the
/// returned exporter as they end.
fn traced() -> (Collect, tracing::subscriber::DefaultGuard) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (exporter, tracing::subscriber::set_default(subscriber))
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|KeyValue { key: k, .. }| k.as_str() == key)
        .map(|kv| &kv.value)
}

/// Answers with the status scripted for each call, echoing the `traceparent` it got.
fn endpoint(
    statuses: &'static [u16],
) -> impl tower::Service<Request, Response = http::Response<String>, Error = BoxError, Future: Send>
+ Clone {
    let calls = Arc::new(Mutex::new(0usize));
    service_fn(move |request: Request| {
        let calls = Arc::clone(&calls);
        async move {
            let call = {
                let mut calls = calls.lock().unwrap();
                *calls += 1;
                *calls - 1
            };
            let traceparent = request
                .headers()
                .get("traceparent")
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let response = http::Response::builder()
                .status(statuses[call.min(statuses.len() - 1)])
                .body(traceparent)?;
            Ok::<_, BoxError>(response)
        }
    })
}

fn get() -> Request {
    http::Request::get("http://127.0.0.1:8081/users/1?x=1")
        .body(String::new())
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn each_attempt_is_a_client_span_whose_id_is_the_traceparent_sent() {
    let (exporter, _guard) = traced();
    let parent = tracing::info_span!("GET /api/users/{id}");
    let parent_context = parent.context().span().span_context().clone();
    let client = AttemptSpan::new(endpoint(&[200]));
    let mut sent = Vec::new();
    for _ in 0..2 {
        let response = client
            .clone()
            .oneshot(get())
            .instrument(parent.clone())
            .await
            .unwrap();
        sent.push(response.into_body());
    }
    drop(parent);

    let spans = exporter.0.lock().unwrap().clone();
    let attempts: Vec<_> = spans
        .iter()
        .filter(|span| span.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(attempts.len(), 2);
    for (attempt, traceparent) in attempts.iter().zip(&sent) {
        let context = &attempt.span_context;
        assert_eq!(
            *traceparent,
            format!("00-{}-{}-01", context.trace_id(), context.span_id())
        );
        assert_eq!(context.trace_id(), parent_context.trace_id());
        assert_eq!(attempt.parent_span_id, parent_context.span_id());
        assert_eq!(attempt.name, "GET");
        assert_eq!(
            attribute(attempt, "http.request.method"),
            Some(&Value::from("GET"))
        );
        assert_eq!(
            attribute(attempt, "server.address"),
            Some(&Value::from("127.0.0.1"))
        );
        assert_eq!(attribute(attempt, "server.port"), Some(&Value::I64(8081)));
        assert_eq!(
            attribute(attempt, "url.full"),
            Some(&Value::from("http://127.0.0.1:8081/users/1?x=1"))
        );
        assert_eq!(
            attribute(attempt, "http.response.status_code"),
            Some(&Value::I64(200))
        );
        assert_eq!(attribute(attempt, "error.type"), None);
    }
    assert_ne!(
        attempts[0].span_context.span_id(),
        attempts[1].span_context.span_id()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_retry_is_a_second_span_with_resend_count_one() {
    let (exporter, _guard) = traced();
    let policy = RetryPolicy::builder()
        .rules(HttpRetryRules)
        .backoff(
            ExponentialBackoff::new(Duration::from_millis(1), Duration::from_millis(1))
                .with_jitter(0.0),
        )
        .build()
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(AttemptSpanLayer::new())
        .service(endpoint(&[503, 200]));
    let response = client.oneshot(get()).await.unwrap();
    assert_eq!(response.status(), 200);

    let spans = exporter.0.lock().unwrap().clone();
    let counts: Vec<_> = spans
        .iter()
        .map(|span| {
            (
                attribute(span, "http.request.resend_count").cloned(),
                attribute(span, "http.response.status_code").cloned(),
                attribute(span, "error.type").cloned(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (
                Some(Value::I64(0)),
                Some(Value::I64(503)),
                Some(Value::from("503"))
            ),
            (Some(Value::I64(1)), Some(Value::I64(200)), None),
        ]
    );
    assert_eq!(
        spans[0].status,
        opentelemetry::trace::Status::error(""),
        "a 5xx answer fails the client span"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_attempt_records_what_went_wrong() {
    let (exporter, _guard) = traced();
    let failing = service_fn(|_: Request| async {
        Err::<http::Response<String>, _>(BoxError::from(crate::timeout::Elapsed::new(
            Duration::from_secs(1),
        )))
    });
    let error = AttemptSpan::new(failing).oneshot(get()).await.unwrap_err();
    assert!(error.is::<crate::timeout::Elapsed>());
    let spans = exporter.0.lock().unwrap().clone();
    assert_eq!(
        attribute(&spans[0], "error.type"),
        Some(&Value::from("timeout"))
    );
    assert!(matches!(
        spans[0].status,
        opentelemetry::trace::Status::Error { .. }
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn an_attempt_dropped_unfinished_is_cancelled() {
    let (exporter, _guard) = traced();
    let hanging =
        service_fn(|_: Request| std::future::pending::<Result<http::Response<String>, BoxError>>());
    let mut client = AttemptSpan::new(hanging);
    let future = client.call(get());
    drop(future);
    let spans = exporter.0.lock().unwrap().clone();
    assert_eq!(
        attribute(&spans[0], "error.type"),
        Some(&Value::from("cancelled"))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_subscriber_no_header_is_written() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let response = AttemptSpan::new(endpoint(&[200]))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.into_body(), "");
}

#[tokio::test(flavor = "current_thread")]
async fn a_breaker_opening_on_this_attempt_is_an_event_of_its_span() {
    let (exporter, _guard) = traced();
    let config = crate::circuit_breaker::CircuitBreakerConfig::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let failing = service_fn(|_: Request| async {
        Err::<http::Response<String>, _>(BoxError::from("connection refused"))
    });
    let client = ServiceBuilder::new()
        .layer(AttemptSpanLayer::new())
        .layer(crate::circuit_breaker::CircuitBreakerLayer::new(config).named("users@a"))
        .service(failing);
    let _ = client.oneshot(get()).await.unwrap_err();
    let spans = exporter.0.lock().unwrap().clone();
    let events: Vec<_> = spans[0]
        .events
        .iter()
        .map(|event| event.name.to_string())
        .collect();
    assert!(
        events
            .iter()
            .any(|name| name.contains("users@a") && name.contains("open")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn without_the_opentelemetry_layer_an_attempt_continues_the_current_context() {
    use opentelemetry::context::FutureExt as _;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // A provider that records nothing: ids only.
    opentelemetry::global::set_tracer_provider(SdkTracerProvider::builder().build());
    let caller = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "1")]).unwrap(),
    );
    let context = opentelemetry::Context::new().with_remote_span_context(caller);
    let client = AttemptSpan::new(endpoint(&[200]));
    let mut sent = Vec::new();
    for _ in 0..2 {
        let response = client
            .clone()
            .oneshot(get())
            .with_context(context.clone())
            .await
            .unwrap();
        sent.push(response.into_body());
    }
    for traceparent in &sent {
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{traceparent}"
        );
        assert_ne!(parts[2], "00f067aa0ba902b7", "a span of its own");
        assert_eq!(parts[3], "01");
    }
    assert_ne!(sent[0], sent[1], "each attempt its own span id");
}

#[test]
fn the_header_writer_names_w3c_fields_and_skips_empty_ones() {
    use opentelemetry::propagation::Injector;

    let mut headers = http::HeaderMap::new();
    let mut writer = super::HeaderWriter(&mut headers);
    writer.set(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    );
    writer.set("tracestate", String::new());
    writer.set("X-B3-TraceId", "4bf92f3577b34da6".into());
    writer.set("bad header", "dropped".into());
    assert_eq!(
        headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert!(
        !headers.contains_key("tracestate"),
        "an empty field is not sent"
    );
    assert_eq!(headers["x-b3-traceid"], "4bf92f3577b34da6");
    assert_eq!(headers.len(), 2);
}
