//! The real collector binary as a child process, for tests that need to kill it: start it
//! on a loopback port with a SQLite file, wait until it answers, SIGKILL it, start it
//! again on the same port and file. Also a scratch directory removed on drop, a free
//! loopback port, and read-only looks into the SQLite file (row counts and event ids).
//!
//! Include it with `#[path = "support/collector_process.rs"] mod collector_process;`.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

/// Generous bound for the collector to start answering; only reached when it cannot.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A directory of its own under the system's temp dir, removed (best effort) on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new, empty directory whose name starts with `label`.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nobody listens on right now (bound once, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The collector binary running as a child process. Killed (SIGKILL) on drop.
pub struct CollectorProcess {
    child: Option<Child>,
    port: u16,
    db: PathBuf,
    log: PathBuf,
    extra_args: Vec<String>,
    starts: u32,
}

impl CollectorProcess {
    /// Starts `mcp-analytics-collector --db <db> --bind 127.0.0.1:<free port> <extra_args>`
    /// and waits until `GET /api/overview` answers 200. Its output goes to `<db>.log`.
    pub async fn start(db: impl Into<PathBuf>, extra_args: &[&str]) -> anyhow::Result<Self> {
        let db = db.into();
        let mut log = db.clone().into_os_string();
        log.push(".log");
        let mut process = Self {
            child: None,
            port: free_port()?,
            db,
            log: PathBuf::from(log),
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            starts: 0,
        };
        // The free port may be taken by someone else before the child binds it: then the
        // child exits at once, and another port is tried.
        let mut tries = 0;
        loop {
            tries += 1;
            match process.spawn_and_wait().await {
                Ok(()) => return Ok(process),
                Err(error) if tries < 3 && !process.is_running() => {
                    eprintln!(
                        "collector did not start on port {}: {error:#}",
                        process.port
                    );
                    process.port = free_port()?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:<port>{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The ingest endpoint, `http://127.0.0.1:<port>/v1/events`.
    pub fn events_url(&self) -> String {
        self.url("/v1/events")
    }

    /// The SQLite file.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the process is running (started and not killed or exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// SIGKILLs the process (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on unix; it fails only if the child already exited.
            let _ = child.kill();
            child.wait().context("reaping the killed collector")?;
        }
        Ok(())
    }

    /// Kills the process if it runs, then starts it again on the same port and file and
    /// waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        // Between the kill and the new bind, an outgoing connection of this machine may
        // happen to take the port as its local port; the new process then exits at once
        // (address in use) and is started again once that connection let go of it.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(error) if tries < 20 && !self.is_running() => {
                    eprintln!("collector did not restart on port {}: {error:#}", self.port);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// What the process wrote so far (all its starts), for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_mcp-analytics-collector"))
            .arg("--db")
            .arg(&self.db)
            .arg("--bind")
            .arg(self.addr().to_string())
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning the collector binary")?;
        self.child = Some(child);
        self.starts += 1;
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                bail!(
                    "the collector exited with {status} before answering; its log:\n{}",
                    self.log_text()
                );
            }
            let answer = probe.get(self.url("/api/overview")).send().await;
            if answer.is_ok_and(|response| response.status() == reqwest::StatusCode::OK) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the collector did not answer within {START_WAIT:?}; its log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Opens the collector's SQLite file read only.
fn open_read_only(db: &Path) -> anyhow::Result<rusqlite::Connection> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {} read only", db.display()))?;
    connection.busy_timeout(Duration::from_secs(10))?;
    Ok(connection)
}

/// `(count(*), count(DISTINCT id))` of the `events` table.
pub fn event_counts(db: &Path) -> anyhow::Result<(u64, u64)> {
    let connection = open_read_only(db)?;
    let (rows, distinct): (i64, i64) = connection.query_row(
        "SELECT count(*), count(DISTINCT id) FROM events",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok((rows as u64, distinct as u64))
}

/// Every stored event id, in arrival order.
pub fn event_ids(db: &Path) -> anyhow::Result<Vec<String>> {
    let connection = open_read_only(db)?;
    let mut statement = connection.prepare("SELECT id FROM events ORDER BY seq")?;
    let ids = statement
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

/// How many stored events match `condition` (SQL on the `events` table, e.g.
/// `method = 'tools/call'`).
pub fn count_where(db: &Path, condition: &str) -> anyhow::Result<u64> {
    let connection = open_read_only(db)?;
    let count: i64 = connection.query_row(
        &format!("SELECT count(*) FROM events WHERE {condition}"),
        [],
        |row| row.get(0),
    )?;
    Ok(count as u64)
}
