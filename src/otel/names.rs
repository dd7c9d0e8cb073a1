//! The names spans and metrics carry: the OpenTelemetry MCP semantic conventions
//! (semantic-conventions-genai `docs/gen-ai/mcp.md`, status Development) and this crate's
//! own attributes, all under `tower_mcp_analytics.`.
//!
//! Owns every attribute, span and instrument name. Never invents a name for something
//! the conventions already name.

/// The instrumentation scope spans and metrics are reported under.
pub(crate) const SCOPE: &str = "tower-mcp-analytics";

/// `mcp.server.operation.duration`: seconds from a request's arrival to its response
/// message (or from a notification's arrival to its acceptance).
pub(crate) const OPERATION_DURATION: &str = "mcp.server.operation.duration";
/// `mcp.server.session.duration`: seconds from a session's first message to its end.
pub(crate) const SESSION_DURATION: &str = "mcp.server.session.duration";
/// The bucket boundaries both histograms are specified with.
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub(crate) const MCP_METHOD_NAME: &str = "mcp.method.name";
pub(crate) const MCP_PROTOCOL_VERSION: &str = "mcp.protocol.version";
pub(crate) const MCP_SESSION_ID: &str = "mcp.session.id";
pub(crate) const MCP_RESOURCE_URI: &str = "mcp.resource.uri";
pub(crate) const ERROR_TYPE: &str = "error.type";
pub(crate) const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
pub(crate) const JSONRPC_REQUEST_ID: &str = "jsonrpc.request.id";
pub(crate) const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub(crate) const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
pub(crate) const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub(crate) const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
pub(crate) const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
pub(crate) const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
pub(crate) const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
pub(crate) const NETWORK_TRANSPORT: &str = "network.transport";

/// `gen_ai.operation.name` of a tool call.
pub(crate) const EXECUTE_TOOL: &str = "execute_tool";
/// `error.type` of a tool result with `isError: true`.
pub(crate) const TOOL_ERROR: &str = "tool_error";
/// `error.type` when no more precise class is known.
pub(crate) const OTHER_ERROR: &str = "_OTHER";

/// The event this span was made from (`Event::id`): joins a trace to the analytics.
pub(crate) const EVENT_ID: &str = "tower_mcp_analytics.event.id";
/// How the exchange ended (`Event::outcome`, e.g. `success`, `tool_error`, `cancelled`).
pub(crate) const OUTCOME: &str = "tower_mcp_analytics.outcome";
/// The session this event belongs to: the MCP session, or the group of a user's events
/// from one AI client (`Event::session_id`).
pub(crate) const SESSION_ID: &str = "tower_mcp_analytics.session.id";
/// The AI client's name and version, as it reported them or as they were resolved.
pub(crate) const CLIENT_NAME: &str = "tower_mcp_analytics.client.name";
pub(crate) const CLIENT_VERSION: &str = "tower_mcp_analytics.client.version";
/// The id the `identify` hook gave (never its name or data).
pub(crate) const USER_ID: &str = "tower_mcp_analytics.user.id";
