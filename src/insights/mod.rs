//! What owners learn beyond call counts, where it takes changing bytes on the wire: why
//! an agent called a tool ([`IntentCapture`]) and what it looked for and did not find
//! ([`MissingTools`]). Both are off unless configured.
//!
//! Owns the two opt-in rewrites and the layer's own answer: an optional argument added
//! to each tool's `inputSchema` in `tools/list` answers (`listing`), taken back out of
//! `tools/call` arguments before the server sees them (`calls`), and a virtual tool the
//! layer lists and answers itself (`calls::answer`). Every edit is made on the exact bytes
//! (`edits`): the rest of a message is passed on as it was written. Never changes
//! anything when both are off, and never fails a request: what it cannot read it passes
//! on untouched.

mod calls;
mod edits;
mod listing;

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub(crate) use calls::is_modern;
pub(crate) use listing::Listing;

/// Most tool names remembered as taking the intent argument themselves.
const MAX_NATIVE_TOOLS: usize = 10_000;

/// The `event_type` of a call of the virtual tool ([`MissingTools`]).
pub const MISSING_CAPABILITY_EVENT: &str = "missing_capability";
/// Default name of the argument that carries an agent's intent.
pub const DEFAULT_INTENT_ARGUMENT: &str = "context";
/// Default description of the intent argument, as the agent reads it.
pub const DEFAULT_INTENT_DESCRIPTION: &str = "Optional. In one sentence, why you are calling \
     this tool: what the user asked for and what you expect the tool to do for it.";
/// Default name of the virtual tool agents call when no tool fits.
pub const DEFAULT_MISSING_TOOL: &str = "get_more_tools";
/// Default description of the virtual tool.
pub const DEFAULT_MISSING_DESCRIPTION: &str = "Call this when none of the other tools can do \
     what the user asked. In `context`, describe in one sentence the tool or capability you \
     were looking for.";
/// Default text the layer answers a call of the virtual tool with.
pub const DEFAULT_MISSING_ANSWER: &str = "Thank you: the request was noted for the server's \
     owners. No other tools are available now; carry on with the tools listed, or tell the \
     user that this cannot be done yet.";

/// Intent capture: asks agents why they call each tool, and records the answer as the
/// event's `user_intent`.
///
/// With it on, the layer adds an optional string argument (default `context`) to the
/// `inputSchema` of every tool in `tools/list` answers, JSON and SSE alike, and takes it
/// out of `tools/call` arguments before the server sees them. Tools that already have an
/// argument of that name, and tools you exclude, are left exactly as they are. A client
/// that never sends the argument sees no other difference. The intent passes the privacy
/// stage like the arguments it came with (secret scrubber, `redact` hook, exclusions).
///
/// In a fleet, an instance takes the argument out of calls of every tool it has not seen
/// listed with an argument of that name itself; exclude such tools (or choose another
/// name) to be exact on instances that have not yet answered a `tools/list`. A call whose
/// body is larger than the [capture limit](crate::AnalyticsLayerBuilder::capture_limit)
/// is not read, so it reaches the server as sent.
///
/// ```
/// use tower_mcp_analytics::AnalyticsLayer;
/// use tower_mcp_analytics::insights::IntentCapture;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder()
///     .capture_intent(IntentCapture::new().exclude_tools(["delete_account"]))
///     .build();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct IntentCapture {
    argument: String,
    description: String,
    excluded: HashSet<String>,
}

impl Default for IntentCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl IntentCapture {
    /// Intent capture with the argument `context` and the default description.
    ///
    /// ```
    /// let intent = tower_mcp_analytics::insights::IntentCapture::new();
    /// ```
    pub fn new() -> Self {
        Self {
            argument: DEFAULT_INTENT_ARGUMENT.to_owned(),
            description: DEFAULT_INTENT_DESCRIPTION.to_owned(),
            excluded: HashSet::new(),
        }
    }

    /// The argument's name (default `context`). An empty name keeps the default.
    ///
    /// ```
    /// let intent = tower_mcp_analytics::insights::IntentCapture::new().argument("why");
    /// ```
    pub fn argument(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !name.is_empty() {
            self.argument = name;
        }
        self
    }

    /// The argument's description, as the agent reads it.
    ///
    /// ```
    /// let intent = tower_mcp_analytics::insights::IntentCapture::new()
    ///     .description("Why you call this tool, in one sentence.");
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Tools whose schema and calls are left exactly as the server wrote them.
    ///
    /// ```
    /// let intent = tower_mcp_analytics::insights::IntentCapture::new()
    ///     .exclude_tools(["login", "delete_account"]);
    /// ```
    pub fn exclude_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excluded.extend(tools.into_iter().map(Into::into));
        self
    }
}

