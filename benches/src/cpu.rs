//! CPU time used by processes, from `/proc/PID/stat`: how the 2 cores were shared out between
//! the load generator, the gateway and the services during a run.
//!
//! On a machine this small every process competes for the same cores, so requests/s alone does
//! not say *why* one path is slower; CPU time per request does.

use std::time::Duration;

use crate::Result;

/// Clock ticks per second for `/proc` times, from `getconf CLK_TCK` (100 on Linux when the
/// command is missing).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// User plus system CPU time of process `pid` so far (`self` for this process).
pub fn cpu_time(pid: &str, ticks_per_second: u64) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let ticks = busy_ticks(&stat).ok_or_else(|| format!("unexpected {path}: {stat:?}"))?;
    Ok(Duration::from_micros(
        ticks.saturating_mul(1_000_000) / ticks_per_second,
    ))
}

/// Named processes whose CPU times are read together.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    processes: Vec<(String, String)>,
    ticks_per_second: u64,
}

impl CpuMeter {
    /// A meter over `(name, pid)` pairs; a pid may be `self`.
    pub fn new(processes: Vec<(String, String)>) -> Self {
        Self {
            processes,
            ticks_per_second: ticks_per_second(),
        }
    }

    /// The names, in the order [`read`](Self::read) returns their times.
    pub fn names(&self) -> Vec<String> {
        self.processes
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Each process's CPU time so far.
    pub fn read(&self) -> Result<Vec<Duration>> {
        self.processes
            .iter()
            .map(|(_, pid)| cpu_time(pid, self.ticks_per_second))
            .collect()
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn busy_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks_after_the_command_name() {
        let stat =
            "20456 (my (odd) cmd) R 20454 20454 26243 0 -1 4194304 133 0 0 0 250 37 0 0 20 0 1";
        assert_eq!(busy_ticks(stat), Some(287));
        assert_eq!(busy_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let used = cpu_time("self", ticks_per_second());
        assert!(used.is_ok(), "{used:?}");
    }
}
