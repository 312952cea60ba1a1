//! The file tools `read_file`, `write_file` and `list_dir`, confined to `TOOL_SANDBOX_DIR`.
//! Paths are relative to the sandbox: absolute paths and `..` are refused as written, and every
//! existing path is resolved (symbolic links included) and must still lie inside the sandbox, so
//! a link pointing out of it is refused too. Sizes and listing lengths are bounded.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::WorkerConfig;

use super::{ToolError, args};

/// Limits of the file tools.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    /// Largest content written; bytes returned by one read.
    pub max_file_bytes: usize,
    /// Entries one listing returns.
    pub max_dir_entries: usize,
}

impl FileLimits {
    /// The `TOOL_MAX_*` limits.
    pub fn from_config(cfg: &WorkerConfig) -> Self {
        Self {
            max_file_bytes: cfg.tools.tool_max_file_bytes,
            max_dir_entries: cfg.tools.tool_max_dir_entries,
        }
    }
}

/// The sandbox directory and the file tools that work in it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Canonical (absolute, link-free) path of the sandbox.
    root: PathBuf,
    limits: FileLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    max_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
    #[serde(default)]
    append: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    path: String,
}

impl Sandbox {
    /// The sandbox at `dir` (created if missing) with `limits`.
    pub fn open(dir: impl AsRef<Path>, limits: FileLimits) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        let root = fs::canonicalize(dir.as_ref())?;
        Ok(Self {
            inner: Arc::new(Inner { root, limits }),
        })
    }

    /// The canonical path of the sandbox directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// `{"path", "max_bytes"?}` → `{path, content, bytes, truncated}` (content as UTF-8, lossy).
    pub async fn read_file(&self, v: &Value) -> Result<Value, ToolError> {
        let a: ReadArgs = args("read_file", v)?;
        let inner = self.inner.clone();
        blocking(move || inner.read_file(a)).await
    }

    /// `{"path", "content", "append"?}` → `{path, bytes_written}`; missing directories on the
    /// way are created.
    pub async fn write_file(&self, v: &Value) -> Result<Value, ToolError> {
        let a: WriteArgs = args("write_file", v)?;
        let inner = self.inner.clone();
        blocking(move || inner.write_file(a)).await
    }

    /// `{"path"?}` → `{path, entries: [{name, type, size}], truncated}`, sorted by name;
    /// symbolic links are listed, not followed.
    pub async fn list_dir(&self, v: &Value) -> Result<Value, ToolError> {
        let a: ListArgs = args("list_dir", v)?;
        let inner = self.inner.clone();
        blocking(move || inner.list_dir(a)).await
    }
}

async fn blocking<F>(f: F) -> Result<Value, ToolError>
where
    F: FnOnce() -> Result<Value, ToolError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::Retryable(format!("file tool did not finish: {e}")))?
}

/// A file-tool failure about `path`.
fn refuse(tool: &str, path: &str, why: impl std::fmt::Display) -> ToolError {
    ToolError::Permanent(format!("{tool}: path {path:?}: {why}"))
}

/// An I/O failure as a tool error: permanent when the same call would fail the same way again
/// (the path is wrong, not the moment), retryable otherwise.
fn io_error(tool: &str, path: &str, e: &io::Error) -> ToolError {
    use io::ErrorKind::*;
    if is_link_loop(e) {
        return refuse(
            tool,
            path,
            "symbolic link loop (or too many levels of symbolic links)",
        );
    }
    match e.kind() {
        NotFound => refuse(tool, path, "no such file or directory"),
        PermissionDenied | InvalidInput | InvalidData | NotADirectory | IsADirectory
        | AlreadyExists | FileTooLarge | InvalidFilename | ReadOnlyFilesystem | TooManyLinks => {
            refuse(tool, path, e)
        }
        _ => ToolError::Retryable(format!("{tool}: path {path:?}: {e}")),
    }
}

/// `ELOOP`: its `ErrorKind::FilesystemLoop` is not stable yet, so the OS code decides.
#[cfg(unix)]
fn is_link_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_link_loop(_: &io::Error) -> bool {
    false
}

/// `raw` as a relative path of plain names; `..`, absolute paths and NUL are refused as written.
fn lexical(tool: &str, raw: &str) -> Result<PathBuf, ToolError> {
    if raw.contains('\0') {
        return Err(refuse(tool, raw, "contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(refuse(
                    tool,
                    raw,
                    "`..` is not allowed; paths are relative to the sandbox",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(
                    tool,
                    raw,
                    "absolute paths are not allowed; paths are relative to the sandbox",
                ));
            }
        }
    }
    Ok(out)
}

impl Inner {
    /// The canonical form of an existing `rel`, which must lie inside the sandbox.
    fn existing(&self, tool: &str, raw: &str, rel: &Path) -> Result<PathBuf, ToolError> {
        let real = fs::canonicalize(self.root.join(rel)).map_err(|e| io_error(tool, raw, &e))?;
        self.check_inside(tool, raw, &real)?;
        Ok(real)
    }