/// Missing capabilities: a virtual tool (default `get_more_tools`) appended to every
/// `tools/list` answer, for agents to call when no tool fits.
///
/// The layer answers its calls itself with a short text; they never reach the server,
/// and each is recorded as an event of type `missing_capability` whose `user_intent` is
/// what the agent said it was looking for. When the server lists a tool of that name
/// itself, the layer neither adds nor answers one. Calls inside a JSON-RPC batch
/// (protocol 2025-03-26) are left to the server.
///
/// ```
/// use tower_mcp_analytics::AnalyticsLayer;
/// use tower_mcp_analytics::insights::MissingTools;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder()
///     .missing_tools(MissingTools::new().answer("Noted. Try the search tool meanwhile."))
///     .build();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MissingTools {
    name: String,
    description: String,
    answer: String,
}

impl Default for MissingTools {
    fn default() -> Self {
        Self::new()
    }
}

impl MissingTools {
    /// The virtual tool `get_more_tools` with the default description and answer.
    ///
    /// ```
    /// let missing = tower_mcp_analytics::insights::MissingTools::new();
    /// ```
    pub fn new() -> Self {
        Self {
            name: DEFAULT_MISSING_TOOL.to_owned(),
            description: DEFAULT_MISSING_DESCRIPTION.to_owned(),
            answer: DEFAULT_MISSING_ANSWER.to_owned(),
        }
    }

    /// The virtual tool's name (default `get_more_tools`). An empty name keeps the default.
    ///
    /// ```
    /// let missing = tower_mcp_analytics::insights::MissingTools::new().name("request_tool");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !name.is_empty() {
            self.name = name;
        }
        self
    }

    /// The virtual tool's description, as the agent reads it.
    ///
    /// ```
    /// let missing = tower_mcp_analytics::insights::MissingTools::new()
    ///     .description("Ask for a tool this server does not have yet.");
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The text a call of the virtual tool is answered with.
    ///
    /// ```
    /// let missing = tower_mcp_analytics::insights::MissingTools::new()
    ///     .answer("Noted: we will look into it.");
    /// ```
    pub fn answer(mut self, answer: impl Into<String>) -> Self {
        self.answer = answer.into();
        self
    }
}

/// The intent settings as the request path uses them.
#[derive(Debug)]
pub(crate) struct Intent {
    name: String,
    /// `"<name>":{"type":"string","description":...}`, ready to insert.
    property: String,
    excluded: HashSet<String>,
    /// Tools listed with an argument of that name of their own (bounded).
    native: RwLock<HashSet<String>>,
}

/// The virtual tool as the request path uses it.
#[derive(Debug)]
pub(crate) struct Missing {
    name: String,
    /// The tool's JSON, ready to append to a `tools` array.
    tool: String,
    answer: String,
    /// The server lists a tool of that name itself.
    server_has_it: AtomicBool,
}

/// Both insights, as the request path uses them. `None` in `Shared` when both are off.
#[derive(Debug)]
pub(crate) struct Insights {
    pub(crate) intent: Option<Intent>,
    pub(crate) missing: Option<Missing>,
}

impl Insights {
    /// The request path's form of the settings; `None` when both are off.
    pub(crate) fn new(
        intent: Option<IntentCapture>,
        missing: Option<MissingTools>,
    ) -> Option<Self> {
        if intent.is_none() && missing.is_none() {
            return None;
        }
        let intent = intent.map(|config| Intent {
            property: format!(
                "{}:{}",
                json_string(&config.argument),
                serde_json::json!({ "type": "string", "description": config.description })
            ),
            name: config.argument,
            excluded: config.excluded,
            native: RwLock::new(HashSet::new()),
        });
        let missing = missing.map(|config| Missing {
            tool: serde_json::json!({
                "name": config.name,
                "description": config.description,
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "context": {
                            "type": "string",
                            "description": "The tool or capability you were looking for, in one sentence."
                        }
                    },
                    "required": ["context"]
                }
            })
            .to_string(),
            name: config.name,
            answer: config.answer,
            server_has_it: AtomicBool::new(false),
        });
        Some(Self { intent, missing })
    }
}

impl Intent {
    /// Whether calls of `tool` carry the intent argument the layer added.
    fn added_to(&self, tool: &str) -> bool {
        if self.excluded.contains(tool) {
            return false;
        }
        match self.native.read() {
            Ok(native) => !native.contains(tool),
            Err(_) => false,
        }
    }

    /// Remembers whether `tool` was listed with an argument of that name of its own.
    fn learn(&self, tool: &str, has_own: bool) {
        let known = match self.native.read() {
            Ok(native) => native.contains(tool),
            Err(_) => return,
        };
        if known == has_own {
            return;
        }
        if let Ok(mut native) = self.native.write() {
            if has_own {
                if native.len() >= MAX_NATIVE_TOOLS {
                    native.clear();
                }
                native.insert(tool.to_owned());
            } else {
                native.remove(tool);
            }
        }
    }
}

impl Missing {
    /// Whether a call of `tool` is the layer's to answer.
    fn answers(&self, tool: &str) -> bool {
        tool == self.name && !self.server_has_it.load(Relaxed)
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}
