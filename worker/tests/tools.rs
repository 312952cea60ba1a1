//! The sandbox tools through [`Toolbox`]: the file tools refusing `..`, absolute paths and
//! symbolic links out of the sandbox, and failing at once on paths that can never work (link
//! loops, files used as directories); `exec` refused when off, and killed at its time limit when
//! on. `web_fetch` has its own file.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_shared::config::WorkerConfig;
use switchyard_tests::TempDir;
use switchyard_worker::tools::files::FileLimits;
use switchyard_worker::tools::{Exec, Sandbox, ToolError, Toolbox};

fn sandbox(dir: &Path) -> Toolbox {
    let limits = FileLimits {
        max_file_bytes: 1_000,
        max_dir_entries: 10,
    };
    Toolbox::always_on().with_files(Sandbox::open(dir, limits).expect("sandbox"))
}

async fn file_tool(tb: &Toolbox, tool: &str, args: Value) -> Result<Value, ToolError> {
    tb.run(&json!({"tool": tool, "args": args})).await
}

#[tokio::test]
async fn file_tools_write_read_and_list_inside_the_sandbox() {
    let tmp = TempDir::new("files");
    let root = tmp.path().join("sandbox");
    let tb = sandbox(&root);

    let w = file_tool(
        &tb,
        "write_file",
        json!({"path": "notes/a.txt", "content": "hello"}),
    )
    .await
    .expect("written");
    assert_eq!(
        w["output"],
        json!({"path": "notes/a.txt", "bytes_written": 5})
    );
    file_tool(
        &tb,
        "write_file",
        json!({"path": "notes/a.txt", "content": " world", "append": true}),
    )
    .await
    .expect("appended");
    let r = file_tool(&tb, "read_file", json!({"path": "./notes/a.txt"}))
        .await
        .expect("read");
    assert_eq!(r["output"]["content"], "hello world");
    assert_eq!(r["output"]["truncated"], false);
    let l = file_tool(&tb, "list_dir", json!({})).await.expect("listed");
    assert_eq!(
        l["output"],
        json!({"path": ".", "entries": [{"name": "notes", "type": "dir", "size": l["output"]["entries"][0]["size"]}], "truncated": false})
    );
    let r = file_tool(
        &tb,
        "write_file",
        json!({"path": "big", "content": "x".repeat(1_001)}),
    )
    .await;
    assert!(
        matches!(&r, Err(ToolError::Permanent(m)) if m.contains("TOOL_MAX_FILE_BYTES")),
        "{r:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn file_tools_refuse_parent_absolute_and_symlink_escapes() {
    use std::os::unix::fs::symlink;
    let tmp = TempDir::new("escape");
    let root = tmp.path().join("sandbox");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&root).expect("sandbox dir");
    std::fs::create_dir_all(&outside).expect("outside dir");
    std::fs::write(outside.join("secret.txt"), "top secret").expect("outside file");
    symlink(outside.join("secret.txt"), root.join("link-to-secret")).expect("file link");
    symlink(&outside, root.join("link-to-outside")).expect("dir link");
    std::fs::write(root.join("inside.txt"), "fine").expect("inside file");
    symlink(root.join("inside.txt"), root.join("link-inside")).expect("inner link");
    let tb = sandbox(&root);

    for (tool, args) in [
        ("read_file", json!({"path": "../outside/secret.txt"})),
        (
            "write_file",
            json!({"path": "../outside/new.txt", "content": "x"}),
        ),
        ("list_dir", json!({"path": ".."})),
        ("read_file", json!({"path": "a/../../outside/secret.txt"})),
    ] {
        let r = file_tool(&tb, tool, args.clone()).await;
        assert!(
            matches!(&r, Err(ToolError::Permanent(m)) if m.contains("`..`")),
            "{tool} {args}: {r:?}"
        );
    }
    let secret = outside.join("secret.txt");
    for (tool, args) in [
        ("read_file", json!({"path": secret.to_string_lossy()})),
        ("list_dir", json!({"path": "/"})),
    ] {
        let r = file_tool(&tb, tool, args.clone()).await;
        assert!(
            matches!(&r, Err(ToolError::Permanent(m)) if m.contains("absolute")),
            "{tool} {args}: {r:?}"
        );
    }
    for (tool, args) in [
        ("read_file", json!({"path": "link-to-secret"})),
        ("read_file", json!({"path": "link-to-outside/secret.txt"})),
        ("list_dir", json!({"path": "link-to-outside"})),
        (
            "write_file",
            json!({"path": "link-to-secret", "content": "overwritten"}),
        ),
        (
            "write_file",
            json!({"path": "link-to-outside/new.txt", "content": "planted"}),
        ),
        (
            "write_file",
            json!({"path": "link-to-outside/deeper/new.txt", "content": "planted"}),
        ),
    ] {
        let r = file_tool(&tb, tool, args.clone()).await;
        assert!(
            matches!(&r, Err(ToolError::Permanent(m)) if m.contains("outside the sandbox")),
            "{tool} {args}: {r:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&secret).expect("still there"),
        "top secret"
    );
    assert!(!outside.join("new.txt").exists() && !outside.join("deeper").exists());

    // Links that stay inside are followed; a listing shows links without following them.
    let r = file_tool(&tb, "read_file", json!({"path": "link-inside"}))
        .await
        .expect("inner link");
    assert_eq!(r["output"]["content"], "fine");
    let l = file_tool(&tb, "list_dir", json!({"path": "."}))
        .await
        .expect("listed");
    let kinds: Vec<(String, String)> = l["output"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_owned(),
                e["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("link-to-outside".into(), "symlink".into())),
        "{kinds:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn file_tools_fail_permanently_on_link_loops_and_files_used_as_directories() {
    use std::os::unix::fs::symlink;
    let tmp = TempDir::new("loop");
    let root = tmp.path().join("sandbox");
    std::fs::create_dir_all(&root).expect("sandbox dir");
    symlink(root.join("loop-b"), root.join("loop-a")).expect("link a");
    symlink(root.join("loop-a"), root.join("loop-b")).expect("link b");
    symlink(root.join("self"), root.join("self")).expect("self link");
    std::fs::write(root.join("plain.txt"), "x").expect("file");
    let tb = sandbox(&root);

    for (tool, args, why) in [
        ("read_file", json!({"path": "loop-a"}), "symbolic link loop"),
        ("read_file", json!({"path": "self"}), "symbolic link loop"),
        ("list_dir", json!({"path": "loop-b"}), "symbolic link loop"),
        (
            "write_file",
            json!({"path": "loop-a", "content": "x"}),
            "symbolic link loop",
        ),
        (
            "read_file",
            json!({"path": "plain.txt/inner"}),
            "Not a directory",
        ),
    ] {
        let r = file_tool(&tb, tool, args.clone()).await;
        assert!(
            matches!(&r, Err(ToolError::Permanent(m)) if m.contains(why)),
            "{tool} {args}: {r:?}"
        );
    }
}

fn worker_config(pairs: &[(&str, &str)]) -> WorkerConfig {
    let vars: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    WorkerConfig::from_vars(&vars).expect("valid test config")
}

#[tokio::test]
async fn exec_is_refused_when_disabled() {
    let tmp = TempDir::new("exec-off");
    let dir = tmp.path().to_string_lossy().into_owned();
    // File tools on, exec off: the sandbox exists but exec is still not served.
    let tb = Toolbox::from_config(&worker_config(&[
        ("ENABLE_FILE_TOOLS", "true"),
        ("TOOL_SANDBOX_DIR", &dir),
    ]))
    .expect("toolbox");
    let r = tb
        .run(&json!({"tool": "exec", "args": {"argv": ["touch", "pwned"]}}))
        .await;
    assert!(
        matches!(&r, Err(ToolError::Permanent(m)) if m.contains("ENABLE_CODE_EXEC") && m.contains("not enabled")),
        "{r:?}"
    );
    assert!(!tmp.path().join("pwned").exists());
}

#[cfg(unix)]
#[tokio::test]
async fn exec_runs_argv_without_shell_or_secrets_and_is_killed_at_its_time_limit() {
    let tmp = TempDir::new("exec-on");
    let dir = tmp.path().to_string_lossy().into_owned();
    let tb = Toolbox::from_config(&worker_config(&[
        ("ENABLE_CODE_EXEC", "true"),
        ("TOOL_SANDBOX_DIR", &dir),
        ("EXEC_TIMEOUT_MS", "1500"),
        ("EXEC_MAX_OUTPUT_BYTES", "100"),
        ("OPENAI_API_KEY", "sk-should-not-leak"),
    ]))
    .expect("toolbox");
    let exec = |args: Value| {
        let tb = tb.clone();
        async move { tb.run(&json!({"tool": "exec", "args": args})).await }
    };

    let r = exec(json!({"argv": ["echo", "$HOME", ";", "ls"]}))
        .await
        .expect("ran");
    assert_eq!(r["output"]["stdout"], "$HOME ; ls\n");
    assert_eq!(r["output"]["exit_code"], 0);
    let r = exec(json!({"argv": ["pwd"]})).await.expect("ran");
    let pwd = r["output"]["stdout"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_owned();
    let real = std::fs::canonicalize(tmp.path()).expect("canonical");
    assert_eq!(Path::new(&pwd), real, "runs in the sandbox");
    let r = exec(json!({"argv": ["env"]})).await.expect("ran");
    let env = r["output"]["stdout"].as_str().unwrap_or("");
    assert!(
        !env.contains("sk-should-not-leak") && env.contains("PATH="),
        "{env}"
    );
    let r = exec(json!({"argv": ["cat"], "stdin": "piped in"}))
        .await
        .expect("ran");
    assert_eq!(r["output"]["stdout"], "piped in");
    let r = exec(json!({"argv": ["sh", "-c", "exit 3"]}))
        .await
        .expect("ran");
    assert_eq!(r["output"]["exit_code"], 3);
    let r = exec(json!({"argv": ["head", "-c", "100000", "/dev/zero"]}))
        .await
        .expect("ran");
    assert_eq!(r["output"]["stdout_truncated"], true);
    assert_eq!(r["output"]["stdout"].as_str().map(str::len), Some(100));
    let r = exec(json!({"argv": ["no-such-program-here"]})).await;
    assert!(
        matches!(&r, Err(ToolError::Permanent(m)) if m.contains("cannot start")),
        "{r:?}"
    );

    // Killed at EXEC_TIMEOUT_MS, or earlier when the task asks for less.
    for (args, limit) in [
        (json!({"argv": ["sleep", "30"]}), "killed after 1500 ms"),
        (
            json!({"argv": ["sleep", "30"], "timeout_ms": 200}),
            "killed after 200 ms",
        ),
        (
            json!({"argv": ["sleep", "30"], "timeout_ms": 60_000}),
            "killed after 1500 ms",
        ),
    ] {
        let began = Instant::now();
        let r = exec(args).await;
        assert!(
            matches!(&r, Err(ToolError::Permanent(m)) if m.contains(limit)),
            "{r:?}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
    }
}

#[tokio::test]
async fn exec_alone_is_served_by_its_own_type() {
    let tmp = TempDir::new("exec-direct");
    let tb = Toolbox::always_on().with_exec(Exec::new(
        tmp.path(),
        Duration::from_secs(5),
        1_000,
        "/usr/bin:/bin",
    ));
    let r = tb.run(&json!({"tool": "exec", "args": {"argv": []}})).await;
    assert!(
        matches!(&r, Err(ToolError::Permanent(m)) if m.contains("argv")),
        "{r:?}"
    );
}
