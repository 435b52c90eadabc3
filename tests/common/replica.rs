//! `kreflex run` as a child process on an embedded API server: started with its own plugin
//! directory and admin port, asked for readiness and metrics, terminated (SIGTERM: drain and
//! release) or killed (SIGKILL: nothing released). Used by the leader-election tests and the
//! failover benchmark.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One `kreflex run` process.
pub struct Replica {
    /// Its Lease identity.
    pub id: String,
    child: Child,
    /// Its admin endpoint (`/readyz`, `/metrics`).
    pub admin: String,
    log: PathBuf,
    _plugins: tempfile::TempDir,
}

impl Replica {
    /// Starts `kreflex run` as `id` on the plugins in `plugins`, with its Leases in
    /// `default`, its log in `logs/<id>.log` and `extra` flags.
    pub fn start(
        kubeconfig: &Path,
        cache: &Path,
        logs: &Path,
        id: &str,
        plugins: tempfile::TempDir,
        extra: &[&str],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let admin = format!("127.0.0.1:{port}");
        let log = logs.join(format!("{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_kreflex"))
            .args(["run", "--plugins"])
            .arg(plugins.path())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(cache)
            .args(["--metrics-addr", &admin, "--resync-seconds", "0", "--no-reload", "--compile-in-process"])
            .args(["--lease-namespace", "default", "--lease-identity", id])
            .args(extra)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env("KREFLEX_LOG_LEVEL", "info,kreflex::lease=debug,kube_lease_manager=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("kreflex run starts");
        Self { id: id.to_owned(), child, admin, log, _plugins: plugins }
    }

    pub async fn readyz(&self) -> Option<String> {
        kreflex::plugins::status::fetch_readiness(&self.admin).await.ok()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = http_get(&self.admin, "/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "signal {sig} to {}", self.id);
    }

    /// SIGTERM, then waits for the process to drain, release its Leases and exit; its log.
    pub async fn terminate(mut self) -> String {
        self.signal(libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let log = self.log_text();
                assert!(status.success(), "{} exited with {status} after SIGTERM:\n{log}", self.id);
                return log;
            }
            assert!(std::time::Instant::now() < deadline, "{} did not exit after SIGTERM", self.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no release; its Leases must expire.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET of `path` on `addr`; the body.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}
