//! The real `shoal-server` binary as a child process, killed when dropped (also when a test
//! fails half way); its stderr goes to `server.log` in its data directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Binary {
    child: Child,
    pub addr: SocketAddr,
    pub data: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary on `127.0.0.1:0` with cheap password hashing, a fresh data
    /// directory and `args`; `RUST_LOG` is `log` (e.g. `warn` to keep a flood's log small).
    pub fn start(args: &[&str], log: &str) -> Binary {
        Binary::start_command(args, log, |_| {})
    }

    /// As [`Binary::start`], with `edit` applied to the command first.
    pub fn start_command(args: &[&str], log: &str, edit: impl FnOnce(&mut Command)) -> Binary {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let log_file = std::fs::File::create(tmp.path().join("server.log")).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shoal-server"));
        command
            .arg("--data")
            .arg(&data)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--insecure-fast-password-hashing",
            ])
            .args(args)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(log_file);
        edit(&mut command);
        let mut child = command.spawn().expect("spawn shoal-server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "shoal-server did not start: {line:?}\n{}",
                std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default()
            );
        };
        let addr = addr.parse().expect("an address");
        Binary {
            child,
            addr,
            data,
            _tmp: tmp,
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.data
            .parent()
            .unwrap_or(Path::new("."))
            .join("server.log")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- the server's last log lines ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
