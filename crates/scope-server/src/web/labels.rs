//! Labels in the console (SPEC §9): the prompt page's **Labels** section and
//! release log (rendered by `prompts::detail` with [`section`]), and the
//! confirmation pages that move, roll back and remove a label, each posting a
//! CSRF-checked form like promotion does. Permissions (protected labels
//! included) are the service's.

use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use scope_domain::labels::{self as rules, LabelKind};
use scope_domain::{DomainError, Role};
use scope_store::{LabelMoveRow, VersionRow};
use serde::Deserialize;

use super::error::{see_other, urlencode, WebError};
use super::extract::{non_empty, Ctx, SessionForm, WebPath, WebQuery};
use super::layout::{self, badge, csrf_input, time_exact, time_rel, Section};
use crate::error::AppError;
use crate::runtime::now_ms;
use crate::service::labels::{self, MoveLabel, Target};
use crate::service::{page, prompts};

fn prompt_url(name: &str) -> String {
    format!("/prompts/{}", urlencode(name))
}

fn label_url(name: &str, label: &str) -> String {
    format!("{}/labels/{}", prompt_url(name), urlencode(label))
}

/// A label as a small chip.
pub fn chip(label: &str) -> Markup {
    html! { span.label data-label=(label) { (label) } }
}

/// The prompt page's Labels section: where each label points, the move
/// form for editors, and the release log.
pub fn section(ctx: &Ctx, name: &str, l: &labels::Labels, versions: &[VersionRow], history: &[LabelMoveRow]) -> Markup {
    let editor = ctx.p().role.allows(Role::Editor);
    let now = now_ms();
    html! {
        h2 { "Labels" }
        div.table-wrap {
            table #labels {
                thead { tr { th { "Label" } th { "Version" } th { "Moved" } th { "By" } @if editor { th { "" } } } }
                tbody {
                    @for x in &l.labels {
                        tr data-label=(x.label) data-version=(x.version) {
                            td { (chip(&x.label)) @if l.protected.contains(&x.label) { " " span.muted.small title="Only admins move it" { "protected" } } }
                            td { a href={ (prompt_url(name)) "?version=" (x.version_id) } { "v" (x.version) } }
                            td { (time_rel(x.moved_at, now)) }
                            td { code { (x.moved_by) } }
                            @if editor {
                                td.buttons {
                                    a.button href={ (label_url(name, &x.label)) "/rollback" } { "Roll back" }
                                    @if rules::kind(&x.label) != LabelKind::Production {
                                        " " a.button href={ (label_url(name, &x.label)) "/remove" } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                    @if l.labels.is_empty() { tr { td colspan="5" .muted { "No labels yet." } } }
                }
            }
        }
        p.hint { "latest is always the highest-numbered version. API keys whose environment is a label (staging, …) read that label through /production where the prompt has it." }
        @if editor && !versions.is_empty() {
            form.stack #move-label method="get" action={ (prompt_url(name)) "/move-label" } {
                h3 { "Move label" }
                label for="move-label-name" { "Label" }
                input #move-label-name type="text" name="label" list="known-labels" required pattern="[a-z0-9][a-z0-9_\\-]{0,63}" placeholder="staging";
                datalist #known-labels {
                    @for x in &l.labels { option value=(x.label) {} }
                }
                label for="move-label-version" { "Version" }
                select #move-label-version name="version" {
                    @for v in versions.iter().filter(|v| v.status != scope_domain::VersionStatus::Archived) {
                        option value=(v.version_id) { "v" (v.version) " (" (v.status.as_str()) ")" }
                    }
                }
                button type="submit" { "Move label" }
            }
        }
        h2 { "Release log" }
        div.table-wrap {
            table #label-history {
                thead { tr { th { "When" } th { "Label" } th { "Change" } th { "By" } th { "Notes" } } }
                tbody {
                    @for h in history {
                        tr data-label=(h.label) data-kind=(h.kind.as_str()) {
                            td { (time_exact(h.moved_at)) }
                            td { (chip(&h.label)) }
                            td {
                                @match h.from_version { Some(f) => { "v" (f) }, None => "—" }
                                " → "
                                @match h.to_version { Some(t) => { "v" (t) }, None => "removed" }
                                @if h.kind != scope_store::LabelMoveKind::Move { " " (badge(h.kind.as_str())) }
                            }
                            td { code { (h.moved_by) } }
                            td { (h.notes.clone().unwrap_or_default()) }
                        }
                    }
                    @if history.is_empty() { tr { td colspan="5" .muted { "No label has moved yet." } } }
                }
            }
        }
    }
}

/// What the prompt page needs for its Labels section.
pub async fn load(ctx: &Ctx, name: &str) -> Result<(labels::Labels, Vec<LabelMoveRow>), AppError> {
    let l = labels::list(&ctx.app, ctx.p(), name).await?;
    let history = labels::history(&ctx.app, ctx.p(), name, None, page(Some(50), None)?).await?.data;
    Ok((l, history))
}

#[derive(Deserialize)]
pub struct MoveParams {
    #[serde(default)]
    label: String,
    #[serde(default)]
    version: String,
}

