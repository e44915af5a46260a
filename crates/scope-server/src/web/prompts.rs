//! Prompts: the list (search, tag filter), new prompt, and a prompt's page:
//! versions with status badges and labels, content with `{{variables}}`
//! highlighted, new version (blank or copied), draft editing, promotion with
//! confirmation, archive/unarchive, the labels and release log
//! (`labels.rs`), promotion history, side-by-side diff, and a render preview
//! with the SDK's own renderer.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use scope_domain::{template, DomainError, Role, VersionStatus};
use scope_store::{DraftPatch, VersionRow};
use serde::Deserialize;

use super::error::{form_failure, see_other, urlencode, WebError};
use super::extract::{non_empty, Ctx, NoFields, SessionForm, WebPath, WebQuery};
use super::layout::{self, badge, csrf_input, form_error, time_exact, time_rel, Section};
use crate::error::AppError;
use crate::runtime::now_ms;
use crate::service::page;
use crate::service::prompts::{self, NewPrompt, NewVersionReq};

#[derive(Deserialize, Default)]
pub struct ListParams {
    q: Option<String>,
    tag: Option<String>,
    cursor: Option<String>,
}

fn prompt_url(name: &str) -> String {
    format!("/prompts/{}", urlencode(name))
}

pub async fn list(ctx: Ctx, WebQuery(q): WebQuery<ListParams>) -> Result<Response, WebError> {
    let (search, tag) = (non_empty(q.q), non_empty(q.tag));
    let pg =
        prompts::list(&ctx.app, ctx.p(), tag.clone(), search.clone(), page(Some(50), non_empty(q.cursor))?).await?;
    let now = now_ms();
    let editor = ctx.p().role.allows(Role::Editor);
    let body = html! {
        div.title-row {
            h1 { "Prompts" }
            @if editor { a.button.primary href="/prompts/new" { "New prompt" } }
        }
        form.search method="get" action="/prompts" role="search" {
            div { label for="q" { "Search" } input #q type="search" name="q" value=(search.clone().unwrap_or_default()); }
            div { label for="tag" { "Tag" } input #tag type="text" name="tag" value=(tag.clone().unwrap_or_default()); }
            button type="submit" { "Search" }
        }
        div.table-wrap {
            table {
                thead { tr { th { "Name" } th { "Production" } th { "Latest" } th { "Tags" } th { "Updated" } } }
                tbody {
                    @for s in &pg.data {
                        tr data-prompt=(s.prompt.name) {
                            td { a href=(prompt_url(&s.prompt.name)) { (s.prompt.name) } @if !s.prompt.description.is_empty() { div.muted.small { (s.prompt.description) } } }
                            td { @match s.production_version { Some(v) => { "v" (v) }, None => span.muted { "none" } } }
                            td { @if let Some(v) = s.latest_version { "v" (v) } }
                            td { @for t in &s.prompt.tags { a.tag href={ "/prompts?tag=" (urlencode(t)) } { (t) } " " } }
                            td { (time_rel(s.prompt.updated_at, now)) }
                        }
                    }
                    @if pg.data.is_empty() { tr { td colspan="5" .muted { "No prompts." } } }
                }
            }
        }
        @if let Some(c) = &pg.next_cursor {
            p.pager { a rel="next" href={ "/prompts?q=" (urlencode(&search.unwrap_or_default())) "&tag=" (urlencode(&tag.unwrap_or_default())) "&cursor=" (c) } { "Next page" } }
        }
    };
    Ok(layout::page(&ctx, Section::Prompts, "Prompts", body).into_response())
}

#[derive(Deserialize, Default)]
pub struct NewPromptForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: String,
    prompt_type: Option<String>,
    #[serde(default)]
    content: String,
}

fn type_select(selected: &str) -> Markup {
    html! {
        label for="prompt_type" { "Type" }
        select #prompt_type name="prompt_type" {
            @for t in ["text", "chat"] { option value=(t) selected[selected == t] { (t) } }
        }
    }
}

