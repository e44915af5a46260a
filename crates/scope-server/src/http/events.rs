//! `GET /api/v1/events`: Server-Sent Events of the caller's organization
//! (SPEC §9; the wire format is in docs/EVENTS.md). The stream itself lives
//! in `service::events`; this maps its items to SSE fields.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{cookie, ApiQuery};
use crate::error::AppError;
use crate::service::events::{self, Credential, Item};
use crate::service::{sessions, App, Principal};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// For clients that cannot set `Last-Event-ID` (the header wins).
    last_event_id: Option<String>,
}

/// How the caller authenticated (the `Principal` extractor checked it).
fn credential(headers: &HeaderMap) -> Result<Credential, AppError> {
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let h = h.to_str().map_err(|_| AppError::Unauthorized)?;
        let (_, token) = h.split_once(' ').ok_or(AppError::Unauthorized)?;
        return Ok(Credential::Bearer(token.trim().to_owned()));
    }
    cookie(headers, sessions::COOKIE).map(Credential::Session).ok_or(AppError::Unauthorized)
}

fn control(name: &str, org: scope_domain::OrgId, position: i64) -> Event {
    let data = serde_json::json!({
        "type": name,
        "org_id": org.to_string(),
        "at": crate::views::ts(crate::runtime::now_ms()),
    });
    Event::default().event(name).id(position.to_string()).retry(Duration::from_secs(1)).data(data.to_string())
}

fn sse(item: Item) -> Event {
    match item {
        Item::Ready { org, position } => control("ready", org, position),
        Item::Resync { org, position } => control("resync", org, position),
        Item::Event(e) => Event::default().event(&e.event_type).id(e.seq.to_string()).data(&e.data),
        Item::Heartbeat => Event::default().comment("heartbeat"),
    }
}

pub async fn stream(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiQuery(q): ApiQuery<Params>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let credential = credential(&headers)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str().map_err(|_| AppError::from(scope_domain::DomainError::bad_request("invalid Last-Event-ID")))?,
        ),
        None => q.last_event_id.as_deref(),
    };
    let resume = resume.map(events::parse_position).transpose()?;
    let stream = events::open(app, &p, credential, resume).await?;
    let items = futures_util::stream::unfold(stream, |mut s| async move {
        let item = s.next().await?;
        Some((Ok::<_, Infallible>(sse(item)), s))
    });
    let mut resp = Sse::new(items).into_response();
    // Proxies that buffer (nginx) would hold events back.
    resp.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}
