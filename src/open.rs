//! Opening a realm: how a [`Config`] becomes a [`Realm`] handle. The file (created
//! atomically, compacted first if the configuration asks), then the schema rules: a new file
//! gets the schema and the initial data, a changed one a migration, a synced one only
//! additions. A synced configuration is handed to the sync layer, which opens the file
//! through [`Realm::open_local`] and adds its session.

use crate::config::Config;
use crate::db::{trim_history, Realm};
use crate::error::{Error, ErrorCode, Result};
use crate::store::catalog;
use crate::store::file::{self, SharedFile};
use crate::store::tables;
use std::sync::Arc;

impl Realm {
    /// Opens (creating if needed) the realm described by `config`, applying its schema rules:
    ///
    /// - a new file gets the schema and version, and the initial-data callback runs in the
    ///   creating transaction;
    /// - a file whose schema version is higher than the config's fails with
    ///   `SchemaVersionLower`;
    /// - a changed schema needs a higher version and a migration callback (else
    ///   `MigrationNeeded`), unless delete-if-migration-needed is set, which starts over.
    ///
    /// Fails with `FileInUse` if another process has the file open, `FileNotFound` for a
    /// read-only open of a missing file, `IncompatibleFile` for a file that is not a realm. A
    /// failed open leaves the file as it was, except that a new empty file may remain.
    ///
    /// A synced configuration (`Config::set_sync`) is opened by the sync layer: the file,
    /// then its session.
    pub fn open(config: &Config) -> Result<Realm> {
        match &config.sync {
            Some(sync) => sync.open(config),
            None => Self::open_local(config),
        }
    }

    /// Opens the file and applies the schema rules, without handing a synced configuration
    /// to the sync layer (which calls this for the file of a synced realm).
    pub(crate) fn open_local(config: &Config) -> Result<Realm> {
        config.check()?;
        if config.read_only && !config.in_memory && !std::path::Path::new(&config.path).exists() {
            return Err(Error::new(
                ErrorCode::FileNotFound,
                format!("no realm file at '{}'", config.path),
            )
            .with_path(config.path.clone()));
        }
        let settings = config.settings();
        let (file, needs_init) = SharedFile::open(&settings.open_options())?;
        if let (Some(rule), false) = (&config.should_compact, needs_init || config.read_only) {
            if Arc::strong_count(&file) == 1 {
                let (total, used) = file.space()?;
                if rule(total, used) {
                    tracing::info!(path = %config.path, total, used, "compacting on open");
                    trim_history(&file, &settings)?;
                    SharedFile::compact(&file, &settings.open_options())?;
                }
            }
        }
        if needs_init && config.read_only {
            return Err(Error::new(
                ErrorCode::IncompatibleFile,
                "a read-only realm must already exist",
            ));
        }
        let realm = Realm::from_file(file, settings)?;
        match realm.prepare_schema(config) {
            Ok(()) => Ok(realm),
            Err(e)
                if e.code() == ErrorCode::MigrationNeeded && config.delete_if_migration_needed =>
            {
                drop(realm);
                delete_realm_files(config)?;
                let mut fresh = config.clone();
                fresh.delete_if_migration_needed = false;
                Realm::open_local(&fresh)
            }
            Err(e) => Err(e),
        }
    }

    fn prepare_schema(&self, config: &Config) -> Result<()> {
        let (catalog, file_version, history_version) = self.with_snapshot(|s| {
            Ok((
                s.catalog.clone(),
                s.meta_u64(tables::meta::SCHEMA_VERSION)?,
                s.version,
            ))
        })?;
        let Some(wanted) = &config.schema else {
            return Ok(());
        };
        let is_new = catalog.classes.is_empty() && history_version == 0;
        let diff = catalog::diff(&catalog, wanted);
        if is_new {
            if config.read_only && config.sync.is_some() {
                // A read-only synced realm whose first download brought none of its schema
                // (the server's realm is empty or has another schema).
                return Err(Error::new(
                    ErrorCode::MigrationNeeded,
                    "the synced realm has no schema yet: the server's realm lacks the \
                     configured classes, and a read-only realm cannot add them",
                )
                .with_path(config.path.clone()));
            }
            if config.read_only {
                return Err(Error::new(
                    ErrorCode::IncompatibleFile,
                    "the read-only realm has no schema",
                ));
            }
            self.begin_write()?;
            if self.file_changed_since(&catalog, file_version, history_version)? {
                // Another handle set the file up meanwhile: decide again on what it wrote.
                self.cancel_write()?;
                return self.prepare_schema(config);
            }
            let result = self.with_write(|w| {
                for change in &diff.first {
                    w.apply_schema_change(change)?;
                }
                w.set_schema_version(config.schema_version);
                Ok(())
            });
            let result = result.and_then(|()| match &config.initial_data {
                Some(f) => f(self),
                None => Ok(()),
            });
            return self.commit_or_cancel(result);
        }
        if config.sync.is_some() {
            return self.prepare_additive_schema(
                config,
                diff,
                file_version,
                catalog,
                history_version,
            );
        }
        if config.schema_version < file_version {
            return Err(Error::new(
                ErrorCode::SchemaVersionLower,
                format!(
                    "the schema version {} is lower than the file's {file_version}",
                    config.schema_version
                ),
            )
            .with_path(config.path.clone()));
        }
        if diff.is_empty() && config.schema_version == file_version {
            return Ok(());
        }
        if config.read_only {
            return Err(Error::new(
                ErrorCode::MigrationNeeded,
                "the read-only realm's schema or version differs from the configuration",
            )
            .with_path(config.path.clone()));
        }
        if !diff.is_empty() && config.schema_version == file_version {
            return Err(Error::new(
                ErrorCode::MigrationNeeded,
                format!("the schema changed but the schema version is still {file_version}: raise it and migrate"),
            )
            .with_path(config.path.clone()));
        }
        if !diff.is_empty() && config.migration.is_none() {
            return Err(Error::new(
                ErrorCode::MigrationNeeded,
                format!(
                    "migrating from schema version {file_version} to {} needs a migration callback",
                    config.schema_version
                ),
            )
            .with_path(config.path.clone()));
        }
        self.begin_write()?;
        if self.file_changed_since(&catalog, file_version, history_version)? {
            self.cancel_write()?;
            return self.prepare_schema(config);
        }
        let result = self
            .with_write(|w| {
                for change in &diff.first {
                    w.apply_schema_change(change)?;
                }
                w.set_schema_version(config.schema_version);
                Ok(())
            })
            .and_then(|()| match &config.migration {
                Some(f) => f(self, file_version, config.schema_version),
                None => Ok(()),
            })
            .and_then(|()| {
                self.with_write(|w| {
                    for change in &diff.last {
                        w.apply_schema_change(change)?;
                    }
                    Ok(())
                })
            });
        self.commit_or_cancel(result)
    }

