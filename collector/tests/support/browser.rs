#![allow(dead_code)]
//! Headless Chromium for the dashboard's integration tests (std only).
//!
//! `dump_dom` returns the DOM after the page's scripts have run (Chromium's
//! `--dump-dom` with a virtual time budget); `screenshot` writes a PNG.
//! Every run gets a fresh profile directory, removed afterwards, and a 60 s
//! wall-clock limit after which Chromium (and its process group) is killed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock limit for one Chromium run.
const TIMEOUT: Duration = Duration::from_secs(60);

const NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

const INSTALL_HINT: &str = "install chromium: apt-get install -y chromium";

/// The Chromium binary: env `CHROMIUM` if set, else the first of
/// `chromium`, `chromium-browser`, `google-chrome` found on PATH.
pub fn chromium() -> PathBuf {
    if let Some(value) = std::env::var_os("CHROMIUM").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        // A bare name is looked up on PATH; a path must exist.
        if path.components().count() == 1 {
            if let Some(found) = find_on_path(&value) {
                return found;
            }
        } else if path.is_file() {
            return path;
        }
        panic!(
            "CHROMIUM={} is not an executable file; {INSTALL_HINT}",
            path.display()
        );
    }
    for name in NAMES {
        if let Some(found) = find_on_path(name.as_ref()) {
            return found;
        }
    }
    panic!(
        "no headless browser found (looked for {} on PATH and env CHROMIUM); {INSTALL_HINT}",
        NAMES.join(", ")
    );
}

fn find_on_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// The DOM of `url` after its scripts ran (up to 10 s of virtual time).
pub fn dump_dom(url: &str) -> String {
    let out = run(&["--dump-dom".to_string(), url.to_string()]);
    String::from_utf8_lossy(&out).into_owned()
}

/// A `width` x `height` PNG screenshot of `url`, written to `path`.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32) {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().expect("current dir").join(path)
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    let _ = std::fs::remove_file(&path);
    run(&[
        "--hide-scrollbars".to_string(),
        format!("--window-size={width},{height}"),
        format!("--screenshot={}", path.display()),
        url.to_string(),
    ]);
    assert!(
        path.is_file(),
        "chromium did not write the screenshot {}",
        path.display()
    );
}

/// A fresh profile directory, removed when dropped (also on panic).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-analytics-chromium-{}-{}-{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs headless Chromium with the common flags plus `extra`; returns stdout.
fn run(extra: &[String]) -> Vec<u8> {
    let profile = TempDir::new();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()))
    .arg("--virtual-time-budget=10000")
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Own process group, so a timeout can kill the renderer/GPU children too.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium ({e}); {INSTALL_HINT}"));

    // Read both pipes on threads so a full pipe never blocks Chromium.
    let stdout = drain(child.stdout.take().expect("stdout piped"));
    let stderr = drain(child.stderr.take().expect("stderr piped"));

    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill(&mut child);
                let err = collect(&stderr, Duration::from_secs(2));
                panic!(
                    "chromium timed out after {}s and was killed; args {:?}; stderr tail:\n{}",
                    TIMEOUT.as_secs(),
                    extra,
                    tail(&err)
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                kill(&mut child);
                panic!("waiting for chromium failed: {e}");
            }
        }
    };
    // Helpers that outlive the browser could hold the pipes open: bounded wait.
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(5));
    let out = collect(&stdout, remaining);
    let err = collect(&stderr, Duration::from_secs(2));
    if !status.success() && out.iter().all(|b| b.is_ascii_whitespace()) {
        panic!(
            "chromium failed ({status}); args {:?}; stderr tail:\n{}",
            extra,
            tail(&err)
        );
    }
    out
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn collect(rx: &mpsc::Receiver<Vec<u8>>, wait: Duration) -> Vec<u8> {
    rx.recv_timeout(wait).unwrap_or_default()
}

fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        // Negative pid: the whole process group started above.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("dbus") && !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
