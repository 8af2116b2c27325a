//! The innermost service: a rustapi-rs app's `request_dispatcher()` as a tower service.
//!
//! rustapi-rs forces this one: its `Request` holds hyper's `Incoming` or bytes already read,
//! and its dispatcher is an `async fn`, so the body is read here and the dispatch's future is
//! boxed (its type cannot be named).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Method;
use http_body::Body;
use http_body_util::BodyExt;
use rustapi_core::{BodyVariant, PathParams, RequestDispatcher, RustApi};
use tower::Service;
use tower_http::body::Limited;

use crate::error::AppError;
use crate::stack::{BoxError, BoxFuture, HttpResponse, boxed};

/// The innermost service: reads the request body and hands the request to the app's
/// `request_dispatcher()`. `HEAD` is dispatched as `GET`, since rustapi-rs routes have no
/// `HEAD`; hyper leaves the body out of a `HEAD` answer.
///
/// It takes only bodies already capped by tower-http's [`Limited`] (the [`Stack`]'s
/// `RequestBodyLimit`, the one cap on a request body), so it cannot be handed an unbounded one;
/// a body that passes the cap is answered 413, saying `body_limit`. rustapi-rs's own body limit
/// is applied only by its `run()`, not by the dispatcher. Buffering here lets the same service
/// take any body type (in-process tests, bodies wrapped by tower-http layers).
///
/// [`Stack`]: crate::Stack
#[derive(Clone)]
pub struct RustApiService {
    /// Shared, so that a request's future holds a reference count rather than a copy of the
    /// dispatcher's parts.
    dispatcher: Arc<RequestDispatcher>,
    body_limit: usize,
}

impl std::fmt::Debug for RustApiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustApiService")
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl RustApiService {
    /// Serves `app`'s routes, state and rustapi middleware, behind a body cap of `body_limit`
    /// bytes (the [`Stack`](crate::Stack)'s).
    pub fn new(app: &RustApi, body_limit: usize) -> Self {
        Self {
            dispatcher: Arc::new(app.request_dispatcher()),
            body_limit,
        }
    }
}

/// Whether a body error (anywhere in its source chain) is a length-limit error.
fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = current {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = err.source();
    }
    false
}

impl<B> Service<http::Request<Limited<B>>> for RustApiService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Limited<B>>) -> Self::Future {
        let dispatcher = Arc::clone(&self.dispatcher);
        let limit = self.body_limit;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            // rustapi-rs has no HEAD routes; answer HEAD like GET (hyper drops the body).
            if parts.method == Method::HEAD {
                parts.method = Method::GET;
            }
            // Most requests (a GET, a DELETE) have no body: nothing to read.
            let read = match body.is_end_stream() {
                true => Ok(Bytes::new()),
                false => body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes),
            };
            let bytes = match read {
                Ok(bytes) => bytes,
                Err(err) if is_length_limit(&*err) => {
                    return Ok(AppError::payload_too_large(limit).into_http_response());
                }
                Err(err) => {
                    // The client went away or sent a broken chunked encoding.
                    tracing::debug!(%err, "cannot read request body");
                    return Ok(
                        AppError::bad_request("cannot read request body").into_http_response()
                    );
                }
            };
            let request = rustapi_core::Request::new(
                parts,
                BodyVariant::Buffered(bytes),
                dispatcher.state_ref(),
                PathParams::new(),
            );
            Ok(boxed(dispatcher.dispatch(request).await))
        })
    }
}