fn new_prompt_form(ctx: &Ctx, f: &NewPromptForm, error: Option<&str>) -> Markup {
    html! {
        section.narrow {
            h1 { "New prompt" }
            (form_error(error))
            form method="post" action="/prompts" {
                (csrf_input(ctx))
                label for="name" { "Name" }
                input #name type="text" name="name" value=(f.name) maxlength="255" pattern="[A-Za-z0-9._\\-]+" required autofocus;
                p.hint { "Letters, digits, dot, underscore and dash. Applications fetch it by this name." }
                label for="description" { "Description" }
                input #description type="text" name="description" value=(f.description);
                label for="tags" { "Tags" }
                input #tags type="text" name="tags" value=(f.tags) placeholder="support, onboarding";
                p.hint { "Comma separated." }
                (type_select(f.prompt_type.as_deref().unwrap_or("text")))
                label for="content" { "Content" }
                textarea #content name="content" rows="10" required { (f.content) }
                p.hint { "Use {{variable}} for values filled in at render time. Version 1 is created as a draft." }
                div.buttons { button.primary type="submit" { "Create prompt" } a.button href="/prompts" { "Cancel" } }
            }
        }
    }
}

pub async fn new_form(ctx: Ctx) -> Result<Response, WebError> {
    ctx.p().require(Role::Editor)?;
    Ok(layout::page(&ctx, Section::Prompts, "New prompt", new_prompt_form(&ctx, &NewPromptForm::default(), None))
        .into_response())
}

fn split_tags(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

pub async fn create(SessionForm { ctx, form: f }: SessionForm<NewPromptForm>) -> Result<Response, WebError> {
    let req = NewPrompt {
        name: f.name.trim().to_owned(),
        content: f.content.clone(),
        description: non_empty(Some(f.description.clone())),
        tags: Some(split_tags(&f.tags)),
        prompt_type: non_empty(f.prompt_type.clone()),
        metadata: None,
    };
    match prompts::create(&ctx.app, ctx.p(), req).await {
        Ok((summary, _)) => Ok(see_other(&prompt_url(&summary.prompt.name))),
        Err(e) => {
            let (status, msg) = form_failure(e)?;
            let page = layout::page(&ctx, Section::Prompts, "New prompt", new_prompt_form(&ctx, &f, Some(&msg)));
            Ok((status, page).into_response())
        }
    }
}

/// The content with each `{{variable}}` in a `<mark class="var">`.
pub fn highlight(content: &str) -> Markup {
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let name_len = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        if name_len > 0 && after[name_len..].starts_with("}}") {
            parts.push((false, &rest[..start]));
            parts.push((true, &rest[start..start + 2 + name_len + 2]));
            rest = &after[name_len + 2..];
        } else {
            parts.push((false, &rest[..start + 2]));
            rest = after;
        }
    }
    parts.push((false, rest));
    html! { @for (var, text) in parts { @if var { mark.var { (text) } } @else { (text) } } }
}

fn version_url(name: &str, v: &VersionRow) -> String {
    format!("{}?version={}", prompt_url(name), v.version_id)
}

