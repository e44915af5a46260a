//! Settings > API Keys: the list (keyset pagination, status filter), Create
//! API Key with the one-time result, a key's detail with its usage chart,
//! Revoke and Rotate with confirmation.

use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use scope_domain::{DomainError, Role};
use scope_store::{ApiKeyRow, KeyStatus, UsageDay};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::error::{form_failure, see_other, WebError};
use super::extract::{non_empty, Ctx, NoFields, SessionForm, WebPath, WebQuery};
use super::layout::{self, badge, csrf_input, form_error, time_exact, time_rel, Section};
use crate::error::AppError;
use crate::runtime::now_ms;
use crate::service::api_keys::{self, review_reasons, CreatedKey, NewKey};
use crate::service::page;

const PAGE_SIZE: u32 = 50;
const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

#[derive(Deserialize, Default)]
pub struct ListParams {
    status: Option<String>,
    cursor: Option<String>,
}

fn parse_status(s: Option<&str>) -> Result<Option<KeyStatus>, AppError> {
    match s {
        None | Some("") | Some("all") => Ok(None),
        Some(s) => KeyStatus::parse(s)
            .map(Some)
            .ok_or_else(|| DomainError::bad_request("status must be active, revoked or expired").into()),
    }
}

fn status_of(k: &ApiKeyRow, now: i64) -> &'static str {
    k.status_at(now).as_str()
}

pub async fn list(ctx: Ctx, WebQuery(q): WebQuery<ListParams>) -> Result<Response, WebError> {
    let status = parse_status(q.status.as_deref())?;
    let pg = api_keys::list(&ctx.app, ctx.p(), status, page(Some(PAGE_SIZE), non_empty(q.cursor))?).await?;
    let now = now_ms();
    let current = status.map_or("all", KeyStatus::as_str);
    let body = html! {
        div.title-row {
            h1 { "API Keys" }
            a.button.primary href="/settings/api-keys/new" { "Create API Key" }
        }
        p.muted { "Applications exchange an API key (organization ID, key ID and secret) for short-lived tokens. Revoking a key stops it at once, including tokens already issued." }
        nav.filters aria-label="Filter by status" {
            @for (value, label) in [("all", "All"), ("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")] {
                a href={ "/settings/api-keys?status=" (value) } aria-current=[(current == value).then_some("page")] { (label) }
            }
        }
        div.table-wrap {
            table.keys {
                thead { tr {
                    th { "Name" } th { "Key ID" } th { "Environment" } th { "Role" } th { "Status" }
                    th { "Created" } th { "Last used" } th { "Expires" } th { span.sr-only { "Actions" } }
                } }
                tbody {
                    @for k in &pg.data {
                        @let st = status_of(k, now);
                        tr data-key-id=(k.key_id) data-status=(st) {
                            td { a href={ "/settings/api-keys/" (k.key_id) } { (k.name) } }
                            td { code { (k.key_id) } }
                            td { (k.environment) }
                            td { (k.role.as_str()) }
                            td { (badge(st)) }
                            td { (time_rel(k.created_at, now)) }
                            td.last-used { @match k.last_used_at { Some(t) => (time_rel(t, now)), None => span.muted { "Never" } } }
                            td { @match k.expires_at { Some(t) => (time_rel(t, now)), None => span.muted { "Never" } } }
                            td.actions {
                                @if st == "active" {
                                    a href={ "/settings/api-keys/" (k.key_id) "/rotate" } { "Rotate" }
                                    a.danger href={ "/settings/api-keys/" (k.key_id) "/revoke" } { "Revoke" }
                                }
                            }
                        }
                    }
                    @if pg.data.is_empty() {
                        tr { td colspan="9" .muted { "No API keys." } }
                    }
                }
            }
        }
        @if let Some(c) = &pg.next_cursor {
            p.pager { a href={ "/settings/api-keys?status=" (current) "&cursor=" (c) } rel="next" { "Next page" } }
        }
    };
    Ok(layout::page(&ctx, Section::ApiKeys, "API Keys", body).into_response())
}

#[derive(Deserialize, Default, Clone)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    environment: Option<String>,
    role: Option<String>,
    expires_at: Option<String>,
}

