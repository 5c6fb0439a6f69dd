//! Connection limits (**security boundary**): what keeps clients that have no token from
//! exhausting the server's connections or file descriptors.
//!
//! Every accepted TCP connection gets a [`Permit`] from [`Limits::admit`] or is refused at
//! once (a `503` written without reading anything, then closed). The permit travels inside
//! the connection's stream ([`TrackedStream`]), so it is held exactly as long as the socket is
//! open: through TLS, HTTP keep-alive and, after a WebSocket upgrade, for the WebSocket's
//! whole life (hyper's `Upgraded` owns the stream). Two bounds apply:
//!
//! - **Per address** ([`Limits::max_per_address`]): at most this many open connections from
//!   one IPv4 address or one IPv6 /64; more are refused. One host cannot take the server.
//! - **In total** (`max_total`): when every slot is taken, the new connection is admitted
//!   and the *least valuable* open connection is evicted instead, so a flood of connections
//!   that do nothing cannot lock out a client that comes to do something. Connections are
//!   ranked by [`Stage`]: first those that have not yet sent a request or are WebSockets
//!   without a bound session (what a flood is made of), then idle keep-alive connections
//!   that have served a request, then connections in the middle of a request (a slow body);
//!   within a rank, those of the address with the most connections of that rank go first (a
//!   flood from a few hosts is evicted before a client with one or two connections), then
//!   the oldest. WebSockets with a session bound by a valid token are never evicted. The new
//!   connection is refused instead when nothing is evictable, or when its own address holds
//!   at least [`FAIR_SHARE_FLOOR`] connections and no fewer than the victim's (another)
//!   address, so that a flood from a few addresses does not churn through evictions of
//!   itself.
//!
//! Eviction sets a flag and wakes the connection: its stream fails every further read and
//! write, and its task drops it (closing the socket), so the slot frees within a poll.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What an open connection is doing, which decides whether (and how early) it is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stage {
    /// Accepted; no request has completed yet (TLS handshake, headers on the way, or
    /// nothing at all).
    Fresh = 0,
    /// Between requests, after at least one was answered (keep-alive).
    Idle = 1,
    /// A request is being served (its headers have arrived).
    Busy = 2,
    /// An upgraded sync WebSocket without a bound session.
    WebSocketUnbound = 3,
    /// An upgraded sync WebSocket with a session bound by a valid access token.
    WebSocketBound = 4,
}

impl Stage {
    fn from_u8(value: u8) -> Stage {
        match value {
            1 => Stage::Idle,
            2 => Stage::Busy,
            3 => Stage::WebSocketUnbound,
            4 => Stage::WebSocketBound,
            _ => Stage::Fresh,
        }
    }

    /// The eviction tier: lower goes first; `None` is never evicted.
    fn tier(self) -> Option<usize> {
        match self {
            Stage::Fresh | Stage::WebSocketUnbound => Some(0),
            Stage::Idle => Some(1),
            Stage::Busy => Some(2),
            Stage::WebSocketBound => None,
        }
    }
}

/// The state one connection shares with [`Limits`]: its stage and the eviction signal.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// The limits that index this connection by stage, and its id there.
    limits: Weak<Limits>,
    id: u64,
    stage: AtomicU8,
    evicted: AtomicBool,
    /// Wakes the stream's pending read or write when the connection is evicted.
    io_waker: AtomicWaker,
    /// Wakes the connection task when the connection is evicted.
    notify: Notify,
}

impl Tracked {
    fn new(limits: Weak<Limits>, id: u64) -> Tracked {
        Tracked {
            limits,
            id,
            stage: AtomicU8::new(Stage::Fresh as u8),
            evicted: AtomicBool::new(false),
            io_waker: AtomicWaker::new(),
            notify: Notify::new(),
        }
    }

    pub(crate) fn stage(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Acquire))
    }

    /// Moves the connection to `stage` (and to its rank for eviction).
    pub(crate) fn set_stage(&self, stage: Stage) {
        self.move_stage(None, stage);
    }

    /// Moves from `from` to `to` if the connection is still at `from`.
    pub(crate) fn change_stage(&self, from: Stage, to: Stage) {
        self.move_stage(Some(from), to);
    }

    fn move_stage(&self, from: Option<Stage>, to: Stage) {
        let Some(limits) = self.limits.upgrade() else {
            return;
        };
        // Under the table's lock, so that the stage and the eviction index agree.
        let mut table = limits.lock();
        let old = self.stage();
        if from.is_some_and(|from| from != old) || old == to {
            return;
        }
        self.stage.store(to as u8, Ordering::Release);
        table.reindex(self.id, old.tier(), to.tier());
    }

    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Completes once the connection has been evicted.
    pub(crate) async fn evicted(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_evicted() {
                return;
            }
            notified.await;
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.io_waker.wake();
        self.notify.notify_waiters();
    }
}

