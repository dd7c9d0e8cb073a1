//! A process using the layer exits after `shutdown`, whatever its default sink's standard
//! output does. The test runs this test binary again as a child process (the same test,
//! told by an environment variable to play the server): it records events through a layer
//! with the default `JsonLinesSink::stdout()`, whose standard output is a pipe the parent
//! never reads, so writes block once the pipe's buffer (64 KiB on Linux) is full. The
//! child calls `shutdown` with a 1 s deadline, drops its tokio runtime and exits; the
//! parent only waits for it to exit, with a generous deadline, and kills it past that.
//!
//! Writing through tokio's stdout, the blocked write sat in the runtime's blocking pool,
//! and dropping the runtime waited for it forever.

#[path = "support/echo_call.rs"]
mod echo_call;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tower_mcp_analytics::AnalyticsLayer;

/// Set in the child's environment.
const CHILD: &str = "TOWER_MCP_ANALYTICS_TEST_BLOCKED_STDOUT";
/// This test's name, for the child's test filter.
const TEST: &str = "the_process_exits_after_shutdown_when_nobody_reads_its_stdout";
/// Events the child records: far more JSON than a pipe buffers.
const EVENTS: u64 = 5_000;
/// Generous bound for the child to exit; only reached when it hangs.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn the_process_exits_after_shutdown_when_nobody_reads_its_stdout() {
    if std::env::var_os(CHILD).is_some() {
        child();
    }
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", TEST, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child starts");
    // Held open and never read: the child's writes block once the pipe is full.
    let _stdout = child.stdout.take();
    let mut stderr = child.stderr.take().expect("the child's stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break Some(status);
        }
        if started.elapsed() > EXIT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = reader.join().unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("the child had not exited after {EXIT_DEADLINE:?} and was killed; it said:\n{said}")
    });
    assert!(
        status.success(),
        "the child failed ({status}); it said:\n{said}"
    );
    assert!(
        said.contains("runtime dropped, exiting"),
        "the child did not get to its exit; it said:\n{said}"
    );
    assert!(
        said.contains("flushed: false"),
        "stdout never blocked, so the test proved nothing; the child said:\n{said}"
    );
}

/// The child: a server whose analytics go to a stdout nobody reads. Never returns.
fn child() -> ! {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("child: no runtime: {error}");
            std::process::exit(2);
        }
    };
    let report = runtime.block_on(async {
        let layer = AnalyticsLayer::builder()
            .flush_interval(Duration::from_millis(10))
            .build();
        for id in 0..EVENTS {
            call(&layer, id).await;
            if id % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        eprintln!("child: recorded {:?}", layer.stats());
        layer.shutdown(Duration::from_secs(1)).await
    });
    eprintln!("child: shutdown returned, flushed: {}", report.flushed);
    drop(runtime);
    eprintln!("child: runtime dropped, exiting");
    // Straight out: the test harness would report on stdout, which blocks too.
    std::process::exit(0);
}

/// One `tools/call` through the layer, in process.
async fn call(layer: &AnalyticsLayer, id: u64) {
    echo_call::through_layer(layer, echo_call::echo_request(id, &[])).await;
}
