//! Shoal's demos are this package's examples; the library is empty. Run them from the
//! repository root:
//!
//! - `cargo run --release --example sync_demo`: `shoal-server`, one user on two devices, a realm
//!   synced both ways;
//! - `cargo run --release --example sharing_demo`: two users sharing a realm through their
//!   management realms (an offer, its acceptance), both editing it;
//! - `cargo run --release --example demo`: two users, a local realm shared by two handles on two
//!   threads;
//! - `cargo run --release --example file_growth`: file size and reopen time under crashes.
//!
//! The library holds what the demos share: [`start_server`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Starts `shoal-server` with its data in `data` on a free loopback port, on a runtime of its
/// own in a background thread; returns its address once it listens.
///
/// # Errors
/// Why the server could not start (as text: the demos print it).
pub fn start_server(data: &Path) -> Result<SocketAddr, String> {
    let config = shoal_server::ServerConfig::new(data);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(format!("tokio runtime: {e}")));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(format!("bind 127.0.0.1:0: {e}")));
                    return;
                }
            };
            let _ = tx.send(listener.local_addr().map_err(|e| e.to_string()));
            if let Err(e) = shoal_server::run(listener, config, std::future::pending::<()>()).await
            {
                eprintln!("shoal-server stopped: {e}");
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|e| format!("shoal-server did not start: {e}"))?
        .map_err(|e| format!("shoal-server did not start: {e}"))
}
