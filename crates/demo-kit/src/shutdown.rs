//! The shutdown signal: SIGTERM (what `kill PID` and process managers send) or Ctrl-C.

/// Completes when the process receives SIGTERM or Ctrl-C (SIGINT).
///
/// If a signal handler cannot be installed the failure is logged and that signal is ignored,
/// so the future never completes spuriously.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received Ctrl-C, shutting down"),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
                tracing::info!("received SIGTERM, shutting down");
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