/// The confirmation of a move: where the label points now, where it will.
pub async fn move_confirm(
    ctx: Ctx,
    WebPath(name): WebPath<String>,
    WebQuery(q): WebQuery<MoveParams>,
) -> Result<Response, WebError> {
    ctx.p().require(Role::Editor)?;
    let label = q.label.trim().to_owned();
    rules::check_movable(&label).map_err(AppError::from)?;
    let target = prompts::version(&ctx.app, ctx.p(), &name, &q.version).await?;
    let current = labels::list(&ctx.app, ctx.p(), &name).await?.labels.into_iter().find(|l| l.label == label);
    let production = rules::kind(&label) == LabelKind::Production;
    let body = html! {
        section.narrow {
            h1 { "Move " (label) }
            p.confirm {
                "Point " strong { (label) } " of " strong { (target.name) } " at " strong { "v" (target.version) } "? "
                @match &current {
                    Some(c) if c.version == target.version => { "It already points there." }
                    Some(c) => { "It points at " strong { "v" (c.version) } " now." }
                    None => { "The prompt has no such label yet." }
                }
                @if production { " Moving production promotes the version." }
            }
            form method="post" action=(label_url(&target.name, &label)) {
                (csrf_input(&ctx))
                input type="hidden" name="version" value=(target.version_id);
                label for="notes" { "Notes" }
                textarea #notes name="notes" rows="3" maxlength="2000" {}
                div.buttons { button.primary type="submit" { "Move label" } a.button href=(prompt_url(&target.name)) { "Cancel" } }
            }
        }
    };
    Ok(layout::page(&ctx, Section::Prompts, "Move label", body).into_response())
}

#[derive(Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    version: String,
    notes: Option<String>,
}

pub async fn move_label(
    WebPath((name, label)): WebPath<(String, String)>,
    SessionForm { ctx, form }: SessionForm<MoveForm>,
) -> Result<Response, WebError> {
    if form.version.is_empty() {
        return Err(AppError::from(DomainError::bad_request("choose a version")).into());
    }
    let m = MoveLabel { target: Target::Id(form.version), notes: non_empty(form.notes), archive_previous: None };
    let v = labels::set(&ctx.app, ctx.p(), &name, &label, m).await?;
    Ok(see_other(&prompt_url(&v.name)))
}

/// The confirmation of a rollback, naming where the label goes back to.
pub async fn rollback_confirm(
    ctx: Ctx,
    WebPath((name, label)): WebPath<(String, String)>,
) -> Result<Response, WebError> {
    ctx.p().require(Role::Editor)?;
    rules::check_movable(&label).map_err(AppError::from)?;
    let summary = prompts::get(&ctx.app, ctx.p(), &name).await?;
    let last = labels::history(&ctx.app, ctx.p(), &name, Some(label.clone()), page(Some(1), None)?).await?.data;
    let last = last.first();
    let body = html! {
        section.narrow {
            h1 { "Roll back " (label) }
            p.confirm {
                @match last.and_then(|m| m.from_version) {
                    Some(back) => {
                        "Move " strong { (label) } " of " strong { (summary.prompt.name) } " back to " strong { "v" (back) } ", where it pointed before its last move"
                        @if let Some(now) = last.and_then(|m| m.to_version) { " (it points at " strong { "v" (now) } " now)" }
                        "?"
                    }
                    None => { "There is nothing to roll " (label) " back to." }
                }
            }
            form method="post" action={ (label_url(&summary.prompt.name, &label)) "/rollback" } {
                (csrf_input(&ctx))
                label for="notes" { "Notes" }
                textarea #notes name="notes" rows="3" maxlength="2000" {}
                div.buttons { button.primary type="submit" { "Roll back" } a.button href=(prompt_url(&summary.prompt.name)) { "Cancel" } }
            }
        }
    };
    Ok(layout::page(&ctx, Section::Prompts, "Roll back", body).into_response())
}

#[derive(Deserialize)]
pub struct NotesForm {
    notes: Option<String>,
}

pub async fn rollback(
    WebPath((name, label)): WebPath<(String, String)>,
    SessionForm { ctx, form }: SessionForm<NotesForm>,
) -> Result<Response, WebError> {
    let v = labels::rollback(&ctx.app, ctx.p(), &name, &label, non_empty(form.notes)).await?;
    Ok(see_other(&prompt_url(&v.name)))
}

pub async fn remove_confirm(ctx: Ctx, WebPath((name, label)): WebPath<(String, String)>) -> Result<Response, WebError> {
    ctx.p().require(Role::Editor)?;
    rules::check_removable(&label).map_err(AppError::from)?;
    let summary = prompts::get(&ctx.app, ctx.p(), &name).await?;
    let body = html! {
        section.narrow {
            h1 { "Remove " (label) }
            p.confirm { "Remove the label " strong { (label) } " from " strong { (summary.prompt.name) } "? Keys of that environment then read production." }
            form method="post" action={ (label_url(&summary.prompt.name, &label)) "/remove" } {
                (csrf_input(&ctx))
                div.buttons { button.primary type="submit" { "Remove label" } a.button href=(prompt_url(&summary.prompt.name)) { "Cancel" } }
            }
        }
    };
    Ok(layout::page(&ctx, Section::Prompts, "Remove label", body).into_response())
}

pub async fn remove(
    WebPath((name, label)): WebPath<(String, String)>,
    SessionForm { ctx, .. }: SessionForm<super::extract::NoFields>,
) -> Result<Response, WebError> {
    labels::remove(&ctx.app, ctx.p(), &name, &label).await?;
    Ok(see_other(&prompt_url(&name)))
}
