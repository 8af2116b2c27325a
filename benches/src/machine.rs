//! What machine a run was on, and when: numbers mean little without it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The machine and the moment of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to the bench.
    pub cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The kernel (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// The 1-minute load average when the run started: other work on the machine skews results.
    pub load_average_1m: Option<f64>,
    /// When the run started, UTC, ISO 8601.
    pub date_utc: String,
}

impl Machine {
    /// Reads the machine's description now.
    pub fn now() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown CPU".into()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average_1m: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .and_then(|load| load.parse().ok()),
            date_utc: utc_timestamp(SystemTime::now()),
        }
    }

    /// One line for a report: `2 CPUs, AMD EPYC 7B13, Linux 6.1, 2026-11-24T09:30:00Z, load 0.4`.
    pub fn describe(&self) -> String {
        let load = self
            .load_average_1m
            .map_or_else(|| "unknown".into(), |load| format!("{load:.2}"));
        format!(
            "{} CPUs, {}, Linux {}, {}, load average at start {load}",
            self.cpus, self.cpu_model, self.kernel, self.date_utc
        )
    }

    /// The date as a file-name stamp: `20261124-093000`.
    pub fn file_stamp(&self) -> String {
        self.date_utc
            .chars()
            .filter(char::is_ascii_digit)
            .enumerate()
            .flat_map(|(at, digit)| (at == 8).then_some('-').into_iter().chain([digit]))
            .collect()
    }
}

/// The first `model name` in `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned())
}

/// `at` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_timestamp(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2024-02-29 12:34:56 UTC, a leap day.
        let at = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(utc_timestamp(at), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn reads_the_cpu_model() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn file_stamps_sort_by_date() {
        let machine = Machine {
            cpus: 2,
            cpu_model: String::new(),
            kernel: String::new(),
            load_average_1m: None,
            date_utc: "2026-11-24T09:30:05Z".into(),
        };
        assert_eq!(machine.file_stamp(), "20261124-093005");
    }
}