fn new_key_form(ctx: &Ctx, f: &CreateForm, error: Option<&str>) -> Markup {
    let env = f.environment.clone().unwrap_or_else(|| "production".into());
    let role = f.role.clone().unwrap_or_else(|| "viewer".into());
    html! {
        section.narrow {
            h1 { "Create API Key" }
            (form_error(error))
            form method="post" action="/settings/api-keys" {
                (csrf_input(ctx))
                label for="name" { "Name" }
                input #name type="text" name="name" value=(f.name) maxlength="128" required autofocus placeholder="checkout-service";
                p.hint { "A descriptive name: which application or deployment uses it." }
                label for="environment" { "Environment" }
                select #environment name="environment" {
                    @for e in ENVIRONMENTS { option value=(e) selected[env == e] { (e) } }
                }
                label for="role" { "Role" }
                select #role name="role" {
                    @for r in [Role::Viewer, Role::Editor, Role::Admin] {
                        @if ctx.p().role.allows(r) {
                            option value=(r.as_str()) selected[role == r.as_str()] { (r.as_str()) }
                        }
                    }
                }
                p.hint { "viewer reads prompts; editor also changes them; admin also manages keys and users." }
                label for="expires_at" { "Expires" }
                input #expires_at type="datetime-local" name="expires_at" value=(f.expires_at.clone().unwrap_or_default());
                p.hint { "Optional, UTC. Leave empty for a key that does not expire." }
                div.buttons {
                    button.primary type="submit" { "Create API Key" }
                    a.button href="/settings/api-keys" { "Cancel" }
                }
            }
        }
    }
}

pub async fn new_form(ctx: Ctx) -> Result<Response, WebError> {
    ctx.p().require(Role::Admin)?;
    Ok(layout::page(&ctx, Section::ApiKeys, "Create API Key", new_key_form(&ctx, &CreateForm::default(), None))
        .into_response())
}

/// `YYYY-MM-DDTHH:MM[:SS]` (what `datetime-local` sends), read as UTC, or
/// RFC 3339.
pub fn parse_form_time(field: &str, s: &str) -> Result<i64, AppError> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(d.timestamp_millis());
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]
        .iter()
        .find_map(|f| {
            chrono::NaiveDateTime::parse_from_str(s, f)
                .ok()
                .or_else(|| chrono::NaiveDate::parse_from_str(s, f).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        })
        .map(|d| d.and_utc().timestamp_millis())
        .ok_or_else(|| DomainError::bad_request(format!("{field} must be a date and time (UTC)")).into())
}

fn parse_role(s: Option<&str>) -> Result<Option<Role>, AppError> {
    s.filter(|s| !s.is_empty()).map(str::parse).transpose().map_err(AppError::from)
}

