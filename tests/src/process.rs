//! The gateway's process mode for end-to-end tests: a directory of symlinks named after
//! the functions' binaries, all pointing at the `chat-function` binary of this package
//! (which runs the function its name says), and the ids of the function processes the
//! gateway started (to kill one mid-invocation, as a crashed or recycled Lambda
//! execution environment would be).

use std::path::{Path, PathBuf};

/// A fresh directory in which every function binary of `Registry::builtin()` is a
/// symlink to `chat_function` (pass `env!("CARGO_BIN_EXE_chat-function")`).
pub fn bin_dir(chat_function: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(crate::unique_prefix("chat-functions"));
    std::fs::create_dir_all(&dir).expect("creating the functions directory");
    for name in chat_local::gateway::functions::Registry::builtin().binaries() {
        std::os::unix::fs::symlink(chat_function, dir.join(name))
            .expect("linking a function binary");
    }
    dir
}

/// The live child processes of this test process that run `binary` from `dir`.
pub fn function_pids(dir: &Path, binary: &str) -> Vec<u32> {
    let me = std::process::id();
    let exe = dir.join(binary);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": the fields after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            ppid == Some(me) && Path::new(std::str::from_utf8(argv0).unwrap_or("")) == exe
        })
        .collect()
}

/// Kill a process at once (SIGKILL), as Lambda ends an execution environment.
pub fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -KILL {pid}");
}
