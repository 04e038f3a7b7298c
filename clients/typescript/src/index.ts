/**
 * The Agentry platform API from TypeScript.
 *
 * `agentry.api` is an `openapi-fetch` client typed from the OpenAPI document
 * (`docs/openapi.json`, generated into `schema.d.ts`): every operation, its
 * path, query and body, and its answers. What a generator does badly is
 * written here by hand (server-sent events parsed by `eventsource-parser`):
 * signing in, cursor pagination as an async iterator,
 * streamed runs that resume with `Last-Event-ID` after a dropped connection,
 * and multipart uploads.
 */
import { type EventSourceMessage, EventSourceParserStream } from "eventsource-parser/stream";
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";
export type Schemas = components["schemas"];
export type RunEvent = Schemas["RunEvent"];

/** An error answer of the API: its status and the envelope's fields. */
export class AgentryError extends Error {
  readonly status: number;
  readonly code: string;
  readonly param: string | null;
  readonly requestId: string | null;

  constructor(status: number, body: unknown) {
    const envelope = (body ?? {}) as { error?: { message?: string; code?: string; param?: string | null }; request_id?: string | null };
    super(envelope.error?.message ?? `HTTP ${status}`);
    this.name = "AgentryError";
    this.status = status;
    this.code = envelope.error?.code ?? "unknown";
    this.param = envelope.error?.param ?? null;
    this.requestId = envelope.request_id ?? null;
  }
}

/** The data of an `openapi-fetch` answer (`undefined` for an answer without a body, such as 204), or an [`AgentryError`] thrown. */
export function ok<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (!result.response.ok) {
    throw new AgentryError(result.response.status, result.error);
  }
  return result.data as T;
}

export interface AgentryOptions {
  /** Where the server is, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API key, a signed-in user's access token, or the master key. */
  token?: string;
  /** The tenant (id or slug) for callers that belong to several. */
  tenant?: string;
  /** A `fetch` of your own (tests, proxies). */
  fetch?: typeof globalThis.fetch;
}

/** The answer of a path's GET, if it answers JSON. */
type GetAnswer<P extends keyof paths> = paths[P] extends { get: { responses: { 200: { content: { "application/json": infer Answer } } } } } ? Answer : never;
/** Paths whose GET answers a page: `{data: [...], next_cursor?}`. */
export type PagedPath = {
  [P in keyof paths]: GetAnswer<P> extends { data: unknown[] } ? ("next_cursor" extends keyof GetAnswer<P> ? P : never) : never;
}[keyof paths];
type PageOf<P extends PagedPath> = GetAnswer<P> & { data: unknown[]; next_cursor?: string | null };
/** One item of a paged list. */
export type ItemOf<P extends PagedPath> = PageOf<P>["data"][number];
type ParamsOf<P extends PagedPath> = paths[P]["get"] extends { parameters: infer Params } ? Params : never;
type PathParamsOf<P extends PagedPath> = ParamsOf<P> extends { path: infer Path } ? Path : never;
type QueryOf<P extends PagedPath> = ParamsOf<P> extends { query?: infer Query } ? Omit<NonNullable<Query>, "after"> : never;

/** The run events that end a run: nothing follows them. */
const FINAL_EVENTS = new Set(["done", "error"]);
/** Waits between reconnects of an event stream: doubling from the first to the last, with jitter. */
const FIRST_BACKOFF_MS = 250;
const LAST_BACKOFF_MS = 5_000;

/** A file to upload: its bytes, name and media type. */
export interface UploadFile {
  content: Blob | Uint8Array | string;
  fileName: string;
  contentType?: string;
}

/** Other fields of an upload. */
export interface UploadOptions {
  title?: string;
  metadata?: Record<string, unknown>;
  acl?: { users?: string[]; roles?: string[]; groups?: string[] };
  /** Upload a new version of this document. */
  documentId?: string;
}

export class Agentry {
  /** Every operation of the API, typed. */
  readonly api: Client<paths>;
  private readonly options: AgentryOptions;