pub async fn detail(
    ctx: Ctx,
    WebPath(name): WebPath<String>,
    WebQuery(q): WebQuery<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let show_archived = param("archived").is_some_and(|v| v == "1" || v == "true");
    let summary = prompts::get(&ctx.app, ctx.p(), &name).await?;
    let name = summary.prompt.name.clone();
    // Every version (newest 200) feeds "Copy from" and "Compare"; the table
    // hides archived ones unless asked.
    let all = prompts::list_versions(&ctx.app, ctx.p(), &name, true, page(Some(200), None)?).await?.data;
    let versions: Vec<&VersionRow> =
        all.iter().filter(|v| show_archived || v.status != VersionStatus::Archived).collect();
    let selected = match param("version") {
        Some(vid) => Some(prompts::version(&ctx.app, ctx.p(), &name, &vid).await?),
        None => match summary.production_version_id {
            Some(vid) => Some(prompts::version(&ctx.app, ctx.p(), &name, &vid.to_string()).await?),
            None => all.first().cloned(),
        },
    };
    let history = prompts::promotions(&ctx.app, ctx.p(), &name, page(Some(50), None)?).await?.data;
    let (labels, label_history) = super::labels::load(&ctx, &name).await?;
    let editor = ctx.p().role.allows(Role::Editor);
    let now = now_ms();
    let preview: Option<Result<String, String>> = match (&selected, param("render")) {
        (Some(v), Some(_)) => {
            let vars: HashMap<String, String> =
                q.iter().filter_map(|(k, val)| k.strip_prefix("var.").map(|n| (n.to_owned(), val.clone()))).collect();
            Some(template::render(&v.content, &vars, false).map_err(|e| e.to_string()))
        }
        _ => None,
    };
    let body = html! {
        p.crumbs { a href="/prompts" { "Prompts" } " / " (name) }
        div.title-row {
            h1 { (name) }
            div.muted {
                "Production: " @match summary.production_version { Some(v) => { "v" (v) }, None => "none" }
                " · Latest: " @if let Some(v) = summary.latest_version { "v" (v) }
            }
        }
        @if !summary.prompt.description.is_empty() { p { (summary.prompt.description) } }
        @if !summary.prompt.tags.is_empty() { p { @for t in &summary.prompt.tags { a.tag href={ "/prompts?tag=" (urlencode(t)) } { (t) } " " } } }
        div.columns {
            section.versions {
                h2 { "Versions" }
                table {
                    thead { tr { th { "Version" } th { "Status" } th { "Created" } } }
                    tbody {
                        @for v in &versions {
                            tr data-version=(v.version) data-status=(v.status.as_str()) .selected[selected.as_ref().is_some_and(|s| s.version_id == v.version_id)] {
                                td { a href=(version_url(&name, v)) { "v" (v.version) } @for l in &v.labels { " " (super::labels::chip(l)) } }
                                td { (badge(v.status.as_str())) }
                                td { (time_rel(v.created_at, now)) }
                            }
                        }
                    }
                }
                p.small {
                    @if show_archived { a href=(prompt_url(&name)) { "Hide archived versions" } }
                    @else { a href={ (prompt_url(&name)) "?archived=1" } { "Show archived versions" } }
                }
                @if editor {
                    form.stack method="post" action={ (prompt_url(&name)) "/versions" } {
                        (csrf_input(&ctx))
                        h3 { "New version" }
                        label for="copy_from" { "Copy from" }
                        select #copy_from name="copy_from" {
                            option value="" { "Blank" }
                            @for v in &all { option value=(v.version_id) selected[v.status == VersionStatus::Published] { "v" (v.version) " (" (v.status.as_str()) ")" } }
                        }
                        button type="submit" { "Create version" }
                    }
                }
                @if all.len() >= 2 {
                    form.stack method="get" action={ (prompt_url(&name)) "/diff" } {
                        h3 { "Compare" }
                        label for="from" { "From" }
                        select #from name="from" { @for (i, v) in all.iter().enumerate() { option value=(v.version_id) selected[i == 1] { "v" (v.version) } } }
                        label for="to" { "To" }
                        select #to name="to" { @for (i, v) in all.iter().enumerate() { option value=(v.version_id) selected[i == 0] { "v" (v.version) } } }
                        button type="submit" { "Compare" }
                    }
                }
            }
            section.version {
                @if let Some(v) = &selected {
                    div.title-row {
                        h2 { "Version " (v.version) " " (badge(v.status.as_str())) @for l in &v.labels { " " (super::labels::chip(l)) } }
                        @if editor {
                            div.buttons {
                                @match v.status {
                                    VersionStatus::Draft => {
                                        a.button href={ (prompt_url(&name)) "/versions/" (v.version_id) "/edit" } { "Edit" }
                                        a.button.primary href={ (prompt_url(&name)) "/versions/" (v.version_id) "/promote" } { "Promote" }
                                        form.inline method="post" action={ (prompt_url(&name)) "/versions/" (v.version_id) "/archive" } { (csrf_input(&ctx)) button type="submit" { "Archive" } }
                                    }
                                    VersionStatus::Archived => {
                                        form.inline method="post" action={ (prompt_url(&name)) "/versions/" (v.version_id) "/unarchive" } { (csrf_input(&ctx)) button type="submit" { "Unarchive" } }
                                    }
                                    VersionStatus::Published => {}
                                }
                            }
                        }
                    }
                    p.muted.small {
                        code { (v.version_id) } " · " (v.prompt_type) " · created " (time_exact(v.created_at)) " by " code { (v.created_by) }
                        @if let (Some(at), Some(by)) = (v.promoted_at, &v.promoted_by) { " · promoted " (time_exact(at)) " by " code { (by) } }
                    }
                    pre #version-content { (highlight(&v.content)) }
                    h3 { "Variables" }
                    @if v.variables.is_empty() { p.muted { "None." } }
                    @else { ul.vars { @for name in &v.variables { li { code { "{{" (name) "}}" } } } } }
                    @if v.metadata.as_object().is_some_and(|m| !m.is_empty()) {
                        h3 { "Metadata" }
                        pre { (serde_json::to_string_pretty(&v.metadata).unwrap_or_default()) }
                    }
                    form.stack #preview method="get" action=(prompt_url(&name)) {
                        h3 { "Preview" }
                        input type="hidden" name="version" value=(v.version_id);
                        input type="hidden" name="render" value="1";
                        @for var in &v.variables {
                            @let value = q.iter().find(|(k, _)| k.strip_prefix("var.") == Some(var.as_str())).map(|(_, val)| val.clone()).unwrap_or_default();
                            label for={ "var-" (var) } { (var) }
                            input id={ "var-" (var) } type="text" name={ "var." (var) } value=(value);
                        }
                        button type="submit" { "Render" }
                    }
                    @match &preview {
                        Some(Ok(text)) => { pre #render-output { (text) } }
                        Some(Err(msg)) => { p.error #render-output role="alert" { (msg) } }
                        None => {}
                    }
                } @else {
                    p.muted { "No version to show." }
                }
            }
        }
        (super::labels::section(&ctx, &name, &labels, &all, &label_history))
        h2 { "Promotion history" }
        div.table-wrap {
            table #promotions {
                thead { tr { th { "When" } th { "Version" } th { "Replaced" } th { "By" } th { "Notes" } } }
                tbody {
                    @for h in &history {
                        tr {
                            td { (time_exact(h.promoted_at)) }
                            td { "v" (h.version) }
                            td { @match h.previous_version { Some(p) => { "v" (p) }, None => "—" } }
                            td { code { (h.promoted_by) } }
                            td { (h.notes.clone().unwrap_or_default()) }
                        }
                    }
                    @if history.is_empty() { tr { td colspan="5" .muted { "Never promoted." } } }
                }
            }
        }
    };
    Ok(layout::page(&ctx, Section::Prompts, &name, body).into_response())
}

