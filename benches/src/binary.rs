//! Builds the release binaries the macro benches run (`demo-gateway`, `reqwest-floor`), and
//! finds them.
//!
//! The services are measured as release builds, whatever profile the bench itself was built
//! with. The bench runs the same cargo that runs it (`$CARGO`), so the build honours
//! `CARGO_TARGET_DIR` and the workspace's settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// The gateway binary a bench was given (`--gateway PATH`: an older build, or `reqwest-floor`),
/// else the workspace's, built by [`build_release_gateway`].
pub fn given_or_built_gateway(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(path) => Ok(path.to_path_buf()),
        None => build_release_gateway(),
    }
}

/// Runs `cargo build --release -p demo-gateway` and returns the built binary's path.
///
/// The path comes from cargo's own build messages; when they do not name it, from
/// `$CARGO_TARGET_DIR` (or the workspace's `target/`) + `release/demo-gateway`.
pub fn build_release_gateway() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release gateway: cargo build --release -p demo-gateway");
    let output = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "demo-gateway",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("cannot run {}: {err}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --release -p demo-gateway failed: {}",
            output.status
        )
        .into());
    }
    let binary = executable_in_messages(&output.stdout).unwrap_or_else(expected_path);
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "built demo-gateway, but {} does not exist",
            binary.display()
        )
        .into())
    }
}

/// Runs `cargo build --release -p resilience-benches --bin reqwest-floor` and returns the
/// binary's path under [`target_dir`].
pub fn build_release_floor() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building the reqwest floor: cargo build --release -p resilience-benches --bin reqwest-floor"
    );
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "resilience-benches",
            "--bin",
            "reqwest-floor",
        ])
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        return Err(format!("building reqwest-floor failed: {status}").into());
    }
    Ok(target_dir().join("release").join("reqwest-floor"))
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root), or the
/// workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where cargo puts the release binary by default.
fn expected_path() -> PathBuf {
    target_dir().join("release").join("demo-gateway")
}

/// The `executable` of the `demo-gateway` binary in cargo's JSON messages, if any.
fn executable_in_messages(stdout: &[u8]) -> Option<PathBuf> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "demo-gateway")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_gateway_executable_among_cargo_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"name":"demo_kit"},"executable":null}
not json
{"reason":"compiler-artifact","target":{"name":"demo-gateway"},"executable":"/t/release/demo-gateway"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_in_messages(messages),
            Some(PathBuf::from("/t/release/demo-gateway"))
        );
        assert_eq!(
            executable_in_messages(b"{\"reason\":\"build-finished\"}"),
            None
        );
    }
}
