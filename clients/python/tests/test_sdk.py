"""The Python client against a live server (started by the Rust test
``clients_python``, which passes its address and the admin's sign-in in
SDK_BASE_URL, SDK_EMAIL and SDK_PASSWORD)."""

import os
import time

import httpx
import pytest

from agentry_client import Agentry, AgentryError, api
from agentry_client.models import CollectionInput, CreateKey, Membership, SearchRequest

BASE_URL = os.environ["SDK_BASE_URL"]
EMAIL = os.environ["SDK_EMAIL"]
PASSWORD = os.environ["SDK_PASSWORD"]


@pytest.fixture
def signed_in():
    agentry = Agentry.sign_in(BASE_URL, EMAIL, PASSWORD)
    me = agentry.call(api.auth.get_auth_me)
    # A member sees their memberships; the platform's first admin sees every tenant.
    first = me.tenants[0]
    tenant = first.tenant_id if isinstance(first, Membership) else first.id
    return agentry.with_options(tenant=tenant), tenant


def test_a_wrong_password_is_an_agentry_error():
    with pytest.raises(AgentryError) as raised:
        Agentry.sign_in(BASE_URL, EMAIL, "not the password")
    assert raised.value.status == 401
    assert raised.value.code != "unknown"


def test_sign_in_create_an_api_key_and_call_with_it(signed_in):
    agentry, tenant = signed_in
    key = agentry.call(api.api_keys.post_tenants_tenant_api_keys, tenant=tenant, body=CreateKey(name="sdk test"))
    assert key.key.startswith("agk_")
    me = Agentry(BASE_URL, token=key.key).call(api.auth.get_auth_me)
    assert me.principal.type_ == "api_key"


def test_upload_a_document_and_find_it_by_search(signed_in):
    agentry, _ = signed_in
    collection = agentry.call(api.collections.post_collections, body=CollectionInput(name=f"sdk {time.time()}"))
    accepted = agentry.upload_document(
        collection.id,
        "# Wind tunnels\n\nThe boundary layer separates behind the airfoil at high angles of attack.",
        file_name="tunnels.md",
        content_type="text/markdown",
        title="Wind tunnels",
        metadata={"source": "sdk"},
    )
    job = agentry.wait_for_ingest_job(accepted["job_id"])
    assert job.status == "succeeded", job
    found = agentry.call(api.search.post_search, body=SearchRequest.from_dict({"query": "boundary layer separates", "mode": "keyword", "collections": [collection.id]}))
    assert found.results[0].document_id == accepted["document"]["id"]


class CutFirstRunStream(httpx.BaseTransport):
    """A transport that cuts the first streamed run after its first bytes."""

    def __init__(self):
        self.inner = httpx.HTTPTransport()
        self.cut = False

    def handle_request(self, request):
        response = self.inner.handle_request(request)
        if self.cut or request.method != "POST" or not request.url.path.endswith("/runs"):
            return response
        self.cut = True
        return httpx.Response(response.status_code, headers=response.headers, stream=CutStream(response.stream), request=request)


class CutStream(httpx.SyncByteStream):
    def __init__(self, inner):
        self.inner = inner

    def __iter__(self):
        for chunk in self.inner:
            yield chunk
            break
        raise httpx.ReadError("connection reset (test)")

    def close(self):
        self.inner.close()


def test_a_streamed_run_resumes_after_its_connection_drops(signed_in):
    agentry, _ = signed_in
    name = f"slow-{int(time.time() * 1000)}"
    agentry.request("POST", "/api/v1/agents", json={"name": name, "instructions": "Echo.", "model": "mock-slow-400"})
    transport = CutFirstRunStream()
    cutting = agentry.with_options(transport=transport)
    stream = cutting.stream_run({"agent": name, "input": "one two three"})
    seen = list(stream)
    assert transport.cut
    assert [e.id for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].type == "done"
    assert "".join(e.event["text"] for e in seen if e.type == "token") == "echo: one two three"
    rest = [e.id for e in agentry.run_events(stream.run_id, last_event_id=2)]
    assert rest == [e.id for e in seen[2:]]


def test_page_through_the_audit_log(signed_in):
    agentry, tenant = signed_in
    everything = agentry.call(api.audit.get_tenants_tenant_audit, tenant=tenant, limit=1000)
    paged = [event.seq for event in agentry.pages(api.audit.get_tenants_tenant_audit, tenant=tenant, limit=2)]
    assert len(paged) > 2
    assert paged == [event.seq for event in everything.data]
