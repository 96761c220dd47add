//! `spin-local migrate` over TLS, as the deploy's migration Job runs it
//! against a managed Postgres: the local cluster serves TLS with Debian's
//! self-signed "snakeoil" certificate (issued to `localhost`), which the
//! address trusts through libpq's `sslrootcert`.

use std::path::PathBuf;
use std::process::Command;

use integration_tests::*;
use uuid::Uuid;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// A migrations directory whose one migration records whether its own
/// connection is encrypted.
fn tls_probe_migrations() -> PathBuf {
    let dir = root()
        .join("target/migrate-tls")
        .join(Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("V1__tls_probe.sql"),
        "CREATE TABLE tls_probe AS SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
    )
    .unwrap();
    dir
}

fn migrate(url: &str, dir: &PathBuf) -> (bool, String) {
    let out = Command::new(host_binary())
        .args(["migrate", "--create", "--database-url", url, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A plain connection to database `name`, to read what the migration saw.
async fn connect(name: &str) -> tokio_postgres::Client {
    let url = admin_url().replace("/postgres?", &format!("/{name}?"));
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn drop_database(name: &str) {
    let (c, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_verifies_the_servers_certificate_and_encrypts() {
    let (c, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let ssl: String = c.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "this test needs the local cluster's TLS (Debian's default, ssl = on)"
    );
    let dir = tls_probe_migrations();
    let name = format!("spinlocal_tls_{}", Uuid::new_v4().simple());

    // Trusted CA, and the name the certificate was issued to: encrypted.
    let url = format!(
        "postgres://postgres@localhost:5432/{name}?sslmode=verify-full&sslrootcert={SNAKEOIL}"
    );
    let (ok, out) = migrate(&url, &dir);
    assert!(ok, "{out}");
    assert!(out.contains("applied V1__tls_probe"), "{out}");
    let probe = connect(&name).await;
    let row = probe
        .query_one("SELECT ssl, version FROM tls_probe", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the migration ran without TLS");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."));
    drop(probe);
    drop_database(&name).await;

    // The same CA, but an address the certificate does not name: refused
    // before anything is sent (no database created).
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}?sslrootcert={SNAKEOIL}");
    let (ok, out) = migrate(&url, &dir);
    assert!(!ok, "{out}");
    assert!(out.contains("certificate"), "{out}");
    let created: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 0);

    // A CA file that holds no certificate is named as the problem.
    let empty = dir.with_extension("pem");
    std::fs::write(&empty, "").unwrap();
    let url = format!(
        "postgres://postgres@localhost:5432/{name}?sslmode=require&sslrootcert={}",
        empty.display()
    );
    let (ok, out) = migrate(&url, &dir);
    assert!(!ok && out.contains("no certificate"), "{out}");

    // sslmode=disable still connects in plain text, as local URLs say.
    let url = format!("postgres://postgres@localhost:5432/{name}?sslmode=disable");
    let (ok, out) = migrate(&url, &dir);
    assert!(ok, "{out}");
    let probe = connect(&name).await;
    let encrypted: bool = probe
        .query_one("SELECT ssl FROM tls_probe", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!encrypted);
    drop(probe);
    drop_database(&name).await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&empty);
}
