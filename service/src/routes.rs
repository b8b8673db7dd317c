//! The HTTP surface: `app(state)` is the whole service, testable without a socket.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{QueryRejection, StringRejection};
use axum::extract::ws::{
    CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade, close_code,
};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::config::Limits;
use crate::db::{self, Db};
use crate::json;

/// `/messages` returns this many messages when no `limit` is given, and at most `MAX_LIMIT`.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 1000;

/// Where the server is in its life; handlers read it to answer `/readyz` and to close
/// websockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// After SIGTERM: still answering, but not ready, and closing connections as they go.
    Draining,
    /// No longer accepting: in-flight requests finish, websockets are told to go away.
    Stopping,
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub phase: watch::Receiver<Phase>,
    pub limits: Limits,
    /// One permit per open websocket (`MAX_WEBSOCKETS`).
    websockets: Arc<Semaphore>,
}

impl AppState {
    pub fn new(db: Db, limits: Limits, phase: watch::Receiver<Phase>) -> AppState {
        AppState {
            db,
            phase,
            limits,
            websockets: Arc::new(Semaphore::new(limits.max_websockets)),
        }
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/hello", get(hello))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages", get(messages).post(post_message))
        .route("/ws", get(ws))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}

async fn home() -> Html<&'static str> {
    Html(include_str!("home.html"))
}

async fn hello() -> &'static str {
    "hello"
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if *state.phase.borrow() != Phase::Serving {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.db.call(db::ping).await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!("readiness check failed: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    limit: Option<u32>,
}

async fn messages(
    State(state): State<AppState>,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Response {
    // A malformed query (`limit=abc`) and an out-of-range one get the same answer.
    let limit = query.map(|Query(q)| q.limit.unwrap_or(DEFAULT_LIMIT));
    let Some(limit) = limit.ok().filter(|l| (1..=MAX_LIMIT).contains(l)) else {
        let msg = format!("limit must be a whole number from 1 to {MAX_LIMIT}");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    };
    match state
        .db
        .read(move |conn| db::latest_messages(conn, limit))
        .await
    {
        Ok(list) => {
            // Bodies, timestamps, and about 40 bytes of keys and punctuation each.
            let size = list.iter().map(|m| m.body.len() + m.received_at.len() + 40);
            json::response(StatusCode::OK, &list, size.sum::<usize>() + 2)
        }
        Err(e) => internal_error(e),
    }
}

/// Stores a text body like a websocket message: 201 with the stored message.
async fn post_message(
    State(state): State<AppState>,
    body: Result<String, StringRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.limits.max_body_bytes;
            let msg = format!("the request body is over the limit of {limit} bytes");
            return (StatusCode::PAYLOAD_TOO_LARGE, msg).into_response();
        }
        Err(rejection) => return rejection.into_response(),
    };
    match state
        .db
        .call(move |conn| db::insert_message(conn, &body))
        .await
    {
        Ok(message) => (StatusCode::CREATED, Json(message)).into_response(),
        Err(e) => internal_error(e),
    }
}

async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(permit) = state.websockets.clone().try_acquire_owned() else {
        let msg = "too many open websockets, try again later";
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    };
    let limit = state.limits.max_message_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            echo(socket, state).await;
            drop(permit);
        })
}

/// Echoes every text message after storing it. Binary frames are refused (close 1003): the
/// log holds text; so is a message over `MAX_MESSAGE_BYTES` (close 1009, before it is read
/// whole). A client that sends no message for `WS_IDLE_TIMEOUT_SECONDS` is closed with
/// 1001; the server pings every `WS_PING_SECONDS`, and a ping without a pong within
/// `WS_PONG_TIMEOUT_SECONDS` closes with 1008. When the server stops the peer gets a 1001
/// "going away" close instead of a reset.
async fn echo(mut socket: WebSocket, state: AppState) {
    let limits = state.limits;
    let mut phase = state.phase.clone();
    let mut idle_until = Instant::now() + limits.ws_idle_timeout;
    let mut next_ping = Instant::now() + limits.ws_ping;
    let mut pong_until: Option<Instant> = None;
    loop {
        let frame = tokio::select! {
            frame = socket.recv() => frame,
            () = tokio::time::sleep_until(idle_until) => {
                let secs = limits.ws_idle_timeout.as_secs_f64();
                let reason = format!("idle: no message for {secs} s");
                let _ = socket.send(close(close_code::AWAY, reason)).await;
                return;
            }
            () = tokio::time::sleep_until(pong_until.unwrap_or(next_ping)) => {
                if pong_until.is_some() {
                    let secs = limits.ws_pong_timeout.as_secs_f64();
                    let reason = format!("no pong within {secs} s");
                    let _ = socket.send(close(close_code::POLICY, reason)).await;
                    return;
                }
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
                pong_until = Some(Instant::now() + limits.ws_pong_timeout);
                next_ping = Instant::now() + limits.ws_ping;
                continue;
            }
            () = stopping(&mut phase) => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                return;
            }
        };
        match frame {
            Some(Ok(WsMessage::Text(text))) => {
                idle_until = Instant::now() + limits.ws_idle_timeout;
                let body = text.to_string();
                if let Err(e) = state
                    .db
                    .call(move |conn| db::insert_message(conn, &body))
                    .await
                {
                    tracing::error!("storing a websocket message failed: {e:#}");
                    let _ = socket
                        .send(close(close_code::ERROR, "storage failed"))
                        .await;
                    return;
                }
                if socket.send(WsMessage::Text(text)).await.is_err() {
                    return;
                }
            }
            Some(Ok(WsMessage::Binary(_))) => {
                let _ = socket
                    .send(close(close_code::UNSUPPORTED, "text frames only"))
                    .await;
                return;
            }
            Some(Err(e)) if too_big(&e) => {
                let limit = limits.max_message_bytes;
                let reason = format!("message too big: the limit is {limit} bytes");
                let _ = socket.send(close(close_code::SIZE, reason)).await;
                return;
            }
            Some(Ok(WsMessage::Pong(_))) => pong_until = None,
            // The client's pings are answered by the library; they do not count as activity.
            Some(Ok(WsMessage::Ping(_))) => {}
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return,
        }
    }
}

fn too_big(e: &axum::Error) -> bool {
    use std::error::Error;
    matches!(
        e.source()
            .and_then(|e| e.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Resolves when the server enters `Phase::Stopping`.
pub(crate) async fn stopping(phase: &mut watch::Receiver<Phase>) {
    // An error means the server is gone, which is a stop too.
    let _ = phase.wait_for(|p| *p == Phase::Stopping).await;
}

fn close(code: u16, reason: impl Into<String>) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into().into(),
    }))
}

fn internal_error(e: anyhow::Error) -> Response {
    tracing::error!("{e:#}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
