//! Logging set-up shared by the binaries.

use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber that writes to stderr, filtered by `RUST_LOG`.
///
/// Without `RUST_LOG`: `info`, with rustapi-rs's own per-request logging turned down (the
/// [`Stack`](crate::Stack)'s trace layer already logs each request), and the one line per
/// answered request (tower-http's `on_response`, target `tower_http`) only with `access_log`.
/// Failed requests (5xx) are logged either way. An access log costs a formatted line and a
/// write per request; nginx and HAProxy leave theirs to be switched on, and so does the gateway.
///
/// Calling it twice is harmless: the second call does nothing.
pub fn init_tracing(access_log: bool) {
    let default = if access_log {
        "info,rustapi_core=warn,tower_http=info"
    } else {
        "info,rustapi_core=warn,tower_http=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal; logs piped to a file or a parent stay plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init();
}
