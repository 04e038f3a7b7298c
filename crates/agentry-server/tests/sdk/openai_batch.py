"""The official OpenAI Python SDK's batch round trip against a running
Agentry, unchanged client code: upload a JSONL file of requests, create a
batch, poll it to the end, read the output and error files. Run by
tests/api/sdk_clients.rs with AGENTRY_URL and AGENTRY_KEY (a tenant
member's token); exits non-zero on the first failed check."""

import io
import json
import os
import time

from openai import OpenAI

client = OpenAI(base_url=os.environ["AGENTRY_URL"] + "/v1", api_key=os.environ["AGENTRY_KEY"], max_retries=0)

requests = [
    {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "mock-echo", "messages": [{"role": "user", "content": f"question {i}"}]}}
    for i in range(5)
]
requests.append({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                 "body": {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}})
jsonl = "\n".join(json.dumps(r) for r in requests).encode()

uploaded = client.files.create(file=("requests.jsonl", io.BytesIO(jsonl)), purpose="batch")
assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl), uploaded
assert client.files.retrieve(uploaded.id).filename == "requests.jsonl"

batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={"purpose": "sdk test"})
assert batch.status in ("validating", "in_progress"), batch
deadline = time.time() + 60
while batch.status not in ("completed", "failed", "expired", "cancelled"):
    assert time.time() < deadline, batch
    time.sleep(0.1)
    batch = client.batches.retrieve(batch.id)
assert batch.status == "completed", batch
assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (6, 5, 1), batch
assert batch.metadata == {"purpose": "sdk test"}, batch.metadata

output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
answers = {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"] for line in output}
assert answers == {f"q{i}": f"echo: question {i}" for i in range(5)}, answers
errors = [json.loads(line) for line in client.files.content(batch.error_file_id).text.splitlines()]
assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("bad", 404)], errors

assert batch.id in [b.id for b in client.batches.list()]
assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]
deleted = client.files.delete(uploaded.id)
assert deleted.deleted, deleted
print("sdk ok")
