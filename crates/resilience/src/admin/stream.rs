//! The Server-Sent Events stream: each state change as it happens, and a snapshot each second.
//!
//! The stream does its work in its own `poll`: no task is spawned and nothing runs once the
//! connection is gone (dropping the body drops the timer and the watcher).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::registry::Registry;
use super::snapshot::Transition;
use crate::circuit_breaker::StateChange;

/// How often a connected stream sends a snapshot.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// The events of one connection: `event: transition` for each state change, `event: snapshot`
/// at once and then each second, each with a JSON `data:` line.
pub(super) struct Events {
    registry: Registry,
    changes: mpsc::Receiver<StateChange>,
    tick: Interval,
}

impl Events {
    /// Starts watching now; the first snapshot is sent at once.
    pub(super) fn new(registry: Registry) -> Self {
        let changes = registry.watch();
        let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            registry,
            changes,
            tick,
        }
    }

    /// The next event, or `None` once the registry was closed.
    pub(super) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // State changes first: they are what a person is waiting to see.
        match self.changes.poll_recv(cx) {
            Poll::Ready(Some(change)) => {
                return Poll::Ready(Some(event("transition", &Transition::from(&change))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        ready!(self.tick.poll_tick(cx));
        self.registry.follow_breakers();
        Poll::Ready(Some(event("snapshot", &self.registry.snapshot())))
    }
}

impl Drop for Events {
    /// The last stream to end takes the registry's listeners off the breakers.
    fn drop(&mut self) {
        self.changes.close();
        self.registry.follow_breakers();
    }
}

/// One SSE event: `event: NAME`, one `data:` line of JSON (JSON has no raw newlines), a blank
/// line.
pub(super) fn event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// The body of every admin answer: a whole JSON or HTML document, or an event stream.
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Events(Box<Events>),
}

impl ResponseBody {
    pub(super) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    pub(super) fn events(events: Events) -> Self {
        Self {
            kind: Kind::Events(Box::new(events)),
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Kind::Events(events) => events
                .poll_event(cx)
                .map(|event| event.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => http_body::SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => http_body::SizeHint::with_exact(0),
            Kind::Events(_) => http_body::SizeHint::default(),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Full(_) => "full",
            Kind::Events(_) => "events",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}
