//! Locating the workspace binaries the end-to-end tests run, and building them when they are
//! missing or older than their sources.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Path of a workspace binary (`dispatcher`, `worker`, `sy`) in the target profile dir of the running
/// test executable, built once per test process when it is missing or older than its sources.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    // target/<profile>/deps/<test> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable is not in target/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    static BUILD: OnceLock<Result<(), String>> = OnceLock::new();
    if needs_build(&path) {
        let built = BUILD.get_or_init(|| build_binaries(&profile_dir));
        if let Err(e) = built {
            panic!("building the binaries for the tests failed:\n{e}");
        }
    }
    assert!(
        path.is_file(),
        "binary {} is missing even after `cargo build -p switchyard-dispatcher -p switchyard-worker -p switchyard-cli`",
        path.display()
    );
    path
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent (the workspace)")
        .to_path_buf()
}

/// Whether `bin` is missing or older than any source of the crates it is built from, so a test
/// run never exercises a stale binary (`cargo test -p switchyard-tests` does not rebuild them).
fn needs_build(bin: &Path) -> bool {
    let Ok(built) = fs::metadata(bin).and_then(|m| m.modified()) else {
        return true;
    };
    let root = workspace_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for p in ["Cargo.toml", "Cargo.lock"] {
        newest = newest.max(mtime(&root.join(p)));
    }
    for krate in ["shared", "dispatcher", "worker", "cli"] {
        newest = newest.max(mtime(&root.join(krate).join("Cargo.toml")));
        newest = newest.max(newest_in(&root.join(krate).join("src")));
    }
    newest > built
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn newest_in(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = fs::read_dir(dir) else {
        return newest;
    };
    for e in entries.flatten() {
        let p = e.path();
        let t = if p.is_dir() { newest_in(&p) } else { mtime(&p) };
        newest = newest.max(t);
    }
    newest
}

fn build_binaries(profile_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "switchyard-dispatcher",
        "-p",
        "switchyard-worker",
        "-p",
        "switchyard-cli",
    ]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
