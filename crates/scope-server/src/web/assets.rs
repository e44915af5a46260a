//! The console's stylesheet and script, embedded in the binary and served
//! under content-hashed names (`app.<hash>.css`), so they can be cached
//! forever and a new build is never served a stale copy.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::extract::WebPath;

const CSS: &[u8] = include_bytes!("../../assets/app.css");
const JS: &[u8] = include_bytes!("../../assets/app.js");

struct Asset {
    name: String,
    body: &'static [u8],
    content_type: &'static str,
}

fn hashed(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> Asset {
    let digest = Sha256::digest(body);
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Asset { name: format!("{stem}.{hash}.{ext}"), body, content_type }
}

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            hashed("app", "css", CSS, "text/css; charset=utf-8"),
            hashed("app", "js", JS, "text/javascript; charset=utf-8"),
        ]
    })
}

/// `/assets/app.<hash>.css`.
pub fn css_url() -> String {
    format!("/assets/{}", assets()[0].name)
}

/// `/assets/app.<hash>.js`.
pub fn js_url() -> String {
    format!("/assets/{}", assets()[1].name)
}

pub async fn serve(WebPath(file): WebPath<String>) -> Response {
    match assets().iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(a.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], "not found")
            .into_response(),
    }
}
