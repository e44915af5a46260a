//! Settings > Users: the list with role changes and removal, and Invite user
//! (an invitation link or a one-time initial password, shown once).

use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use scope_domain::Role;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::error::{form_failure, see_other, WebError};
use super::extract::{non_empty, Ctx, NoFields, SessionForm, WebPath, WebQuery};
use super::layout::{self, badge, csrf_input, form_error, time_exact, time_rel, Section};
use crate::error::AppError;
use crate::http::users::{invitation_url, parse_onboarding};
use crate::runtime::now_ms;
use crate::service::users::{self, NewUser};
use crate::service::{page, Page};
use scope_store::UserRow;

const ROLES: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

#[derive(Deserialize, Default)]
pub struct ListParams {
    cursor: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    role: Option<String>,
    onboarding: Option<String>,
}

fn users_page(ctx: &Ctx, pg: &Page<UserRow>, f: &InviteForm, error: Option<&str>) -> Markup {
    let now = now_ms();
    let role = f.role.clone().unwrap_or_else(|| "viewer".into());
    let password = f.onboarding.as_deref() == Some("password");
    html! {
        h1 { "Users" }
        div.table-wrap {
            table.users {
                thead { tr { th { "Email" } th { "Role" } th { "Status" } th { "Last sign-in" } th { "Created" } th { span.sr-only { "Actions" } } } }
                tbody {
                    @for u in &pg.data {
                        tr data-user-id=(u.user_id) data-email=(u.email) {
                            td { (u.email) @if u.user_id.to_string() == ctx.session.user.user_id.to_string() { " " span.muted { "(you)" } } }
                            td {
                                form.inline method="post" action={ "/settings/users/" (u.user_id) "/role" } {
                                    (csrf_input(ctx))
                                    label.sr-only for={ "role-" (u.user_id) } { "Role" }
                                    select id={ "role-" (u.user_id) } name="role" {
                                        @for r in ROLES { option value=(r.as_str()) selected[u.role == r] { (r.as_str()) } }
                                    }
                                    button type="submit" { "Save role" }
                                }
                            }
                            td { (badge(u.status())) }
                            td { @match u.last_sign_in_at { Some(t) => (time_rel(t, now)), None => span.muted { "Never" } } }
                            td { (time_rel(u.created_at, now)) }
                            td.actions { a.danger href={ "/settings/users/" (u.user_id) "/remove" } { "Remove" } }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &pg.next_cursor { p.pager { a rel="next" href={ "/settings/users?cursor=" (c) } { "Next page" } } }
        section.narrow #invite {
            h2 { "Invite user" }
            (form_error(error))
            form method="post" action="/settings/users" {
                (csrf_input(ctx))
                label for="email" { "Email" }
                input #email type="email" name="email" value=(f.email) required;
                label for="role" { "Role" }
                select #role name="role" { @for r in ROLES { option value=(r.as_str()) selected[role == r.as_str()] { (r.as_str()) } } }
                fieldset {
                    legend { "Onboarding" }
                    label.check { input type="radio" name="onboarding" value="invite" checked[!password]; " Invitation link (valid 7 days; the user chooses a password)" }
                    label.check { input type="radio" name="onboarding" value="password" checked[password]; " One-time password (to be changed at the first sign-in)" }
                }
                button.primary type="submit" { "Invite user" }
            }
        }
    }
}

pub async fn list(ctx: Ctx, WebQuery(q): WebQuery<ListParams>) -> Result<Response, WebError> {
    let pg = users::list(&ctx.app, ctx.p(), page(Some(50), non_empty(q.cursor))?).await?;
    Ok(layout::page(&ctx, Section::Users, "Users", users_page(&ctx, &pg, &InviteForm::default(), None)).into_response())
}

pub async fn invite(SessionForm { ctx, form: f }: SessionForm<InviteForm>) -> Result<Response, WebError> {
    let result = async {
        let onboarding = parse_onboarding(non_empty(f.onboarding.clone()).as_deref())?;
        let role = match non_empty(f.role.clone()) {
            Some(r) => r.parse::<Role>()?,
            None => Role::Viewer,
        };
        users::create(&ctx.app, ctx.p(), NewUser { email: f.email.clone(), role, onboarding }).await
    }
    .await;
    match result {
        Ok(created) => {
            let body = html! {
                h1 { "User added" }
                div.secret-result data-replace-url="/settings/users" {
                    @if let Some((token, expires_at)) = &created.invitation {
                        p { "Send this invitation link to " strong { (created.user.email) } ". It works once, until " (time_exact(*expires_at)) "." }
                        div.env { code #invitation-url { (invitation_url(&ctx.app, token)) } button.copy type="button" data-copy="invitation-url" { "Copy" } }
                    }
                    @if let Some(pw) = &created.initial_password {
                        p { "One-time password for " strong { (created.user.email) } " (to be changed at the first sign-in):" }
                        div.env { code #initial-password { (pw.expose_secret()) } button.copy type="button" data-copy="initial-password" { "Copy" } }
                    }
                    p.warning role="alert" { strong { "This will not be shown again." } }
                }
                p { a.button href="/settings/users" { "Done" } }
            };
            Ok(layout::page(&ctx, Section::Users, "User added", body).into_response())
        }
        Err(e) => {
            let (status, msg) = form_failure(e)?;
            let pg = users::list(&ctx.app, ctx.p(), page(Some(50), None)?).await?;
            Ok((status, layout::page(&ctx, Section::Users, "Users", users_page(&ctx, &pg, &f, Some(&msg))))
                .into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn change_role(
    WebPath(user_id): WebPath<String>,
    SessionForm { ctx, form }: SessionForm<RoleForm>,
) -> Result<Response, WebError> {
    let role: Role = form.role.parse().map_err(AppError::from)?;
    users::change_role(&ctx.app, ctx.p(), &user_id, role).await?;
    Ok(see_other("/settings/users"))
}

pub async fn remove_confirm(ctx: Ctx, WebPath(user_id): WebPath<String>) -> Result<Response, WebError> {
    let u = users::get(&ctx.app, ctx.p(), &user_id).await?;
    let body = html! {
        section.narrow {
            h1 { "Remove user" }
            p.confirm { "Remove " strong { (u.email) } " (" (u.role.as_str()) ") from this organization?" }
            p { "Their sessions end at once. API keys they created keep working until revoked." }
            form method="post" action={ "/settings/users/" (u.user_id) "/remove" } {
                (csrf_input(&ctx))
                div.buttons { button.danger type="submit" { "Remove user" } a.button href="/settings/users" { "Cancel" } }
            }
        }
    };
    Ok(layout::page(&ctx, Section::Users, "Remove user", body).into_response())
}

pub async fn remove(
    WebPath(user_id): WebPath<String>,
    SessionForm { ctx, .. }: SessionForm<NoFields>,
) -> Result<Response, WebError> {
    let removing_self = ctx.session.user.user_id.to_string() == user_id;
    users::remove(&ctx.app, ctx.p(), &user_id).await?;
    Ok(see_other(if removing_self { "/login" } else { "/settings/users" }))
}
