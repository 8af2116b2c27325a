//! An OTLP/HTTP receiver on `127.0.0.1:0`: what an exporter posts to `/v1/traces`, decoded with
//! the OpenTelemetry protobuf types, for tests to check the spans a process sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One span as received, with the `service.name` of the process that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The sender's `service.name`.
    pub service: String,
    /// The span.
    pub span: Span,
}

impl ReceivedSpan {
    /// The trace id, in hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id, in hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent's span id, in hex (empty for a root).
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The attribute `key`, when the span has it.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|value| value.value.as_ref())
    }

    /// The attribute `key` as an integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attribute(key) {
            Some(Value::IntValue(value)) => Some(*value),
            _ => None,
        }
    }

    /// The attribute `key` as a string.
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.attribute(key) {
            Some(Value::StringValue(value)) => Some(value),
            _ => None,
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A receiver; it stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1:0` and keeps every span posted to `/v1/traces`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let kept = Arc::clone(&kept);
                            async move { Ok::<_, hyper::Error>(receive(request, &kept).await) }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, spans, task }
    }

    /// The base URL to give an exporter (`--otlp-endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (polling, up to `patience`) until `done` holds for the spans received, and returns
    /// them; panics when it never does.
    pub async fn wait_for(
        &self,
        patience: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + patience;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "the spans expected never arrived; received: {:#?}",
                summary(&spans)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `service: name (span id ← parent id)` per span, for failure messages.
pub fn summary(spans: &[ReceivedSpan]) -> Vec<String> {
    spans
        .iter()
        .map(|span| {
            format!(
                "{}: {} ({} <- {}) trace {}",
                span.service,
                span.span.name,
                span.span_id(),
                span.parent_id(),
                span.trace_id()
            )
        })
        .collect()
}

async fn receive(
    request: http::Request<hyper::body::Incoming>,
    kept: &Mutex<Vec<ReceivedSpan>>,
) -> http::Response<Full<Bytes>> {
    let status = if request.uri().path() != "/v1/traces" {
        http::StatusCode::NOT_FOUND
    } else {
        match request.into_body().collect().await {
            Ok(body) => match ExportTraceServiceRequest::decode(body.to_bytes()) {
                Ok(export) => {
                    keep(export, kept);
                    http::StatusCode::OK
                }
                Err(_) => http::StatusCode::BAD_REQUEST,
            },
            Err(_) => http::StatusCode::BAD_REQUEST,
        }
    };
    let body = ExportTraceServiceResponse::default().encode_to_vec();
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

fn keep(export: ExportTraceServiceRequest, kept: &Mutex<Vec<ReceivedSpan>>) {
    let mut received = Vec::new();
    for resource_spans in export.resource_spans {
        let attributes: HashMap<_, _> = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let service = match attributes
            .get("service.name")
            .and_then(|value| value.as_ref())
            .and_then(|value| value.value.as_ref())
        {
            Some(Value::StringValue(name)) => name.clone(),
            _ => String::new(),
        };
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    kept.lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(received);
}