  constructor(options: AgentryOptions) {
    this.options = { ...options, baseUrl: options.baseUrl.replace(/\/+$/, "") };
    this.api = createClient<paths>({ baseUrl: this.options.baseUrl, fetch: options.fetch, headers: this.headers() });
  }

  /** Sign in with an email and a password (and a TOTP code when the account has a second factor). */
  static async signIn(options: Omit<AgentryOptions, "token">, email: string, password: string, totp?: string): Promise<Agentry> {
    const anonymous = new Agentry(options);
    const outcome = ok(await anonymous.api.POST("/api/v1/auth/login", { body: { email, password } })) as Record<string, unknown>;
    if (typeof outcome.access_token === "string") {
      return new Agentry({ ...options, token: outcome.access_token });
    }
    if (totp === undefined) {
      throw new AgentryError(401, { error: { message: "this account needs a second factor: pass a TOTP code", code: "mfa_required" } });
    }
    const verified = ok(await anonymous.api.POST("/api/v1/auth/mfa/verify", { body: { mfa_token: outcome.mfa_token as string, code: totp } })) as Record<string, unknown>;
    return new Agentry({ ...options, token: verified.access_token as string });
  }

  /** The same client with some options changed, e.g. `agentry.with({ tenant })`. */
  with(changes: Partial<AgentryOptions>): Agentry {
    return new Agentry({ ...this.options, ...changes });
  }

  /**
   * Every item of a paged list, fetching pages as they are read:
   * `for await (const event of agentry.pages("/api/v1/tenants/{tenant}/audit", { path: { tenant } }))`.
   */
  async *pages<P extends PagedPath>(path: P, params: { path?: PathParamsOf<P>; query?: QueryOf<P> } = {}): AsyncGenerator<ItemOf<P>> {
    let after: string | undefined;
    do {
      const query = { ...(params.query ?? {}), ...(after === undefined ? {} : { after }) };
      // openapi-fetch cannot check a call on a path chosen by a type parameter; the signature above does.
      const get = this.api.GET as (path: string, init: unknown) => Promise<{ data?: PageOf<P>; error?: unknown; response: Response }>;
      const page = ok(await get(path, { params: { path: params.path, query } }));
      yield* page.data as ItemOf<P>[];
      after = page.next_cursor ?? undefined;
    } while (after !== undefined);
  }

  /** Upload a document (or, with `documentId`, a new version) as multipart. */
  async uploadDocument(collectionId: string, file: UploadFile, options: UploadOptions = {}): Promise<Schemas["Accepted"]> {
    const form = new FormData();
    const content = typeof file.content === "string" ? new TextEncoder().encode(file.content) : file.content;
    const blob = content instanceof Blob ? content : new Blob([content as BlobPart], { type: file.contentType ?? "application/octet-stream" });
    form.append("file", blob, file.fileName);
    if (options.title !== undefined) form.append("title", options.title);
    if (options.metadata !== undefined) form.append("metadata", JSON.stringify(options.metadata));
    if (options.acl !== undefined) form.append("acl", JSON.stringify(options.acl));
    if (options.documentId !== undefined) form.append("document_id", options.documentId);
    const response = await this.fetch(`/api/v1/collections/${encodeURIComponent(collectionId)}/documents`, { method: "POST", body: form });
    return (await json(response)) as Schemas["Accepted"];
  }