/// The one-time display of a key's credentials.
fn secret_block(ctx: &Ctx, c: &CreatedKey) -> Markup {
    let org = ctx.p().org.to_string();
    let key = c.key.key_id.to_string();
    let secret = c.secret.expose_secret();
    html! {
        div.secret-result #secret-result data-replace-url="/settings/api-keys" {
            p.warning role="alert" { strong { "This secret will not be shown again." } " Copy it now and store it in your secret manager. Leaving this page discards it." }
            dl.credentials {
                dt { "Organization ID" }
                dd { code #org-id { (org) } button.copy type="button" data-copy="org-id" { "Copy" } }
                dt { "API Key ID" }
                dd { code #key-id { (key) } button.copy type="button" data-copy="key-id" { "Copy" } }
                dt { "API Secret" }
                dd { code #key-secret { (secret) } button.copy type="button" data-copy="key-secret" { "Copy" } }
            }
            p { "For the SDKs, as environment variables:" }
            div.env {
                pre #env-block { "export SCOPE_ORG_ID=" (org) " SCOPE_API_KEY=" (key) " SCOPE_API_SECRET=" (secret) }
                button.copy type="button" data-copy="env-block" { "Copy" }
            }
        }
    }
}

pub async fn create(SessionForm { ctx, form: f }: SessionForm<CreateForm>) -> Result<Response, WebError> {
    let result = async {
        let expires_at = non_empty(f.expires_at.clone()).map(|s| parse_form_time("Expires", &s)).transpose()?;
        let req = NewKey {
            name: f.name.trim().to_owned(),
            environment: non_empty(f.environment.clone()),
            role: parse_role(f.role.as_deref())?,
            expires_at,
        };
        api_keys::create(&ctx.app, ctx.p(), req).await
    }
    .await;
    match result {
        Ok(created) => {
            let body = html! {
                h1 { "API key created" }
                p { "Key " strong { (created.key.name) } " (" (created.key.environment) ", " (created.key.role.as_str()) ") is active." }
                (secret_block(&ctx, &created))
                p { a.button href="/settings/api-keys" { "Done" } }
            };
            Ok(layout::page(&ctx, Section::ApiKeys, "API key created", body).into_response())
        }
        Err(e) => {
            let (status, msg) = form_failure(e)?;
            let page = layout::page(&ctx, Section::ApiKeys, "Create API Key", new_key_form(&ctx, &f, Some(&msg)));
            Ok((status, page).into_response())
        }
    }
}

/// Token exchanges per day as bars, drawn server-side (no chart library).
pub fn usage_chart(days: &[UsageDay]) -> Markup {
    let (w, h, top, bottom) = (600.0_f64, 180.0_f64, 16.0_f64, 24.0_f64);
    let max = days.iter().map(|d| d.count).max().unwrap_or(0).max(1) as f64;
    let slot = w / days.len().max(1) as f64;
    let total: u64 = days.iter().map(|d| d.count).sum();
    html! {
        figure.chart {
            svg #usage-chart viewBox={ "0 0 " (w) " " (h) } role="img" aria-label={ "Token exchanges per day over the last " (days.len()) " days: " (total) " in total" } {
                line.axis x1="0" y1=(h - bottom) x2=(w) y2=(h - bottom) {}
                text.label x="0" y="12" { "max " (max as u64) }
                @for (i, d) in days.iter().enumerate() {
                    @let bh = (d.count as f64 / max) * (h - top - bottom);
                    rect.bar x=(format!("{:.1}", i as f64 * slot + 2.0)) y=(format!("{:.1}", h - bottom - bh)) width=(format!("{:.1}", (slot - 4.0).max(1.0))) height=(format!("{:.1}", bh)) {
                        title { (d.day) ": " (d.count) " exchanges" }
                    }
                }
                @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                    text.label x="0" y=(h - 6.0) { (first.day) }
                    text.label x=(w) y=(h - 6.0) text-anchor="end" { (last.day) }
                }
            }
            figcaption { (total) " token exchanges in the last " (days.len()) " days" }
        }
    }
}

pub async fn detail(ctx: Ctx, WebPath(key_id): WebPath<String>) -> Result<Response, WebError> {
    let k = api_keys::get(&ctx.app, ctx.p(), &key_id).await?;
    let (_, days) = api_keys::usage(&ctx.app, ctx.p(), &key_id, 30).await?;
    let now = now_ms();
    let st = status_of(&k, now);
    let flags = review_reasons(&k, now);
    let body = html! {
        p.crumbs { a href="/settings/api-keys" { "API Keys" } " / " (k.name) }
        div.title-row {
            h1 { (k.name) " " (badge(st)) }
            @if st == "active" {
                div.buttons {
                    a.button href={ "/settings/api-keys/" (k.key_id) "/rotate" } { "Rotate" }
                    a.button.danger href={ "/settings/api-keys/" (k.key_id) "/revoke" } { "Revoke" }
                }
            }
        }
        @for f in &flags {
            p.warning.flag data-flag=(f) {
                @match *f {
                    "unused_90_days" => "Unused for 90 days: revoke it if nothing needs it.",
                    _ => "Older than 90 days: consider rotating it.",
                }
            }
        }
        dl.fields {
            dt { "Key ID" } dd { code { (k.key_id) } }
            dt { "Environment" } dd { (k.environment) }
            dt { "Role" } dd { (k.role.as_str()) }
            dt { "Created" } dd { (time_exact(k.created_at)) " by " code { (k.created_by) } }
            dt { "Last used" } dd { @match k.last_used_at { Some(t) => (time_rel(t, now)), None => "Never" } }
            dt { "Expires" } dd { @match k.expires_at { Some(t) => (time_exact(t)), None => "Never" } }
            @if let Some(r) = k.revoked_at { dt { "Revoked" } dd { (time_exact(r)) " by " code { (k.revoked_by.clone().unwrap_or_default()) } } }
            @if let Some(prev) = k.rotated_from { dt { "Rotated from" } dd { a href={ "/settings/api-keys/" (prev) } { code { (prev) } } } }
        }
        h2 { "Usage" }
        (usage_chart(&days))
    };
    Ok(layout::page(&ctx, Section::ApiKeys, &k.name, body).into_response())
}

