//! Wire formats the layer reads: MCP names, JSON-RPC messages and server-sent events.
//!
//! Everything here is pure parsing over byte slices: no I/O, no allocation beyond what a
//! parsed value needs, and no panics on any input (malformed, truncated, hostile).

pub(crate) mod jsonrpc;
pub(crate) mod mcp;
pub(crate) mod members;
pub(crate) mod sse;
mod wire;
