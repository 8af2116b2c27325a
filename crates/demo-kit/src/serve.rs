//! The accept loop: serve a tower service on a bound listener, drain on shutdown.
//!
//! rustapi-rs's `run()` binds the address itself (so tests cannot bind `127.0.0.1:0` and learn
//! the port), and on shutdown drops in-flight requests while kept-alive connections go on being
//! served. Here every connection is watched by hyper-util's `GracefulShutdown`: when the shutdown
//! future completes the listener is closed, idle connections are closed, and requests already
//! being handled run to completion (bounded by a drain timeout).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use crate::extract::PeerAddr;
use crate::stack::BoxError;

/// How long [`serve`] waits for in-flight requests after shutdown before giving up on them.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `service` on `listener` (HTTP/1.1) until `shutdown` completes, then stops accepting,
/// lets in-flight requests finish (at most [`DEFAULT_DRAIN_TIMEOUT`]) and returns.
///
/// Every request gets a [`PeerAddr`] extension with the connection's peer address. The service
/// is usually a [`Stack::service`](crate::Stack::service), but any cloneable tower service over
/// `http::Request<Incoming>` works.
///
/// # Errors
/// None at present: accept errors (e.g. out of file descriptors) are logged and retried after a
/// short pause. The `io::Result` leaves room for start-up failures.
pub async fn serve<S, ResBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    serve_with_drain_timeout(listener, service, shutdown, DEFAULT_DRAIN_TIMEOUT).await
}

/// [`serve`] with an explicit bound on how long shutdown waits for in-flight requests.
///
/// # Errors
/// See [`serve`].
pub async fn serve_with_drain_timeout<S, ResBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
    drain_timeout: Duration,
) -> std::io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // A timer makes hyper close connections that never finish sending their headers.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = service.clone().map_request(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(Some(peer)));
                    req
                });
                let conn = builder.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(%err, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }

    // Stop accepting: new connections are refused from here on.
    drop(listener);
    tracing::info!("draining in-flight requests");
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain_timeout,
            "drain timed out; dropping remaining connections"
        );
    }
    Ok(())
}

/// The line a service binary prints on stdout once it listens: `listening on http://ADDR`.
pub const LISTENING_PREFIX: &str = "listening on http://";

/// Prints the [`LISTENING_PREFIX`] line for `addr` on stdout, so that a parent process (a test,
/// the gateway's launcher) learns the address even when the port was 0.
pub fn announce_listening(addr: std::net::SocketAddr) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{LISTENING_PREFIX}{addr}");
    let _ = out.flush();
}
