//! A bare HTTP/1.1 keep-alive client connection: one TCP connection, one request at a time.
//!
//! The load generator shares the 2-core machine with the servers it measures, so every
//! microsecond it spends is taken from them. hyper's connection-level client does no pooling,
//! no URL parsing and no redirect handling per request; each load worker owns one connection,
//! which is exactly "N keep-alive connections".

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Result;

/// The header in which the gateway says which users replica answered.
pub const SERVED_BY_HEADER: &str = "x-upstream-served-by";

/// How long one request may take before the client gives up on it (a failure). Far above the
/// gateway's own 3 s deadline: it only keeps a wedged bench from waiting forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where requests go: `GET path` on `addr`, with an API key when there is one.
#[derive(Debug, Clone)]
pub struct Target {
    /// A short name for reports (`direct`, `gateway`).
    pub name: String,
    /// The server's address.
    pub addr: SocketAddr,
    /// The path and query, e.g. `/users/1`.
    pub path: String,
    /// Sent as `x-api-key`.
    pub api_key: Option<String>,
}

/// A server's answer, its body read to the end.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `x-upstream-served-by` header, when present.
    pub served_by: Option<HeaderValue>,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One open connection to a [`Target`].
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    path: String,
    host: HeaderValue,
    api_key: Option<HeaderValue>,
}

impl Connection {
    /// Connects to `target` (with `TCP_NODELAY`, as any HTTP client does).
    pub async fn open(target: &Target) -> Result<Self> {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(|err| format!("cannot connect to {}: {err}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // Drives the connection until either side closes it; errors surface on `send`.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let api_key = target
            .api_key
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()?;
        Ok(Self {
            sender,
            path: target.path.clone(),
            host: HeaderValue::from_str(&target.addr.to_string())?,
            api_key,
        })
    }

    /// Sends `GET path` and reads the whole answer, within [`REQUEST_TIMEOUT`].
    pub async fn get(&mut self) -> Result<Answer> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_unbounded())
            .await
            .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
    }

    async fn get_unbounded(&mut self) -> Result<Answer> {
        let mut request = Request::get(self.path.as_str())
            .header(header::HOST, self.host.clone())
            .body(Empty::new())?;
        if let Some(key) = &self.api_key {
            request.headers_mut().insert("x-api-key", key.clone());
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let served_by = response.headers().get(SERVED_BY_HEADER).cloned();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            served_by,
            body,
        })
    }

    /// Whether the connection can still carry requests (false once the server closed it).
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}
