//! Process plumbing the load benchmarks share: numeric settings from the environment,
//! pinning a process to one CPU, and the benchmark's own executable run as a server in a
//! child process, with its memory and CPU read from `/proc`. Never measures anything
//! itself.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// A number from the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Pins this process to `cpu` with `taskset`, when there is more than one CPU.
pub fn pin_self(cpu: usize) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return false;
    }
    Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Serves `router` on a free loopback port with `TCP_NODELAY` (answers of several small
/// SSE frames must not wait for delayed acknowledgements), printing `listening <addr>` for
/// the parent, until the parent closes this process's stdin.
pub async fn serve_until_stdin_closes(router: axum::Router) {
    use std::io::Write as _;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    println!("listening {addr}");
    std::io::stdout().flush().expect("stdout");
    let stop = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
            line.clear();
        }
    });
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let _ = stop.await;
    server.abort();
}

/// This benchmark's own executable serving in a child process (pinned to CPU 1 when asked),
/// at the address it prints first; it stops when its stdin closes, printing one last line.
pub struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The MCP endpoint.
    pub url: String,
}

impl ChildServer {
    /// Starts the child; `configure` sets what it serves (its environment).
    pub fn start(pinned: bool, configure: impl FnOnce(&mut Command)) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut command = if pinned {
            let mut command = Command::new("taskset");
            command.arg("-c").arg("1").arg(exe);
            command
        } else {
            Command::new(exe)
        };
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        configure(&mut command);
        let mut child = command.spawn().expect("start server process");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server address");
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .expect("server prints its address");
        Self {
            url: format!("http://{addr}/mcp"),
            child,
            stdin,
            stdout,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` field of the child in KiB (`VmRSS:`, `VmHWM:`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        memory_kib(self.child.id(), field)
    }

    /// CPU time (user and system) the child has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 14th field
        // of the line, stime the 15th, both in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&index| fields.get(index)?.parse::<u64>().ok())
            .sum();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
    }

    /// Asks the child to stop (closes its stdin) without waiting.
    pub fn request_stop(&mut self) {
        drop(self.stdin.take());
    }

    /// Stops the child (asking first if not done yet), waits for it, and returns the last
    /// line it printed.
    pub fn stop(mut self) -> String {
        self.request_stop();
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        let _ = self.child.wait();
        line.trim().to_owned()
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 once the process is gone.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}
