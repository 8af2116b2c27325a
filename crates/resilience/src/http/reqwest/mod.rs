//! The reqwest adapter: an endpoint bound to one base URL, and the whole stack as one client.

mod attempt;
mod client;
#[cfg(feature = "serde")]
mod config;
mod endpoint;

pub use self::client::{ResilientClient, ResilientClientBuilder, ResponseFuture};
#[cfg(feature = "serde")]
pub use self::config::ResilientClientConfig;
pub use self::endpoint::{DEFAULT_MAX_BODY, HttpEndpoint, ResponseFuture as EndpointFuture};
