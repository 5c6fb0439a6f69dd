//! How a realm is opened: path, schema, version, callbacks and modes.

use crate::db::{Realm, SchedulerRef, Settings};
use crate::error::{Error, Result};
use crate::scheduler::Scheduler;
use crate::schema::Schema;
use crate::util::Cancellation;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Runs once, inside the transaction that creates the file, to fill a new realm.
pub type InitialDataFn = dyn Fn(&Realm) -> Result<()> + Send + Sync;
/// Migrates a file from `old_version` to `new_version` inside the opening transaction. The
/// realm shows the union of the old and new schema: old properties can still be read, new ones
/// written; properties absent from the new schema are dropped after the callback returns.
pub type MigrationFn = dyn Fn(&Realm, u64, u64) -> Result<()> + Send + Sync;

/// The configuration of a realm. Cheap to clone; every setter documents its default.
#[derive(Clone)]
pub struct Config {
    pub(crate) path: String,
    pub(crate) schema: Option<Schema>,
    pub(crate) schema_version: u64,
    pub(crate) in_memory: bool,
    pub(crate) read_only: bool,
    pub(crate) delete_if_migration_needed: bool,
    pub(crate) initial_data: Option<Arc<InitialDataFn>>,
    pub(crate) migration: Option<Arc<MigrationFn>>,
    pub(crate) encryption_key: Option<[u8; 64]>,
    pub(crate) should_compact: Option<Arc<ShouldCompactFn>>,
    pub(crate) merge_metadata: bool,
    pub(crate) keep_full_history: bool,
    /// The sync part (`Config::set_sync`), opaque here: the realm layer sits below sync.
    pub(crate) sync: Option<Arc<dyn SyncedOpen>>,
    /// Where this realm's notifications and async completions run (`None`: library threads).
    pub(crate) scheduler: Option<Arc<dyn Scheduler>>,
}

/// What the realm layer needs of a synced configuration's sync part, which the sync layer
/// above implements: that the configuration is synced (its schema rules differ; it cannot be
/// in memory or compacted), and who opens it.
pub(crate) trait SyncedOpen: Any + Send + Sync {
    /// Opens the realm `config` describes, with its sync session.
    fn open(&self, config: &Config) -> Result<Realm> {
        self.open_or_cancel(config, &Cancellation::never())
    }

    /// Opens as [`open`](Self::open) does, giving up (with [`Cancellation::error`], and no
    /// new file left behind) as soon as `cancel` is cancelled while it waits for the initial
    /// data.
    fn open_or_cancel(&self, config: &Config, cancel: &Cancellation) -> Result<Realm>;

    /// After a cancelled open that had created the file: stops its session and deletes the
    /// file, unless a handle of it is open (best effort; logged).
    fn discard_new_file(&self, config: &Config);
}

