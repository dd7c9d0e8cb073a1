//! Self-tests of the fake collector in `tests/common/collector.rs`, driven with plain
//! reqwest (no crate code): scripted statuses, `Retry-After`, 413, gzip bodies, going
//! down and up on the same URL, hanging, waiting, and the exactly-once assertion.

mod common;

use std::{
    io::Write as _,
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

use common::collector::{Collector, EVENTS_PATH, Reply, decode_body};
use flate2::{Compression, write::GzEncoder};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

/// Generous bound for things that should happen at once; only reached on failure.
const WAIT: Duration = Duration::from_secs(10);

fn user_agent() -> String {
    format!("tower-mcp-analytics/{}", env!("CARGO_PKG_VERSION"))
}

/// A valid batch id: `bat_` + 27 base62 characters.
fn batch_id(n: u32) -> String {
    format!("bat_{n:0>27}")
}

/// A version 1 batch body carrying events with these ids.
fn batch(batch_id: &str, event_ids: &[&str]) -> Value {
    json!({
        "schema": "tower-mcp-analytics/v1",
        "batch_id": batch_id,
        "sent_at": "2026-11-22T10:00:00.000Z",
        "events": event_ids
            .iter()
            .map(|id| json!({ "id": id, "event_type": "mcp_request", "method": "tools/call" }))
            .collect::<Vec<_>>(),
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("finish gzip")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(user_agent())
        .build()
        .expect("build reqwest client")
}

/// POSTs `body` as the sink would: JSON, gzip above 1 KiB, `Idempotency-Key`.
async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    let json = serde_json::to_vec(body).expect("serialize batch");
    let mut request = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "idempotency-key",
            body["batch_id"].as_str().unwrap_or_default(),
        );
    request = if json.len() > 1024 {
        request
            .header(header::CONTENT_ENCODING, "gzip")
            .body(gzip(&json))
    } else {
        request.body(json)
    };
    request.send().await
}

async fn post_status(client: &reqwest::Client, url: &str, body: &Value) -> u16 {
    post_batch(client, url, body)
        .await
        .expect("request answered")
        .status()
        .as_u16()
}

#[tokio::test]
async fn healthy_collector_accepts_and_records_everything() {
    let collector = Collector::start().await;
    assert_eq!(
        collector.url(),
        format!("http://127.0.0.1:{}/v1/events", collector.addr.port())
    );
    let body = batch(&batch_id(1), &["evt_a", "evt_b"]);
    let response = client()
        .post(&collector.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer sk_test")
        .header("idempotency-key", batch_id(1))
        .body(body.to_string())
        .send()
        .await
        .expect("request answered");
    assert_eq!(response.status().as_u16(), 202);

    let received = collector.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", EVENTS_PATH));
    assert_eq!(r.status, 202);
    assert_eq!(r.reply, Some(Reply::ACCEPTED));
    assert_eq!(r.header("authorization"), Some("Bearer sk_test"));
    assert_eq!(r.header("user-agent"), Some(user_agent().as_str()));
    assert!(!r.is_gzip());
    assert_eq!(r.body, body);
    assert_eq!(r.raw_body.as_ref(), body.to_string().as_bytes());
    assert_eq!(r.event_ids(), ["evt_a", "evt_b"]);
    assert!(
        r.wire_problems(Some("sk_test")).is_empty(),
        "{:?}",
        r.wire_problems(Some("sk_test"))
    );
    collector.assert_wire_format(Some("sk_test"));

    assert_eq!(collector.batch_ids(), [Some(batch_id(1))]);
    assert_eq!(
        collector.accepted_events(),
        body["events"].as_array().unwrap().clone()
    );
    assert_eq!(
        collector.events_by_batch(),
        [(batch_id(1), body["events"].as_array().unwrap().clone())]
    );
    collector.assert_each_event_once(["evt_a", "evt_b"]);
}

#[tokio::test]
async fn script_is_consumed_in_order_then_default_applies() {
    let collector = Collector::start().await;
    collector.script([Reply::Status(500), Reply::Status(500), Reply::Status(200)]);
    assert_eq!(collector.script_remaining(), 3);
    let client = client();
    let body = batch(&batch_id(1), &["evt_1"]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post_status(&client, &collector.url, &body).await);
    }
    assert_eq!(statuses, [500, 500, 200, 202]);
    assert_eq!(collector.statuses(), [500, 500, 200, 202]);
    assert_eq!(collector.script_remaining(), 0);

    // Failed attempts are recorded too; only the two 2xx count as accepted, and the
    // repeated batch id is stored once.
    assert_eq!(collector.received().len(), 4);
    assert_eq!(collector.accepted_events().len(), 2);
    assert_eq!(collector.stored_events().len(), 1);
    assert_eq!(collector.batch_ids(), vec![Some(batch_id(1)); 4]);
    collector.assert_each_event_once(["evt_1"]);

    collector.set_default(Reply::Status(503));
    assert_eq!(post_status(&client, &collector.url, &body).await, 503);
}

#[tokio::test]
async fn retry_after_reaches_the_client() {
    let collector = Collector::start().await;
    let http_date = "Wed, 21 Oct 2026 07:28:00 GMT";
    collector.script([
        Reply::StatusWithRetryAfter(429, "2".to_owned()),
        Reply::StatusWithRetryAfter(503, http_date.to_owned()),
    ]);
    let client = client();
    let body = batch(&batch_id(1), &["evt_1"]);

    let first = post_batch(&client, &collector.url, &body).await.unwrap();
    assert_eq!(first.status().as_u16(), 429);
    assert_eq!(first.headers()[header::RETRY_AFTER], "2");

    let second = post_batch(&client, &collector.url, &body).await.unwrap();
    assert_eq!(second.status().as_u16(), 503);
    assert_eq!(second.headers()[header::RETRY_AFTER], http_date);

    let third = post_batch(&client, &collector.url, &body).await.unwrap();
    assert_eq!(third.status().as_u16(), 202);
    assert!(third.headers().get(header::RETRY_AFTER).is_none());
    assert!(collector.accepted_events().len() == 1);
}

#[tokio::test]
async fn too_large_above_compares_the_decoded_size() {
    let collector = Collector::start().await;
    collector.set_default(Reply::TooLargeAbove(2000));
    let client = client();

    let small = batch(&batch_id(1), &["evt_small"]);
    assert_eq!(post_status(&client, &collector.url, &small).await, 202);

    // Very compressible: far below the limit on the wire, far above it decoded.
    let ids: Vec<String> = (0..100).map(|i| format!("evt_{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let large = batch(&batch_id(2), &ids);
    assert_eq!(post_status(&client, &collector.url, &large).await, 413);

    let received = collector.received();
    assert!(received[1].is_gzip());
    assert!(
        received[1].raw_body.len() < 2000,
        "{}",
        received[1].raw_body.len()
    );
    assert!(received[1].decoded_body.len() > 2000);
    assert_eq!(collector.statuses(), [202, 413]);
    collector.assert_each_event_once(["evt_small"]);
}

#[tokio::test]
async fn gzip_bodies_are_decoded() {
    let collector = Collector::start().await;
    let ids: Vec<String> = (0..40).map(|i| format!("evt_{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = batch(&batch_id(7), &ids);
    let json = serde_json::to_vec(&body).unwrap();
    assert!(json.len() > 1024);
    let compressed = gzip(&json);

    let status = client()
        .post(&collector.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .header("idempotency-key", batch_id(7))
        .body(compressed.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);

    let r = &collector.received()[0];
    assert!(r.is_gzip());
    assert_eq!(r.raw_body.as_ref(), compressed.as_slice());
    assert_eq!(r.decoded_body, json);
    assert_eq!(r.body, body);
    assert_eq!(r.decode_error, None);
    collector.assert_wire_format(None);
    collector.assert_each_event_once(ids);
}

#[tokio::test]
async fn undecodable_bodies_are_answered_400_and_recorded() {
    let collector = Collector::start().await;
    let client = client();
    let bad_gzip = client
        .post(&collector.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(r#"{"not":"gzip"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_gzip.status().as_u16(), 400);
    let not_json = client
        .post(&collector.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);

    let received = collector.received();
    assert!(
        received[0]
            .decode_error
            .as_deref()
            .unwrap()
            .contains("gzip")
    );
    assert!(
        received[1]
            .decode_error
            .as_deref()
            .unwrap()
            .contains("not JSON")
    );
    assert_eq!(received[1].decoded_body, b"{");
    assert!(collector.accepted_events().is_empty());
    assert!(!received[0].wire_problems(None).is_empty());
}

#[test]
fn decode_body_handles_the_content_codings() {
    let json = br#"{"a":1}"#;
    let mut headers = HeaderMap::new();
    assert_eq!(decode_body(&headers, json).unwrap(), json);

    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    assert_eq!(decode_body(&headers, json).unwrap(), json);

    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("GZip"));
    assert_eq!(decode_body(&headers, &gzip(json)).unwrap(), json);
    // Several gzip members in a row decode to the concatenation.
    let two_members = [gzip(b"[1,"), gzip(b"2]")].concat();
    assert_eq!(decode_body(&headers, &two_members).unwrap(), b"[1,2]");
    assert!(decode_body(&headers, json).is_err());

    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
    assert!(decode_body(&headers, json).unwrap_err().contains("br"));
}

#[tokio::test]
async fn other_paths_and_methods_are_recorded_without_consuming_the_script() {
    let collector = Collector::start().await;
    collector.script([Reply::Status(500)]);
    let client = client();
    let wrong_path = client
        .post(collector.url_for("/v1/event"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_path.status().as_u16(), 404);
    let wrong_method = client.get(&collector.url).send().await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(collector.script_remaining(), 1);

    let received = collector.received();
    assert_eq!(received[0].path, "/v1/event");
    assert_eq!(received[0].reply, None);
    assert_eq!(received[1].method, http::Method::GET);
    assert!(!received[0].wire_problems(None).is_empty());
}

#[tokio::test]
async fn going_down_refuses_connections_and_going_up_restores_the_same_url() {
    let mut collector = Collector::start().await;
    let url = collector.url();
    // One client throughout, so a pooled keep-alive connection is in play.
    let client = client();
    assert_eq!(
        post_status(&client, &url, &batch(&batch_id(1), &["evt_1"])).await,
        202
    );

    collector.go_down().await;
    assert!(!collector.is_up());
    for _ in 0..2 {
        let error = post_batch(&client, &url, &batch(&batch_id(2), &["evt_2"]))
            .await
            .expect_err("collector is down");
        assert!(
            error.is_connect(),
            "expected connection refused, got {error:?}"
        );
    }
    // The port stays bound while down: a socket without SO_REUSEADDR cannot take it.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    assert!(other.bind(collector.addr).is_err());
    drop(other);
    // Going down twice is harmless.
    collector.go_down().await;

    collector.go_up().await;
    assert!(collector.is_up());
    assert_eq!(collector.url(), url);
    assert_eq!(
        post_status(&client, &url, &batch(&batch_id(2), &["evt_2"])).await,
        202
    );
    collector.go_up().await;

    // Refused attempts never reached the collector.
    assert_eq!(collector.statuses(), [202, 202]);
    collector.assert_each_event_once(["evt_1", "evt_2"]);

    // And once more, down and up.
    collector.go_down().await;
    assert!(
        post_batch(&client, &url, &batch(&batch_id(3), &["evt_3"]))
            .await
            .is_err()
    );
    collector.go_up().await;
    assert_eq!(
        post_status(&client, &url, &batch(&batch_id(3), &["evt_3"])).await,
        202
    );
    collector.assert_each_event_once(["evt_1", "evt_2", "evt_3"]);
}

#[tokio::test]
async fn hang_holds_the_request_until_the_client_gives_up() {
    let collector = Collector::start().await;
    collector.script([Reply::Hang]);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = post_batch(&impatient, &collector.url, &batch(&batch_id(1), &["evt_1"]))
        .await
        .expect_err("a hung request is never answered");
    assert!(error.is_timeout(), "expected a timeout, got {error:?}");

    let received = collector.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].status, 0);
    assert_eq!(received[0].reply, Some(Reply::Hang));
    assert!(collector.accepted_events().is_empty());

    // The collector keeps serving other connections.
    assert_eq!(
        post_status(&client(), &collector.url, &batch(&batch_id(2), &["evt_2"])).await,
        202
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_collector_releases_hung_requests() {
    let collector = Collector::start().await;
    collector.set_default(Reply::Hang);
    let url = collector.url();
    let request =
        tokio::spawn(
            async move { post_batch(&client(), &url, &batch(&batch_id(1), &["evt_1"])).await },
        );
    collector.wait_for_requests(1, WAIT).await;
    assert_eq!(collector.request_count(), 1);
    drop(collector);
    let outcome = tokio::time::timeout(WAIT, request)
        .await
        .expect("the hung request ends when the collector is dropped")
        .unwrap();
    assert!(outcome.is_err(), "no answer expected, got {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_down_releases_hung_requests() {
    let mut collector = Collector::start().await;
    collector.script([Reply::Hang]);
    let url = collector.url();
    let request = tokio::spawn({
        let url = url.clone();
        async move { post_batch(&client(), &url, &batch(&batch_id(1), &["evt_1"])).await }
    });
    collector.wait_for_requests(1, WAIT).await;
    collector.go_down().await;
    let outcome = tokio::time::timeout(WAIT, request)
        .await
        .expect("the hung request ends when the collector goes down")
        .unwrap();
    assert!(outcome.is_err(), "no answer expected, got {outcome:?}");
    collector.go_up().await;
    assert_eq!(
        post_status(&client(), &url, &batch(&batch_id(1), &["evt_1"])).await,
        202
    );
    collector.assert_each_event_once(["evt_1"]);
}

#[tokio::test]
async fn delay_counts_as_accepted_even_if_the_client_gave_up() {
    let collector = Collector::start().await;
    collector.script([Reply::Delay(Duration::from_secs(3), 200)]);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let body = batch(&batch_id(1), &["evt_1"]);
    let error = post_batch(&impatient, &collector.url, &body)
        .await
        .expect_err("the answer comes after the client's timeout");
    assert!(error.is_timeout(), "expected a timeout, got {error:?}");
    // The client retries the same batch; the collector stores it once.
    assert_eq!(post_status(&client(), &collector.url, &body).await, 202);
    assert_eq!(collector.statuses(), [200, 202]);
    assert_eq!(collector.accepted_events().len(), 2);
    collector.assert_each_event_once(["evt_1"]);
}

#[tokio::test]
async fn delay_answers_after_the_delay() {
    let collector = Collector::start().await;
    collector.script([Reply::Delay(Duration::from_millis(400), 201)]);
    let started = std::time::Instant::now();
    let status = post_status(&client(), &collector.url, &batch(&batch_id(1), &["evt_1"])).await;
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn counts_the_most_requests_open_at_once() {
    let mut collector = Collector::start().await;
    collector.set_default(Reply::Hang);
    let mut hung = Vec::new();
    for n in 0..3 {
        let url = collector.url();
        hung.push(tokio::spawn(async move {
            let _ = post_batch(&client(), &url, &batch(&batch_id(n), &["evt_1"])).await;
        }));
    }
    collector.wait_for_requests(3, WAIT).await;
    assert_eq!(collector.most_concurrent(), 3);

    // Going down closes the hung requests; the most stays until reset.
    collector.go_down().await;
    for task in hung {
        task.await.unwrap();
    }
    assert_eq!(collector.most_concurrent(), 3);
    collector.reset_most_concurrent();
    assert_eq!(collector.most_concurrent(), 0);
    collector.go_up().await;
    collector.set_default(Reply::ACCEPTED);
    let body = batch(&batch_id(9), &["evt_2"]);
    assert_eq!(post_status(&client(), &collector.url, &body).await, 202);
    assert_eq!(collector.most_concurrent(), 1);
}

#[tokio::test]
async fn wait_for_events_returns_once_enough_are_stored() {
    let collector = Collector::start().await;
    collector.script([Reply::Status(500)]);
    let url = collector.url();
    let sender = tokio::spawn(async move {
        let client = client();
        for (n, ids) in [["e1", "e2"], ["e3", "e4"], ["e5", "e6"]]
            .iter()
            .enumerate()
        {
            let body = batch(&batch_id(n as u32), ids);
            tokio::time::sleep(Duration::from_millis(50)).await;
            // The first attempt gets the scripted 500 and is retried.
            while post_status(&client, &url, &body).await != 202 {}
        }
    });
    let events = collector.wait_for_events(5, WAIT).await;
    assert!(events.len() >= 5, "{events:?}");
    sender.await.unwrap();
    let events = collector.wait_for_events(6, WAIT).await;
    assert_eq!(events.len(), 6);
    collector.assert_each_event_once(["e1", "e2", "e3", "e4", "e5", "e6"]);

    // Not enough ever arrive: the wait ends at the timeout with what was stored.
    let events = collector
        .wait_for_events(7, Duration::from_millis(200))
        .await;
    assert_eq!(events.len(), 6);
    let received = collector.wait_for_requests(4, WAIT).await;
    assert_eq!(received.len(), 4);
}

fn panic_message(result: std::thread::Result<Vec<Value>>) -> String {
    let payload = result.expect_err("the assertion should fail");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn assert_each_event_once_reports_duplicates_missing_and_unexpected_events() {
    let collector = Collector::start().await;
    let client = client();
    // The same batch accepted twice counts once ...
    post_status(&client, &collector.url, &batch(&batch_id(1), &["evt_a"])).await;
    post_status(&client, &collector.url, &batch(&batch_id(1), &["evt_a"])).await;
    let stored = collector.assert_each_event_once(["evt_a"]);
    assert_eq!(stored.len(), 1);

    // ... but the same event in another batch is a duplicate.
    post_status(
        &client,
        &collector.url,
        &batch(&batch_id(2), &["evt_a", "evt_x"]),
    )
    .await;
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        collector.assert_each_event_once(["evt_a", "evt_b"])
    })));
    assert!(message.contains("event evt_a duplicated"), "{message}");
    assert!(message.contains(&batch_id(2)), "{message}");
    assert!(message.contains("event evt_b missing"), "{message}");
    assert!(message.contains("unexpected event evt_x"), "{message}");
    assert!(message.contains("POST /v1/events -> 202"), "{message}");

    // A batch id reused for different events is reported.
    post_status(&client, &collector.url, &batch(&batch_id(1), &["evt_c"])).await;
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        collector.assert_each_event_once(["evt_a", "evt_x"])
    })));
    assert!(message.contains("accepted again"), "{message}");
}

#[tokio::test]
async fn wire_problems_name_each_departure() {
    let collector = Collector::start().await;
    let mut body = batch("batch-1", &[]);
    body["schema"] = json!("v0");
    body["sent_at"] = json!("yesterday");
    reqwest::Client::new()
        .post(&collector.url)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let problems = collector.received()[0].wire_problems(Some("sk"));
    let all = problems.join("\n");
    for expected in [
        "Content-Type",
        "User-Agent",
        "Authorization",
        "schema",
        "batch_id",
        "sent_at",
        "events is empty",
    ] {
        assert!(all.contains(expected), "{expected} not in:\n{all}");
    }
    let message = catch_unwind(AssertUnwindSafe(|| {
        collector.assert_wire_format(Some("sk"))
    }))
    .expect_err("the request violates the wire format");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("wire format violated"), "{message}");
}
