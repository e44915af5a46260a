//! The `scope` binary under test, for the tests of any crate.
//!
//! Only `scope-cli`'s own integration tests get the binary for free (cargo
//! builds it for them and sets `CARGO_BIN_EXE_scope`). Any other crate's tests
//! that want a real `scope serve` call [`scope_binary`], which builds it on
//! demand, so that `cargo test -p scope-client` passes on a fresh clone
//! without a whole-workspace build first.

#![allow(clippy::panic, clippy::expect_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The `scope` binary to run: `$SCOPE_BIN` when set (used as is, nothing is
/// built), otherwise the workspace's own, built once per test process.
///
/// The build is `$CARGO build -p scope-cli --bin scope` (cargo sets `CARGO`
/// for the tests it runs; plain `cargo` otherwise), run in the workspace root
/// with the environment inherited (so `CARGO_TARGET_DIR` and cargo's config
/// choose the same target directory as the tests), in the profile the test
/// binary itself was built in: `--release` when it runs from a `release`
/// directory, `--profile NAME` for a custom profile, the dev profile
/// otherwise. The path returned, `<target dir>/<profile dir>/scope`, is the
/// one cargo reports for the artifact.
///
/// Cargo is invoked every time (once per process), never skipped because a
/// binary already exists: when nothing changed the build is a no-op taking a
/// fraction of a second, and when the sources did change the tests never run
/// a stale server. Test processes running at once (cargo-nextest runs one
/// per test) are safe: cargo's lock on the build directory serialises the
/// builds, and the first one does the work.
///
/// The first build of a fresh checkout compiles the server and everything
/// under it, which takes minutes; it may also build a second variant of the
/// binary when `cargo test` unified different dependency features (the two
/// variants are cached side by side, so this happens once).
///
/// Panics, with cargo's output, when the build fails.
pub fn scope_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SCOPE_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    // A failed build is remembered too: the other tests of the process fail
    // with its message instead of each running cargo again.
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(bin) => bin.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The workspace root: two levels above this crate's manifest.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The cargo profile flag matching the running test binary, which lives in
/// `<target dir>/<profile dir>/deps/` (`debug` for the dev and test
/// profiles, `release` for release and bench, the profile's own name for a
/// custom one).
fn profile_args() -> Vec<OsString> {
    let exe = std::env::current_exe().ok();
    let profile_dir = exe
        .as_deref()
        .and_then(Path::parent)
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(OsString::from);
    match profile_dir {
        Some(p) if p == "release" => vec!["--release".into()],
        Some(p) if p != "debug" && !p.is_empty() => vec!["--profile".into(), p],
        _ => Vec::new(),
    }
}

fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty()).unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["-p", "scope-cli", "--bin", "scope"])
        .args(profile_args())
        // Artifacts as JSON on stdout (to learn the binary's path), errors
        // rendered for people on stderr.
        .arg("--message-format=json-render-diagnostics")
        .current_dir(&root)
        .stdin(Stdio::null());
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("cannot run {} to build scope: {e}", Path::new(&cargo).display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("building the scope binary failed ({}): {shown}\n{stderr}", out.status));
    }
    let bin = scope_executable(&stdout)
        .ok_or_else(|| format!("{shown} reported no `scope` executable; its output:\n{stdout}\n{stderr}"))?;
    if !bin.is_file() {
        return Err(format!("cargo reported {} as the scope binary, but it is not there", bin.display()));
    }
    Ok(bin)
}

/// The `executable` of the `scope` binary target among cargo's JSON messages.
fn scope_executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "scope")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_scope_executable_among_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"scope_domain","kind":["lib"]},"executable":null}"#,
            "\n",
            "not json\n",
            r#"{"reason":"compiler-artifact","target":{"name":"scope","kind":["bin"]},"executable":"/t/debug/scope"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        assert_eq!(scope_executable(messages), Some(PathBuf::from("/t/debug/scope")));
        assert_eq!(scope_executable(r#"{"reason":"build-finished","success":true}"#), None);
    }
}