pub async fn revoke_confirm(ctx: Ctx, WebPath(key_id): WebPath<String>) -> Result<Response, WebError> {
    let k = api_keys::get(&ctx.app, ctx.p(), &key_id).await?;
    let body = html! {
        section.narrow {
            h1 { "Revoke API key" }
            p.confirm { "Revoke API key “" (k.name) "” (" code { (k.key_id) } ")?" }
            p { "Applications using it stop working at once, including tokens already issued. This cannot be undone." }
            form method="post" action={ "/settings/api-keys/" (k.key_id) "/revoke" } {
                (csrf_input(&ctx))
                div.buttons {
                    button.danger type="submit" { "Revoke" }
                    a.button href="/settings/api-keys" { "Cancel" }
                }
            }
        }
    };
    Ok(layout::page(&ctx, Section::ApiKeys, "Revoke API key", body).into_response())
}

pub async fn revoke(
    WebPath(key_id): WebPath<String>,
    SessionForm { ctx, .. }: SessionForm<NoFields>,
) -> Result<Response, WebError> {
    api_keys::revoke(&ctx.app, ctx.p(), &key_id).await?;
    Ok(see_other("/settings/api-keys"))
}

pub async fn rotate_confirm(ctx: Ctx, WebPath(key_id): WebPath<String>) -> Result<Response, WebError> {
    let k = api_keys::get(&ctx.app, ctx.p(), &key_id).await?;
    let body = html! {
        section.narrow {
            h1 { "Rotate API key" }
            p.confirm { "Rotate API key “" (k.name) "” (" code { (k.key_id) } ")?" }
            p { "A new key with the same name, environment and role is created; this one keeps working for the grace period, so deployments can switch without downtime." }
            form method="post" action={ "/settings/api-keys/" (k.key_id) "/rotate" } {
                (csrf_input(&ctx))
                label for="grace_hours" { "Grace period (hours)" }
                input #grace_hours type="number" name="grace_hours" value="24" min="0" max="8760" required;
                div.buttons {
                    button.primary type="submit" { "Rotate" }
                    a.button href="/settings/api-keys" { "Cancel" }
                }
            }
        }
    };
    Ok(layout::page(&ctx, Section::ApiKeys, "Rotate API key", body).into_response())
}

#[derive(Deserialize)]
pub struct RotateForm {
    grace_hours: Option<String>,
}

pub async fn rotate(
    WebPath(key_id): WebPath<String>,
    SessionForm { ctx, form }: SessionForm<RotateForm>,
) -> Result<Response, WebError> {
    let hours = match non_empty(form.grace_hours) {
        None => None,
        Some(h) => Some(h.parse::<u64>().map_err(|_| {
            AppError::from(DomainError::bad_request("the grace period must be a whole number of hours"))
        })?),
    };
    let (old, created) = api_keys::rotate(&ctx.app, ctx.p(), &key_id, hours.map(|h| h.saturating_mul(3600))).await?;
    let body = html! {
        h1 { "API key rotated" }
        p { "New key " strong { (created.key.name) } " (" (created.key.environment) ", " (created.key.role.as_str()) ") is active." }
        @if let Some(end) = old.expires_at {
            p.notice { "The previous key stops working at " (time_exact(end)) " (" code { (old.key_id) } ")." }
        }
        (secret_block(&ctx, &created))
        p { a.button href="/settings/api-keys" { "Done" } }
    };
    Ok(layout::page(&ctx, Section::ApiKeys, "API key rotated", body).into_response())
}
