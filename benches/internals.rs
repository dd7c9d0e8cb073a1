//! Internal stages of the request path, each in isolation, through the `bench_internals`
//! module (cargo feature `bench-internals`; `cargo bench --features bench-internals --bench internals`):
//!
//! 1. **Request parsing** (`parse_request`): a small `tools/call` with a progress token, a
//!    2026-07-28 style `tools/call` whose `_meta` names the protocol version, the client
//!    and its capabilities, a call with a 64 KiB string argument, and a batch of 10 calls.
//!    Throughput in request bytes.
//! 2. **SSE decoding** (`sse_decode`): a stream of 3 `notifications/progress` events and a
//!    result event, in one chunk and in 16-byte chunks, and one 64 KiB data event.
//!    Throughput in stream bytes.
//! 3. **Queue hand-off** (`record`): one finished `tools/call` exchange handed to the worker
//!    queue while it has room, and while it is full (the drop path, which frees the
//!    exchange). Building the exchange is not timed.
//!
//! ```text
//! cargo bench --bench internals
//! ```

#[path = "support/listing.rs"]
mod listing;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tower_mcp_analytics::bench_internals::{
    FinishedExchange, Queue, Rewrites, decode_sse, parse_request, transcode_payload,
};

const SMALL_CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","units":"metric","days":3,"hourly":false},"_meta":{"progressToken":"b7f3c2a1-42"}}}"#;
const META_CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","units":"metric"},"_meta":{"progressToken":42,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"claude-code","version":"2.1.4"},"io.modelcontextprotocol/clientCapabilities":{"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true}}}}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"Sunny, 21 degrees"}],"isError":false}}"#;

/// Prose of exactly `len` bytes, with an escaped newline now and then.
fn text(len: usize) -> String {
    const LINE: &str = "The quick brown fox jumps over the lazy dog, then naps in the sun. ";
    let mut out = String::with_capacity(len + LINE.len());
    while out.len() < len {
        out.push_str(LINE);
        out.push_str("\\n");
    }
    out.truncate(len);
    if out.ends_with('\\') {
        out.pop();
        out.push('.');
    }
    out
}

fn large_call() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"summarize","arguments":{{"text":"{}"}},"_meta":{{"progressToken":42}}}}}}"#,
        text(64 * 1024)
    )
}

fn batch_call() -> String {
    let calls: Vec<String> = (1..=10)
        .map(|id| SMALL_CALL.replacen(r#""id":42"#, &format!(r#""id":{id}"#), 1))
        .collect();
    format!("[{}]", calls.join(","))
}

fn progress_stream() -> String {
    let mut stream = String::new();
    for progress in 1..=3 {
        stream.push_str(&format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":42,\"progress\":{progress},\"total\":3}}}}\n\n"
        ));
    }
    stream.push_str(&format!("event: message\ndata: {RESULT}\n\n"));
    stream
}

fn large_event() -> String {
    format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}],\"isError\":false}}}}\n\n",
        text(64 * 1024)
    )
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_request");
    let cases = [
        ("small_tools_call", SMALL_CALL.to_owned(), 1),
        ("meta_2026_tools_call", META_CALL.to_owned(), 1),
        ("argument_64k", large_call(), 1),
        ("batch_10", batch_call(), 10),
    ];
    for (name, body, messages) in cases {
        let body = Bytes::from(body);
        assert_eq!(parse_request(&body), messages, "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_request(black_box(&body))));
    }
    group.finish();
}

fn sse(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_decode");
    let stream = progress_stream();
    let stream = stream.as_bytes();
    let large = large_event();
    let large = large.as_bytes();
    assert_eq!(decode_sse([stream]), 4);
    assert_eq!(decode_sse(stream.chunks(16)), 4);
    assert_eq!(decode_sse([large]), 1);

    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("progress_x3_result_one_chunk", |b| {
        b.iter(|| decode_sse([black_box(stream)]))
    });
    group.bench_function("progress_x3_result_16b_chunks", |b| {
        b.iter(|| decode_sse(black_box(stream).chunks(16)))
    });
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("data_event_64k", |b| {
        b.iter(|| decode_sse([black_box(large)]))
    });
    group.finish();
}

