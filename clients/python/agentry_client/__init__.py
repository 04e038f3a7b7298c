"""The Agentry platform API from Python.

``agentry_client.api`` and ``agentry_client.models`` are generated from the
OpenAPI document (``docs/openapi.json``) by openapi-python-client: one module
per operation (``api.threads.get_threads``) with ``sync``/``asyncio``
functions, and a class per schema. :class:`Agentry` holds the connection and
adds what a generator does badly: signing in, cursor pagination as an
iterator, streamed runs that resume with ``Last-Event-ID`` after a dropped
connection, and multipart uploads.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import random
import sys
import time
from urllib.parse import quote
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource

from ._generated import api, models
from ._generated.client import AuthenticatedClient, Client
from ._generated.types import UNSET, Response

__all__ = ["Agentry", "AgentryError", "RunEvent", "RunStream", "api", "models"]

# The generated packages under their public names, every operation module
# loaded: `api.audit.get_tenants_tenant_audit`,
# `from agentry_client.api.threads import get_threads` and
# `from agentry_client.models import SearchRequest` all work.
for _package in (api, models):
    sys.modules[_package.__name__.replace("._generated", "")] = _package
for _module in pkgutil.walk_packages(api.__path__, f"{api.__name__}."):
    sys.modules[_module.name.replace("._generated", "")] = importlib.import_module(_module.name)

# The run events that end a run: nothing follows them.
FINAL_EVENTS = frozenset({"done", "error"})
# Waits between reconnects of an event stream: doubling from the first to the last, with jitter.
FIRST_BACKOFF_SECS = 0.25
LAST_BACKOFF_SECS = 5.0


class AgentryError(Exception):
    """An error answer of the API: its status and the envelope's fields."""

    def __init__(self, status: int, body: Any):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(error.get("message") or f"HTTP {status}")
        self.status = status
        self.code: str = error.get("code") or "unknown"
        self.param: str | None = error.get("param")
        self.request_id: str | None = body.get("request_id") if isinstance(body, dict) else None


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: its number in the run's log and its JSON."""

    id: int
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return self.event["type"]


@dataclass
class RunStream:
    """A run started with streaming: its id and its events (resumed on drops)."""

    run_id: str
    events: Iterator[RunEvent]

    def __iter__(self) -> Iterator[RunEvent]:
        return self.events


