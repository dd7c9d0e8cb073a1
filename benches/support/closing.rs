//! A benchmark server's closing counters: the server process shuts its layer down with a
//! deadline and prints one line; the driving process reads it back and reports it.
//!
//! Owns that line's format (`stats bare`, or `stats ` and a JSON object with the counters
//! when the load stopped, the shutdown report and how long the shutdown took) and the
//! Markdown row made from it. Never decides anything about the layer: it only reports
//! what `Stats` and `ShutdownReport` say.
//!
//! Include it with `#[path = "support/closing.rs"] mod closing;` from a bench.

// Each bench uses a different subset of this module.
#![allow(dead_code)]

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;
use tower_mcp_analytics::AnalyticsLayer;

/// In the server process, once it has stopped serving: shuts `layer` down, giving what
/// it still holds up to `deadline` to reach the sink, and prints the closing line.
pub async fn shut_down_and_print(layer: Option<AnalyticsLayer>, deadline: Duration) {
    if let Some(layer) = layer {
        let at_stop = layer.stats();
        let started = Instant::now();
        let report = layer.shutdown(deadline).await;
        let closing = serde_json::json!({
            "at_stop": at_stop,
            "shutdown_ms": started.elapsed().as_millis() as u64,
            "deadline_ms": deadline.as_millis() as u64,
            "report": report,
        });
        println!("stats {closing}");
    } else {
        println!("stats bare");
    }
    let _ = std::io::stdout().flush();
}

/// What a server printed as it stopped: for a layered one, its counters when the load
/// stopped and its shutdown report (`ShutdownReport`, serialised).
pub enum Closing {
    Bare,
    Layered {
        at_stop: Value,
        report: Value,
        shutdown_ms: u64,
        deadline_ms: u64,
    },
    Unreadable(String),
}

impl Closing {
    /// The columns of [`row`](Self::row), as a Markdown header without the first column.
    pub const HEADER: &str = "recorded | delivered | lost | lost by reason | in queue when the load stopped | shutdown | other counters |";
    /// The rule under [`HEADER`](Self::HEADER).
    pub const RULE: &str = "---|---|---|---|---|---|---|";

    /// Reads the closing line a server printed.
    pub fn parse(line: &str) -> Self {
        let Some(rest) = line.strip_prefix("stats ") else {
            return Self::Unreadable(line.to_owned());
        };
        if rest == "bare" {
            return Self::Bare;
        }
        match serde_json::from_str::<Value>(rest) {
            Ok(mut closing) => Self::Layered {
                at_stop: closing["at_stop"].take(),
                report: closing["report"].take(),
                shutdown_ms: closing["shutdown_ms"].as_u64().unwrap_or(0),
                deadline_ms: closing["deadline_ms"].as_u64().unwrap_or(0),
            },
            Err(_) => Self::Unreadable(line.to_owned()),
        }
    }

    /// A counter of the final stats (`recorded`, `delivered`, ...), 0 if absent.
    pub fn count(&self, name: &str) -> u64 {
        match self {
            Self::Layered { report, .. } => report["stats"][name].as_u64().unwrap_or(0),
            _ => 0,
        }
    }

    /// All events lost, over every reason.
    pub fn lost(&self) -> u64 {
        match self {
            Self::Layered { report, .. } => {
                report["stats"]["dropped"].as_object().map_or(0, |reasons| {
                    reasons.values().filter_map(Value::as_u64).sum()
                })
            }
            _ => 0,
        }
    }

    /// One Markdown row in the columns of [`HEADER`](Self::HEADER): recorded, delivered,
    /// lost (with reasons), queued when the load stopped, how the shutdown went, and the
    /// other counters.
    pub fn row(&self) -> String {
        let (at_stop, report, shutdown_ms, deadline_ms) = match self {
            Self::Bare => return "- | - | - | - | - | - | - |".to_owned(),
            Self::Unreadable(line) => return format!("- | - | - | - | - | - | {line} |"),
            Self::Layered {
                at_stop,
                report,
                shutdown_ms,
                deadline_ms,
            } => (at_stop, report, *shutdown_ms, *deadline_ms),
        };
        let stats = &report["stats"];
        let count = |value: &Value| value.as_u64().unwrap_or(0);
        let shutdown = if report["flushed"].as_bool() == Some(true) {
            format!("flushed in {:.1} s", shutdown_ms as f64 / 1000.0)
        } else {
            format!("deadline ({:.0} s) passed", deadline_ms as f64 / 1000.0)
        };
        let mut others = vec![
            format!("batches {}", thousands(count(&stats["batches"]))),
            format!("retries {}", thousands(count(&stats["retries"]))),
        ];
        for name in ["requests_unparsed", "session_store_errors"] {
            if count(&stats[name]) > 0 {
                others.push(format!("{name} {}", thousands(count(&stats[name]))));
            }
        }
        let panics = nonzero_counts(&stats["hook_panics"]);
        if panics != "none" {
            others.push(format!("hook panics: {panics}"));
        }
        if count(&stats["in_queue"]) > 0 {
            others.push(format!(
                "unaccounted after shutdown {}",
                thousands(count(&stats["in_queue"]))
            ));
        }
        format!(
            "{} | {} | **{}** | {} | {} | {shutdown} | {} |",
            thousands(count(&stats["recorded"])),
            thousands(count(&stats["delivered"])),
            thousands(self.lost()),
            nonzero_counts(&stats["dropped"]),
            thousands(count(&at_stop["in_queue"])),
            others.join(", "),
        )
    }
}

/// The non-zero counters of a JSON object, `name count` comma separated, or `none`.
pub fn nonzero_counts(counters: &Value) -> String {
    let named: Vec<String> = counters
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let count = value.as_u64().filter(|&count| count > 0)?;
            Some(format!("{name} {}", thousands(count)))
        })
        .collect();
    if named.is_empty() {
        "none".to_owned()
    } else {
        named.join(", ")
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
