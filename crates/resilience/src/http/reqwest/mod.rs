//! The reqwest adapter: an endpoint bound to one base URL, and the whole stack as one client.

mod client;
mod endpoint;

pub use self::client::{ResilientClient, ResilientClientBuilder, ResponseFuture};
pub use self::endpoint::{DEFAULT_MAX_BODY, HttpEndpoint, ResponseFuture as EndpointFuture};
