//! The plugin toolchain installs (`install_once` in `plugins/build-common.sh`, which every
//! build script and `plugins/setup-toolchains.sh` install through) under the concurrency that
//! `cargo test` creates on a fresh clone: several builds of one language at once, and an
//! install killed half way. A fake installer stands in for pip and npm: it logs each run and
//! writes its product last.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Calls `install_once` with the fake installer `installer` (`slow` or `killed`) as caller
/// `n` of `callers`; prints the installed product.
const CALLER: &str = r#"
set -euo pipefail
. "$COMMON"
# Waits until every caller has started, then takes a while: all callers race for the install.
slow() {
  echo run >> "$WORK/runs"
  mkdir -p "$WORK/tool"
  for _ in $(seq 600); do
    [ "$(find "$WORK" -maxdepth 1 -name 'started.*' | wc -l)" -ge "$CALLERS" ] && break
    sleep 0.05
  done
  sleep 1
  echo complete > "$WORK/tool/product"
}
# Dies half way through, as pip or npm killed by a signal.
killed() {
  echo run >> "$WORK/runs"
  mkdir -p "$WORK/tool"
  echo half > "$WORK/tool/product"
  kill -KILL "$BASHPID"
}
touch "$WORK/started.$N"
install_once "$WORK/.install.lock" "$WORK/tool" "$WORK/requirements.txt" "$INSTALLER"
cat "$WORK/tool/product"
"#;

fn spawn(work: &Path, installer: &str, n: usize, callers: usize) -> Child {
    Command::new("bash")
        .arg("-c")
        .arg(CALLER)
        .env("COMMON", Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/build-common.sh"))
        .env("WORK", work)
        .env("INSTALLER", installer)
        .env("N", n.to_string())
        .env("CALLERS", callers.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs")
}

fn run(work: &Path, installer: &str) -> Output {
    spawn(work, installer, 0, 1).wait_with_output().expect("caller finishes")
}

fn runs(work: &Path) -> usize {
    std::fs::read_to_string(work.join("runs")).map(|s| s.lines().count()).unwrap_or(0)
}

fn fresh() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(work.path().join("requirements.txt"), "tool==1\n").expect("requirements");
    work
}

fn assert_complete(out: &Output) {
    assert!(out.status.success(), "install_once failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "complete", "a caller saw an unfinished install");
}

#[test]
fn concurrent_builds_run_one_install_and_all_see_it_complete() {
    let work = fresh();
    let callers: Vec<Child> = (0..3).map(|n| spawn(work.path(), "slow", n, 3)).collect();
    for caller in callers {
        assert_complete(&caller.wait_with_output().expect("caller finishes"));
    }
    assert_eq!(runs(work.path()), 1, "the installer ran more than once");
    assert_complete(&run(work.path(), "slow"));
    assert_eq!(runs(work.path()), 1, "a finished install was redone");
}

#[test]
fn a_killed_install_leaves_no_marker_and_the_next_build_redoes_it() {
    let work = fresh();
    let out = run(work.path(), "killed");
    assert!(!out.status.success(), "a killed install reported success");
    assert!(!work.path().join("tool/.kreflex-installed").exists(), "a killed install was marked done");
    assert_complete(&run(work.path(), "slow"));
    assert_eq!(runs(work.path()), 2, "the killed install was not redone");
}

#[test]
fn a_changed_requirements_file_reinstalls() {
    let work = fresh();
    assert_complete(&run(work.path(), "slow"));
    std::fs::write(work.path().join("requirements.txt"), "tool==2\n").expect("requirements");
    assert_complete(&run(work.path(), "slow"));
    assert_eq!(runs(work.path()), 2, "the new requirements were not installed");
}