class Agentry:
    """A connection to an Agentry server.

    ``token`` is an API key, a signed-in user's access token, or the master
    key; ``tenant`` (id or slug) picks the tenant for callers in several.
    """

    def __init__(self, base_url: str, token: str | None = None, tenant: str | None = None, timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.tenant = tenant
        self.timeout = timeout
        self.transport = transport
        headers = {"x-agentry-tenant": tenant} if tenant else {}
        httpx_args = {"transport": transport} if transport else {}
        timeout_config = httpx.Timeout(timeout)
        self.client: Client | AuthenticatedClient = (
            AuthenticatedClient(base_url=self.base_url, token=token, headers=headers, timeout=timeout_config, httpx_args=httpx_args)
            if token
            else Client(base_url=self.base_url, headers=headers, timeout=timeout_config, httpx_args=httpx_args)
        )

    @classmethod
    def sign_in(cls, base_url: str, email: str, password: str, totp: str | None = None, **options: Any) -> Agentry:
        """Sign in with an email and a password (and a TOTP code when the account has a second factor)."""
        anonymous = cls(base_url, **options)
        outcome = anonymous.request("POST", "/api/v1/auth/login", json={"email": email, "password": password})
        if "access_token" not in outcome:
            if totp is None:
                raise AgentryError(401, {"error": {"message": "this account needs a second factor: pass a TOTP code", "code": "mfa_required"}})
            outcome = anonymous.request("POST", "/api/v1/auth/mfa/verify", json={"mfa_token": outcome["mfa_token"], "code": totp})
        return cls(base_url, token=outcome["access_token"], **options)

    def with_options(self, **changes: Any) -> Agentry:
        """The same connection with some options changed, e.g. ``agentry.with_options(tenant=...)``."""
        options = {"token": self.token, "tenant": self.tenant, "timeout": self.timeout, "transport": self.transport, **changes}
        return Agentry(self.base_url, **options)

    def call(self, operation: Any, **arguments: Any) -> Any:
        """Call a generated operation (``api.threads.get_threads``) and answer its parsed body, or raise :class:`AgentryError`."""
        return _parsed(operation.sync_detailed(client=self.client, **arguments))

    def pages(self, operation: Any, **arguments: Any) -> Iterator[Any]:
        """Every item of a paged list, fetching pages as they are read: ``agentry.pages(api.audit.get_tenants_tenant_audit, tenant=t, limit=50)``."""
        after: Any = UNSET
        while True:
            page = self.call(operation, after=after, **arguments)
            yield from page.data
            if page.next_cursor is UNSET or page.next_cursor is None:
                return
            after = page.next_cursor

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request the generated code does not cover, through the same connection; its JSON answer.

        ``path`` is a path on this server (``/api/v1/...``): a full URL is refused, so the
        credential is never sent to another host."""
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"a path on the server, starting with one '/', not {path!r}")
        response = self.client.get_httpx_client().request(method, path, **kwargs)
        return _json_or_raise(response)

    def upload_document(
        self,
        collection_id: str,
        content: bytes | str,
        file_name: str,
        content_type: str = "application/octet-stream",
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
        acl: dict[str, list[str]] | None = None,
        document_id: str | None = None,
    ) -> dict[str, Any]:
        """Upload a document (or, with ``document_id``, a new version) as multipart."""
        data = {"title": title, "metadata": _json(metadata), "acl": _json(acl), "document_id": document_id}
        body = content.encode() if isinstance(content, str) else content
        files = {"file": (file_name, body, content_type)}
        return self.request("POST", f"/api/v1/collections/{_segment(collection_id)}/documents", files=files, data={k: v for k, v in data.items() if v is not None})

    def wait_for_ingest_job(self, job_id: str, timeout: float = 60.0, interval: float = 0.1) -> Any:
        """Wait until an ingestion job has finished (succeeded or failed) and answer it."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.call(api.ingest_jobs.get_ingest_jobs_id, id=job_id)
            if job.status in ("succeeded", "failed"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest job {job_id} still {job.status} after {timeout} s")
            time.sleep(interval)

    def stream_run(self, request: dict[str, Any], thread_id: str | None = None, retries: int = 5) -> RunStream:
        """Start a run that streams (on a thread, or without one); its events resume after a dropped connection."""
        path = f"/api/v1/threads/{_segment(thread_id)}/runs" if thread_id else "/api/v1/runs"
        response = self._open_events("POST", path, json={**request, "stream": True})
        run_id = response.headers.get("x-agentry-run-id")
        if run_id is None:
            response.close()
            raise AgentryError(response.status_code, {"error": {"message": "the server did not name the run (x-agentry-run-id)"}})
        return RunStream(run_id, self._follow(run_id, 0, retries, first=response))

    def run_events(self, run_id: str, last_event_id: int = 0, retries: int = 5) -> Iterator[RunEvent]:
        """A run's events after ``last_event_id`` (0: all) to its end, reconnecting with ``Last-Event-ID`` when the connection drops."""
        return self._follow(run_id, last_event_id, retries)

    def _open_events(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A streamed answer of server-sent events (the caller closes it), or an :class:`AgentryError`."""
        client = self.client.get_httpx_client()
        headers = {"accept": "text/event-stream", "cache-control": "no-store", **kwargs.pop("headers", {})}
        response = client.send(client.build_request(method, path, headers=headers, **kwargs), stream=True)
        if response.is_error:
            response.read()
            response.close()
            _json_or_raise(response)
        return response

    def _follow(self, run_id: str, last: int, retries: int, first: httpx.Response | None = None) -> Iterator[RunEvent]:
        failures, response = 0, first
        while True:
            try:
                if response is None:
                    response = self._open_events("GET", f"/api/v1/runs/{_segment(run_id)}/events", headers={"last-event-id": str(last)})
                try:
                    for sse in EventSource(response).iter_sse():
                        if not sse.id or not sse.data or int(sse.id) <= last:
                            continue
                        last, failures = int(sse.id), 0
                        event = RunEvent(last, json.loads(sse.data))
                        yield event
                        if event.type in FINAL_EVENTS:
                            return
                finally:
                    response.close()
                failures += 1
                if failures > retries:
                    raise RuntimeError(f"the event stream of run {run_id} keeps ending before the run does")
            except httpx.TransportError:
                failures += 1
                if failures > retries:
                    raise
            response = None
            time.sleep(_backoff(failures))


def _backoff(failures: int) -> float:
    """How long to wait before reconnect number ``failures``: doubling, capped, with jitter."""
    return min(LAST_BACKOFF_SECS, FIRST_BACKOFF_SECS * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


def _segment(value: str) -> str:
    """An id as one path segment."""
    return quote(value, safe="")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _json_or_raise(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_error:
        raise AgentryError(response.status_code, body)
    return body


def _parsed(response: Response[Any]) -> Any:
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        raise AgentryError(int(response.status_code), body)
    return response.parsed

