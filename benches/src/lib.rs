//! Benchmarks for the resilience crate and the demo gateway.
//!
//! The benches themselves live in `benches/benches/`: `micro` (per-layer overhead, divan),
//! `gateway_load` (load through the gateway against one users replica directly), `chaos`
//! (what clients see while a replica is killed or stopped) and `proxies` (the gateway beside
//! nginx and HAProxy, through a shared shell harness). This library holds what the macro
//! benches share, one job per module:
//!
//! - [`args`] reads durations on the command line;
//! - [`binary`] builds the release `demo-gateway` binary and finds it;
//! - [`process`] runs one service as a child process and always kills it;
//! - [`cluster`] starts two users replicas, the order service and a gateway in front;
//! - [`cpu`] reads how much CPU time a process has used;
//! - [`client`] is a bare HTTP/1 keep-alive client connection;
//! - [`closed_loop`] drives a fixed number of connections as fast as they answer;
//! - [`open_loop`] sends at a fixed rate and measures from the scheduled send time;
//! - [`breaker_watch`] polls the gateway's `/admin/status` for one endpoint's breaker;
//! - [`summary`] turns a latency histogram into the numbers reported;
//! - [`table`] renders markdown tables, printed and written alike;
//! - [`machine`] says what machine a run was on, and when;
//! - [`results`] writes a run's JSON and markdown under `benches/results/`;
//! - [`harness`] is what the `proxies` bench needs to run the shared nginx/HAProxy harness.
//!
//! Why a load generator of our own rather than `wrk` or `oha`: the benches must run from one
//! `cargo bench` command with nothing else installed, start and kill the processes they measure,
//! and read the gateway's `x-upstream-served-by` header per request.

pub mod args;
pub mod binary;
pub mod breaker_watch;
pub mod client;
pub mod closed_loop;
pub mod cluster;
pub mod cpu;
pub mod harness;
pub mod machine;
pub mod open_loop;
pub mod process;
pub mod results;
pub mod summary;
pub mod table;

#[cfg(test)]
mod test_server;

/// What goes wrong in a bench run (a process that does not start, a build that fails): a message
/// for the person running it.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
