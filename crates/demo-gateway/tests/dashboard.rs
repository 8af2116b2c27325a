//! The dashboard in a real browser: headless Chromium loads `/admin/dashboard` of a running
//! demo (the URL its banner prints), a users replica is killed under traffic, and the page shows
//! its breaker open within 2 s, read from the DOM; the replica is restarted with the banner's
//! command and the page shows it closed again. A screenshot goes to the test's temporary folder
//! (and to `$DASHBOARD_SCREENSHOT`, if set: that is how `docs/dashboard.png` is made).
//!
//! Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (JSON
//! messages ending in NUL on file descriptors 3 and 4), so no websocket client or browser
//! automation crate is built. Debian's `chromium` package; `.ci/run` installs it. Without it the
//! test fails under CI and is skipped (with a message) elsewhere.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Demo;

/// Bounds every wait that is not the requirement itself, so a broken build fails, not hangs.
const PATIENCE: Duration = Duration::from_secs(30);
/// The requirement: a killed replica shows as open on the page within this.
const SHOWN_WITHIN: Duration = Duration::from_secs(2);

/// A process started by this test, killed by its PID when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_demo(data_dir: &std::path::Path) -> Demo {
    let demo = support::start_demo(data_dir);
    assert!(
        demo.dashboard.contains("/admin/dashboard?key=admin-"),
        "the banner prints the dashboard's URL with a fresh operator key: {:?}",
        demo.dashboard
    );
    demo
}

