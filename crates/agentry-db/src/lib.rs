//! Storage: one [`Db`] handle over SQLite (embedded default) or PostgreSQL
//! (scale-out), chosen by URL, with migrations for both applied at start.
//! One module per aggregate; each exposes async functions on [`Db`] and hides
//! the SQL dialect differences.
//!
//! Must not contain business rules: callers decide what to store and when.

pub mod agents;
pub mod audit;
pub mod batches;
pub mod billing;
pub mod bulk;
pub mod events;
pub mod groups;
pub mod identity;
pub mod invitations;
pub mod jobs;
pub mod knowledge;
pub mod mfa;
pub mod model_calls;
pub mod oidc;
pub mod outbox;
pub mod privacy;
pub mod schedules;
pub mod secrets;
pub mod test_support;
pub mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use model_calls::{CallLogConfig, CallLogWriter, ModelCallRecord};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A storage failure, with the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL '{0}': use sqlite:<path> or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed ({context}): {source}")]
    Query { context: &'static str, source: sqlx::Error },
    /// A unique constraint refused the write (the row already exists).
    #[error("already exists ({context})")]
    Conflict { context: &'static str },
    /// A caller's step inside a transaction failed; the transaction was rolled back.
    #[error("{0} (nothing was written)")]
    Aborted(String),
}

impl DbError {
    /// The database could not be reached (no pooled connection within the
    /// wait, a broken connection): a condition to retry, not a fault of the request.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Query { source, .. } => matches!(source, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)),
            _ => false,
        }
    }

    pub(crate) fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { context, source }
    }

    /// Like [`Self::query`], but a unique-constraint violation becomes [`Self::Conflict`].
    pub(crate) fn write(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| match &source {
            sqlx::Error::Database(e) if e.is_unique_violation() => Self::Conflict { context },
            _ => Self::Query { context, source },
        }
    }
}

/// Run the same sqlx expression on whichever pool `db` holds: `pool` is bound
/// to the `SqlitePool` or `PgPool`, and the body is compiled once per backend.
/// Queries use `$n` placeholders, which both engines accept.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $crate::traced("sqlite", async { $body }).await,
            $crate::Db::Postgres($pool) => $crate::traced("postgresql", async { $body }).await,
        }
    };
}

/// Run one database operation inside a `database` span when traces are on
/// (off, the future runs as it is).
#[doc(hidden)]
pub async fn traced<T>(system: &'static str, operation: impl std::future::Future<Output = T>) -> T {
    if !agentry_types::traces::enabled() {
        return operation.await;
    }
    let span = tracing::info_span!("database", otel.kind = "client", db.system.name = system);
    tracing::Instrument::instrument(operation, span).await
}

/// How each engine opens a transaction that will write. SQLite takes the
/// write lock up front (`BEGIN IMMEDIATE`): a deferred transaction that
/// reads and then writes fails at once with `SQLITE_BUSY` (or
/// `BUSY_SNAPSHOT`) when another connection wrote meanwhile, because the
/// busy timeout cannot apply to a lock upgrade; an immediate one waits.
pub(crate) trait WriteTransaction: sqlx::Database {
    const BEGIN: &'static str;
}

impl WriteTransaction for sqlx::Sqlite {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
}

impl WriteTransaction for sqlx::Postgres {
    const BEGIN: &'static str = "BEGIN";
}

/// Open a write transaction on `pool` (see [`WriteTransaction`]).
pub(crate) async fn begin_write<DB: WriteTransaction>(pool: &sqlx::Pool<DB>) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(DB::BEGIN)).await
}

/// Create `dir` (and missing parents) readable by its owner only (0700 on
/// Unix); an existing folder keeps its mode.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The database file a `sqlite:` URL names (none for other URLs and in-memory databases).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    let in_memory = file.as_os_str() == ":memory:" || file.to_string_lossy().starts_with("file:");
    (!in_memory).then(|| file.to_path_buf())
}