#[derive(Deserialize)]
pub struct NewVersionForm {
    copy_from: Option<String>,
}

pub async fn create_version(
    WebPath(name): WebPath<String>,
    SessionForm { ctx, form }: SessionForm<NewVersionForm>,
) -> Result<Response, WebError> {
    let copy_from = non_empty(form.copy_from);
    let content = if copy_from.is_none() { Some(String::new()) } else { None };
    let req = NewVersionReq { content, copy_from, prompt_type: None, metadata: None };
    let v = prompts::create_version(&ctx.app, ctx.p(), &name, req).await?;
    Ok(see_other(&format!("{}/versions/{}/edit", prompt_url(&v.name), v.version_id)))
}

#[derive(Deserialize, Default)]
pub struct EditForm {
    #[serde(default)]
    content: String,
    prompt_type: Option<String>,
    #[serde(default)]
    metadata: String,
}

fn edit_form_markup(ctx: &Ctx, v: &VersionRow, f: &EditForm, error: Option<&str>) -> Markup {
    html! {
        p.crumbs { a href="/prompts" { "Prompts" } " / " a href=(version_url(&v.name, v)) { (v.name) } " / v" (v.version) }
        h1 { "Edit draft v" (v.version) }
        (form_error(error))
        form method="post" action={ (prompt_url(&v.name)) "/versions/" (v.version_id) "/edit" } {
            (csrf_input(ctx))
            label for="content" { "Content" }
            textarea #content name="content" rows="16" autofocus { (f.content) }
            (type_select(f.prompt_type.as_deref().unwrap_or("text")))
            label for="metadata" { "Metadata (JSON)" }
            textarea #metadata name="metadata" rows="4" { (f.metadata) }
            div.buttons { button.primary type="submit" { "Save draft" } a.button href=(version_url(&v.name, v)) { "Cancel" } }
        }
    }
}

pub async fn edit_form(ctx: Ctx, WebPath((name, vid)): WebPath<(String, String)>) -> Result<Response, WebError> {
    ctx.p().require(Role::Editor)?;
    let v = prompts::version(&ctx.app, ctx.p(), &name, &vid).await?;
    v.status.check_editable().map_err(AppError::from)?;
    let f = EditForm {
        content: v.content.clone(),
        prompt_type: Some(v.prompt_type.clone()),
        metadata: serde_json::to_string_pretty(&v.metadata).unwrap_or_else(|_| "{}".into()),
    };
    Ok(layout::page(&ctx, Section::Prompts, "Edit draft", edit_form_markup(&ctx, &v, &f, None)).into_response())
}

