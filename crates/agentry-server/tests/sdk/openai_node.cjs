// The official OpenAI Node SDK against a running Agentry, unchanged client
// code: only baseURL and apiKey are set. Run by tests/api/sdk_clients.rs with
// AGENTRY_URL, AGENTRY_KEY and NODE_PATH pointing at a node_modules with `openai`.
const OpenAI = require("openai");
const assert = require("node:assert/strict");

async function main() {
  const baseURL = process.env.AGENTRY_URL + "/v1";
  const client = new OpenAI({ baseURL, apiKey: process.env.AGENTRY_KEY, maxRetries: 0 });
  const messages = [{ role: "user", content: "hi" }];

  const reply = await client.chat.completions.create({ model: "gpt-4o", messages });
  assert.equal(reply.choices[0].message.content, "Hello from upstream");
  assert.equal(reply.usage.total_tokens, 9);

  const stream = await client.chat.completions.create({ model: "gpt-ok", messages, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, "Hello from upstream");
  assert.equal(usage.completion_tokens, 3);

  const embedding = await client.embeddings.create({ model: "embed-ok", input: ["a", "b"] });
  assert.deepEqual(embedding.data[1].embedding.map((x) => Math.round(x * 1e4) / 1e4), [0.6, 0.8, 1]);

  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  assert.ok(models.includes("gpt-4o"));

  await assert.rejects(client.chat.completions.create({ model: "nope", messages }), (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found");
  const bad = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: "gpt-ok", messages }), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  console.log("node sdk ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