/// The SQLite database and its `-wal` and `-shm` files hold every secret
/// and hash: owner-only (0600) on Unix. Before the first connection
/// (`create` set) the database file is created with that mode, since SQLite
/// gives the WAL and shared-memory files the database file's mode; after
/// it, whichever of the three exist are set to it (files made by an older
/// version, with the process umask, are tightened).
fn restrict_sqlite_files(file: &std::path::Path, create: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create {
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let mut sidecars = [file.as_os_str().to_owned(), file.as_os_str().to_owned(), file.as_os_str().to_owned()];
        sidecars[1].push("-wal");
        sidecars[2].push("-shm");
        for path in sidecars.iter().map(std::path::Path::new).filter(|path| path.exists()) {
            if std::fs::metadata(path)?.permissions().mode() & 0o777 != 0o600 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (file, create);
    Ok(())
}

/// Pooled connections to an embedded (SQLite) database unless configured.
pub const DEFAULT_SQLITE_CONNECTIONS: u32 = 8;
/// Pooled connections to PostgreSQL unless configured.
pub const DEFAULT_POSTGRES_CONNECTIONS: u32 = 16;
/// The longest a query waits for a pooled PostgreSQL connection.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pooled connection to the configured database. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Connect to `url` (`sqlite:…` creates the file and its folder if missing; `postgres://…`)
    /// with the engine's default pool ([`DEFAULT_SQLITE_CONNECTIONS`], [`DEFAULT_POSTGRES_CONNECTIONS`]).
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_pooled(url, None).await
    }

    /// [`Self::connect`] with at most `max_connections` pooled connections
    /// (`None`: the engine's default). Waiting for a PostgreSQL connection
    /// gives up after [`ACQUIRE_TIMEOUT`], so a database that went away fails
    /// requests fast instead of queueing them.
    pub async fn connect_pooled(url: &str, max_connections: Option<u32>) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Statement journals and RETURNING rows stay in memory: no
                // temp file created and deleted on every batched write.
                .pragma("temp_store", "memory");
            // Like the file itself (`create_if_missing`), its folder is created on first use.
            if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| DbError::Connect(sqlx::Error::Io(e)))?;
            }
            let file = options.get_filename().to_path_buf();
            let on_disk = !(file.as_os_str() == ":memory:" || file.to_string_lossy().starts_with("file:"));
            if on_disk {
                restrict_sqlite_files(&file, true).map_err(|e| DbError::Connect(sqlx::Error::Io(e)))?;
            }
            let pool = SqlitePoolOptions::new().max_connections(max_connections.unwrap_or(DEFAULT_SQLITE_CONNECTIONS)).connect_with(options).await.map_err(DbError::Connect)?;
            if on_disk {
                restrict_sqlite_files(&file, false).map_err(|e| DbError::Connect(sqlx::Error::Io(e)))?;
            }
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.unwrap_or(DEFAULT_POSTGRES_CONNECTIONS))
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Postgres(pool))
        } else {
            Err(DbError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Write a consistent copy of a SQLite database to `dest` (a new file)
    /// while others keep reading and writing it: `VACUUM INTO` reads in one
    /// transaction, so the copy holds exactly the transactions committed
    /// when it began. PostgreSQL is refused: its copies are `pg_dump`'s and
    /// point-in-time recovery's.
    pub async fn snapshot_into(&self, dest: &std::path::Path) -> Result<(), DbError> {
        let Self::Sqlite(pool) = self else { return Err(DbError::Aborted("copy PostgreSQL with pg_dump or point-in-time recovery".into())) };
        let dest = dest.to_str().ok_or_else(|| DbError::Aborted(format!("{} is not a UTF-8 path", dest.display())))?;
        sqlx::query("VACUUM INTO $1").bind(dest).execute(pool).await.map(drop).map_err(DbError::query("snapshot the database"))
    }

    /// The pool as it stands: `(connections open, of them idle, most allowed)`.
    pub fn pool_state(&self) -> (u32, usize, u32) {
        match self {
            Self::Sqlite(pool) => (pool.size(), pool.num_idle(), pool.options().get_max_connections()),
            Self::Postgres(pool) => (pool.size(), pool.num_idle(), pool.options().get_max_connections()),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Apply pending migrations; safe to call on every start and concurrently
    /// from several instances (sqlx takes an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Versions of applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, DbError> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .map_err(DbError::query("list migrations"))
    }

    /// A cheap round trip, for `/ready`.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .map_err(DbError::query("ping"))
    }

    /// Close every pooled connection (end of graceful shutdown).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
