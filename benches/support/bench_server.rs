//! The examples' demo server with two more tools that only benchmarks need: `sleep`
//! (answers after a while, to keep calls in flight) and `nest` (a result nested deeper
//! than JSON parsers like to go).
//!
//! Owns those two tools; every other request goes to the demo server unchanged. Never
//! lists the extra tools (`tools/list` is the demo server's), so nothing that checks the
//! demo server's tools sees a difference.
//!
//! Include it after the demo server:
//! `#[path = "../examples/support/demo_server.rs"] mod demo_server;` and
//! `#[path = "support/bench_server.rs"] mod bench_server;`.

use std::sync::Arc;
use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject,
        ListToolsResult, PaginatedRequestParams, ServerConfig,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::Value;

use crate::demo_server::{self, DemoServer, Mode};

/// The longest `sleep` (a minute), so that a call cannot hold the server for ever.
const LONGEST_SLEEP_MS: u64 = 60_000;
/// The deepest `nest` result.
const DEEPEST_NEST: u64 = 10_000;

/// The demo server plus `sleep { ms }` (returns "ok" after `ms` milliseconds; other
/// arguments, however large, are ignored) and `nest { depth }` (a result whose
/// `structuredContent` is `{"next": {"next": ... "bottom" ...}}`, `depth` objects deep).
#[derive(Debug, Clone, Default)]
pub struct BenchServer {
    demo: DemoServer,
}

impl BenchServer {
    /// The server as a Streamable HTTP service in `mode` (the demo server's settings).
    pub fn service(mode: Mode) -> StreamableHttpService<BenchServer, LocalSessionManager> {
        StreamableHttpService::new(
            || Ok(BenchServer::default()),
            Arc::new(LocalSessionManager::default()),
            demo_server::config_for(mode),
        )
    }
}

/// `arguments[name]` as a number, or `default`.
fn number(arguments: Option<&JsonObject>, name: &str, default: u64) -> u64 {
    arguments
        .and_then(|arguments| arguments.get(name))
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

/// `{"next": ...}` `depth` times around `"bottom"`.
pub fn nested(depth: u64) -> Value {
    let mut value = Value::String("bottom".to_owned());
    for _ in 0..depth {
        let mut object = serde_json::Map::new();
        object.insert("next".to_owned(), value);
        value = Value::Object(object);
    }
    value
}

impl ServerHandler for BenchServer {
    fn get_info(&self) -> ServerConfig {
        self.demo.get_info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.demo.list_tools(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.as_ref();
        match request.name.as_ref() {
            "sleep" => {
                let ms = number(arguments, "ms", 0).min(LONGEST_SLEEP_MS);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(CallToolResult::success(vec![ContentBlock::text("ok")]).into())
            }
            "nest" => {
                let depth = number(arguments, "depth", 1).min(DEEPEST_NEST);
                let value = nested(depth);
                // The text block repeats the value as text (as `structured` would); keep
                // the result small and the depth in `structuredContent` only.
                let mut result = CallToolResult::structured(value);
                result.content = vec![ContentBlock::text(format!("nested {depth} deep"))];
                Ok(result.into())
            }
            _ => self.demo.call_tool(request, context).await,
        }
    }
}
