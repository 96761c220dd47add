//! The IP-to-city import (`tools/geoip-import`): the sample CSV loaded into a
//! fresh database, looked up through `geoip_lookup`, replaced by a second
//! import, and left alone by failed ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration_tests::*;

/// The importer's binary (built by `scripts/test` before the tests run).
fn importer() -> PathBuf {
    let path = root().join("target/debug/geoip-import");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (or cargo build -p geoip-import)",
        path.display()
    );
    path
}

fn sample() -> PathBuf {
    root().join("tests/fixtures/geoip/dbip-city-sample.csv")
}

fn import(db: &TestDb, args: &[&str]) -> Output {
    Command::new(importer())
        .arg("--database-url")
        .arg(&db.url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn import_ok(db: &TestDb, args: &[&str]) -> String {
    let out = import(db, args);
    assert!(
        out.status.success(),
        "geoip-import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A directory of its own under the system's temporary directory.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "geoip-import-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

type Place = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn lookup(client: &tokio_postgres::Client, address: &str) -> Option<Place> {
    let rows = client
        .query(
            "SELECT country_code, region_code, region_name, city, postal_code \
             FROM geoip_lookup($1::text::inet)",
            &[&address],
        )
        .await
        .unwrap();
    assert!(rows.len() <= 1, "{address}: {} rows", rows.len());
    rows.first()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

fn place(
    country: &str,
    code: Option<&str>,
    region: Option<&str>,
    city: Option<&str>,
    postal: Option<&str>,
) -> Option<Place> {
    let s = |v: Option<&str>| v.map(str::to_string);
    Some((country.to_string(), s(code), s(region), s(city), s(postal)))
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_sample_imports_and_lookups_find_its_places() {
    let db = TestDb::new().await;
    let stdout = import_ok(
        &db,
        &["--csv", path_arg(&sample()), "--source-version", "sample-1"],
    );
    assert!(stdout.contains("IP Geolocation by DB-IP"), "{stdout}");
    let c = db.client().await;

    let mountain_view = place(
        "US",
        Some("CA"),
        Some("California"),
        Some("Mountain View"),
        Some("94043"),
    );
    assert_eq!(lookup(&c, "8.8.8.8").await, mountain_view);
    assert_eq!(lookup(&c, "8.8.8.0").await, mountain_view);
    assert_eq!(lookup(&c, "8.8.8.255").await, mountain_view);
    assert_eq!(
        lookup(&c, "23.0.0.77").await,
        place(
            "US",
            Some("FL"),
            Some("Florida"),
            Some("Miami"),
            Some("33101")
        )
    );
    assert_eq!(
        lookup(&c, "24.48.0.1").await,
        place(
            "CA",
            Some("QC"),
            Some("Quebec"),
            Some("Montreal"),
            Some("H3B")
        )
    );
    assert_eq!(
        lookup(&c, "24.57.0.9").await.unwrap().1.as_deref(),
        Some("ON")
    );
    // Outside the US and Canada the region keeps its name and has no code.
    assert_eq!(
        lookup(&c, "51.148.0.10").await,
        place("GB", None, Some("England"), Some("London"), Some("EC1A"))
    );
    assert_eq!(
        lookup(&c, "85.214.0.1").await,
        place("DE", None, Some("Berlin"), Some("Berlin"), Some("10115"))
    );
    // Country codes are upper-cased; empty fields are NULL; a quoted city.
    assert_eq!(
        lookup(&c, "104.16.0.1").await,
        place("US", Some("TX"), Some("Texas"), Some("Dallas"), None)
    );
    assert_eq!(
        lookup(&c, "38.0.0.1").await,
        place(
            "US",
            Some("DC"),
            Some("District of Columbia"),
            Some("Washington, D.C."),
            Some("20001")
        )
    );
    // A US region with no two-letter code.
    assert_eq!(
        lookup(&c, "185.0.0.1").await,
        place("US", None, Some("Armed Forces Pacific"), None, None)
    );
    // Gaps: between ranges, before the first, after the last IPv4 range.
    assert_eq!(lookup(&c, "8.8.6.1").await, None);
    assert_eq!(lookup(&c, "1.1.1.1").await, None);
    assert_eq!(lookup(&c, "0.0.0.0").await, None);
    assert_eq!(lookup(&c, "223.1.1.1").await, None);

    // IPv6.
    assert_eq!(lookup(&c, "2001:4860:4860::8888").await, mountain_view);
    assert_eq!(
        lookup(&c, "2a00:1450:4001:80b::200e").await,
        place("IE", None, Some("Leinster"), Some("Dublin"), None)
    );
    assert_eq!(
        lookup(&c, "2a02:8101:1::1").await.unwrap().3.as_deref(),
        Some("Hamburg")
    );
    // Before the first IPv6 range (and after every IPv4 one), after the last.
    assert_eq!(lookup(&c, "2001:db8::1").await, None);
    assert_eq!(lookup(&c, "::1").await, None);
    assert_eq!(lookup(&c, "2c0f:f001::1").await, None);

    // Adjacent rows with one place became one range; a gap kept two apart.
    let merged: Vec<(String, String)> = c
        .query(
            "SELECT host(ip_from), host(ip_to) FROM geoip_city_ranges \
             WHERE ip_from IN ('24.48.0.0', '24.48.1.0', '2a02:8100::', '2a02:8101::') \
             ORDER BY ip_from",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        merged,
        vec![
            ("24.48.0.0".to_string(), "24.48.1.255".to_string()),
            (
                "2a02:8100::".to_string(),
                "2a02:8101:ffff:ffff:ffff:ffff:ffff:ffff".to_string()
            ),
        ]
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM geoip_city_ranges WHERE ip_from IN ('8.8.4.0', '8.8.8.0')"
        )
        .await,
        2
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM geoip_city_ranges").await,
        18
    );
    // Both Mountain View ranges (and the IPv6 one) share one place.
    assert_eq!(count(&c, "SELECT count(*) FROM geoip_locations").await, 15);
    assert_eq!(
        count(
            &c,
            "SELECT count(DISTINCT location_id) FROM geoip_city_ranges \
             WHERE ip_from IN ('8.8.4.0', '8.8.8.0', '2001:4860::')"
        )
        .await,
        1
    );

    // The import is recorded with its attribution.
    let row = c
        .query_one(
            "SELECT source, version, attribution, ranges, locations, duration_ms FROM geoip_imports",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "dbip-city-lite (ip-location-db npm)"
    );
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("sample-1"));
    assert!(row
        .get::<_, String>(2)
        .contains("IP Geolocation by DB-IP (https://db-ip.com)"));
    assert_eq!((row.get::<_, i64>(3), row.get::<_, i64>(4)), (18, 15));
    assert!(row.get::<_, i64>(5) >= 0);

    // The swapped-in tables carry the live names, indexes and constraints included.
    let names: Vec<String> = c
        .query(
            "SELECT relname::text FROM pg_class \
             WHERE relname LIKE 'geoip\\_%' AND relkind IN ('r', 'i') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "geoip_city_ranges",
            "geoip_city_ranges_ip_from",
            "geoip_imports",
            "geoip_imports_pkey",
            "geoip_locations",
            "geoip_locations_pkey"
        ]
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_constraint \
             WHERE conrelid = 'geoip_locations'::regclass AND conname = 'geoip_locations_pkey' AND contype = 'p'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_index \
             WHERE indexrelid = 'geoip_city_ranges_ip_from'::regclass AND indisunique"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_second_import_replaces_the_first_and_lookups_keep_working() {
    let db = TestDb::new().await;
    import_ok(&db, &["--csv", path_arg(&sample())]);
    // A connection with a lookup already planned and prepared before the swap.
    let c = db.client().await;
    let prepared = c
        .prepare("SELECT city FROM geoip_lookup($1::text::inet)")
        .await
        .unwrap();
    let city = |rows: Vec<tokio_postgres::Row>| rows.first().map(|r| r.get::<_, Option<String>>(0));
    assert_eq!(
        city(c.query(&prepared, &[&"23.0.0.1"]).await.unwrap()),
        Some(Some("Miami".to_string()))
    );

    // Next month: Miami moved to Orlando, London is gone, a new range appeared.
    let next = std::fs::read_to_string(sample())
        .unwrap()
        .replace("Miami,33101", "Orlando,32801")
        .lines()
        .filter(|l| !l.contains("London"))
        .chain(["2c10::,2c10::ffff,ZA,Western Cape,,Cape Town,8001,-33.9,18.4,Africa/Johannesburg"])
        .collect::<Vec<_>>()
        .join("\n");
    let dir = TempDir::new();
    let csv = dir.write("next.csv", &next);
    import_ok(
        &db,
        &["--csv", path_arg(&csv), "--source-version", "sample-2"],
    );

    assert_eq!(
        city(c.query(&prepared, &[&"23.0.0.1"]).await.unwrap()),
        Some(Some("Orlando".to_string()))
    );
    assert_eq!(
        lookup(&c, "23.0.0.1").await,
        place(
            "US",
            Some("FL"),
            Some("Florida"),
            Some("Orlando"),
            Some("32801")
        )
    );
    assert_eq!(lookup(&c, "51.148.0.10").await, None);
    assert_eq!(
        lookup(&c, "2c10::1").await.unwrap().3.as_deref(),
        Some("Cape Town")
    );
    assert_eq!(
        lookup(&c, "8.8.8.8").await.unwrap().3.as_deref(),
        Some("Mountain View")
    );
    // Only the new data is there, and both imports are on record.
    assert_eq!(
        count(&c, "SELECT count(*) FROM geoip_city_ranges").await,
        18
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM geoip_locations WHERE city IN ('Miami', 'London')"
        )
        .await,
        0
    );
    let versions: Vec<Option<String>> = c
        .query("SELECT version FROM geoip_imports ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [None, Some("sample-2".to_string())]);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'geoip%new%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_failed_import_leaves_the_previous_data_in_place() {
    let db = TestDb::new().await;
    import_ok(&db, &["--csv", path_arg(&sample())]);
    let c = db.client().await;
    let before = lookup(&c, "8.8.8.8").await;
    assert!(before.is_some());

    // A missing file: nothing is touched.
    let out = import(&db, &["--csv", "/nonexistent/dbip-city.csv"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains("/nonexistent/dbip-city.csv") && error[0].contains("No such file"),
        "{stderr}"
    );

    // Not an MMDB file.
    let out = import(&db, &["--mmdb", path_arg(&sample())]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a MaxMind DB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A bad row after the load has started: the load is rolled back.
    let dir = TempDir::new();
    let broken = std::fs::read_to_string(sample())
        .unwrap()
        .replace("Miami", "Elsewhere")
        + "2d00::,not-an-address,US,Florida,,Miami,,0,0,UTC\n";
    let csv = dir.write("broken.csv", &broken);
    let out = import(&db, &["--csv", path_arg(&csv)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.csv: line 21") && stderr.contains("not an IP address"),
        "{stderr}"
    );

    // Unsorted input is refused too.
    let unsorted = dir.write(
        "unsorted.csv",
        "9.0.0.0,9.0.0.255,US,Texas,,Dallas,,0,0,UTC\n8.0.0.0,8.0.0.255,US,Texas,,Dallas,,0,0,UTC\n",
    );
    let out = import(&db, &["--csv", path_arg(&unsorted)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be sorted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(lookup(&c, "8.8.8.8").await, before);
    assert_eq!(
        lookup(&c, "23.0.0.1").await.unwrap().3.as_deref(),
        Some("Miami")
    );
    assert_eq!(count(&c, "SELECT count(*) FROM geoip_imports").await, 1);
    assert_eq!(
        count(&c, "SELECT count(*) FROM geoip_city_ranges").await,
        18
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'geoip%new%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn an_unmigrated_or_unreachable_database_is_reported() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "DROP FUNCTION geoip_lookup(inet); \
             DROP TABLE geoip_city_ranges, geoip_locations, geoip_imports",
        )
        .await
        .unwrap();
    let out = import(&db, &["--csv", path_arg(&sample())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run spin-local migrate"), "{stderr}");

    // Nothing listens on port 1.
    let out = Command::new(importer())
        .args([
            "--database-url",
            "postgres://postgres@127.0.0.1:1/x?sslmode=disable",
        ])
        .arg("--csv")
        .arg(sample())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the database at 127.0.0.1:1/x"),
        "{stderr}"
    );
}