    fn check_inside(&self, tool: &str, raw: &str, real: &Path) -> Result<(), ToolError> {
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(refuse(
                tool,
                raw,
                "leads outside the sandbox through a symbolic link",
            ))
        }
    }

    fn read_file(&self, a: ReadArgs) -> Result<Value, ToolError> {
        const TOOL: &str = "read_file";
        let rel = lexical(TOOL, &a.path)?;
        let real = self.existing(TOOL, &a.path, &rel)?;
        let meta = fs::metadata(&real).map_err(|e| io_error(TOOL, &a.path, &e))?;
        if meta.is_dir() {
            return Err(refuse(TOOL, &a.path, "is a directory; use list_dir"));
        }
        // FIFOs and devices could block or never end.
        if !meta.is_file() {
            return Err(refuse(TOOL, &a.path, "is not a regular file"));
        }
        let limit = a.max_bytes.map_or(self.limits.max_file_bytes, |m| {
            m.min(self.limits.max_file_bytes)
        });
        let mut content = Vec::new();
        fs::File::open(&real)
            .and_then(|f| f.take(limit as u64).read_to_end(&mut content))
            .map_err(|e| io_error(TOOL, &a.path, &e))?;
        Ok(json!({
            "path": display(&rel),
            "bytes": meta.len(),
            "truncated": meta.len() > content.len() as u64,
            "content": String::from_utf8_lossy(&content),
        }))
    }

    fn write_file(&self, a: WriteArgs) -> Result<Value, ToolError> {
        const TOOL: &str = "write_file";
        let max = self.limits.max_file_bytes;
        if a.content.len() > max {
            return Err(refuse(
                TOOL,
                &a.path,
                format!(
                    "content is {} bytes; the limit is {max} (TOOL_MAX_FILE_BYTES)",
                    a.content.len()
                ),
            ));
        }
        let rel = lexical(TOOL, &a.path)?;
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            return Err(refuse(TOOL, &a.path, "names no file"));
        };
        let dir = self.make_dirs(TOOL, &a.path, parent)?;
        let mut target = dir.join(name);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                target = self.existing(TOOL, &a.path, &rel)?;
                if !target.is_file() {
                    return Err(refuse(TOOL, &a.path, "is not a regular file"));
                }
            }
            Ok(m) if m.is_dir() => return Err(refuse(TOOL, &a.path, "is a directory")),
            Ok(m) if !m.is_file() => return Err(refuse(TOOL, &a.path, "is not a regular file")),
            Ok(m) if a.append && m.len() + a.content.len() as u64 > max as u64 => {
                return Err(refuse(
                    TOOL,
                    &a.path,
                    format!("would grow beyond {max} bytes (TOOL_MAX_FILE_BYTES)"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(TOOL, &a.path, &e)),
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .append(a.append)
            .truncate(!a.append)
            .open(&target)
            .map_err(|e| io_error(TOOL, &a.path, &e))?;
        f.write_all(a.content.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| io_error(TOOL, &a.path, &e))?;
        Ok(json!({ "path": display(&rel), "bytes_written": a.content.len() }))
    }

    /// Walks `rel` down from the root, creating missing directories and resolving links (which
    /// must stay inside); returns the canonical directory.
    fn make_dirs(&self, tool: &str, raw: &str, rel: &Path) -> Result<PathBuf, ToolError> {
        let mut cur = self.root.clone();
        for c in rel.components() {
            let next = cur.join(c);
            match fs::symlink_metadata(&next) {
                Ok(m) if m.file_type().is_symlink() => {
                    let real = fs::canonicalize(&next).map_err(|e| io_error(tool, raw, &e))?;
                    self.check_inside(tool, raw, &real)?;
                    if !real.is_dir() {
                        return Err(refuse(tool, raw, "a parent is not a directory"));
                    }
                    cur = real;
                }
                Ok(m) if m.is_dir() => cur = next,
                Ok(_) => return Err(refuse(tool, raw, "a parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match fs::create_dir(&next) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_error(tool, raw, &e)),
                    }
                    // Re-resolved: whatever raced into that name must still be inside.
                    cur = fs::canonicalize(&next).map_err(|e| io_error(tool, raw, &e))?;
                    self.check_inside(tool, raw, &cur)?;
                }
                Err(e) => return Err(io_error(tool, raw, &e)),
            }
        }
        Ok(cur)
    }

    fn list_dir(&self, a: ListArgs) -> Result<Value, ToolError> {
        const TOOL: &str = "list_dir";
        let rel = lexical(TOOL, &a.path)?;
        let real = self.existing(TOOL, &a.path, &rel)?;
        let mut entries = Vec::new();
        for e in fs::read_dir(&real).map_err(|e| io_error(TOOL, &a.path, &e))? {
            let e = e.map_err(|e| io_error(TOOL, &a.path, &e))?;
            // DirEntry::metadata does not follow links: a link is listed as one.
            let meta = e.metadata().map_err(|e| io_error(TOOL, &a.path, &e))?;
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                "symlink"
            } else if ft.is_dir() {
                "dir"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            entries.push((
                e.file_name().to_string_lossy().into_owned(),
                kind,
                meta.len(),
            ));
        }
        entries.sort();
        let truncated = entries.len() > self.limits.max_dir_entries;
        entries.truncate(self.limits.max_dir_entries);
        let entries: Vec<Value> = entries
            .into_iter()
            .map(|(name, kind, size)| json!({"name": name, "type": kind, "size": size}))
            .collect();
        Ok(json!({ "path": display(&rel), "entries": entries, "truncated": truncated }))
    }
}

/// A sandbox-relative path as shown in results (`.` for the root).
fn display(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        rel.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_paths_refuse_parents_and_roots() {
        assert_eq!(lexical("t", "a/./b").ok(), Some(PathBuf::from("a/b")));
        assert_eq!(lexical("t", "").ok(), Some(PathBuf::new()));
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\0b"] {
            assert!(
                matches!(lexical("t", bad), Err(ToolError::Permanent(_))),
                "{bad}"
            );
        }
    }
}