/// Exchanges recorded between two drains of the queue with room.
const CHUNK: u64 = 1_000;

fn record(c: &mut Criterion) {
    let exchange = || FinishedExchange::json(SMALL_CALL.as_bytes(), RESULT.as_bytes()).unwrap();
    let mut group = c.benchmark_group("record");

    // The layer's default capacity; drained every CHUNK records, so it always has room.
    let mut queue = Queue::new(10_000);
    group.bench_function("queue_with_room", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let exchanges: Vec<FinishedExchange> = (0..n).map(|_| exchange()).collect();
                let start = Instant::now();
                for finished in exchanges {
                    queue.record(black_box(finished));
                }
                timed += start.elapsed();
                assert_eq!(queue.drain() as u64, n);
                left -= n;
            }
            timed
        })
    });
    assert_eq!(queue.stats().dropped.queue_full, 0);

    let full = Queue::new(100);
    for _ in 0..100 {
        full.record(exchange());
    }
    group.bench_function("queue_full", |b| {
        b.iter_batched(
            exchange,
            |finished| full.record(finished),
            BatchSize::SmallInput,
        )
    });
    // (Nothing was dropped when a filter left the `queue_full` case out.)
    let stats = full.stats();
    assert_eq!(stats.in_queue, 100);
    group.finish();
}

/// The first privacy pass over payloads, with the built-in secret scrubber off and on.
fn payloads(c: &mut Criterion) {
    let mut group = c.benchmark_group("payload");
    let prose =
        "The quarterly report covers revenue, churn and the roadmap for next year. ".repeat(900);
    let cases = [
        (
            "small_arguments",
            serde_json::json!({ "query": "rust tower layers", "limit": 10, "filters": { "lang": "en" } }),
        ),
        (
            "text_result_5k",
            serde_json::json!({ "content": [{ "type": "text", "text": &prose[..5 * 1024] }], "isError": false }),
        ),
        ("echo_64k", serde_json::json!({ "text": text(64 * 1024) })),
        (
            "prose_64k",
            serde_json::json!({ "text": &prose[..64 * 1024] }),
        ),
    ];
    for (name, value) in cases {
        let raw = serde_json::to_vec(&value).expect("serialisable");
        for (mode, secrets) in [("plain", false), ("scrubbed", true)] {
            group.bench_function(format!("{name}/{mode}"), |b| {
                b.iter(|| transcode_payload(black_box(&raw), secrets))
            });
        }
    }
    group.finish();
}

/// Intent capture's rewrites: a 100-tool `tools/list` answer (the argument added to every
/// schema, the virtual tool appended), and the argument taken out of a call.
fn rewrites(c: &mut Criterion) {
    let mut group = c.benchmark_group("insights");
    let rewrites = Rewrites::new();
    let answer = listing::hundred_tools(1);
    assert!(rewrites.tools_list(answer.as_bytes()) > answer.len());
    group.throughput(Throughput::Bytes(answer.len() as u64));
    group.bench_function("tools_list_100_rewrite", |b| {
        b.iter(|| rewrites.tools_list(black_box(answer.as_bytes())))
    });
    let call = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","units":"metric","context":"The user asked whether to take an umbrella tomorrow."},"_meta":{"progressToken":42}}}"#;
    assert!(rewrites.strip_intent(call.as_bytes()) > 0);
    group.throughput(Throughput::Bytes(call.len() as u64));
    group.bench_function("tools_call_strip", |b| {
        b.iter(|| rewrites.strip_intent(black_box(call.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, parsing, sse, record, payloads, rewrites);
criterion_main!(benches);