    /// Synced realms' schema rules: the configured schema may add classes and properties
    /// (with a higher schema version; no migration callback runs), never remove or change
    /// one. What the file has beyond the configured schema (from other devices) stays.
    fn prepare_additive_schema(
        &self,
        config: &Config,
        diff: catalog::SchemaDiff,
        file_version: u64,
        catalog: Arc<catalog::Catalog>,
        history_version: u64,
    ) -> Result<()> {
        let path = || config.path.clone();
        if config.read_only {
            // Read-only: the server's schema must hold the configured one; versions are the
            // writers' business (a downloaded file's version is not the writer's).
            if diff.first.is_empty() {
                return Ok(());
            }
            return Err(Error::new(
                ErrorCode::MigrationNeeded,
                "the synced realm's schema lacks classes or properties of the configuration, \
                 and a read-only realm cannot add them",
            )
            .with_path(path()));
        }
        if config.schema_version < file_version {
            return Err(Error::new(
                ErrorCode::SchemaVersionLower,
                format!(
                    "the schema version {} is lower than the synced file's {file_version}",
                    config.schema_version
                ),
            )
            .with_path(path()));
        }
        let mut additions = Vec::new();
        for change in diff.first {
            change
                .check_additive(&catalog, &catalog)
                .map_err(|e| e.with_path(path()))?;
            additions.push(change);
        }
        if additions.is_empty() && config.schema_version == file_version {
            return Ok(());
        }
        if !additions.is_empty() && config.schema_version == file_version {
            return Err(Error::new(
                ErrorCode::SchemaChangedWithoutVersionBump,
                format!("the schema adds to the synced file's but the schema version is still {file_version}: raise it"),
            )
            .with_path(path()));
        }
        if config.read_only {
            return Err(Error::new(
                ErrorCode::MigrationNeeded,
                "the read-only realm's schema or version differs from the configuration",
            )
            .with_path(path()));
        }
        self.begin_write()?;
        if self.file_changed_since(&catalog, file_version, history_version)? {
            self.cancel_write()?;
            return self.prepare_schema(config);
        }
        let result = self.with_write(|w| {
            for change in &additions {
                w.apply_schema_change(change)?;
            }
            w.set_schema_version(config.schema_version);
            Ok(())
        });
        self.commit_or_cancel(result)
    }

    /// Whether the file, as the open write transaction sees it, differs from what the
    /// open-time decisions were based on.
    fn file_changed_since(
        &self,
        catalog: &Arc<catalog::Catalog>,
        file_version: u64,
        history_version: u64,
    ) -> Result<bool> {
        self.with_snapshot(|s| {
            Ok(!Arc::ptr_eq(&s.catalog, catalog) && *s.catalog != **catalog
                || s.meta_u64(tables::meta::SCHEMA_VERSION)? != file_version
                || s.version != history_version)
        })
    }
}

/// Deletes a realm file. Fails with `RealmInUse` while any handle of it is open in this
/// process; a missing file is not an error.
pub fn delete_realm_files(config: &Config) -> Result<()> {
    let key = file::registry_key(&config.path, config.in_memory)?;
    if file::is_open(&key) {
        return Err(Error::new(
            ErrorCode::RealmInUse,
            format!(
                "the realm '{}' is open; close every handle first",
                config.path
            ),
        )
        .with_path(config.path.clone()));
    }
    if config.in_memory {
        return Ok(());
    }
    // The file, and what an interrupted creation, compaction or upgrade left beside it.
    for path in [
        key.clone(),
        format!("{key}.creating"),
        format!("{key}.compact"),
        format!("{key}.upgrade"),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from(e).with_path(config.path.clone())),
        }
    }
    Ok(())
}
