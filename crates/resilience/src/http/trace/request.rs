//! What the attempt span needs of a request, whichever client built it.

use std::borrow::Cow;

use http::HeaderMap;

use crate::http::HttpRequest;

/// A request the [`AttemptSpan`](super::AttemptSpan) can describe and stamp with a
/// `traceparent`: where it goes, and its headers to write to.
///
/// Implemented for `http::Request<B>` (any cloneable body) and, with the `reqwest` feature,
/// for `reqwest::Request`.
pub trait AttemptRequest: HttpRequest {
    /// The headers, to write `traceparent` and `tracestate` into.
    fn headers_mut(&mut self) -> &mut HeaderMap;

    /// The host (`server.address`), when the request names one.
    fn server_address(&self) -> Option<&str>;

    /// The port (`server.port`): the URL's, or its scheme's default.
    fn server_port(&self) -> Option<u16>;

    /// The whole URL (`url.full`), with any credentials in it replaced by `REDACTED`.
    fn url_full(&self) -> Cow<'_, str>;
}

impl<B: Clone> AttemptRequest for http::Request<B> {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }

    fn server_address(&self) -> Option<&str> {
        self.uri().host()
    }

    fn server_port(&self) -> Option<u16> {
        let uri = self.uri();
        uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    }

    fn url_full(&self) -> Cow<'_, str> {
        let uri = self.uri();
        match uri.authority() {
            Some(authority) if authority.as_str().contains('@') => {
                let host = authority.as_str().rsplit('@').next().unwrap_or_default();
                let scheme = uri.scheme_str().unwrap_or("http");
                let path = uri.path_and_query().map_or("/", |path| path.as_str());
                Cow::Owned(format!("{scheme}://REDACTED:REDACTED@{host}{path}"))
            }
            _ => Cow::Owned(uri.to_string()),
        }
    }
}

#[cfg(feature = "reqwest")]
impl AttemptRequest for reqwest::Request {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }

    fn server_address(&self) -> Option<&str> {
        self.url().host_str()
    }

    fn server_port(&self) -> Option<u16> {
        self.url().port_or_known_default()
    }

    fn url_full(&self) -> Cow<'_, str> {
        let url = self.url();
        if url.username().is_empty() && url.password().is_none() {
            return Cow::Borrowed(url.as_str());
        }
        let mut redacted = url.clone();
        let _ = redacted.set_username("REDACTED");
        let _ = redacted.set_password(Some("REDACTED"));
        Cow::Owned(redacted.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_request_names_its_server_and_hides_credentials() {
        let request = http::Request::get("http://ada:secret@users:8081/users/7?x=1")
            .body(())
            .unwrap();
        assert_eq!(request.server_address(), Some("users"));
        assert_eq!(request.server_port(), Some(8081));
        assert_eq!(
            request.url_full(),
            "http://REDACTED:REDACTED@users:8081/users/7?x=1"
        );
        let plain = http::Request::get("https://users/users/7")
            .body(())
            .unwrap();
        assert_eq!(plain.server_port(), Some(443));
        assert_eq!(plain.url_full(), "https://users/users/7");
    }
}
