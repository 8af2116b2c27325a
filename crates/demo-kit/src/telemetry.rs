//! Logging set-up shared by the binaries.

use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber that writes to stderr, filtered by `RUST_LOG`
/// (default: `info`, with rustapi-rs's own per-request logging turned down since the
/// [`Stack`](crate::Stack)'s trace layer already logs each request).
///
/// Calling it twice is harmless: the second call does nothing.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rustapi_core=warn,tower_http=info"));
    // Colours only for a person at a terminal; logs piped to a file or a parent stay plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init();
}
