"""Drive an MCP server with the official Python SDK (PyPI package `mcp`, 2.x).

    python3 mcp_client.py --url URL --era legacy|modern --plan PLAN

PLAN is a JSON array of steps:

    {"list_tools": true}                  -> {"tools": [TOOL, ...]}
    {"call": "NAME", "arguments": {...}}  -> {"call": NAME, "result": RESULT}
                                             or {"call": NAME, "error": {"code", "message"}}

TOOL and RESULT are the SDK's parsed `Tool` and `CallToolResult`, in their wire
(camelCase) form.

A first line {"connected": {"protocol_version", "server_info"}} says what the
client negotiated. Every line is one JSON object on stdout. An MCP error answer
is printed as the step's `error`; anything else (no connection, a malformed
answer, a bad plan) ends the script with a non-zero status.

`--era legacy` connects with the `initialize` handshake (`mode="legacy"`).
`--era modern` uses the SDK's default, `mode="auto"`: a `server/discover` probe,
then protocol 2026-07-28 when the server offers it (no handshake, no session,
client info in every request's `_meta`); the first line shows what it got.
"""

import argparse
import asyncio
import json

from mcp import Client
from mcp.shared.exceptions import MCPError

MODES = {"legacy": "legacy", "modern": "auto"}


def emit(value):
    print(json.dumps(value, sort_keys=True), flush=True)


def dump(model):
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def run(url, era, plan):
    # No response cache: every step reaches the server.
    async with Client(url, mode=MODES[era], cache=None) as client:
        server = client.server_info
        emit({"connected": {"protocol_version": client.protocol_version, "server_info": server and dump(server)}})
        for step in plan:
            if step.get("list_tools"):
                listed = await client.list_tools()
                emit({"tools": [dump(tool) for tool in listed.tools]})
            elif "call" in step:
                name = step["call"]
                try:
                    result = await client.call_tool(name, step.get("arguments", {}))
                    emit({"call": name, "result": dump(result)})
                except MCPError as error:
                    emit({"call": name, "error": {"code": error.code, "message": error.message}})
            else:
                raise ValueError(f"unknown plan step: {step!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--era", choices=MODES, required=True)
    parser.add_argument("--plan", required=True, help="JSON array of steps")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.era, json.loads(args.plan)))


if __name__ == "__main__":
    main()
