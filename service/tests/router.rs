//! Handlers through the router, without a socket.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use rusqlite::Connection;
use service::config::Limits;
use service::db::{self, Db};
use service::{AppState, Phase, app};
use tower::ServiceExt;

fn state_in(phase: Phase, limits: Limits) -> AppState {
    let mut conn = Connection::open_in_memory().unwrap();
    db::migrations().to_latest(&mut conn).unwrap();
    db::insert_message(&conn, "first").unwrap();
    db::insert_message(&conn, "second").unwrap();
    let (_tx, phase) = tokio::sync::watch::channel(phase);
    AppState::new(Db::new(conn), limits, phase)
}

fn state() -> AppState {
    state_in(Phase::Serving, Limits::default())
}

async fn send(state: AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(uri: &str) -> (StatusCode, String) {
    send(state(), Request::get(uri).body(Body::empty()).unwrap()).await
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).body(body.into()).unwrap()
}

#[tokio::test]
async fn hello_says_hello() {
    assert_eq!(get("/hello").await, (StatusCode::OK, "hello".into()));
}

#[tokio::test]
async fn probes_answer() {
    assert_eq!(get("/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(get("/readyz").await, (StatusCode::OK, "ready".into()));
}

#[tokio::test]
async fn home_page_opens_the_websocket() {
    let (status, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("new WebSocket("), "{body}");
    assert!(body.contains("/ws`"), "{body}");
}

#[tokio::test]
async fn messages_are_listed_newest_first_with_a_limit() {
    let (status, body) = get("/messages?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["body"], "second");
    assert_eq!(list[0]["id"], 2);
    assert!(list[0]["received_at"].as_str().unwrap().ends_with('Z'));

    let (_, body) = get("/messages").await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_limits_are_refused() {
    for uri in [
        "/messages?limit=0",
        "/messages?limit=abc",
        "/messages?limit=1001",
    ] {
        let (status, body) = get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body, "limit must be a whole number from 1 to 1000", "{uri}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    assert_eq!(get("/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn readyz_is_503_once_shutting_down() {
    for phase in [Phase::Draining, Phase::Stopping] {
        let state = state_in(phase, Limits::default());
        let request = Request::get("/readyz").body(Body::empty()).unwrap();
        let (status, body) = send(state, request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{phase:?}");
        assert_eq!(body, "shutting down");
    }
}

#[tokio::test]
async fn posted_messages_are_stored_and_listed() {
    let state = state();
    let (status, body) = send(state.clone(), post("/messages", "posted")).await;
    assert_eq!(status, StatusCode::CREATED);
    let stored: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["body"], "posted");
    assert_eq!(stored["id"], 3);
    let request = Request::get("/messages?limit=1")
        .body(Body::empty())
        .unwrap();
    let (_, body) = send(state, request).await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0], stored);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let limits = Limits {
        max_body_bytes: 8,
        ..Limits::default()
    };
    let (status, _) = send(
        state_in(Phase::Serving, limits),
        post("/messages", "12345678"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "exactly the limit is accepted");
    let (status, body) = send(
        state_in(Phase::Serving, limits),
        post("/messages", "123456789"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, "the request body is over the limit of 8 bytes");
    let (status, _) = send(state(), post("/messages", vec![0xff, 0xfe])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not UTF-8");
}
