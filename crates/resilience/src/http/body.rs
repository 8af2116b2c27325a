//! Reading a response body as part of the attempt that asked for it.
//!
//! An HTTP client future resolves when the headers arrive; the body comes later. A layer that
//! stops at the headers lets a body that stalls or breaks escape the attempt timeout, the
//! breaker and the retry: the caller waits on a socket nobody watches, and the breaker records a
//! success. [`ReadBody`] reads the body inside the attempt, so every limit covers the whole
//! exchange, and refuses a body over its cap as soon as it is known to be too large (from
//! `Content-Length`, or from the bytes received so far), without buffering it whole.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use pin_project_lite::pin_project;

use crate::error::BoxError;

/// The upstream's body is larger than the cap; it was not read to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response body is larger than the {limit}-byte limit")]
pub struct BodyTooLarge {
    limit: usize,
}

impl BodyTooLarge {
    /// The cap that was exceeded, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Reading the upstream's body failed after its headers arrived (the connection broke, or the
/// framing was invalid).
#[derive(Debug, thiserror::Error)]
#[error("reading the response body failed")]
pub struct BodyFailed {
    #[source]
    source: BoxError,
}

pin_project! {
    /// Reads a whole body into one [`Bytes`], failing with [`BodyTooLarge`] past `limit` bytes
    /// and with [`BodyFailed`] when the body breaks.
    #[derive(Debug)]
    pub struct ReadBody<B> {
        #[pin]
        body: B,
        // The first frame as it came (most answers are one frame: no copy, no buffer); the
        // buffer is only made when a second frame arrives.
        first: Option<Bytes>,
        buffer: BytesMut,
        limit: usize,
    }
}

impl<B: Body> ReadBody<B> {
    /// Reads `body`, accepting at most `limit` bytes.
    pub fn new(body: B, limit: usize) -> Self {
        Self {
            body,
            first: None,
            buffer: BytesMut::new(),
            limit,
        }
    }
}

impl<B> Future for ReadBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Bytes, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let too_large = BodyTooLarge { limit: *this.limit };
        if this.body.size_hint().lower() > *this.limit as u64 {
            // Content-Length says it will not fit: refuse before reading a byte.
            return Poll::Ready(Err(too_large.into()));
        }
        loop {
            let Some(frame) = ready!(this.body.as_mut().poll_frame(cx)) else {
                let body = match this.first.take() {
                    Some(first) => first,
                    None => std::mem::take(this.buffer).freeze(),
                };
                return Poll::Ready(Ok(body));
            };
            let frame = frame.map_err(|error| BodyFailed {
                source: error.into(),
            })?;
            let Ok(mut data) = frame.into_data() else {
                // Trailers carry nothing the caller reads.
                continue;
            };
            let read = this.first.as_ref().map_or(0, Bytes::len) + this.buffer.len();
            if read + data.remaining() > *this.limit {
                return Poll::Ready(Err(too_large.into()));
            }
            if read == 0 {
                // Without a copy when the body's buffer is `Bytes`, as hyper's is.
                *this.first = Some(data.copy_to_bytes(data.remaining()));
                continue;
            }
            if let Some(first) = this.first.take() {
                let expected = usize::try_from(this.body.size_hint().lower()).unwrap_or(0);
                this.buffer.reserve(
                    (first.len() + data.remaining())
                        .max(expected)
                        .min(*this.limit),
                );
                this.buffer.extend_from_slice(&first);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                let taken = chunk.len();
                this.buffer.extend_from_slice(chunk);
                data.advance(taken);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::find_in_chain;
    use http_body_util::{Full, StreamBody};

    type Chunk = Result<http_body::Frame<Bytes>, std::io::Error>;

    fn chunked(parts: Vec<Chunk>) -> StreamBody<futures::stream::Iter<std::vec::IntoIter<Chunk>>> {
        StreamBody::new(futures::stream::iter(parts))
    }

    fn data(text: &'static str) -> Chunk {
        Ok(http_body::Frame::data(Bytes::from_static(text.as_bytes())))
    }

    #[tokio::test]
    async fn reads_every_chunk() {
        let body = chunked(vec![data("{\"id\":"), data("1}")]);
        assert_eq!(ReadBody::new(body, 64).await.unwrap(), "{\"id\":1}");
    }

    #[tokio::test]
    async fn a_body_of_one_frame_comes_back_without_a_copy() {
        let sent = Bytes::from_static(b"{\"id\":1}");
        let read = ReadBody::new(Full::new(sent.clone()), 64).await.unwrap();
        assert_eq!(read, sent);
        assert_eq!(read.as_ptr(), sent.as_ptr(), "the same bytes, not a copy");
    }

    #[tokio::test]
    async fn an_empty_body_reads_as_empty() {
        let body = chunked(Vec::new());
        assert!(ReadBody::new(body, 64).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cap_counts_the_first_frame_too() {
        let body = chunked(vec![data("12345"), data("678")]);
        let error = ReadBody::new(body, 7).await.unwrap_err();
        assert!(
            find_in_chain::<BodyTooLarge>(error.as_ref()).is_some(),
            "{error}"
        );
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_cap_before_reading() {
        let error = ReadBody::new(Full::new(Bytes::from(vec![b'x'; 65])), 64)
            .await
            .unwrap_err();
        assert_eq!(
            find_in_chain::<BodyTooLarge>(error.as_ref()).map(BodyTooLarge::limit),
            Some(64)
        );
    }

    #[tokio::test]
    async fn refuses_a_chunked_body_once_it_passes_the_cap() {
        let body = chunked(vec![data("0123456789"), data("0123456789"), data("x")]);
        let error = ReadBody::new(body, 15).await.unwrap_err();
        assert!(find_in_chain::<BodyTooLarge>(error.as_ref()).is_some());
        let exact = chunked(vec![data("0123456789"), data("01234")]);
        assert_eq!(ReadBody::new(exact, 15).await.unwrap().len(), 15);
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error() {
        let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let body = chunked(vec![data("{\"half\":"), Err(broken)]);
        let error = ReadBody::new(body, 64).await.unwrap_err();
        assert!(find_in_chain::<BodyFailed>(error.as_ref()).is_some());
        assert!(find_in_chain::<std::io::Error>(error.as_ref()).is_some());
    }
}
