//! Extractors rustapi-rs lacks: the peer address of the connection and the raw query string.
//!
//! rustapi-rs's `ClientIp` trusts `X-Forwarded-For` by default and its own server never records
//! the peer address, so it cannot guard a loopback-only route; its `Query<T>` needs a `Schema`
//! type and answers rustapi's own error shape. These two read what [`serve`](crate::serve) and
//! the request line provide, and never fail.

use std::net::SocketAddr;

use rustapi_core::{FromRequestParts, Request};
use rustapi_openapi::{Operation, OperationModifier};

/// The address of the TCP peer, inserted into every request's extensions by
/// [`serve`](crate::serve). `None` when the request did not come through a socket (in-process
/// tests), which code must treat as "not loopback".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl PeerAddr {
    /// Whether the peer is on the loopback interface.
    pub fn is_loopback(&self) -> bool {
        self.0.is_some_and(|addr| addr.ip().is_loopback())
    }
}

impl FromRequestParts for PeerAddr {
    fn from_request_parts(req: &Request) -> rustapi_core::Result<Self> {
        Ok(req
            .extensions()
            .get::<PeerAddr>()
            .copied()
            .unwrap_or(PeerAddr(None)))
    }
}

impl OperationModifier for PeerAddr {
    fn update_operation(_op: &mut Operation) {}
}

/// The request's query string (empty when there is none), for handlers to parse themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawQuery(pub String);

impl RawQuery {
    /// The value of the first `name=value` pair with this name. Values are not percent-decoded
    /// (the demo services only take numbers).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

impl FromRequestParts for RawQuery {
    fn from_request_parts(req: &Request) -> rustapi_core::Result<Self> {
        Ok(RawQuery(req.query_string().unwrap_or("").to_owned()))
    }
}

impl OperationModifier for RawQuery {
    fn update_operation(_op: &mut Operation) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_query_finds_first_pair() {
        let q = RawQuery("limit=5&offset=10&limit=7&flag".into());
        assert_eq!(q.get("limit"), Some("5"));
        assert_eq!(q.get("offset"), Some("10"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("user_id"), None);
    }

    #[test]
    fn missing_peer_is_not_loopback() {
        assert!(!PeerAddr(None).is_loopback());
        assert!(PeerAddr(Some(([127, 0, 0, 1], 9).into())).is_loopback());
        assert!(!PeerAddr(Some(([10, 0, 0, 1], 9).into())).is_loopback());
    }
}