/// Decides at open whether to compact: gets the file size and the bytes in use.
pub type ShouldCompactFn = dyn Fn(u64, u64) -> bool + Send + Sync;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("schema_version", &self.schema_version)
            .field("in_memory", &self.in_memory)
            .field("read_only", &self.read_only)
            .field("encrypted", &self.encryption_key.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for the realm file at `path` (or the in-memory realm named `path`).
    /// Defaults: no schema (open with the file's), schema version 0, on disk, read-write.
    pub fn new(path: impl Into<String>) -> Config {
        Config {
            path: path.into(),
            schema: None,
            schema_version: 0,
            in_memory: false,
            read_only: false,
            delete_if_migration_needed: false,
            initial_data: None,
            migration: None,
            encryption_key: None,
            should_compact: None,
            merge_metadata: false,
            keep_full_history: false,
            sync: None,
            scheduler: None,
        }
    }

    /// A configuration that opens a realm moved aside by a client reset (or any synced
    /// file) read-only and unsynced, with `key` if it is encrypted and `schema` if given
    /// (else the file's own).
    pub fn for_recovery(
        path: impl Into<String>,
        key: Option<&[u8]>,
        schema: Option<Schema>,
    ) -> Result<Config> {
        let mut config = Config::new(path);
        config.set_read_only(true);
        config.set_encryption_key(key)?;
        if let Some(schema) = schema {
            config.set_schema(schema)?;
        }
        Ok(config)
    }

    /// The file path (or in-memory name).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema the realm must have. Default: none, which opens a file with whatever schema
    /// it has. Fails with `InvalidArgument` if the schema is not valid.
    pub fn set_schema(&mut self, schema: Schema) -> Result<&mut Config> {
        schema.validate()?;
        self.schema = Some(schema);
        Ok(self)
    }

    /// The configured schema.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// The schema version. Default 0.
    pub fn set_schema_version(&mut self, version: u64) -> &mut Config {
        self.schema_version = version;
        self
    }

    /// The configured schema version.
    pub fn schema_version(&self) -> u64 {
        self.schema_version
    }

    /// Keep the realm in memory only: nothing is written to disk, and the data lives while any
    /// handle of this name is open in the process. Default false.
    pub fn set_in_memory(&mut self, in_memory: bool) -> &mut Config {
        self.in_memory = in_memory;
        self
    }

    /// Open read-only: writes are refused. Default false.
    pub fn set_read_only(&mut self, read_only: bool) -> &mut Config {
        self.read_only = read_only;
        self
    }

    /// Whether the realm is opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Delete the file and start empty when its schema needs a migration. Default false.
    pub fn set_delete_if_migration_needed(&mut self, delete: bool) -> &mut Config {
        self.delete_if_migration_needed = delete;
        self
    }

    /// The callback that fills a newly created file. Default none.
    pub fn set_initial_data(
        &mut self,
        f: impl Fn(&Realm) -> Result<()> + Send + Sync + 'static,
    ) -> &mut Config {
        self.initial_data = Some(Arc::new(f));
        self
    }

    /// The migration callback. Default none (a needed migration is an error).
    pub fn set_migration(
        &mut self,
        f: impl Fn(&Realm, u64, u64) -> Result<()> + Send + Sync + 'static,
    ) -> &mut Config {
        self.migration = Some(Arc::new(f));
        self
    }

    /// Encrypts the file with this 64-byte key (`None`: plain, the default). Every byte of the
    /// file is then encrypted and authenticated; opening needs the same key. In-memory realms
    /// ignore the key.
    ///
    /// Fails with `InvalidArgument` unless the key is exactly 64 bytes.
    pub fn set_encryption_key(&mut self, key: Option<&[u8]>) -> Result<&mut Config> {
        self.encryption_key = match key {
            None => None,
            Some(k) => Some(k.try_into().map_err(|_| {
                Error::invalid(format!(
                    "the encryption key must be exactly 64 bytes, not {}",
                    k.len()
                ))
            })?),
        };
        Ok(self)
    }

    /// Whether an encryption key is set.
    pub fn is_encrypted(&self) -> bool {
        self.encryption_key.is_some()
    }

    /// The encryption key, if one is set (Realm's `getEncryptionKey`).
    pub fn encryption_key(&self) -> Option<&[u8; 64]> {
        self.encryption_key.as_ref()
    }

    /// The compact-on-open rule: called with `(file bytes, bytes in use)` when the first
    /// handle of the file in this process opens; returning true compacts the file. Default
    /// none.
    pub fn set_should_compact(
        &mut self,
        f: impl Fn(u64, u64) -> bool + Send + Sync + 'static,
    ) -> &mut Config {
        self.should_compact = Some(Arc::new(f));
        self
    }

    /// Keep the metadata the merge rules need (registers, tombstones) in every write, so that
    /// changesets of other replicas can be integrated with [`Realm::integrate_changeset`]. Sync
    /// configurations set it; plain local realms leave it off (it costs write speed). Default
    /// false. List changes of such realms are recorded by element id (RGA). See also
    /// [`replica::open`](crate::replica::open).
    pub fn set_merge_metadata(&mut self, on: bool) -> &mut Config {
        self.merge_metadata = on;
        self
    }

    /// Keep every changeset in the history while a handle opened with this configuration is
    /// open in this process, so that [`Realm::history_since`] can return the whole history
    /// (to replay it elsewhere, or to audit it). Default false: the history keeps a changeset
    /// only while something needs it (the newest one, change callbacks not yet called, a sync
    /// upload not yet acknowledged), and `history_since` fails for versions no longer kept.
    pub fn set_keep_full_history(&mut self, keep: bool) -> &mut Config {
        self.keep_full_history = keep;
        self
    }

    /// Runs this realm's change notifications and the completions of its asynchronous work
    /// on `scheduler` (an [`AppScheduler`](crate::AppScheduler) delivers them on the app's own
    /// thread or loop). Default: at once, on the library thread that produced them.
    pub fn set_scheduler(&mut self, scheduler: Arc<dyn Scheduler>) -> &mut Config {
        self.scheduler = Some(scheduler);
        self
    }

    /// The scheduler set with [`set_scheduler`](Self::set_scheduler), if any.
    pub fn scheduler(&self) -> Option<&Arc<dyn Scheduler>> {
        self.scheduler.as_ref()
    }

    /// What a handle keeps of this configuration.
    pub(crate) fn settings(&self) -> Settings {
        Settings {
            path: self.path.clone(),
            in_memory: self.in_memory,
            read_only: self.read_only,
            encryption_key: self.encryption_key,
            merge_metadata: self.merge_metadata,
            keep_full_history: self.keep_full_history,
            synced: self.sync.is_some(),
            scheduler: self.scheduler.clone().map(SchedulerRef),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.path.is_empty() {
            return Err(Error::invalid("the realm path must not be empty"));
        }
        if self.sync.is_some() {
            if self.in_memory {
                return Err(Error::invalid("a synced realm cannot be in memory"));
            }
            if self.should_compact.is_some() {
                return Err(Error::new(
                    crate::error::ErrorCode::NotSupported,
                    "synced realms cannot be compacted",
                ));
            }
            // Synced schemas only grow, the same on every device: a local migration or a
            // fresh start would make this copy differ from the others.
            if self.migration.is_some() {
                return Err(Error::invalid(
                    "a synced realm cannot have a migration callback: synced schemas only \
                     grow, by additions with a higher schema version",
                ));
            }
            if self.delete_if_migration_needed {
                return Err(Error::invalid(
                    "a synced realm cannot be deleted when a migration is needed; use a client \
                     reset to start over from the server",
                ));
            }
        }
        if self.read_only && self.initial_data.is_some() {
            return Err(Error::invalid(
                "a read-only realm cannot have an initial-data callback",
            ));
        }
        Ok(())
    }
}
