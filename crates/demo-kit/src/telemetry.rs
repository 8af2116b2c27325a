//! Logs and traces, set up once for every binary.
//!
//! Every process installs the same `tracing` subscriber: log lines to stderr (filtered by
//! `RUST_LOG`) and tracing-opentelemetry's layer, which gives each `tracing` span an
//! OpenTelemetry span context. The server span of each request ([`server_span`]) continues the
//! caller's W3C `traceparent`/`tracestate` (a malformed one is ignored: a new trace starts) and
//! records its trace id, so every log line written inside a request carries `trace_id=...`.
//! The gateway's client (the `resilience` crate's attempt span) writes a `traceparent` per
//! attempt, with the same global propagator.
//!
//! **Without `--otlp-endpoint`** nothing is exported: the tracer provider has no processor, and
//! traces that start here are not sampled, so their spans are not recorded, only given ids to
//! propagate and to log. A caller's sampled trace stays sampled downstream (its decision is
//! passed on, not overridden), and its spans here are recorded and dropped.
//! **With `--otlp-endpoint URL`** (or `OTEL_EXPORTER_OTLP_ENDPOINT`), spans go by OTLP/HTTP
//! (protobuf) to `URL/v1/traces`, from a batch processor on the tokio runtime, off the request
//! path; [`Telemetry::shutdown`] sends what is left.

use std::fmt;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::{Empty, display};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where the binaries send their spans (flatten into a clap parser).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Send spans by OTLP/HTTP (protobuf) to this collector, e.g. `http://127.0.0.1:4318`
    /// (they go to its `/v1/traces`); without it nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl TelemetryArgs {
    /// The URL spans are posted to: the endpoint with `/v1/traces` appended (the OTLP/HTTP
    /// convention for a base URL), unless it already ends so.
    pub fn traces_url(&self) -> Option<String> {
        let endpoint = self.otlp_endpoint.as_deref()?.trim();
        if endpoint.is_empty() {
            return None;
        }
        let endpoint = endpoint.trim_end_matches('/');
        Some(match endpoint.ends_with("/v1/traces") {
            true => endpoint.to_owned(),
            false => format!("{endpoint}/v1/traces"),
        })
    }
}

/// The installed tracer provider; [`shutdown`](Self::shutdown) it before the process exits so
/// the spans still in the batch are sent.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported (`--otlp-endpoint` was given).
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Sends the spans still batched and stops the exporter. Runs on a blocking thread: the
    /// processor's task needs the runtime to finish while the provider waits for it.
    pub async fn shutdown(self) {
        if !self.exporting {
            return;
        }
        let provider = self.provider;
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "spans not exported at shutdown"),
            Err(err) => tracing::warn!(%err, "spans not exported at shutdown"),
        }
    }
}

/// Installs the subscriber: log lines to stderr filtered by `RUST_LOG` (default: `info`, with
/// rustapi-rs's own per-request logging turned down), and OpenTelemetry spans for `service`
/// (`service.name`; `instance` is `service.instance.id`), exported when `args` say where.
///
/// Must run inside a tokio runtime when exporting (the batch processor is a task). A second
/// call installs no subscriber; its provider exports nothing.
pub fn init_telemetry(service: &str, instance: &str, args: &TelemetryArgs) -> Telemetry {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("service.instance.id", instance.to_owned()))
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let (provider, exporting, failure) = match args.traces_url().map(|url| exporter(&url)) {
        Some(Ok(exporter)) => {
            let processor =
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            (builder.with_span_processor(processor).build(), true, None)
        }
        Some(Err(err)) => (
            builder
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .build(),
            false,
            Some(err),
        ),
        None => (
            builder
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .build(),
            false,
            None,
        ),
    };
    let tracer = provider.tracer("demo-kit");
    global::set_tracer_provider(provider.clone());

    let logs = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rustapi_core=warn,tower_http=info"));
    // Colours only for a person at a terminal; logs piped to a file or a parent stay plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Spans at INFO from everywhere; the resilience crate's DEBUG events too (retry decisions,
    // hedges), which become span events whatever RUST_LOG says of the log lines.
    let spans = Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("resilience", tracing::Level::DEBUG);
    let installed = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colours)
                .with_filter(logs),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans),
        )
        .try_init()
        .is_ok();
    if let Some(err) = failure {
        tracing::error!(%err, "cannot export spans; going on without");
    } else if installed && exporting {
        tracing::info!(
            url = args.traces_url().as_deref().unwrap_or_default(),
            "exporting spans by OTLP/HTTP"
        );
    }
    Telemetry {
        provider,
        exporting,
    }
}

fn exporter(url: &str) -> Result<opentelemetry_otlp::SpanExporter, String> {
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .map_err(|err| format!("OTLP exporter for {url}: {err}"))
}

/// Logging and trace propagation without export; for tests and tools that need no guard.
///
/// Calling it twice is harmless: the second call does nothing.
pub fn init_tracing() {
    let _ = init_telemetry("demo", "demo", &TelemetryArgs::default());
}

/// The server span of one request, per OpenTelemetry's HTTP server conventions: named
/// `METHOD ROUTE` when the route template is known (never the raw path), else `METHOD`; a
/// child of the caller's `traceparent` when there is a valid one; with `trace_id` (and the
/// caller's span as `parent_id`) recorded, so every log line inside carries them.
pub fn server_span<B>(request: &http::Request<B>, route: Option<&'static str>) -> tracing::Span {
    let id = request
        .headers()
        .get(crate::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        otel.name = %SpanName(request.method(), route),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        http.route = route,
        http.response.status_code = Empty,
        request_id = %id,
        trace_id = Empty,
        parent_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let caller = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let remote = caller.span().span_context().clone();
    if remote.is_valid() {
        span.record("parent_id", display(remote.span_id()));
        let _ = span.set_parent(caller);
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if own.is_valid() {
        span.record("trace_id", display(own.trace_id()));
    }
    span
}

/// Records the answer's status on a [`server_span`]; 5xx fail the span (4xx are the client's).
pub fn record_status(span: &tracing::Span, status: http::StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// `METHOD ROUTE`, or `METHOD` alone.
struct SpanName<'a>(&'a http::Method, Option<&'static str>);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}