/// A request extension naming the connection the request came on; the sync endpoint uses it
/// to tell the limits whether its WebSocket has a bound session.
#[derive(Debug, Clone)]
pub(crate) struct TrackedConnection(pub(crate) Arc<Tracked>);

/// Who a per-address limit counts together: an IPv4 address (IPv4-mapped IPv6 included) or
/// an IPv6 /64 (what one host or customer is usually given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum AddressKey {
    V4(Ipv4Addr),
    V6Prefix(u64),
}

impl AddressKey {
    fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4),
                None => AddressKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Below this many connections, an address may always take the slot of an evictable
/// connection when every slot is taken; from it on, only from an address holding more.
const FAIR_SHARE_FLOOR: usize = 4;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address has `max_per_address` connections open.
    PerAddress,
    /// Every slot is taken and none may be evicted.
    Full,
}

/// The open connections and their bounds; shared by the accept loop and every permit.
#[derive(Debug)]
pub(crate) struct Limits {
    max_total: usize,
    max_per_address: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// Open connections by id (ids grow with acceptance: smaller is older).
    open: HashMap<u64, Open>,
    /// Open connections per address.
    per_address: HashMap<AddressKey, usize>,
    /// The evictable connections of each tier (see [`Stage`]), ranked for eviction.
    tiers: [TierIndex; 3],
    /// Evicted connections whose permits are not dropped yet (they still hold a socket, but
    /// only for a moment: they no longer count against `max_total`).
    evicting: usize,
}

#[derive(Debug)]
struct Open {
    key: AddressKey,
    tracked: Arc<Tracked>,
}

/// The connections of one tier by address, and the addresses by how many they have there:
/// the next victim is the oldest connection of the address with the most, in O(log n).
#[derive(Debug, Default)]
struct TierIndex {
    by_address: HashMap<AddressKey, BTreeSet<u64>>,
    /// `(connections in this tier, address)`; the last is the next to lose one.
    ranked: BTreeSet<(usize, AddressKey)>,
}

impl TierIndex {
    fn insert(&mut self, key: AddressKey, id: u64) {
        let ids = self.by_address.entry(key).or_default();
        let before = ids.len();
        if ids.insert(id) {
            self.ranked.remove(&(before, key));
            self.ranked.insert((before + 1, key));
        }
    }

    fn remove(&mut self, key: AddressKey, id: u64) {
        let Some(ids) = self.by_address.get_mut(&key) else {
            return;
        };
        let before = ids.len();
        if !ids.remove(&id) {
            return;
        }
        self.ranked.remove(&(before, key));
        if before > 1 {
            self.ranked.insert((before - 1, key));
        } else {
            self.by_address.remove(&key);
        }
    }

    /// The oldest connection of the address with the most connections in this tier.
    fn victim(&self) -> Option<u64> {
        let (_, key) = self.ranked.last()?;
        self.by_address.get(key)?.first().copied()
    }
}

impl Table {
    /// The next connection to evict: `(tier, id)`.
    fn victim(&self) -> Option<(usize, u64)> {
        (0..self.tiers.len()).find_map(|tier| self.tiers[tier].victim().map(|id| (tier, id)))
    }

    fn evict(&mut self, tier: usize, id: u64) {
        let Some(open) = self.open.get(&id) else {
            return;
        };
        let (key, victim) = (open.key, Arc::clone(&open.tracked));
        self.tiers[tier].remove(key, id);
        victim.evict();
        self.evicting += 1;
    }

    /// Moves connection `id` from one tier's index to another's (`None`: not evictable).
    fn reindex(&mut self, id: u64, old: Option<usize>, new: Option<usize>) {
        let Some(open) = self.open.get(&id) else {
            return;
        };
        if old == new || open.tracked.is_evicted() {
            return;
        }
        let key = open.key;
        if let Some(old) = old {
            self.tiers[old].remove(key, id);
        }
        if let Some(new) = new {
            self.tiers[new].insert(key, id);
        }
    }
}

/// Counts of what [`Limits::admit`] did, for the accept loop's summary log lines.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Admitted {
    /// Whether a connection was evicted to make room.
    pub(crate) evicted: bool,
}

