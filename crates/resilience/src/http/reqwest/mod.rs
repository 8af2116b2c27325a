//! The reqwest adapter: an endpoint bound to one base URL, and the whole stack as one client.

mod attempt;
mod builder;
mod client;
#[cfg(feature = "serde")]
mod config;
mod endpoint;
mod endpoints;
mod stack;
mod unavailable;

pub use self::builder::ResilientClientBuilder;
pub use self::client::{ResilientClient, ResponseFuture};
#[cfg(feature = "serde")]
pub use self::config::ResilientClientConfig;
pub use self::endpoint::{
    AnsweredBy, DEFAULT_MAX_BODY, HttpEndpoint, ResponseFuture as EndpointFuture,
};
pub use self::unavailable::UpstreamUnavailable;
