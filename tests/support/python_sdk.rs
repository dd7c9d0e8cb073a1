//! Runs `tests/python/mcp_client.py`, the official Python MCP SDK (PyPI package `mcp`,
//! 2.x) as a client, and reads back the JSON line it prints for each step of its plan.
//!
//! The Python is `$MCP_PYTHON`, else `python3`. [`require_sdk`] fails, with the install
//! command, when it cannot import the SDK.
//!
//! Include it with `#[path = "support/python_sdk.rs"] mod python_sdk;`.

#![allow(dead_code)]

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

/// The SDK version CI installs.
pub const SDK_VERSION: &str = "2.3.0";
/// The name the SDK reports in its client info when given none.
pub const CLIENT_NAME: &str = "mcp";
/// How long one run of the script may take.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The era the script connects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// The `initialize` handshake; the SDK asks for 2025-11-25.
    Legacy,
    /// 2026-07-28: no handshake, client info in every request's `_meta`.
    Modern,
}

impl Era {
    /// The script's `--era` value.
    pub fn arg(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }

    /// The protocol version the SDK ends up with against rmcp 3.9.
    pub fn protocol_version(self) -> &'static str {
        match self {
            Era::Legacy => "2025-11-25",
            Era::Modern => "2026-07-28",
        }
    }
}

/// The Python that runs the script.
pub fn python() -> String {
    std::env::var("MCP_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/mcp_client.py"
    ))
}

/// Fails, saying how to install it, unless [`python`] imports the 2.x SDK.
pub async fn require_sdk() -> anyhow::Result<()> {
    let python = python();
    let probe = "from mcp import Client; from mcp_types.version import MODERN_PROTOCOL_VERSIONS";
    let output = tokio::process::Command::new(&python)
        .args(["-c", probe])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let why = match output {
        Ok(output) if output.status.success() => return Ok(()),
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        Err(error) => error.to_string(),
    };
    bail!(
        "`{python}` cannot import the Python MCP SDK 2.x:\n{why}\n\
         Install it with `{python} -m pip install 'mcp=={SDK_VERSION}'`, \
         or point MCP_PYTHON at a Python that has it."
    )
}

/// Runs the script's `plan` (a JSON array of steps) against `url` and returns the lines
/// it printed: `{"connected": ..}` first, then one per step.
pub async fn run_plan(url: &str, era: Era, plan: &Value) -> anyhow::Result<Vec<Value>> {
    let child = tokio::process::Command::new(python())
        .arg(script())
        .args([
            "--url",
            url,
            "--era",
            era.arg(),
            "--plan",
            &plan.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child)
        .await
        .with_context(|| format!("the Python client did not finish in {SCRIPT_TIMEOUT:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the Python client failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}
