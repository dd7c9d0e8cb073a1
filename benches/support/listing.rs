//! A `tools/list` answer of 100 tools as rmcp writes it, for the benches of the rewrite.

/// The answer to request `id`: 100 tools, each with a one-line description and a
/// two-argument schema (27 KB of JSON).
pub fn hundred_tools(id: i64) -> String {
    let tools: Vec<serde_json::Value> = (0..100)
        .map(|n| {
            serde_json::json!({
                "name": format!("tool_{n}"),
                "description": "Look something up in the catalogue and return what matches.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "query": { "type": "string", "description": "What to look for" },
                        "limit": { "type": "integer", "format": "uint32", "minimum": 0 }
                    },
                    "required": ["query"]
                }
            })
        })
        .collect();
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": { "tools": tools } }).to_string()
}
