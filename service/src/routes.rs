//! The HTTP surface: `app(state)` is the whole service, testable without a socket.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{
    CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade, close_code,
};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::watch;

use crate::db::{self, Db};

/// `/messages` returns this many messages when no `limit` is given, and at most `MAX_LIMIT`.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Turns true when the server starts shutting down, so websockets can say goodbye.
    pub shutdown: watch::Receiver<bool>,
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/hello", get(hello))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages", get(messages))
        .route("/ws", get(ws))
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
        .call(move |conn| db::latest_messages(conn, limit))
        .await
    {
        Ok(list) => Json(list).into_response(),
        Err(e) => internal_error(e),
    }
}

async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| echo(socket, state))
}

/// Echoes every text message after storing it. Binary frames are refused (close 1003): the
/// log holds text. On shutdown the peer gets a 1001 "going away" close instead of a reset.
async fn echo(mut socket: WebSocket, state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let frame = tokio::select! {
            frame = socket.recv() => frame,
            () = stopping(&mut shutdown) => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                return;
            }
        };
        match frame {
            Some(Ok(WsMessage::Text(text))) => {
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
            // Pings are answered by the library; a close or an error ends the session.
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return,
        }
    }
}

async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // An error means the server is gone, which is a shutdown too.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

fn close(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn internal_error(e: anyhow::Error) -> Response {
    tracing::error!("{e:#}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
