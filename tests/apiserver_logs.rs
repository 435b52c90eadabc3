//! The log lines of `kreflex apiserver` as a user sees them on stderr (issue 16, item 7):
//! written to a pipe or a file, they carry no ANSI colour codes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(["apiserver", "--listen", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kreflex starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("a log line");
        let done = line.contains("listening");
        seen.push(line);
        if done {
            break;
        }
    }
    child.kill().expect("stop kreflex");
    let _ = child.wait();
    assert!(seen.iter().any(|l| l.contains("listening")), "{seen:?}");
    assert!(seen.iter().all(|l| !l.contains('\u{1b}')), "escape codes in piped logs: {seen:?}");
}