impl Limits {
    /// At most `max_total` connections (at least 1), at most `max_per_address` from one
    /// address (0: no per-address bound).
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Limits> {
        Arc::new(Limits {
            max_total: max_total.max(1),
            max_per_address,
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, evicting the least valuable open one if every slot is
    /// taken; or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Permit, Admitted), Refusal> {
        let key = AddressKey::of(ip);
        let mut table = self.lock();
        let from_address = table.per_address.get(&key).copied().unwrap_or(0);
        if self.max_per_address > 0 && from_address >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        let mut admitted = Admitted::default();
        if table.open.len() - table.evicting >= self.max_total {
            let Some((tier, id)) = table.victim() else {
                return Err(Refusal::Full);
            };
            // A host holding many connections may not take the slot of another holding as
            // many or fewer: a flood from a few addresses then stops evicting itself (cheap
            // refusals instead of churn), while a client with a few connections still gets
            // in. Within one address (all clients behind a proxy) the oldest goes.
            let victim_key = table.open.get(&id).map(|open| open.key);
            let victim_holds = victim_key.map_or(0, |k| table.per_address[&k]);
            let other_address = victim_key != Some(key);
            if other_address && from_address >= FAIR_SHARE_FLOOR && from_address >= victim_holds {
                return Err(Refusal::Full);
            }
            table.evict(tier, id);
            admitted.evicted = true;
        }
        let id = table.next_id;
        table.next_id += 1;
        let tracked = Arc::new(Tracked::new(Arc::downgrade(self), id));
        let open = Open {
            key,
            tracked: Arc::clone(&tracked),
        };
        table.open.insert(id, open);
        *table.per_address.entry(key).or_insert(0) += 1;
        if let Some(tier) = Stage::Fresh.tier() {
            table.tiers[tier].insert(key, id);
        }
        drop(table);
        let permit = Permit {
            limits: Arc::clone(self),
            id,
            key,
            tracked,
        };
        Ok((permit, admitted))
    }

    /// Evicts the least valuable open connection, if any may be (to free a descriptor when
    /// the process has run out). Returns whether one was.
    pub(crate) fn evict_least_valuable(&self) -> bool {
        Self::evict_one(&mut self.lock())
    }

    /// Evicts the oldest connection of the address with the most connections in the lowest
    /// tier that has any.
    fn evict_one(table: &mut Table) -> bool {
        match table.victim() {
            Some((tier, id)) => {
                table.evict(tier, id);
                true
            }
            None => false,
        }
    }

    /// Open connections (evicted ones not yet closed included).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// One admitted connection's slot; frees it when dropped (when the socket closes).
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<Limits>,
    id: u64,
    key: AddressKey,
    tracked: Arc<Tracked>,
}

impl Permit {
    pub(crate) fn tracked(&self) -> &Arc<Tracked> {
        &self.tracked
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut table = self.limits.lock();
        if table.open.remove(&self.id).is_some() {
            if self.tracked.is_evicted() {
                table.evicting -= 1;
            } else if let Some(tier) = self.tracked.stage().tier() {
                table.tiers[tier].remove(self.key, self.id);
            }
        }
        if let Some(count) = table.per_address.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                table.per_address.remove(&self.key);
            }
        }
    }
}

/// A connection's byte stream holding its [`Permit`]: the slot is freed when the stream is
/// dropped, and once the connection is evicted every read and write fails.
#[derive(Debug)]
pub(crate) struct TrackedStream<S> {
    inner: S,
    permit: Permit,
}

impl<S> TrackedStream<S> {
    pub(crate) fn new(inner: S, permit: Permit) -> TrackedStream<S> {
        TrackedStream { inner, permit }
    }

