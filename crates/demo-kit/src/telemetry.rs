//! Logs and traces, set up once for every binary.
//!
//! Every process installs the OpenTelemetry W3C propagator and a tracer provider, and serves
//! through [`ServerContextLayer`]: each request's OpenTelemetry context continues the caller's
//! `traceparent`/`tracestate` (a malformed one is ignored: a new trace starts), and every log
//! line written inside a request carries `trace_id=...` (and the calling span as `parent_id`),
//! from the server span ([`server_span`]) when spans are exported, else from the request's
//! future ([`InRequest`]). The gateway's client (the
//! `resilience` crate's attempt span) writes a `traceparent` per attempt from that context.
//!
//! **With `--otlp-endpoint URL`** (or `OTEL_EXPORTER_OTLP_ENDPOINT`), tracing-opentelemetry's
//! layer turns the `tracing` spans into OpenTelemetry spans (server, client per attempt, with
//! the resilience crate's retry, hedge and breaker events), sent by OTLP/HTTP (protobuf) to
//! `URL/v1/traces` from a batch processor on the tokio runtime, off the request path;
//! [`Telemetry::shutdown`] sends what is left.
//!
//! **Without it**, nothing is recorded and nothing exported, and tracing-opentelemetry is not
//! installed at all (it costs microseconds per span even when nothing is sampled): the request's
//! context is a span of the SDK provider's, which has no processor and samples nothing that
//! starts here (`ParentBased(AlwaysOff)`), attached to the request's future, so the ids go on
//! (the caller's trace id, a span id per hop and per attempt) for a parse, a few ids and a
//! header. A caller's sampling decision is passed on, not overridden. No `tracing` span is made
//! per request either: log lines take the request's method, path, request id and trace ids from
//! its future, formatted only when a line is written.
//!
//! Log lines are filtered by `RUST_LOG` (default: INFO, with `rustapi_core`, `tower_http` and
//! `resilience::http` at WARN), by target and level alone unless it has span or field
//! directives, which need `EnvFilter` and its lock on every span entered.

use std::fmt;
use std::io::Stderr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};

use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{
    SpanBuilder, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::{Empty, display};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultFields, Format};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use crate::request_log::InRequest;
use crate::request_log::{RequestFields, WithRequestFields};

/// Whether tracing-opentelemetry's layer is installed (with an exporter): then the `tracing`
/// spans carry the OpenTelemetry contexts; otherwise [`ServerContextLayer`] makes them.
static OTEL_LAYER: AtomicBool = AtomicBool::new(false);

/// The installed provider's tracer for the requests' own spans, made once: asking the global
/// provider for a tracer on every request takes its lock and boxes a new tracer each time.
/// Unset until [`init_telemetry`] installs a subscriber; requests then use the global one.
static SERVER_TRACER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracer> =
    std::sync::OnceLock::new();

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
/// rustapi-rs's own per-request logging turned down, and the one line per answered request,
/// tower-http's `on_response`, only with `access_log`; failed requests are logged either way),
/// and OpenTelemetry spans for `service` (`service.name`; `instance` is
/// `service.instance.id`), exported when `args` say where.
///
/// An access log costs a formatted line and a write per request; nginx and HAProxy leave theirs
/// to be switched on, and so does the gateway (`--access-log`). The services keep theirs.
///
/// Must run inside a tokio runtime when exporting (the batch processor is a task). A second
/// call installs no subscriber; its provider exports nothing.
pub fn init_telemetry(
    service: &str,
    instance: &str,
    args: &TelemetryArgs,
    access_log: bool,
) -> Telemetry {
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
    global::set_tracer_provider(provider.clone());

    // Colours only for a person at a terminal; logs piped to a file or a parent stay plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (by_target, by_env) = match log_filter(access_log) {
        LogFilter::Targets(targets) => (Some(log_lines(colours).with_filter(targets)), None),
        LogFilter::Env(env) => (None, Some(log_lines(colours).with_filter(env))),
    };
    let otel = exporting.then(|| {
        // Spans at INFO from everywhere; the resilience crate's DEBUG events too (retry
        // decisions, hedges), which become span events whatever RUST_LOG says of log lines.
        let spans = Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("resilience", tracing::Level::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("demo-kit"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(spans)
    });
    let installed = tracing_subscriber::registry()
        .with(by_target)
        .with(by_env)
        .with(otel)
        .try_init()
        .is_ok();
    if installed {
        OTEL_LAYER.store(exporting, Ordering::Relaxed);
        let _ = SERVER_TRACER.set(provider.tracer("demo-kit"));
    }
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
    let _ = init_telemetry("demo", "demo", &TelemetryArgs::default(), true);
}

/// Continues the caller's trace for each request: extracts its `traceparent`/`tracestate` with
/// the global propagator, keeps it in the request's extensions for [`server_span`], and, when no
/// tracing-opentelemetry layer makes the server span an OpenTelemetry span, gives the request a
/// span of the global tracer's as its context, attached to the request's future (where the
/// resilience crate's attempt span finds it). Put it just outside the trace layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerContextLayer;

impl<S> tower::Layer<S> for ServerContextLayer {
    type Service = ServerContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerContext { inner }
    }
}

