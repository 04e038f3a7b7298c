"""Upload N generated documents through the API and wait for their ingestion."""
import json, sys, time, urllib.request, concurrent.futures, random
base, n = sys.argv[1], int(sys.argv[2])
def call(method, path, body=None, token=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None: req.add_header("Content-Type", ctype)
    if token: req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r: return json.loads(r.read() or b"null")
tok = call("POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": "a long password 123"})["access_token"]
col = call("POST", "/api/v1/collections", {"name": "bench"}, tok)["id"]
words = "aerodynamic boundary layer pressure flow heat transfer supersonic wing shock viscous laminar turbulent".split()
def upload(i):
    text = f"Document {i}. " + " ".join(random.choice(words) for _ in range(300))
    body = json.dumps({"title": f"doc {i}", "text": text}).encode()
    return call("POST", f"/api/v1/collections/{col}/documents", token=tok, raw=body)["job_id"]
t = time.time()
with concurrent.futures.ThreadPoolExecutor(8) as ex: jobs = list(ex.map(upload, range(n)))
while True:
    done = [call("GET", f"/api/v1/ingest-jobs/{j}", token=tok)["status"] for j in jobs[-20:]]
    if all(s in ("succeeded", "failed") for s in done): break
    time.sleep(1)
print(f"loaded {n} documents in {time.time()-t:.1f} s")
