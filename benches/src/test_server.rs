//! A tiny HTTP/1 server on 127.0.0.1:0 for the load loops' tests: it answers every request with
//! a fixed status and alternates `x-upstream-served-by` between `users-1` and `users-2`.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::client::{SERVED_BY_HEADER, Target};

/// Starts the server; it runs until the test's runtime ends. Returns a target for `GET /` and
/// the count of requests it answered.
pub(crate) async fn start(status: u16) -> (Target, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let replica = if n % 2 == 0 { "users-1" } else { "users-2" };
                    let response = hyper::Response::builder()
                        .status(status)
                        .header(SERVED_BY_HEADER, replica)
                        .body(Full::new(Bytes::from_static(b"{\"data\":{}}")))
                        .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let target = Target {
        name: "test".into(),
        addr,
        path: "/".into(),
        api_key: Some("key".into()),
    };
    (target, answered)
}
