//! The request a log line was written in, without a `tracing` span per request.
//!
//! Every line logged while a request is served says which request it was: its method, path,
//! request id and trace ids. A `tracing` span would carry them, but the log formatter writes a
//! span's fields out as text when the span is made, and the registry stores and frees the span:
//! about a tenth of the gateway's work per proxied request, for fields that most requests never
//! log. So when no spans are exported, the fields stay as they came (the header values and ids),
//! travel with the request's future, sit in a thread-local while it is polled, and are written
//! out only by the lines actually logged, after the line's own fields. With an exporter the
//! server span carries them instead, as OpenTelemetry attributes.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Uri};
use opentelemetry::trace::{SpanId, TraceId};
use pin_project_lite::pin_project;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// The fields of the request whose future this thread is polling, if any.
    static CURRENT: RefCell<Option<RequestFields>> = const { RefCell::new(None) };
}

/// What a log line says of the request it was written in.
#[derive(Debug, Clone)]
pub(crate) struct RequestFields {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) request_id: Option<HeaderValue>,
    /// This hop's trace, when the request has a valid context.
    pub(crate) trace_id: Option<TraceId>,
    /// The caller's span, when it sent a valid `traceparent`.
    pub(crate) parent_id: Option<SpanId>,
}

impl fmt::Display for RequestFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "method={} path={}", self.method, self.uri.path())?;
        if let Some(id) = self.request_id.as_ref().and_then(|id| id.to_str().ok()) {
            write!(f, " request_id={id}")?;
        }
        if let Some(trace_id) = self.trace_id {
            write!(f, " trace_id={trace_id}")?;
        }
        if let Some(parent_id) = self.parent_id {
            write!(f, " parent_id={parent_id}")?;
        }
        Ok(())
    }
}

pin_project! {
    /// A request's future, with its fields current on the thread while it is polled.
    pub struct InRequest<F> {
        #[pin]
        inner: F,
        fields: Option<RequestFields>,
    }
}

impl<F> InRequest<F> {
    pub(crate) fn new(inner: F, fields: Option<RequestFields>) -> Self {
        Self { inner, fields }
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        /// Takes the thread's fields back (and gives back what was there), also on a panic.
        struct SwapBack<'a>(&'a mut Option<RequestFields>);

        impl Drop for SwapBack<'_> {
            fn drop(&mut self) {
                CURRENT.with_borrow_mut(|current| std::mem::swap(current, self.0));
            }
        }

        let this = self.project();
        CURRENT.with_borrow_mut(|current| std::mem::swap(current, this.fields));
        let _back = SwapBack(this.fields);
        this.inner.poll(cx)
    }
}

/// Writes a log line with `F`, then the fields of the request being served, if any.
#[derive(Debug, Clone)]
pub(crate) struct WithRequestFields<F>(pub(crate) F);

impl<S, N, F> FormatEvent<S, N> for WithRequestFields<F>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        CURRENT.with_borrow(|fields| {
            let Some(fields) = fields else {
                return self.0.format_event(ctx, writer, event);
            };
            // The line ends with a newline; the fields go before it.
            let mut line = String::new();
            self.0.format_event(ctx, Writer::new(&mut line), event)?;
            let line = line.strip_suffix('\n').unwrap_or(&line);
            writeln!(writer, "{line} {fields}")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::Format;

    use super::*;

    /// Collects what the log formatter writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn fields() -> RequestFields {
        RequestFields {
            method: Method::GET,
            uri: Uri::from_static("/api/users/7?limit=2"),
            request_id: Some(HeaderValue::from_static("42")),
            trace_id: Some(TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)),
            parent_id: Some(SpanId::from(0x00f0_67aa_0ba9_02b7)),
        }
    }

    /// Polls a request's future that logs `message`, and one more line after it, and returns
    /// the lines.
    fn log_in_request(fields: Option<RequestFields>) -> Vec<String> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .event_format(WithRequestFields(Format::default().with_ansi(false)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut request = Box::pin(InRequest::new(
                std::future::poll_fn(|_| {
                    tracing::warn!(upstream = "users", "upstream failed");
                    Poll::Ready(())
                }),
                fields,
            ));
            let ready = request
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop()));
            assert!(ready.is_ready());
            tracing::info!("between requests");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_line_logged_in_a_request_ends_with_the_requests_fields() {
        let lines = log_in_request(Some(fields()));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].ends_with(
                "upstream failed upstream=\"users\" method=GET path=/api/users/7 request_id=42 \
                 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 parent_id=00f067aa0ba902b7"
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with("between requests"), "{}", lines[1]);
    }

    #[test]
    fn a_request_without_ids_logs_what_it_has() {
        let lines = log_in_request(Some(RequestFields {
            request_id: None,
            trace_id: None,
            parent_id: None,
            ..fields()
        }));
        assert!(
            lines[0].ends_with("upstream=\"users\" method=GET path=/api/users/7"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn outside_a_request_a_line_is_left_as_it_is() {
        let lines = log_in_request(None);
        assert!(
            lines[0].ends_with("upstream failed upstream=\"users\""),
            "{}",
            lines[0]
        );
    }
}
