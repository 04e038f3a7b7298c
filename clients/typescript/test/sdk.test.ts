// The TypeScript client against a live server (started by the Rust test
// `clients_typescript`, which passes its address and the admin's sign-in in
// SDK_BASE_URL, SDK_EMAIL and SDK_PASSWORD).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Agentry, AgentryError, ok, type RunEvent } from "../src/index.js";

const baseUrl = required("SDK_BASE_URL");
const email = required("SDK_EMAIL");
const password = required("SDK_PASSWORD");

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set (the Rust test clients_typescript sets it)`);
  return value;
}

async function signedIn(): Promise<{ agentry: Agentry; tenant: string }> {
  const agentry = await Agentry.signIn({ baseUrl }, email, password);
  const me = ok(await agentry.api.GET("/api/v1/auth/me"));
  // A member sees their memberships; the platform's first admin sees every tenant.
  const first = me.tenants[0];
  assert.ok(first !== undefined, "the admin sees a tenant");
  const tenant = "tenant_id" in first ? first.tenant_id : first.id;
  return { agentry: agentry.with({ tenant }), tenant };
}

test("a wrong password is an AgentryError with the envelope's code", async () => {
  await assert.rejects(Agentry.signIn({ baseUrl }, email, "not the password"), (error: unknown) => {
    assert.ok(error instanceof AgentryError);
    assert.equal(error.status, 401);
    assert.equal(typeof error.code, "string");
    return true;
  });
});

test("sign in, create an API key, call with it", async () => {
  const { agentry, tenant } = await signedIn();
  const key = ok(await agentry.api.POST("/api/v1/tenants/{tenant}/api-keys", { params: { path: { tenant } }, body: { name: "sdk test" } }));
  assert.ok(key.key.startsWith("agk_"));
  const withKey = new Agentry({ baseUrl, token: key.key });
  const me = ok(await withKey.api.GET("/api/v1/auth/me"));
  assert.equal(me.principal.type, "api_key");
});

test("upload a document and find it by search", async () => {
  const { agentry } = await signedIn();
  const collection = ok(await agentry.api.POST("/api/v1/collections", { body: { name: `sdk ${Date.now()}` } }));
  const accepted = await agentry.uploadDocument(collection.id, {
    content: "# Wind tunnels\n\nThe boundary layer separates behind the airfoil at high angles of attack.",
    fileName: "tunnels.md",
    contentType: "text/markdown",
  }, { title: "Wind tunnels", metadata: { source: "sdk" } });
  assert.ok(accepted.job_id, "a new document is ingested by a job");
  const job = await agentry.waitForIngestJob(accepted.job_id);
  assert.equal(job.status, "succeeded", JSON.stringify(job));
  const found = ok(await agentry.api.POST("/api/v1/search", { body: { query: "boundary layer separates", mode: "keyword", collections: [collection.id] } }));
  assert.equal(found.results[0]?.document_id, accepted.document.id);
});

test("a streamed run resumes after its connection drops, with no event lost or repeated", async () => {
  const { agentry } = await signedIn();
  const agent = await agentry.api.POST("/api/v1/agents", { body: { name: `slow-${Date.now()}`, instructions: "Echo.", model: "mock-slow-400" } });
  assert.equal(agent.response.status, 201);
  const name = (agent.data as { name: string }).name;

  // A fetch that cuts the run's first stream after its first event.
  let cut = false;
  const cutting: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (cut || init?.method !== "POST" || !String(input).endsWith("/api/v1/runs")) return response;
    cut = true;
    const reader = response.body!.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value } = await reader.read();
        if (value !== undefined) controller.enqueue(value);
        await reader.cancel();
        controller.error(new TypeError("connection reset (test)"));
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  const cuttingClient = agentry.with({ fetch: cutting });
  const { runId, events } = await cuttingClient.streamRun({ agent: name, input: "one two three" });
  const seen: { id: number; event: RunEvent }[] = [];
  for await (const event of events) seen.push(event);
  assert.ok(cut, "the first stream was cut");
  assert.deepEqual(seen.map((e) => e.id), seen.map((_, n) => n + 1), "ids 1, 2, 3… once each");
  assert.equal(seen.at(-1)?.event.type, "done");
  const text = seen.map(({ event }) => (event.type === "token" ? event.text : "")).join("");
  assert.equal(text, "echo: one two three");

  // Reading again from a point answers exactly the rest.
  const rest: number[] = [];
  for await (const { id } of agentry.runEvents(runId, { lastEventId: 2 })) rest.push(id);
  assert.deepEqual(rest, seen.slice(2).map((e) => e.id));
});

test("page through the audit log", async () => {
  const { agentry, tenant } = await signedIn();
  const everything = ok(await agentry.api.GET("/api/v1/tenants/{tenant}/audit", { params: { path: { tenant }, query: { limit: 1000 } } }));
  const paged: number[] = [];
  for await (const event of agentry.pages("/api/v1/tenants/{tenant}/audit", { path: { tenant }, query: { limit: 2 } })) paged.push(event.seq);
  assert.ok(paged.length > 2, "more than one page");
  assert.deepEqual(paged, everything.data.map((event) => event.seq));
});