/// See [`ServerContextLayer`].
#[derive(Debug, Clone)]
pub struct ServerContext<S> {
    inner: S,
}

/// The caller's OpenTelemetry context, kept for [`server_span`] (so only while spans are
/// exported: otherwise there is no server span to read it).
#[derive(Debug, Clone)]
struct RequestContext {
    caller: Context,
}

impl<S, B> tower::Service<http::Request<B>> for ServerContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InRequest<WithContext<S::Future>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let caller = global::get_text_map_propagator(|propagator| {
            propagator.extract_with_context(&Context::new(), &HeaderExtractor(request.headers()))
        });
        let own = (!OTEL_LAYER.load(Ordering::Relaxed)).then(|| {
            let builder = SpanBuilder::from_name("request").with_kind(SpanKind::Server);
            match SERVER_TRACER.get() {
                Some(tracer) => caller.with_span(tracer.build_with_context(builder, &caller)),
                None => caller
                    .with_span(global::tracer("demo-kit").build_with_context(builder, &caller)),
            }
        });
        // Without an exporter there is no server span to carry the request's fields into log
        // lines: the request's future does.
        let fields = own.as_ref().map(|own| RequestFields {
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id: request.headers().get(crate::REQUEST_ID).cloned(),
            trace_id: Some(own.span().span_context())
                .filter(|own| own.is_valid())
                .map(|own| own.trace_id()),
            parent_id: Some(caller.span().span_context())
                .filter(|caller| caller.is_valid())
                .map(|caller| caller.span_id()),
        });
        let attached = match own {
            Some(own) => own,
            // tracing-opentelemetry's server span is the request's context; it reads the
            // caller's from the request.
            None => {
                request.extensions_mut().insert(RequestContext { caller });
                Context::default()
            }
        };
        InRequest::new(self.inner.call(request).with_context(attached), fields)
    }
}

/// The log lines' format, on standard error; a line logged while a request is served ends with
/// the request's fields when no server span carries them (see [`InRequest`]).
fn log_lines<S>(
    colours: bool,
) -> tracing_subscriber::fmt::Layer<S, DefaultFields, WithRequestFields<Format>, fn() -> Stderr>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr as fn() -> Stderr)
        .with_ansi(colours)
        .event_format(WithRequestFields(Format::default().with_ansi(colours)))
}

/// Which log lines are written: `RUST_LOG` if set, else the defaults.
#[expect(
    clippy::large_enum_variant,
    reason = "made once at start-up and taken apart at once"
)]
enum LogFilter {
    Targets(Targets),
    Env(EnvFilter),
}

/// `RUST_LOG`, or the defaults, as a [`Targets`] filter when it only names targets and levels
/// (the usual case, and the defaults): an [`EnvFilter`] takes a read lock on every span entered
/// and left, several times per request, to support span and field directives. Those still work:
/// a `RUST_LOG` that uses them gets an `EnvFilter`.
fn log_filter(access_log: bool) -> LogFilter {
    // The attempt spans are for traces; at INFO the log lines show the request's span.
    // tower-http's line per answered request only with `access_log` (5xx are logged anyway).
    let defaults = if access_log {
        "info,rustapi_core=warn,tower_http=info,resilience::http=warn"
    } else {
        "info,rustapi_core=warn,tower_http=warn,resilience::http=warn"
    };
    let wanted = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| defaults.to_owned());
    match wanted.parse::<Targets>() {
        Ok(targets) => LogFilter::Targets(targets),
        Err(_) => {
            LogFilter::Env(EnvFilter::try_new(&wanted).unwrap_or_else(|_| EnvFilter::new(defaults)))
        }
    }
}

/// The server span of one request, per OpenTelemetry's HTTP server conventions: named
/// `METHOD ROUTE` when the route template is known (never the raw path), else `METHOD`; a
/// child of the caller's span when [`ServerContextLayer`] found a valid `traceparent`; with
/// `trace_id` (and the caller's span as `parent_id`) recorded, so every log line inside
/// carries them.
///
/// Without an exporter there is no server span ([`Span::none`](tracing::Span::none)): nothing
/// would record it, and the request's future carries what log lines need ([`InRequest`]);
/// `routes`, which names the route template, is then not asked.
pub fn server_span<B>(request: &http::Request<B>, routes: Option<crate::RouteOf>) -> tracing::Span {
    if !OTEL_LAYER.load(Ordering::Relaxed) {
        return tracing::Span::none();
    }
    let id = request
        .headers()
        .get(crate::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = routes.and_then(|route_of| route_of(request.uri().path()));
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
    let Some(context) = request.extensions().get::<RequestContext>() else {
        return span;
    };
    let remote = context.caller.span().span_context().clone();
    if remote.is_valid() {
        span.record("parent_id", display(remote.span_id()));
    }
    if remote.is_valid() {
        let _ = span.set_parent(context.caller.clone());
    }
    let own = span.context().span().span_context().clone();
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
