//! What the HTTP rules need to know of a request, whichever client built it.

use http::{HeaderMap, Method};

/// A request the HTTP rules can judge: its method, its headers, and a copy when its body can be
/// sent again.
///
/// Implemented for `http::Request<B>` with a cloneable body (`Full<Bytes>`, `String`, ...: what
/// hyper-util, axum and tonic clients send), and with the `reqwest` feature for
/// `reqwest::Request`.
pub trait HttpRequest: Sized {
    /// The method.
    fn method(&self) -> &Method;

    /// The headers.
    fn headers(&self) -> &HeaderMap;

    /// A copy to send again, or `None` when the body is a stream that cannot be replayed.
    fn try_clone(&self) -> Option<Self>;
}

impl<B: Clone> HttpRequest for http::Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn try_clone(&self) -> Option<Self> {
        let mut copy = http::Request::new(self.body().clone());
        *copy.method_mut() = self.method().clone();
        *copy.uri_mut() = self.uri().clone();
        *copy.version_mut() = self.version();
        *copy.headers_mut() = self.headers().clone();
        *copy.extensions_mut() = self.extensions().clone();
        Some(copy)
    }
}

#[cfg(feature = "reqwest")]
impl HttpRequest for reqwest::Request {
    fn method(&self) -> &Method {
        self.method()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn try_clone(&self) -> Option<Self> {
        self.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_request_copies_whole() {
        let request = http::Request::put("http://users/users/7")
            .header("idempotency-key", "k-1")
            .body(String::from("{\"name\":\"Ada\"}"))
            .unwrap();
        let copy = HttpRequest::try_clone(&request).unwrap();
        assert_eq!(copy.method(), http::Method::PUT);
        assert_eq!(copy.uri(), "http://users/users/7");
        assert_eq!(copy.headers()["idempotency-key"], "k-1");
        assert_eq!(copy.body(), request.body());
    }
}
