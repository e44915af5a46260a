//! The page shell (header, navigation, sign-out) and small view helpers
//! shared by the console's pages: times, badges, the hidden CSRF field.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};
use scope_domain::Role;

use super::assets;
use super::extract::Ctx;

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Prompts,
    ApiKeys,
    Users,
    Audit,
    Account,
    /// An error page: no entry is current.
    Error,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Scope" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

/// A page for a signed-in user.
pub fn page(ctx: &Ctx, section: Section, title: &str, body: Markup) -> Html<String> {
    let admin = ctx.p().role.allows(Role::Admin);
    let settings = matches!(section, Section::ApiKeys | Section::Users);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/prompts" { "Scope" }
                    nav aria-label="Main" {
                        a href="/prompts" aria-current=[(section == Section::Prompts).then_some("page")] { "Prompts" }
                        @if admin {
                            a href="/settings/api-keys" aria-current=[settings.then_some("page")] { "Settings" }
                            a href="/audit" aria-current=[(section == Section::Audit).then_some("page")] { "Audit log" }
                        }
                    }
                    div.account {
                        a href="/account/password" title="Change password" { (ctx.session.user.email) }
                        span.role { (ctx.p().role.as_str()) }
                        form method="post" action="/logout" {
                            (csrf_input(ctx))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                @if settings {
                    nav.sub aria-label="Settings" {
                        a href="/settings/api-keys" aria-current=[(section == Section::ApiKeys).then_some("page")] { "API Keys" }
                        a href="/settings/users" aria-current=[(section == Section::Users).then_some("page")] { "Users" }
                    }
                }
                main #main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// A page without a session (sign-in, invitation, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                header.top { a.brand href="/prompts" { "Scope" } }
                main #main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

pub fn csrf_input(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf_token); }
}

/// `2026-11-27 04:32:10 UTC`.
pub fn exact(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// "3 minutes ago", "in 2 days".
pub fn relative(ms: i64, now: i64) -> String {
    let d = (now - ms) / 1000;
    let (n, unit) = match d.abs() {
        s if s < 45 => return "just now".into(),
        s if s < 3600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1800) / 3600, "hour"),
        s if s < 60 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 730 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if d >= 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// A `<time>` showing the relative time, the exact time on hover.
pub fn time_rel(ms: i64, now: i64) -> Markup {
    html! { time datetime=(crate::views::ts(ms)) title=(exact(ms)) { (relative(ms, now)) } }
}

/// A `<time>` showing the exact time.
pub fn time_exact(ms: i64) -> Markup {
    html! { time datetime=(crate::views::ts(ms)) { (exact(ms)) } }
}

pub fn badge(kind: &str) -> Markup {
    html! { span class={ "badge badge-" (kind) } { (kind) } }
}

/// An inline message above a form.
pub fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_000_000_000_000;
        assert_eq!(relative(now - 10_000, now), "just now");
        assert_eq!(relative(now - 60_000, now), "1 minute ago");
        assert_eq!(relative(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(relative(now + 2 * 86_400_000, now), "in 2 days");
    }
}
