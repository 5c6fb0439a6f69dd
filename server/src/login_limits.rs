//! Bounds on password work ([`LoginLimits`]): a fixed pool of threads that run argon2
//! ([`HashPool`]) and the failed-login bookkeeping that slows down guessing ([`Throttle`]).
//!
//! **Why a pool of its own:** each argon2 hash works in about 19 MiB. Run on tokio's blocking
//! pool (up to 512 threads), 256 simultaneous logins hashed in 256 areas at once (4.7 GiB
//! resident). A few dedicated threads, each with one work area allocated once and reused
//! ([`Hasher`]), bound it to `threads × 19 MiB`. Requests beyond the threads wait in a bounded
//! queue (holding only their password); beyond the queue, or after waiting too long, they are
//! refused (`503`).
//!
//! **Invariant:** the throttle's maps hold at most `max_tracked` entries each, so neither
//! failed logins for random user names nor requests from many addresses grow memory without
//! limit.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::Params;

use crate::config::LoginLimits;
use crate::password::Hasher;
use crate::problem::ApiError;

/// The most hashing threads picked automatically.
const MAX_AUTO_THREADS: usize = 4;

type Job = Box<dyn FnOnce(&mut Hasher) + Send>;

/// A fixed set of threads running argon2 jobs, with a bounded queue in front.
pub(crate) struct HashPool {
    /// Dropped with the pool: the threads then finish their job and exit.
    jobs: SyncSender<Job>,
    /// The longest a job may wait before it is dropped unrun.
    max_wait: Duration,
    /// How many threads run jobs.
    threads: usize,
}

impl HashPool {
    /// Starts the threads, each with a [`Hasher`] for new hashes with `params` (whose work
    /// area it allocates on first use and keeps).
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub(crate) fn start(params: &Params, limits: &LoginLimits) -> std::io::Result<HashPool> {
        let threads = match limits.hash_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_AUTO_THREADS),
            n => n,
        };
        // At least one place: a rendezvous channel would refuse whenever no thread is idle.
        let (jobs, queue) = mpsc::sync_channel::<Job>(limits.hash_queue.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("shoal-argon2-{i}"))
                .spawn(move || work(&queue, &mut Hasher::new(params)))?;
        }
        Ok(HashPool {
            jobs,
            max_wait: limits.hash_max_wait,
            threads,
        })
    }

    /// How many threads hash.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` on a hashing thread and waits for its result (blocks: call it from a
    /// blocking thread).
    ///
    /// # Errors
    /// `503` with `Retry-After` if the queue is full or the job waited longer than allowed.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Hasher) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, result) = mpsc::sync_channel(1);
        let queued = Instant::now();
        let max_wait = self.max_wait;
        let job: Job = Box::new(move |hasher| {
            if queued.elapsed() <= max_wait {
                let _ = done.send(job(hasher));
            } // else `done` is dropped unsent: the caller answers busy
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("password hashing queue full; refusing a request");
                return Err(ApiError::busy());
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::internal(&"the password hashing threads stopped"))
            }
        }
        result.recv().map_err(|_| ApiError::busy())
    }
}

/// A hashing thread: runs jobs until the pool is dropped. A panicking job is contained (its
/// caller sees a dropped result: busy).
fn work(queue: &Mutex<Receiver<Job>>, hasher: &mut Hasher) {
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(hasher))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// What failed logins are counted against: the account, and the client's address (IPv4, or
/// the /64 prefix of IPv6, which one client typically owns whole).
#[derive(Debug, Clone)]
pub(crate) struct LoginKeys {
    /// `provider/provider id`.
    account: String,
    /// The address, when the request came over a socket.
    address: Option<IpAddr>,
}

impl LoginKeys {
    /// The keys of a login of `provider_id` at `provider` from `peer`.
    pub(crate) fn new(provider: &str, provider_id: &str, peer: Option<IpAddr>) -> LoginKeys {
        let address = peer.map(|ip| match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut segments = v6.segments();
                    segments[4..].fill(0);
                    IpAddr::from(segments)
                }
            },
        });
        LoginKeys {
            account: format!("{provider}/{provider_id}"),
            address,
        }
    }
}

/// Failed logins per account and per address, and the waits they impose.
pub(crate) struct Throttle {
    limits: LoginLimits,
    tables: Mutex<(Failures<String>, Failures<IpAddr>)>,
}