pub async fn edit(
    WebPath((name, vid)): WebPath<(String, String)>,
    SessionForm { ctx, form: f }: SessionForm<EditForm>,
) -> Result<Response, WebError> {
    let v = prompts::version(&ctx.app, ctx.p(), &name, &vid).await?;
    let result = async {
        let metadata = if f.metadata.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&f.metadata)
                .map_err(|e| AppError::from(DomainError::bad_request(format!("metadata is not valid JSON: {e}"))))?
        };
        let patch = DraftPatch {
            content: Some(f.content.clone()),
            prompt_type: non_empty(f.prompt_type.clone()),
            metadata: Some(metadata),
        };
        prompts::update_draft(&ctx.app, ctx.p(), &name, &vid, patch).await
    }
    .await;
    match result {
        Ok(saved) => Ok(see_other(&version_url(&saved.name, &saved))),
        Err(e) => {
            let (status, msg) = form_failure(e)?;
            let page = layout::page(&ctx, Section::Prompts, "Edit draft", edit_form_markup(&ctx, &v, &f, Some(&msg)));
            Ok((status, page).into_response())
        }
    }
}

pub async fn promote_confirm(ctx: Ctx, WebPath((name, vid)): WebPath<(String, String)>) -> Result<Response, WebError> {
    ctx.p().require(Role::Editor)?;
    let summary = prompts::get(&ctx.app, ctx.p(), &name).await?;
    let v = prompts::version(&ctx.app, ctx.p(), &name, &vid).await?;
    let body = html! {
        section.narrow {
            h1 { "Promote version " (v.version) }
            p.confirm {
                "Promote " strong { (v.name) " v" (v.version) } " to production? "
                @match summary.production_version {
                    Some(p) if p != v.version => { "It replaces " strong { "v" (p) } ", which is in production now." }
                    Some(_) => "It is already in production.",
                    None => "No version is in production yet.",
                }
            }
            form method="post" action={ (prompt_url(&v.name)) "/versions/" (v.version_id) "/promote" } {
                (csrf_input(&ctx))
                label for="notes" { "Notes" }
                textarea #notes name="notes" rows="3" maxlength="2000" {}
                label.check { input type="checkbox" name="archive_previous" value="true" checked; " Archive the version it replaces" }
                p.hint { "Unchecked, the replaced version returns to draft." }
                div.buttons { button.primary type="submit" { "Promote" } a.button href=(version_url(&v.name, &v)) { "Cancel" } }
            }
        }
    };
    Ok(layout::page(&ctx, Section::Prompts, "Promote", body).into_response())
}

#[derive(Deserialize)]
pub struct PromoteForm {
    notes: Option<String>,
    archive_previous: Option<String>,
}

pub async fn promote(
    WebPath((name, vid)): WebPath<(String, String)>,
    SessionForm { ctx, form }: SessionForm<PromoteForm>,
) -> Result<Response, WebError> {
    let archive_previous = form.archive_previous.is_some();
    let v = prompts::promote(&ctx.app, ctx.p(), &name, &vid, non_empty(form.notes), Some(archive_previous)).await?;
    Ok(see_other(&version_url(&v.name, &v)))
}

pub async fn archive(
    WebPath((name, vid)): WebPath<(String, String)>,
    SessionForm { ctx, .. }: SessionForm<NoFields>,
) -> Result<Response, WebError> {
    let v = prompts::set_archived(&ctx.app, ctx.p(), &name, &vid, true).await?;
    Ok(see_other(&format!("{}&archived=1", version_url(&v.name, &v))))
}

pub async fn unarchive(
    WebPath((name, vid)): WebPath<(String, String)>,
    SessionForm { ctx, .. }: SessionForm<NoFields>,
) -> Result<Response, WebError> {
    let v = prompts::set_archived(&ctx.app, ctx.p(), &name, &vid, false).await?;
    Ok(see_other(&version_url(&v.name, &v)))
}

#[derive(Deserialize)]
pub struct DiffParams {
    from: String,
    to: String,
}