/// Clients sending `GET /api/users/1` in a loop until dropped (without traffic, no breaker
/// learns that a replica is gone).
struct Traffic {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: &str, key: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let threads = (0..2)
            .map(|_| {
                let (stop, answered) = (stop.clone(), answered.clone());
                let request = format!(
                    "GET /api/users/1 HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {key}\r\nconnection: close\r\n\r\n"
                );
                let addr = addr.to_owned();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = TcpStream::connect(&addr) else {
                            continue;
                        };
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut answer = Vec::new();
                        if stream.write_all(request.as_bytes()).is_ok()
                            && stream.read_to_end(&mut answer).is_ok()
                            && answer.starts_with(b"HTTP/1.1 200")
                        {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        // A few hundred requests a second at most: enough to trip a breaker at
                        // once, little enough for a 2-core machine.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            threads,
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Headless Chromium, driven over the DevTools protocol on a pipe.
struct Browser {
    process: Owned,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    fn launch(chromium: &str, profile: &std::path::Path) -> Self {
        // The shell hands our stdin and stdout to Chromium as descriptors 3 and 4, the pipe the
        // protocol runs on, and sends its own output nowhere.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-pipe",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let commands = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut message = Vec::new();
            while output.read_until(0, &mut message).unwrap_or(0) > 0 {
                message.pop_if(|byte| *byte == 0);
                if let Ok(value) = serde_json::from_slice(&message)
                    && sender.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Self {
            process: Owned(child),
            commands,
            messages,
            next_id: 0,
            session: None,
        }
    }

    /// Sends `method` (to the attached page, once there is one) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        self.commands.flush().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("Chromium did not answer {method}"));
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page and talks to that page from now on.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": url}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    }

    /// The value of `expression` in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// The `data-state` of the card of `endpoint`, if the page shows one.
    fn state_of(&mut self, endpoint: &str) -> Option<String> {
        let expression = format!(
            r#"(() => {{ const card = document.querySelector('[data-endpoint="{endpoint}"]'); return card ? card.dataset.state : null; }})()"#
        );
        self.eval(&expression).as_str().map(str::to_owned)
    }

    /// Polls the page until `endpoint` shows `state`; how long that took, or `None` after
    /// `limit`.
    fn until_state(&mut self, endpoint: &str, state: &str, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        loop {
            if self.state_of(endpoint).as_deref() == Some(state) {
                return Some(started.elapsed());
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the page has drawn a newer snapshot (its status line names each one's time).
    fn next_snapshot(&mut self) {
        let expression = "document.getElementById('status').textContent";
        let shown = self.eval(expression);
        let patience = Instant::now() + PATIENCE;
        while self.eval(expression) == shown {
            assert!(Instant::now() < patience, "no new snapshot");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session = None;
        // Ask politely, so it takes its own helper processes down with it; `Owned` then kills
        // it by PID if it has not exited.
        let _ = self
            .commands
            .write_all(b"{\"id\":0,\"method\":\"Browser.close\"}\0");
        let _ = self.commands.flush();
        let patience = Instant::now() + Duration::from_secs(5);
        while Instant::now() < patience && matches!(self.process.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        bytes.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    bytes
}

/// Chromium's path, or `None` (the caller skips) outside CI.
fn chromium() -> Option<String> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: .ci/run installs Debian's chromium package"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
    }
    found.map(str::to_owned)
}

#[test]
fn the_dashboard_shows_a_killed_replica_open_within_two_seconds_and_closed_once_restarted() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(&dir.path().join("data"));
    let users_2 = demo
        .services
        .iter()
        .find(|(name, _, _)| name == "users-2")
        .unwrap()
        .clone();
    let traffic = Traffic::start(&demo.addr, &demo.key);

    let mut browser = Browser::launch(&chromium, &dir.path().join("profile"));
    browser.open(&demo.dashboard);
    assert!(
        browser
            .until_state(&users_2.1, "closed", PATIENCE)
            .is_some(),
        "the page shows users-2 closed"
    );
    assert_eq!(
        browser.eval("location.search"),
        "",
        "the key is gone from the address bar"
    );

    // For the picture in docs/, some history first.
    let picture = std::env::var_os("DASHBOARD_SCREENSHOT");
    if picture.is_some() {
        for _ in 0..8 {
            browser.next_snapshot();
        }
    }

    // SIGKILL users-2: the page must show its breaker open within 2 s.
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-KILL", &users_2.2.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let shown = browser.until_state(&users_2.1, "open", SHOWN_WITHIN);
    assert!(
        shown.is_some(),
        "users-2 still shows {:?} {:?} after it was killed",
        browser.state_of(&users_2.1),
        killed.elapsed()
    );
    eprintln!("users-2 shown open {:?} after the kill", killed.elapsed());
    let log = browser.eval("document.getElementById('log').textContent");
    assert!(
        log.as_str().unwrap().contains("consecutive failures"),
        "the transition and its reason are listed: {log}"
    );
    // Let the numbers catch up (the next snapshot or two), then keep a picture.
    let answered = traffic.answered.load(Ordering::Relaxed);
    for _ in 0..if picture.is_some() { 4 } else { 1 } {
        browser.next_snapshot();
    }
    let screenshot = dir.path().join("dashboard.png");
    browser.screenshot(&screenshot);
    eprintln!("screenshot: {}", screenshot.display());
    if let Some(copy) = picture {
        std::fs::copy(&screenshot, copy).unwrap();
    }

    // Restart it with the banner's command: the page turns it back.
    let mut words = demo.restart_users_2.split_whitespace();
    let log_path = dir.path().join("users-2.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let restarted = Owned(
        Command::new(words.next().unwrap())
            .args(words)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    assert!(
        browser
            .until_state(&users_2.1, "closed", PATIENCE)
            .is_some(),
        "users-2 shows {:?}, not closed, after `{}`; its output: {}",
        browser.state_of(&users_2.1),
        demo.restart_users_2,
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert!(
        traffic.answered.load(Ordering::Relaxed) > answered,
        "clients kept getting answers"
    );

    // The page's buttons work: force users-2 open, then reset it.
    for (action, state) in [("force-open", "forced_open"), ("reset", "closed")] {
        let click = format!(
            r#"document.querySelector('[data-endpoint="{}"] [data-action="{action}"]').click()"#,
            users_2.1
        );
        browser.eval(&click);
        assert!(
            browser.until_state(&users_2.1, state, PATIENCE).is_some(),
            "after {action}, users-2 shows {:?}; the page says {:?}",
            browser.state_of(&users_2.1),
            browser.eval("document.getElementById('message').textContent")
        );
    }
    drop(browser);
    drop(traffic);
    drop(restarted);
}
