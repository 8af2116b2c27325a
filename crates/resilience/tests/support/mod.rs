//! A real HTTP server on 127.0.0.1 for the tests that speak HTTP through the stack.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What a test server answers.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// Its name, whole.
    Name(&'static str),
    /// `200`, a `Content-Length` of 20 and 10 bytes, then nothing.
    StallHalfway,
    /// The request's path and query.
    Target,
}

/// A body of ten bytes that promises twenty and never sends the rest.
struct Stalled {
    sent: bool,
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.sent, true) {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"half\":1,")))))
        }
    }
}

type Body = http_body_util::Either<http_body_util::Full<Bytes>, Stalled>;

/// A server on 127.0.0.1; dropping the task stops it and closes its connections.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(answer: Answer, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connections.spawn(async move {
                    let service = service_fn(move |request: hyper::Request<_>| async move {
                        let response = match answer {
                            Answer::Target => hyper::Response::new(Body::Left(
                                http_body_util::Full::new(Bytes::from(request.uri().to_string())),
                            )),
                            Answer::Name(name) => hyper::Response::new(Body::Left(
                                http_body_util::Full::new(Bytes::from(name)),
                            )),
                            Answer::StallHalfway => hyper::Response::builder()
                                .header("content-length", "20")
                                .body(Body::Right(Stalled { sent: false }))
                                .unwrap(),
                        };
                        Ok::<_, Infallible>(response)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