    fn check(&self, cx: &mut Context<'_>) -> io::Result<()> {
        let tracked = &self.permit.tracked;
        tracked.io_waker.register(cx.waker());
        if tracked.is_evicted() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection evicted to make room for another",
            ));
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_bound_counts_ipv4_and_ipv6_prefixes() {
        let limits = Limits::new(100, 2);
        let a = limits.admit(ip("10.0.0.1")).unwrap();
        let _b = limits.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::PerAddress
        );
        let _c = limits.admit(ip("10.0.0.2")).unwrap();
        let _d = limits.admit(ip("2001:db8::1")).unwrap();
        let _e = limits.admit(ip("2001:db8::ffff")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8::2")).unwrap_err(),
            Refusal::PerAddress
        );
        let _f = limits.admit(ip("2001:db8:0:1::1")).unwrap();
        drop(a);
        let _g = limits.admit(ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn a_full_table_evicts_by_tier_then_age_and_never_a_bound_websocket() {
        let limits = Limits::new(4, 0);
        let admit = || limits.admit(ip("127.0.0.1")).unwrap().0;
        let bound = admit();
        bound.tracked().set_stage(Stage::WebSocketBound);
        let busy = admit();
        busy.tracked().set_stage(Stage::Busy);
        let idle = admit();
        idle.tracked().set_stage(Stage::Idle);
        let unbound = admit();
        unbound.tracked().set_stage(Stage::WebSocketUnbound);

        let (fresh, admitted) = limits.admit(ip("127.0.0.2")).unwrap();
        assert!(admitted.evicted);
        assert!(unbound.tracked().is_evicted());
        assert_eq!(limits.open(), 5, "counted until its permit drops");
        drop(unbound);
        assert_eq!(limits.open(), 4);

        // Each newcomer binds at once, so the next eviction must pick among the older ones.
        let admit_bound = || {
            let (permit, admitted) = limits.admit(ip("127.0.0.2")).unwrap();
            permit.tracked().set_stage(Stage::WebSocketBound);
            assert!(admitted.evicted);
            permit
        };
        let _next = admit_bound();
        assert!(fresh.tracked().is_evicted(), "fresh goes before idle");
        let _next2 = admit_bound();
        assert!(idle.tracked().is_evicted(), "idle before busy");
        let _next3 = admit_bound();
        assert!(busy.tracked().is_evicted());
        assert!(!bound.tracked().is_evicted());
        assert_eq!(limits.admit(ip("127.0.0.3")).unwrap_err(), Refusal::Full);
    }

    #[test]
    fn within_a_tier_the_address_with_most_connections_goes_first() {
        let limits = Limits::new(3, 0);
        let (honest, _) = limits.admit(ip("127.0.0.1")).unwrap();
        let (flood1, _) = limits.admit(ip("127.0.0.9")).unwrap();
        let (flood2, _) = limits.admit(ip("127.0.0.9")).unwrap();
        let (_new, admitted) = limits.admit(ip("127.0.0.7")).unwrap();
        assert!(admitted.evicted);
        assert!(
            !honest.tracked().is_evicted(),
            "older, but alone on its address"
        );
        assert!(flood1.tracked().is_evicted());
        assert!(!flood2.tracked().is_evicted());
    }

    #[test]
    fn a_heavy_address_does_not_evict_an_address_holding_as_many() {
        let limits = Limits::new(8, 0);
        let _a: Vec<_> = (0..4)
            .map(|_| limits.admit(ip("10.0.0.1")).unwrap())
            .collect();
        let b: Vec<_> = (0..4)
            .map(|_| limits.admit(ip("10.0.0.2")).unwrap())
            .collect();
        // 10.0.0.1 holds 4, as many as the heaviest: refused, nobody evicted.
        assert_eq!(limits.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Full);
        assert!(b.iter().all(|(p, _)| !p.tracked().is_evicted()));
        // A light address gets in.
        let (_c, admitted) = limits.admit(ip("10.0.0.3")).unwrap();
        assert!(admitted.evicted);
    }

    #[test]
    fn nothing_evictable_refuses() {
        let limits = Limits::new(1, 0);
        let (bound, _) = limits.admit(ip("127.0.0.1")).unwrap();
        bound.tracked().set_stage(Stage::WebSocketBound);
        assert_eq!(limits.admit(ip("127.0.0.2")).unwrap_err(), Refusal::Full);
        bound.tracked().set_stage(Stage::WebSocketUnbound);
        assert!(limits.admit(ip("127.0.0.2")).is_ok());
    }

    #[tokio::test]
    async fn an_evicted_stream_fails_reads_and_wakes_its_task() {
        let limits = Limits::new(1, 0);
        let (permit, _) = limits.admit(ip("127.0.0.1")).unwrap();
        let tracked = Arc::clone(permit.tracked());
        let (client, server) = tokio::io::duplex(64);
        let mut stream = TrackedStream::new(server, permit);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await
        });
        let waiter = tokio::spawn({
            let tracked = Arc::clone(&tracked);
            async move { tracked.evicted().await }
        });
        tokio::task::yield_now().await;
        let (_other, admitted) = limits.admit(ip("127.0.0.2")).unwrap();
        assert!(admitted.evicted);
        let read = reader.await.unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        waiter.await.unwrap();
        drop(client);
        assert_eq!(limits.open(), 1, "the evicted stream's permit is gone");
    }
}