impl Throttle {
    pub(crate) fn new(limits: &LoginLimits) -> Throttle {
        Throttle {
            limits: limits.clone(),
            tables: Mutex::new((
                Failures::new(limits.free_failures_per_account),
                Failures::new(limits.free_failures_per_address),
            )),
        }
    }

    /// `Ok` if a login with `keys` may be tried now.
    ///
    /// # Errors
    /// `429` with `Retry-After` while the account or the address must wait.
    pub(crate) fn check(&self, keys: &LoginKeys) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut tables = self.lock();
        let forget = self.limits.forget_after;
        let account = tables.0.wait(&keys.account, now, forget);
        let address = keys.address.and_then(|ip| tables.1.wait(&ip, now, forget));
        // The longer wait is the one to report.
        match (account, address) {
            (None, None) => Ok(()),
            (Some(account), address) if address.is_none_or(|a| a <= account) => Err(
                ApiError::too_many_requests(account, "too many failed logins for this account"),
            ),
            (_, address) => Err(ApiError::too_many_requests(
                address.unwrap_or_default(),
                "too many failed logins from this address",
            )),
        }
    }

    /// Counts a failed login.
    pub(crate) fn failed(&self, keys: &LoginKeys) {
        let now = Instant::now();
        let mut tables = self.lock();
        tables.0.fail(keys.account.clone(), now, &self.limits);
        if let Some(ip) = keys.address {
            tables.1.fail(ip, now, &self.limits);
        }
        tracing::debug!(account = %keys.account, address = ?keys.address, "failed login");
    }

    /// A successful login clears its account's failures (not its address's: one account of
    /// one's own must not reset the count of guesses at others).
    pub(crate) fn succeeded(&self, keys: &LoginKeys) {
        self.lock().0.entries.remove(&keys.account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Failures<String>, Failures<IpAddr>)> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The failures of one kind of key.
struct Failures<K> {
    /// Failures allowed before waits begin.
    free: u32,
    entries: HashMap<K, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures since the entry was last cleared or forgotten.
    failures: u32,
    /// The last failure.
    last: Instant,
    /// No attempt before this.
    until: Option<Instant>,
}

impl<K: Hash + Eq> Failures<K> {
    fn new(free: u32) -> Failures<K> {
        Failures {
            free,
            entries: HashMap::new(),
        }
    }

    /// How long `key` must still wait, if at all.
    fn wait(&mut self, key: &K, now: Instant, forget: Duration) -> Option<Duration> {
        let entry = *self.entries.get(key)?;
        if now.saturating_duration_since(entry.last) > forget {
            self.entries.remove(key);
            return None;
        }
        entry
            .until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    fn fail(&mut self, key: K, now: Instant, limits: &LoginLimits) {
        if !self.entries.contains_key(&key) && self.entries.len() >= limits.max_tracked.max(1) {
            self.evict(now, limits);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
            until: None,
        });
        if now.saturating_duration_since(entry.last) > limits.forget_after {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        if entry.failures >= self.free {
            let doublings = (entry.failures - self.free).min(31);
            let delay = limits
                .base_delay
                .saturating_mul(1 << doublings)
                .min(limits.max_delay);
            entry.until = Some(now + delay);
        }
    }

    /// Makes room: drops what is forgotten anyway, then, if that is not enough, the quietest
    /// quarter (so that a flood of new keys evicts in batches, not one scan per failure).
    fn evict(&mut self, now: Instant, limits: &LoginLimits) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last) <= limits.forget_after);
        let max = limits.max_tracked.max(1);
        if self.entries.len() < max {
            return;
        }
        let mut lasts: Vec<Instant> = self.entries.values().map(|e| e.last).collect();
        let cut = lasts.len() / 4;
        let (_, threshold, _) = lasts.select_nth_unstable(cut);
        let threshold = *threshold;
        self.entries.retain(|_, e| e.last > threshold);
        tracing::warn!(
            kept = self.entries.len(),
            "too many failed-login entries; dropped the quietest"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            free_failures_per_account: 3,
            free_failures_per_address: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10),
            max_tracked: 8,
            ..LoginLimits::default()
        }
    }

    #[test]
    fn waits_begin_after_the_free_failures_and_double_up_to_the_maximum() {
        let limits = limits();
        let mut table = Failures::<&str>::new(3);
        let t0 = Instant::now();
        let forget = limits.forget_after;
        for _ in 0..2 {
            table.fail("a", t0, &limits);
        }
        assert_eq!(table.wait(&"a", t0, forget), None);
        table.fail("a", t0, &limits);
        assert_eq!(table.wait(&"a", t0, forget), Some(Duration::from_secs(2)));
        table.fail("a", t0, &limits);
        assert_eq!(table.wait(&"a", t0, forget), Some(Duration::from_secs(4)));
        for _ in 0..40 {
            table.fail("a", t0, &limits);
        }
        assert_eq!(table.wait(&"a", t0, forget), Some(Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(9);
        assert_eq!(
            table.wait(&"a", later, forget),
            Some(Duration::from_secs(1))
        );
        assert_eq!(table.wait(&"a", t0 + Duration::from_secs(10), forget), None);
        // Forgotten after a quiet period: free failures again.
        let much_later = t0 + forget + Duration::from_secs(1);
        assert_eq!(table.wait(&"a", much_later, forget), None);
        table.fail("a", much_later, &limits);
        assert_eq!(table.wait(&"a", much_later, forget), None);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let limits = limits();
        let mut table = Failures::<u32>::new(1);
        let t0 = Instant::now();
        for i in 0..1000 {
            table.fail(i, t0 + Duration::from_millis(u64::from(i)), &limits);
            assert!(table.entries.len() <= 8);
        }
        // The most recent failures are the ones kept.
        assert!(table.entries.contains_key(&999));
    }

    #[test]
    fn accounts_and_addresses_are_throttled_separately_and_success_clears_the_account() {
        let throttle = Throttle::new(&limits());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let alice = LoginKeys::new("password", "alice", ip("10.0.0.1"));
        for _ in 0..3 {
            assert!(throttle.check(&alice).is_ok());
            throttle.failed(&alice);
        }
        let refused = throttle.check(&alice).unwrap_err();
        assert_eq!(
            (refused.problem.status, refused.retry_after),
            (429, Some(2))
        );
        // Another address may still try alice? No: the account waits, wherever from.
        assert!(throttle
            .check(&LoginKeys::new("password", "alice", ip("10.0.0.2")))
            .is_err());
        // Another account from the same address may (3 < 5 address failures).
        assert!(throttle
            .check(&LoginKeys::new("password", "bob", ip("10.0.0.1")))
            .is_ok());
        throttle.succeeded(&alice);
        assert!(throttle.check(&alice).is_ok());
        // Two more failures from the address (other accounts) reach its limit of 5.
        for name in ["c", "d"] {
            throttle.failed(&LoginKeys::new("password", name, ip("10.0.0.1")));
        }
        let refused = throttle
            .check(&LoginKeys::new("password", "e", ip("10.0.0.1")))
            .unwrap_err();
        assert!(refused.problem.hint.unwrap().contains("address"));
        // An IPv6 /64 is one address; an IPv4-mapped address is its IPv4 address.
        let a = LoginKeys::new("password", "x", ip("2001:db8:1:2:3:4:5:6"));
        let b = LoginKeys::new("password", "x", ip("2001:db8:1:2:ffff::1"));
        assert_eq!(a.address, b.address);
        let mapped = LoginKeys::new("password", "x", ip("::ffff:10.0.0.1"));
        assert_eq!(mapped.address, ip("10.0.0.1"));
        assert!(throttle.check(&mapped).is_err());
    }

    #[test]
    fn the_pool_runs_jobs_and_refuses_beyond_its_queue() {
        let limits = LoginLimits {
            hash_threads: 1,
            hash_queue: 1,
            ..LoginLimits::default()
        };
        let pool = Arc::new(HashPool::start(&Params::default(), &limits).unwrap());
        assert_eq!(pool.run(|_| 7).unwrap(), 7);
        // One job holds the thread; of two more, one waits in the queue and one is refused.
        let (release, blocked) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel();
        let first = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                pool.run(move |_| {
                    started_tx.send(()).unwrap();
                    blocked.recv().unwrap();
                })
            })
        };
        started.recv().unwrap();
        let (answers_tx, answers) = mpsc::channel();
        let others: Vec<_> = (0..2)
            .map(|i| {
                let (pool, answers_tx) = (Arc::clone(&pool), answers_tx.clone());
                std::thread::spawn(move || answers_tx.send(pool.run(move |_| i)).unwrap())
            })
            .collect();
        let refused = answers.recv_timeout(Duration::from_secs(30)).unwrap();
        let refused = refused.unwrap_err();
        assert_eq!(
            (refused.problem.status, refused.retry_after),
            (503, Some(1))
        );
        release.send(()).unwrap();
        first.join().unwrap().unwrap();
        assert!(answers
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .is_ok());
        for other in others {
            other.join().unwrap();
        }
    }
}
