"""Two keyword searches on a restored installation: the first rebuilds the index."""
import json, sys, time, urllib.request
base = sys.argv[1]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None, method=method)
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r: return json.loads(r.read())
tok = call("POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": "a long password 123"})["access_token"]
t = time.time(); first = call("POST", "/api/v1/search", {"query": "supersonic shock", "mode": "keyword"}, tok)
rebuilt = time.time() - t
t = time.time(); call("POST", "/api/v1/search", {"query": "laminar flow", "mode": "keyword"}, tok)
assert first["results"], "the rebuilt index finds the documents"
print(f"{rebuilt:.2f} s / {(time.time() - t) * 1000:.0f} ms")
