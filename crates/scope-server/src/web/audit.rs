//! The audit log page: filters by actor, action, target and time; newest
//! first.

use axum::response::{IntoResponse, Response};
use maud::html;

use super::error::{urlencode, WebError};
use super::extract::{Ctx, WebQuery};
use super::layout::{self, time_exact, Section};
use crate::http::meta::AuditParams;
use crate::service::audit;

pub async fn list(ctx: Ctx, WebQuery(q): WebQuery<AuditParams>) -> Result<Response, WebError> {
    let filters = [
        ("actor", "Actor", q.actor.clone().unwrap_or_default(), "usr_… / key_… / system"),
        ("action", "Action", q.action.clone().unwrap_or_default(), "user.signed_in, or user. for all"),
        ("target", "Target", q.target.clone().unwrap_or_default(), "an id"),
        ("since", "Since", q.since.clone().unwrap_or_default(), "2026-01-01T00:00:00Z"),
        ("until", "Until", q.until.clone().unwrap_or_default(), "2026-12-31T00:00:00Z"),
    ];
    let pg = audit::list(&ctx.app, ctx.p(), q.into_query()?).await?;
    let next = pg.next_cursor.as_ref().map(|c| {
        let mut url = String::from("/audit?");
        for (name, _, value, _) in &filters {
            url.push_str(&format!("{name}={}&", urlencode(value)));
        }
        url.push_str(&format!("cursor={c}"));
        url
    });
    let body = html! {
        h1 { "Audit log" }
        form.filters-form method="get" action="/audit" {
            @for (name, label, value, hint) in &filters {
                div {
                    label for=(name) { (label) }
                    input id=(name) type="text" name=(name) value=(value) placeholder=(hint);
                }
            }
            button type="submit" { "Filter" }
        }
        div.table-wrap {
            table #audit {
                thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "Details" } } }
                tbody {
                    @for e in &pg.data {
                        tr data-action=(e.action) {
                            td { (time_exact(e.at)) }
                            td { a href={ "/audit?actor=" (urlencode(&e.actor)) } { code { (e.actor) } } }
                            td { a href={ "/audit?action=" (urlencode(&e.action)) } { (e.action) } }
                            td { a href={ "/audit?target=" (urlencode(&e.target)) } { code { (e.target) } } }
                            td.small { code { (e.details.to_string()) } }
                        }
                    }
                    @if pg.data.is_empty() { tr { td colspan="5" .muted { "No events." } } }
                }
            }
        }
        @if let Some(n) = next { p.pager { a rel="next" href=(n) { "Next page" } } }
    };
    Ok(layout::page(&ctx, Section::Audit, "Audit log", body).into_response())
}
