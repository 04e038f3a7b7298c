"""The official A2A Python SDK (`a2a-sdk`) against a running Agentry, unchanged
client code: the card is resolved from the base URL and the token goes
through the SDK's bearer AuthInterceptor. Run by tests/api/sdk_clients.rs with
AGENTRY_URL and AGENTRY_KEY (a tenant member's token); exits non-zero on the
first failed check."""

import asyncio
import importlib.metadata
import os
import sys
import traceback
import uuid

import httpx
from a2a.client import (
    A2ACardResolver,
    A2AClientError,
    AuthInterceptor,
    ClientConfig,
    ClientFactory,
    CredentialService,
)
from a2a.helpers import get_artifact_text, new_text_message
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, Role, SendMessageRequest, TaskState
from a2a.utils.errors import A2AError, TaskNotCancelableError, TaskNotFoundError

BASE = os.environ["AGENTRY_URL"]
KEY = os.environ["AGENTRY_KEY"]
TWO_POW_100 = "1267650600228229401496703205376"


class StaticToken(CredentialService):
    def __init__(self, token: str):
        self.token = token

    async def get_credentials(self, security_scheme_name, context):
        return self.token


def client_for(card, token: str, streaming: bool):
    config = ClientConfig(streaming=streaming, httpx_client=httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=300.0)))
    return ClientFactory(config).create(card, interceptors=[AuthInterceptor(StaticToken(token))])


def message(text: str, agent: str | None = None, context_id: str | None = None):
    msg = new_text_message(text, context_id=context_id, role=Role.ROLE_USER)
    if agent is not None:
        msg.metadata.update({"agent": agent})
    return SendMessageRequest(message=msg)


def answer_text(task) -> str:
    return "\n".join(get_artifact_text(a) for a in task.artifacts if a.name == "answer")


def state(value) -> str:
    return TaskState.Name(value)


async def send_one(client, request):
    """A non-streaming send: exactly one event, a task."""
    events = [event async for event in client.send_message(request)]
    assert len(events) == 1, events
    assert events[0].WhichOneof("payload") == "task", events[0]
    return events[0].task


async def main() -> None:
    async with httpx.AsyncClient(timeout=30.0) as http:
        card = await A2ACardResolver(http, BASE).get_agent_card()
    assert "Agentry" in card.name, card.name
    skills = {skill.id for skill in card.skills}
    assert {"general", "rag", "math", "code", "vision"} <= skills, skills
    jsonrpc = [i for i in card.supported_interfaces if i.protocol_binding == "JSONRPC"]
    assert jsonrpc, card.supported_interfaces
    assert jsonrpc[0].url == BASE + "/a2a", jsonrpc[0].url
    assert jsonrpc[0].protocol_version == "1.0", jsonrpc[0].protocol_version
    assert card.capabilities.streaming, card.capabilities
    assert card.security_requirements and any(
        s.HasField("http_auth_security_scheme") and s.http_auth_security_scheme.scheme.lower() == "bearer"
        for s in card.security_schemes.values()
    ), card.security_schemes

    # (a) Streaming (the client's default when the card says streaming), the agent chosen in metadata.
    streaming = client_for(card, KEY, streaming=True)
    kinds, final_state, text, task_id = [], None, "", None
    async for event in streaming.send_message(message("What is 2^100?", agent="math")):
        kind = event.WhichOneof("payload")
        kinds.append(kind)
        if kind == "task":
            task_id, final_state = event.task.id, event.task.status.state
            text += answer_text(event.task)
        elif kind == "status_update":
            assert event.status_update.task_id == task_id, event
            final_state = event.status_update.status.state
        elif kind == "artifact_update":
            assert event.artifact_update.task_id == task_id, event
            text += get_artifact_text(event.artifact_update.artifact)
    assert kinds and kinds[0] == "task", kinds
    assert final_state == TaskState.TASK_STATE_COMPLETED, (state(final_state), kinds)
    assert TWO_POW_100 in text, (text, kinds)
    streamed = await streaming.get_task(GetTaskRequest(id=task_id))
    assert streamed.status.state == TaskState.TASK_STATE_COMPLETED and TWO_POW_100 in answer_text(streamed), streamed
    await streaming.close()

    # (b) Blocking SendMessage; no metadata, so the router picks (math, for a calculation).
    client = client_for(card, KEY, streaming=False)
    task = await send_one(client, message("What is 3/4 + 1/6?"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, state(task.status.state)
    assert "11/12" in answer_text(task), task
    assert task.context_id, task

    # (c) GetTask
    fetched = await client.get_task(GetTaskRequest(id=task.id))
    assert fetched.id == task.id and fetched.context_id == task.context_id, fetched
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED, state(fetched.status.state)
    assert "11/12" in answer_text(fetched), fetched

    # (d) CancelTask on a finished task
    try:
        await client.cancel_task(CancelTaskRequest(id=task.id))
        raise AssertionError("CancelTask on a completed task must fail")
    except TaskNotCancelableError:
        pass

    # (e) GetTask of an unknown task
    try:
        await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
        raise AssertionError("GetTask of an unknown id must fail")
    except TaskNotFoundError:
        pass

    # (f) A follow-up in the same context continues the conversation: a new task, same contextId.
    follow_up = await send_one(client, message("What is 25! ?", agent="math", context_id=task.context_id))
    assert follow_up.status.state == TaskState.TASK_STATE_COMPLETED, state(follow_up.status.state)
    assert follow_up.context_id == task.context_id, (follow_up.context_id, task.context_id)
    assert follow_up.id != task.id, follow_up.id
    assert "15511210043330985984000000" in answer_text(follow_up), follow_up
    await client.close()

    # A wrong token is refused (HTTP 401 surfaces as a client error).
    refused = client_for(card, "sk-wrong", streaming=False)
    try:
        await send_one(refused, message("What is 1+1?"))
        raise AssertionError("a wrong token must be refused")
    except (A2AClientError, A2AError):
        pass
    await refused.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as e:
        traceback.print_exc()
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print("a2a sdk ok", importlib.metadata.version("a2a-sdk"))
    sys.exit(0)
