//! Test helpers shared by every crate's tests: a fresh, empty PostgreSQL
//! database per test on the server named by `TEST_AGENTRY_POSTGRES_URL`.
//!
//! In CI (`CI=true`) a missing variable or an unreachable server is a test
//! failure, never a skip.

use std::path::Path;

use sqlx::Connection;

use crate::Db;

/// A URL to a newly created database, or `None` outside CI when no server is configured.
pub async fn fresh_postgres_url() -> Option<String> {
    let Ok(admin_url) = std::env::var("TEST_AGENTRY_POSTGRES_URL") else {
        assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_POSTGRES_URL must be set in CI (scripts/test sets it)");
        eprintln!("TEST_AGENTRY_POSTGRES_URL is not set: skipping the PostgreSQL half of this test (run scripts/test)");
        return None;
    };
    let name = format!("agentry_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| panic!("cannot connect to TEST_AGENTRY_POSTGRES_URL: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap_or_else(|e| panic!("cannot create test database: {e}"));
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

/// Every backend a test should run on: a SQLite file in `dir` always, and a
/// fresh PostgreSQL database when configured (always in CI).
pub async fn test_databases(dir: &Path) -> Vec<Db> {
    let sqlite = Db::connect(&format!("sqlite://{}", dir.join("test.db").display())).await.unwrap_or_else(|e| panic!("sqlite: {e}"));
    let mut out = vec![sqlite];
    if let Some(url) = fresh_postgres_url().await {
        out.push(Db::connect(&url).await.unwrap_or_else(|e| panic!("postgres: {e}")));
    }
    out
}
