"""The official MCP Python SDK (`mcp`) against a running Agentry's `/mcp`,
unchanged client code: only the URL and a bearer header are set. Run by
tests/api/sdk_clients.rs with AGENTRY_URL and AGENTRY_KEY (a tenant member's
token); exits non-zero on the first failed check."""

import asyncio
import importlib.metadata
import os
import sys
import traceback

import httpx2
import mcp
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

URL = os.environ["AGENTRY_URL"] + "/mcp"
KEY = os.environ["AGENTRY_KEY"]
TWO_POW_100 = "1267650600228229401496703205376"


def http_client(key: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30.0, read=300.0))


def text_of(result) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def check_tools(listing) -> None:
    names = [tool.name for tool in listing.tools]
    assert "agent_math" in names and "knowledge_search" in names, names
    for tool in listing.tools:
        assert tool.input_schema.get("type") == "object", (tool.name, tool.input_schema)


async def session_mode() -> None:
    """ClientSession + initialize(): the classic handshake."""
    async with http_client(KEY) as http, streamable_http_client(URL, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS, init.protocol_version
            assert init.server_info.name, init.server_info
            assert init.capabilities.tools is not None, init.capabilities

            check_tools(await session.list_tools())

            answer = await session.call_tool("agent_math", {"input": "What is 2^100?"})
            assert not answer.is_error, answer
            assert TWO_POW_100 in text_of(answer), answer

            # Bad arguments are a tool error (a result), not a protocol error.
            bad = await session.call_tool("agent_math", {})
            assert bad.is_error, bad
            assert text_of(bad), bad

            # An unknown tool: a JSON-RPC error (-32602) or, as the spec also allows, isError.
            try:
                unknown = await session.call_tool("nope", {})
            except MCPError as error:
                assert error.code == -32602, (error.code, error.message)
            else:
                assert unknown.is_error, unknown


async def auto_mode() -> None:
    """mcp.Client's default mode probes `server/discover` (answered -32601) and falls back to initialize."""
    async with http_client(KEY) as http:
        async with mcp.Client(streamable_http_client(URL, http_client=http)) as client:
            assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS, client.protocol_version
            check_tools(await client.list_tools())


async def wrong_key() -> None:
    """A bad credential fails the handshake instead of listing anything."""
    async with http_client("sk-wrong") as http, streamable_http_client(URL, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            try:
                await session.initialize()
            except MCPError:
                return
            raise AssertionError("initialize with a wrong key must fail")


async def main() -> None:
    await session_mode()
    await auto_mode()
    await wrong_key()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as e:  # AssertionError, MCPError, ExceptionGroup from the transport's task group
        traceback.print_exc()
        leaf = e
        while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
            leaf = leaf.exceptions[0]
        print(f"FAIL: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        sys.exit(1)
    print("mcp sdk ok", importlib.metadata.version("mcp"))
    sys.exit(0)