  /** Wait until an ingestion job has finished (succeeded or failed) and answer it. */
  async waitForIngestJob(jobId: string, { timeoutMs = 60_000, intervalMs = 100 } = {}): Promise<Schemas["IngestJob"]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = ok(await this.api.GET("/api/v1/ingest-jobs/{id}", { params: { path: { id: jobId } } }));
      if (job.status === "succeeded" || job.status === "failed") return job;
      if (Date.now() > deadline) throw new Error(`ingest job ${jobId} still ${job.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  /**
   * Start a run that streams (on a thread, or without one) and read its
   * events; a dropped connection is resumed from the last event seen.
   */
  async streamRun(request: Schemas["RunRequest"], { threadId, signal }: { threadId?: string; signal?: AbortSignal } = {}): Promise<{ runId: string; events: AsyncGenerator<{ id: number; event: RunEvent }> }> {
    const path = threadId === undefined ? "/api/v1/runs" : `/api/v1/threads/${encodeURIComponent(threadId)}/runs`;
    const response = await this.fetch(path, { method: "POST", body: JSON.stringify({ ...request, stream: true }), headers: { "content-type": "application/json" }, signal });
    if (!response.ok) throw new AgentryError(response.status, await response.json().catch(() => null));
    const runId = response.headers.get("x-agentry-run-id");
    if (runId === null) throw new Error("the server did not name the run (x-agentry-run-id)");
    return { runId, events: this.followRun(runId, { first: response, signal }) };
  }

  /**
   * A run's events from after `lastEventId` (0: all) to its end. When the
   * connection drops, it reconnects with `Last-Event-ID` (up to `retries`
   * times in a row), so no event is lost or repeated.
   */
  async *runEvents(runId: string, { lastEventId = 0, retries = 5, signal }: { lastEventId?: number; retries?: number; signal?: AbortSignal } = {}): AsyncGenerator<{ id: number; event: RunEvent }> {
    yield* this.followRun(runId, { lastEventId, retries, signal });
  }

  private async *followRun(runId: string, options: { first?: Response; lastEventId?: number; retries?: number; signal?: AbortSignal }): AsyncGenerator<{ id: number; event: RunEvent }> {
    let last = options.lastEventId ?? 0;
    let failures = 0;
    let response = options.first;
    for (;;) {
      try {
        response ??= await this.fetch(`/api/v1/runs/${encodeURIComponent(runId)}/events`, { headers: { "last-event-id": String(last), accept: "text/event-stream" }, signal: options.signal });
        if (!response.ok) throw new AgentryError(response.status, await response.json().catch(() => null));
        for await (const frame of serverSentEvents(response)) {
          if (frame.id === undefined || frame.data === "") continue;
          const id = Number(frame.id);
          if (!Number.isSafeInteger(id)) throw new AgentryError(502, { error: { message: `run ${runId} sent an event id that is not a number: ${frame.id}`, code: "bad_event" } });
          if (id <= last) continue;
          let event: RunEvent;
          try {
            event = JSON.parse(frame.data) as RunEvent;
          } catch {
            throw new AgentryError(502, { error: { message: `run ${runId} sent event ${id} that is not JSON`, code: "bad_event" } });
          }
          last = id;
          failures = 0;
          yield { id, event };
          if (FINAL_EVENTS.has(event.type)) return;
        }
        if (++failures > (options.retries ?? 5)) throw new Error(`the event stream of run ${runId} keeps ending before the run does`);
      } catch (error) {
        if (error instanceof AgentryError || options.signal?.aborted) throw error;
        if (++failures > (options.retries ?? 5)) throw error;
      }
      response = undefined;
      await backoff(failures, options.signal);
    }
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = {};
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    if (this.options.tenant !== undefined) headers["x-agentry-tenant"] = this.options.tenant;
    return headers;
  }

  private fetch(path: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(this.headers())) headers.set(name, value);
    return (this.options.fetch ?? globalThis.fetch)(`${this.options.baseUrl}${path}`, { ...init, headers });
  }
}

/** Wait before reconnect number `failures`: doubling, capped, with jitter. */
function backoff(failures: number, signal?: AbortSignal): Promise<void> {
  const ms = Math.min(LAST_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

async function json(response: Response): Promise<unknown> {
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new AgentryError(response.status, body);
  return body;
}

/** The events of a `text/event-stream` body. */
async function* serverSentEvents(response: Response): AsyncGenerator<EventSourceMessage> {
  if (response.body === null) return;
  const events = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  yield* events as unknown as AsyncIterable<EventSourceMessage>;
}