/// One row of a side-by-side diff: (left line number, left text, right line
/// number, right text, kind).
type DiffRow<'a> = (Option<usize>, Option<&'a str>, Option<usize>, Option<&'a str>, &'static str);

fn side_by_side<'a>(old: &'a str, new: &'a str) -> Vec<DiffRow<'a>> {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let diff = similar::TextDiff::configure().diff_slices(&old_lines, &new_lines);
    let mut rows = Vec::new();
    for op in diff.ops() {
        let (tag, o, n) = op.as_tag_tuple();
        match tag {
            similar::DiffTag::Equal => {
                for (i, j) in o.zip(n) {
                    rows.push((Some(i + 1), Some(old_lines[i]), Some(j + 1), Some(new_lines[j]), "equal"));
                }
            }
            similar::DiffTag::Delete => {
                for i in o {
                    rows.push((Some(i + 1), Some(old_lines[i]), None, None, "delete"));
                }
            }
            similar::DiffTag::Insert => {
                for j in n {
                    rows.push((None, None, Some(j + 1), Some(new_lines[j]), "insert"));
                }
            }
            similar::DiffTag::Replace => {
                let (o, n): (Vec<usize>, Vec<usize>) = (o.collect(), n.collect());
                for k in 0..o.len().max(n.len()) {
                    let l = o.get(k).map(|&i| (i + 1, old_lines[i]));
                    let r = n.get(k).map(|&j| (j + 1, new_lines[j]));
                    rows.push((l.map(|x| x.0), l.map(|x| x.1), r.map(|x| x.0), r.map(|x| x.1), "replace"));
                }
            }
        }
    }
    rows
}

pub async fn diff(
    ctx: Ctx,
    WebPath(name): WebPath<String>,
    WebQuery(q): WebQuery<DiffParams>,
) -> Result<Response, WebError> {
    let a = prompts::version(&ctx.app, ctx.p(), &name, &q.from).await?;
    let b = prompts::version(&ctx.app, ctx.p(), &name, &q.to).await?;
    let rows = side_by_side(&a.content, &b.content);
    let changed = [
        ("Type", a.prompt_type != b.prompt_type, a.prompt_type.clone(), b.prompt_type.clone()),
        ("Variables", a.variables != b.variables, a.variables.join(", "), b.variables.join(", ")),
        ("Metadata", a.metadata != b.metadata, a.metadata.to_string(), b.metadata.to_string()),
    ];
    let body = html! {
        p.crumbs { a href="/prompts" { "Prompts" } " / " a href=(prompt_url(&a.name)) { (a.name) } " / diff" }
        h1 { "v" (a.version) " → v" (b.version) }
        @if changed.iter().any(|c| c.1) {
            dl.fields {
                @for (label, differs, from, to) in &changed {
                    @if *differs { dt { (label) } dd { del { (from) } " → " ins { (to) } } }
                }
            }
        }
        div.table-wrap {
            table #diff .diff {
                thead { tr { th colspan="2" { "v" (a.version) } th colspan="2" { "v" (b.version) } } }
                tbody {
                    @for (ln, l, rn, r, kind) in &rows {
                        tr class=(kind) {
                            td.ln { @if let Some(n) = ln { (n) } }
                            td.left { @if let Some(t) = l { (t) } }
                            td.ln { @if let Some(n) = rn { (n) } }
                            td.right { @if let Some(t) = r { (t) } }
                        }
                    }
                }
            }
        }
        @if rows.iter().all(|r| r.4 == "equal") { p.muted { "The contents are identical." } }
    };
    Ok(layout::page(&ctx, Section::Prompts, "Diff", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_only_well_formed_variables() {
        let html = highlight("Hi {{name}}, {{ bad }} {{x}}{{").into_string();
        assert_eq!(html, "Hi <mark class=\"var\">{{name}}</mark>, {{ bad }} <mark class=\"var\">{{x}}</mark>{{");
        assert_eq!(highlight("<b>").into_string(), "&lt;b&gt;");
    }

    #[test]
    fn side_by_side_pairs_replacements() {
        let rows = side_by_side("a\nb\nc", "a\nB\nc\nd");
        let kinds: Vec<_> = rows.iter().map(|r| r.4).collect();
        assert_eq!(kinds, ["equal", "replace", "equal", "insert"]);
        assert_eq!(rows[1].1, Some("b"));
        assert_eq!(rows[1].3, Some("B"));
    }
}
