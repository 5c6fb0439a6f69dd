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
