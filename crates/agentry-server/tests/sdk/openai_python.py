"""The official OpenAI Python SDK against a running Agentry, unchanged client
code: only base_url and api_key are set. Run by tests/api/sdk_clients.rs with
AGENTRY_URL and AGENTRY_KEY; exits non-zero on the first failed check."""

import os
import sys

import openai
from openai import OpenAI

base_url = os.environ["AGENTRY_URL"] + "/v1"
client = OpenAI(base_url=base_url, api_key=os.environ["AGENTRY_KEY"], max_retries=0)
messages = [{"role": "user", "content": "hi"}]

reply = client.chat.completions.create(model="gpt-4o", messages=messages)
assert reply.choices[0].message.content == "Hello from upstream", reply
assert reply.choices[0].finish_reason == "stop"
assert reply.usage.total_tokens == 9, reply.usage

chunks = list(client.chat.completions.create(model="gpt-ok", messages=messages, stream=True,
                                             stream_options={"include_usage": True}))
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text == "Hello from upstream", text
assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3, chunks[-1]

claude = client.chat.completions.create(model="claude-ok", messages=messages)
assert claude.choices[0].message.content == "Hello from Claude"

# The SDK asks for base64 by default and decodes it.
embedding = client.embeddings.create(model="embed-ok", input=["a", "b"])
assert [round(x, 4) for x in embedding.data[1].embedding] == [0.6, 0.8, 1.0], embedding.data[1].embedding
floats = client.embeddings.create(model="embed-ok", input="a", encoding_format="float")
assert len(floats.data[0].embedding) == 3

ids = [m.id for m in client.models.list()]
assert "gpt-4o" in ids and "claude-ok" in ids, ids
assert client.models.retrieve("gpt-ok").id == "gpt-ok"

def expect(exc_type, status, code, call):
    try:
        call()
    except exc_type as e:
        assert e.status_code == status, (e.status_code, e)
        assert e.code == code, (e.code, e.body)
        return
    raise AssertionError(f"expected {exc_type.__name__}")

expect(openai.NotFoundError, 404, "model_not_found",
       lambda: client.chat.completions.create(model="nope", messages=messages))
expect(openai.BadRequestError, 400, "invalid_request",
       lambda: client.chat.completions.create(model="gpt-ok", messages=messages, temperature=5))
bad = OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)
expect(openai.AuthenticationError, 401, "invalid_api_key",
       lambda: bad.chat.completions.create(model="gpt-ok", messages=messages))
expect(openai.InternalServerError, 502, "upstream_error",
       lambda: client.chat.completions.create(model="always-500", messages=messages))

try:
    for _ in client.chat.completions.create(model="stream-then-fail", messages=messages, stream=True):
        pass
    raise AssertionError("a failed stream must raise")
except openai.APIError as e:
    assert "upstream" in str(e).lower(), e

print("python sdk ok", openai.__version__)
sys.exit(0)
