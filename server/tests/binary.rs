//! The real `shoal-server` binary: starts on `--listen 127.0.0.1:0`, prints the address it
//! got, answers `GET /health`, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_binary_serves_health_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .arg("--data")
        .arg(data.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure-fast-password-hashing",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn shoal-server");

    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read stdout");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    // /health with a bare HTTP/1.1 request, polled until the server is ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        let attempt = TcpStream::connect(&addr).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        });
        match attempt {
            Ok(response) if response.starts_with("HTTP/1.1 200") => break response,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("server never healthy: {other:?}"),
        }
    };
    assert!(response.contains(r#"{"status":"ok"}"#), "{response}");
    assert!(data.path().join("auth.redb").exists());

    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // Safety: `pid` is our own child process, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shoal-server did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}
