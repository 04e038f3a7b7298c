//! The lifecycle states of stored objects — documents and their versions,
//! ingestion jobs, summaries, agent runs and their tool calls, invoices,
//! invitations — each an enum with one string form (see `wire_enum!`),
//! shared by storage rows, core's views and the API.
//!
//! Must not: decide transitions (the services that own each object do).

use crate::wire_enum::wire_enum;

wire_enum! {
    /// Where a document (its latest version) or one version is in ingestion.
    DocumentStatus ("document status") {
        Queued => "queued": "Waiting for an ingestion worker.",
        Processing => "processing": "Being parsed, chunked and indexed.",
        Succeeded => "succeeded": "Searchable.",
        Failed => "failed": "Ingestion gave up; `error` says why.",
        Excluded => "excluded": "Ingested but kept out of search: it failed one of its collection's quality checks; `error` says which and why.",
    }
}

wire_enum! {
    /// Where a queued job is.
    JobStatus ("job status") {
        Queued => "queued": "Waiting to be claimed (also between retries).",
        Running => "running": "Claimed by a worker; its lease expires if the worker dies.",
        Succeeded => "succeeded": "Done.",
        Failed => "failed": "Failed for good (the input itself is at fault: it would fail again).",
        Dead => "dead": "Used all its attempts; `error` holds the last one. Can be retried.",
        Cancelled => "cancelled": "Cancelled before it finished.",
    }
}

wire_enum! {
    /// What a job does.
    JobKind ("job kind") {
        Index => "index": "Parse, chunk, embed and index a document version.",
        Summary => "summary": "Summarise a document version.",
        AgentRun => "agent_run": "Run an agent in the background (`background: true`).",
        Batch => "batch": "Answer the request lines of a batch (`/v1/batches`).",
        WebhookDelivery => "webhook_delivery": "Send one event to one webhook endpoint.",
        Schedule => "schedule": "Carry out one due time of a schedule (`/api/v1/schedules`): run its action.",
        BulkSubmit => "bulk_submit": "Submit the items of a native batch (`/api/v1/batches`) as runs or uploads.",
        Retention => "retention": "Delete what a tenant keeps past its retention settings (queued hourly by the platform).",
        Erasure => "erasure": "Erase one person's data from a tenant (`POST /api/v1/tenants/{tenant}/users/{id}/erase`).",
    }
}

wire_enum! {
    /// Where a batch (`/v1/batches`) is, in OpenAI's words.
    BatchStatus ("batch status") {
        Validating => "validating": "Accepted; waiting for a worker.",
        Failed => "failed": "Could not run (its input file is gone, or it failed for good); `errors` says why.",
        InProgress => "in_progress": "Its lines are being answered.",
        Finalizing => "finalizing": "Every line is answered; the output and error files are being written.",
        Completed => "completed": "Done: `output_file_id` and `error_file_id` hold the answers.",
        Expired => "expired": "Its completion window ended first; the lines answered by then are in its files.",
        Cancelling => "cancelling": "Cancel asked; lines in flight are finishing.",
        Cancelled => "cancelled": "Cancelled; the lines answered before are in its files.",
    }
}

wire_enum! {
    /// Where a version's summary is, when one was asked for.
    SummaryStatus ("summary status") {
        Queued => "queued": "Waiting for the summary job.",
        Succeeded => "succeeded": "`summary` holds it.",
        Failed => "failed": "`summary_error` says why.",
    }
}

wire_enum! {
    /// Where an agent run is.
    RunStatus ("run status") {
        Pending => "pending": "Accepted, not started.",
        Running => "running": "Started.",
        Succeeded => "succeeded": "Finished with an answer.",
        Failed => "failed": "Stopped by an error; `error` says which.",
        Cancelled => "cancelled": "Cancelled by its owner.",
    }
}

impl BatchStatus {
    /// Whether the batch has ended (and will not change again unless its job is retried).
    pub const fn is_ended(self) -> bool {
        matches!(self, BatchStatus::Failed | BatchStatus::Completed | BatchStatus::Expired | BatchStatus::Cancelled)
    }
}

impl RunStatus {
    /// Whether the run has ended (and will not change again).
    pub const fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

wire_enum! {
    /// How one tool call of a run went.
    ToolCallStatus ("tool call status") {
        Running => "running": "Called, no result yet (live events only).",
        Succeeded => "succeeded": "Returned a result.",
        Failed => "failed": "The tool failed; `result` says why.",
        Rejected => "rejected": "Not called: the arguments did not match the schema, or the tool is not allowed; `result` says why.",
    }
}

wire_enum! {
    /// Whether an invoice is settled.
    InvoiceStatus ("invoice status") {
        Open => "open": "Not paid yet; regenerating the period replaces it.",
        Paid => "paid": "Paid; kept as issued.",
    }
}

wire_enum! {
    /// Where an invitation is.
    InvitationStatus ("invitation status") {
        Pending => "pending": "Can be accepted.",
        Accepted => "accepted": "Used.",
        Revoked => "revoked": "Withdrawn by an administrator.",
        Expired => "expired": "Not accepted in time.",
    }
}

wire_enum! {
    /// What happened: the type of an event on the event stream and in webhook payloads (see docs/events.md).
    EventType ("event type") {
        RunCompleted => "run.completed": "An agent run finished with an answer.",
        RunFailed => "run.failed": "An agent run failed or was cancelled.",
        BatchCompleted => "batch.completed": "A batch answered all its lines; its output file is ready.",
        BatchFailed => "batch.failed": "A batch could not run.",
        BatchCancelled => "batch.cancelled": "A batch was cancelled.",
        DocumentIngested => "document.ingested": "A document version was parsed, chunked, embedded and indexed.",
        DocumentFailed => "document.failed": "A document version could not be indexed.",
        BudgetSoftLimitReached => "budget.soft_limit_reached": "Spending crossed a budget's soft limit.",
        BudgetExhausted => "budget.exhausted": "Spending reached a budget's limit: calls it covers are refused until its period ends.",
        ApiKeyExpiring => "api_key.expiring": "An API key expires within `events.api_key_expiry_notice_days`.",
        WebhookDisabled => "webhook.disabled": "A webhook endpoint was disabled after failing without a success for too long.",
        WebhookTest => "webhook.test": "A test event sent by hand (`POST /api/v1/webhooks/{id}/test`).",
        ScheduleFired => "schedule.fired": "A schedule fired: its action was carried out (or failed).",
        JobProgress => "job.progress": "A long job reported how far it is (at most once a second per job); sent to webhooks only when they name it.",
    }
}
