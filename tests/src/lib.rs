//! The end-to-end test harness: a fresh migrated Postgres database per test,
//! the application's real `.wasm` components on the local host, served on an
//! ephemeral port on 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use spin_local::ZeroRowQueries;
use spin_local::{App, LoadOptions, VariableSources};

pub mod fake;
pub mod fixtures;
pub mod requests;

pub use fixtures::{destination, widget_batch, widget_event, ClientSpec, Deliveries};
pub use requests::Call;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The application manifest, `spin.toml`.
pub fn app_manifest() -> PathBuf {
    root().join("spin.toml")
}

/// The local host's binary (built by `scripts/test` before the tests run).
pub fn host_binary() -> PathBuf {
    workspace_binary("spin-local")
}

/// A binary of the workspace, `target/debug/<name>` (built by `scripts/test`
/// before the tests run).
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = root().join("target/debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test",
        path.display()
    );
    path
}

/// Where tests reach Postgres as its administrator.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres?sslmode=disable".into())
}

/// A database created for one test, dropped when the test's `TestDb` is dropped.
pub struct TestDb {
    pub name: String,
    /// Its URL, spelled with `localhost` as `database_host` expects.
    pub url: String,
}

impl TestDb {
    /// Creates a fresh database and applies the migrations to it.
    pub async fn new() -> TestDb {
        let name = format!("spinlocal_test_{}", uuid::Uuid::new_v4().simple());
        let admin: tokio_postgres::Config = admin_url().parse().unwrap();
        let mut target = admin.clone();
        target.dbname(&name);
        let url = admin_url().replace("/postgres?", &format!("/{name}?"));
        assert!(
            url.contains(&name),
            "TEST_DATABASE_ADMIN_URL must name the database `postgres`"
        );
        spin_local::migrate::migrate(&url, &root().join("migrations"), true)
            .await
            .expect("migrating the test database");
        TestDb { name, url }
    }

    /// A client on this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(conn);
        client
    }

    /// Runs `sql` (one or more statements, no parameters).
    pub async fn exec(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The one row `sql` returns.
    pub async fn one(&self, sql: &str) -> tokio_postgres::Row {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The rows `sql` returns.
    pub async fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.client()
            .await
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of the one row `sql` returns.
    pub async fn value<T>(&self, sql: &str) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.one(sql).await.get(0)
    }

    /// The first column of every row `sql` returns.
    pub async fn column<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.rows(sql).await.iter().map(|r| r.get(0)).collect()
    }

    /// The first column of the one row `sql` returns, as a count.
    pub async fn count(&self, sql: &str) -> i64 {
        self.value(sql).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop from a plain thread: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// An application served by the local host for one test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub app: Arc<App>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Variables for a test: `database_url` of `db`, then `overrides`.
pub fn variables(db: Option<&TestDb>, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    if let Some(db) = db {
        vars.insert("database_url".to_string(), db.url.clone());
    }
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    vars
}

/// Loads `manifest` with exactly these variables (the environment is ignored).
pub async fn load(manifest: &Path, vars: HashMap<String, String>) -> anyhow::Result<Arc<App>> {
    load_with(manifest, vars, ZeroRowQueries::Refuse).await
}

/// [`load`], choosing what a zero-row `query` does.
pub async fn load_with(
    manifest: &Path,
    vars: HashMap<String, String>,
    zero_row_queries: ZeroRowQueries,
) -> anyhow::Result<Arc<App>> {
    let sources = VariableSources {
        explicit: vars,
        env: HashMap::new(),
    };
    App::load(
        manifest,
        LoadOptions {
            variables: sources,
            check_databases: false,
            zero_row_queries,
        },
    )
    .await
}

/// Loads `manifest` and serves it on an ephemeral port.
pub async fn serve(manifest: &Path, vars: HashMap<String, String>) -> TestApp {
    serve_with(manifest, vars, ZeroRowQueries::Refuse).await
}

/// [`serve`], choosing what a zero-row `query` does.
pub async fn serve_with(
    manifest: &Path,
    vars: HashMap<String, String>,
    zero_row_queries: ZeroRowQueries,
) -> TestApp {
    let app = load_with(manifest, vars, zero_row_queries)
        .await
        .expect("loading the application");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(spin_local::server::serve(app.clone(), listener));
    TestApp { url, app, server }
}

/// The application in `spin.toml` on `db`.
pub async fn serve_app(db: &TestDb, overrides: &[(&str, &str)]) -> TestApp {
    serve(&app_manifest(), variables(Some(db), overrides)).await
}

/// The application in `spin.toml` on `db` with the tests' admin JWT secret,
/// then `overrides`.
pub async fn serve_admin_app(db: &TestDb, overrides: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("admin_jwt_secret", ADMIN_SECRET)];
    vars.extend_from_slice(overrides);
    serve_app(db, &vars).await
}

/// An HTTP client for the tests.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Lets the app send to destinations (webhooks, server-side GTM) on any
/// loopback port, where the tests' fakes listen.
pub const LOOPBACK_DESTINATIONS: (&str, &str) = ("destination_hosts", "http://127.0.0.1:*");

/// The admin JWT secret the tests configure.
pub const ADMIN_SECRET: &str = "test-admin-secret";

/// A signed HS256 token with `claims` (an `exp` far ahead is added).
pub fn token(mut claims: serde_json::Value, secret: &str) -> String {
    claims["exp"] = serde_json::json!(4_102_444_800i64);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// `Bearer <admin token>`.
pub fn admin_bearer() -> String {
    format!(
        "Bearer {}",
        token(
            serde_json::json!({ "sub": "tester", "role": "admin" }),
            ADMIN_SECRET
        )
    )
}
