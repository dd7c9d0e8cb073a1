//! Process plumbing the load benchmarks share: numeric settings from the environment and
//! pinning a process to one CPU. Never measures anything itself.

use std::process::{Command, Stdio};

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
