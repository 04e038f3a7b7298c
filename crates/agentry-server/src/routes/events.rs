//! The tenant's event stream (`GET /api/v1/events`): the events the caller
//! may read, live, as a WebSocket (a text frame of JSON per event) when the
//! request asks to upgrade, else as server-sent events (each with its `seq`
//! as `id:` and its type as `event:`). Resumes after `Last-Event-ID` or
//! `?after=` within the log's retention; `?types=a,b` keeps only those
//! types. What the caller may read is decided by `Events::follow`.

use std::convert::Infallible;
use std::time::Duration;

use agentry_core::TenantAccess;
use agentry_core::events::EventStream;
use agentry_types::EventType;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures::StreamExt;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// How often an idle stream shows it is alive (an SSE comment, a WebSocket ping).
const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(events))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Resume after this event (`seq`); the `Last-Event-ID` header wins.
    after: Option<i64>,
    /// Only these event types (comma-separated).
    types: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::bad_request("'Last-Event-ID' must be the seq of an event", "Last-Event-ID"))?,
        ),
        None => match query.after {
            Some(after) if after < 0 => return Err(ApiError::bad_request("'after' must be the seq of an event (0 or more)", "after")),
            after => after,
        },
    };
    let types = match query.types.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|name| name.trim().parse::<EventType>().map_err(|_| ApiError::bad_request(format!("unknown event type '{}'; see docs/events.md", name.trim()), "types")))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let stream = state.events.follow(state.identity.clone(), access, after, types);
    Ok(match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| pump(socket, stream)),
        Err(_) => sse(stream),
    })
}

fn sse(stream: EventStream) -> Response {
    let frames = stream.map(|event| {
        let frame = Event::default().id(event.seq.to_string()).event(event.event_type.as_str());
        Ok::<_, Infallible>(frame.json_data(&event).unwrap_or_else(|_| Event::default().id(event.seq.to_string()).data("{}")))
    });
    Sse::new(frames).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response()
}

/// Send each event as a text frame until either side closes; ping while idle.
async fn pump(mut socket: WebSocket, mut stream: EventStream) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(event) => {
                    let text = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}
