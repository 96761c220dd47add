//! The input side: MMDB and CSV files read into one stream of merged ranges,
//! encoded for `COPY ... FROM STDIN (FORMAT binary)` and handed to the
//! database writer in chunks, with the places collected on the way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use maxminddb::{Reader, WithinOptions};
use tokio::sync::mpsc::Sender;

use crate::locations::{Location, Locations};
use crate::merge::{cidr_bounds, split, Family, Merger, Range};
use crate::num;

/// Which networks of an MMDB file are imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// An IPv4 database: everything.
    All,
    /// An IPv6 database with IPv6 data: only IPv6 networks. Its IPv4 subtree
    /// (and IPv4-mapped/compatible prefixes) would repeat the IPv4 file.
    V6Only,
    /// An IPv6-format database holding IPv4 data only: its IPv4 networks.
    V4Only,
}

impl Keep {
    fn accepts(self, family: Family, from: u128, to: u128) -> bool {
        match (self, family) {
            (Keep::All, _) => true,
            (Keep::V4Only, f) => f == Family::V4,
            (Keep::V6Only, Family::V4) => false,
            // ::/96 (IPv4-compatible) and ::ffff:0:0/96 (IPv4-mapped).
            (Keep::V6Only, Family::V6) => {
                let embedded = |n: u128| n >> 32 == 0 || n >> 32 == 0xffff;
                !(embedded(from) && from >> 32 == to >> 32)
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Keep::All => "IPv4",
            Keep::V6Only => "IPv6 (IPv4 subtrees skipped)",
            Keep::V4Only => "IPv4 in IPv6 format",
        }
    }
}

pub enum Input {
    Mmdb {
        path: PathBuf,
        reader: Box<Reader<Vec<u8>>>,
        keep: Keep,
    },
    Csv {
        path: PathBuf,
    },
}

impl Input {
    /// Opens and checks an MMDB file.
    pub fn mmdb(path: &Path) -> Result<Input> {
        let buf = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let reader = Reader::from_source(buf)
            .map_err(|e| anyhow!("{}: not a MaxMind DB (MMDB) file: {e}", path.display()))?;
        let keep = if reader.metadata().ip_version == 4 {
            Keep::All
        } else {
            // All assigned IPv6 unicast space is under 2000::/3.
            let native_v6 = reader
                .within("2000::/3".parse().unwrap(), WithinOptions::default())
                .map_err(|e| anyhow!("{}: {e}", path.display()))?
                .next()
                .is_some();
            if native_v6 {
                Keep::V6Only
            } else {
                Keep::V4Only
            }
        };
        Ok(Input::Mmdb {
            path: path.to_path_buf(),
            reader: Box::new(reader),
            keep,
        })
    }

    /// Checks that a CSV file can be read.
    pub fn csv(path: &Path) -> Result<Input> {
        std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        Ok(Input::Csv {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            Input::Mmdb { path, .. } | Input::Csv { path } => path,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Input::Mmdb { reader, keep, .. } => format!(
                "MMDB {}, {} networks in its tree, {}",
                reader.metadata().database_type,
                num(reader.metadata().node_count as u64),
                keep.describe()
            ),
            Input::Csv { .. } => "CSV".to_string(),
        }
    }

    fn label(&self) -> String {
        let p = self.path();
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    }
}

/// What one input contributed.
#[derive(Debug, Clone)]
pub struct InputStats {
    pub label: String,
    pub networks: u64,
    /// Networks left out: IPv4 subtrees of IPv6 files, or no country.
    pub skipped: u64,
    /// Ranges written, per family (IPv4, IPv6).
    pub ranges: [u64; 2],
    /// First and last address per family.
    pub spans: [Option<(u128, u128)>; 2],
    pub elapsed: Duration,
}

/// Everything the readers produced besides the ranges themselves.
#[derive(Debug)]
pub struct Outcome {
    pub locations: Locations,
    pub inputs: Vec<InputStats>,
    /// Ranges at US/Canadian places whose region has no code, by
    /// (country, region as published).
    pub uncoded: HashMap<(String, String), u64>,
}

const CHUNK: usize = 1 << 20;
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
const PROGRESS_RANGES: u64 = 500_000;

/// Builds the binary COPY stream and reports progress.
struct Writer {
    tx: Sender<Bytes>,
    buf: Vec<u8>,
    locations: Locations,
    uncoded: HashMap<(String, String), u64>,
    total_ranges: u64,
    stats: InputStats,
    started: Instant,
    last_report: Instant,
    last_report_ranges: u64,
}

impl Writer {
    fn new(tx: Sender<Bytes>) -> Writer {
        let mut buf = Vec::with_capacity(CHUNK + 256);
        // Binary COPY header: signature, flags, header extension length.
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        let now = Instant::now();
        Writer {
            tx,
            buf,
            locations: Locations::default(),
            uncoded: HashMap::new(),
            total_ranges: 0,
            stats: Self::fresh_stats(String::new()),
            started: now,
            last_report: now,
            last_report_ranges: 0,
        }
    }

    fn fresh_stats(label: String) -> InputStats {
        InputStats {
            label,
            networks: 0,
            skipped: 0,
            ranges: [0; 2],
            spans: [None; 2],
            elapsed: Duration::ZERO,
        }
    }

    /// One row: ip_from inet, ip_to inet, location_id integer.
    fn write(&mut self, r: Range) -> Result<()> {
        let b = &mut self.buf;
        b.extend_from_slice(&3i16.to_be_bytes());
        for n in [r.from, r.to] {
            // inet's binary form: family (2 = IPv4, 3 = IPv6), bits, is_cidr,
            // address length, address.
            match r.family {
                Family::V4 => {
                    b.extend_from_slice(&8i32.to_be_bytes());
                    b.extend_from_slice(&[2, 32, 0, 4]);
                    b.extend_from_slice(&(n as u32).to_be_bytes());
                }
                Family::V6 => {
                    b.extend_from_slice(&20i32.to_be_bytes());
                    b.extend_from_slice(&[3, 128, 0, 16]);
                    b.extend_from_slice(&n.to_be_bytes());
                }
            }
        }
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&(r.location as i32).to_be_bytes());

        let i = match r.family {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        self.stats.ranges[i] += 1;
        let span = self.stats.spans[i].get_or_insert((r.from, r.to));
        span.0 = span.0.min(r.from);
        span.1 = span.1.max(r.to);
        self.total_ranges += 1;
        if self.locations.lacks_region_code(r.location) {
            let place = self.locations.get(r.location);
            let key = (
                place.country_code.clone(),
                place.region_name.clone().unwrap_or_default(),
            );
            *self.uncoded.entry(key).or_default() += 1;
        }
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        if self.total_ranges - self.last_report_ranges >= PROGRESS_RANGES {
            self.report();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 256));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| anyhow!("the database writer stopped"))
    }

    /// Called every few thousand networks and every 500,000 ranges.
    fn tick(&mut self) {
        if self.last_report.elapsed() >= PROGRESS_EVERY {
            self.report();
        }
    }

    fn report(&mut self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        eprintln!(
            "geoip-import:   {}: {} networks read, {} ranges in total ({} networks/s)",
            self.stats.label,
            num(self.stats.networks),
            num(self.total_ranges),
            num((self.stats.networks as f64 / secs) as u64),
        );
        self.last_report = Instant::now();
        self.last_report_ranges = self.total_ranges;
    }

    fn begin(&mut self, label: String) {
        self.stats = Self::fresh_stats(label);
        self.started = Instant::now();
        self.last_report = self.started;
    }

    fn end(&mut self) -> InputStats {
        self.stats.elapsed = self.started.elapsed();
        self.stats.clone()
    }

    fn finish(mut self) -> Result<Outcome> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.flush()?;
        Ok(Outcome {
            locations: self.locations,
            inputs: Vec::new(),
            uncoded: self.uncoded,
        })
    }
}

/// Reads every input in order, sending the COPY stream to `tx`.
pub fn read_all(inputs: Vec<Input>, tx: Sender<Bytes>) -> Result<Outcome> {
    let mut w = Writer::new(tx);
    let mut done: Vec<InputStats> = Vec::new();
    for input in &inputs {
        w.begin(input.label());
        let path = input.path().display().to_string();
        match input {
            Input::Mmdb { reader, keep, .. } => read_mmdb(reader, *keep, &mut w),
            Input::Csv { path } => read_csv(path, &mut w),
        }
        .with_context(|| path.clone())?;
        let stats = w.end();
        check_disjoint(&done, &stats)?;
        done.push(stats);
    }
    let mut outcome = w.finish()?;
    outcome.inputs = done;
    Ok(outcome)
}

/// Two inputs must not both cover an address range of one family.
fn check_disjoint(done: &[InputStats], new: &InputStats) -> Result<()> {
    for old in done {
        for (i, family) in [Family::V4, Family::V6].into_iter().enumerate() {
            if let (Some(a), Some(b)) = (old.spans[i], new.spans[i]) {
                if a.0 <= b.1 && b.0 <= a.1 {
                    bail!(
                        "{} and {} both hold {} ranges ({}–{} and {}–{}): give each address range once",
                        old.label,
                        new.label,
                        family.name(),
                        family.addr(a.0),
                        family.addr(a.1),
                        family.addr(b.0),
                        family.addr(b.1),
                    );
                }
            }
        }
    }
    Ok(())
}

/// The fields of a DB-IP record used here (latitude, longitude, timezone and
/// state2 are ignored).
#[derive(serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    state1: Option<&'a str>,
    #[serde(borrow)]
    city: Option<&'a str>,
    #[serde(borrow)]
    postcode: Option<&'a str>,
}

fn read_mmdb(reader: &Reader<Vec<u8>>, keep: Keep, w: &mut Writer) -> Result<()> {
    let mut merger = Merger::new();
    // Many networks share one record: data offset → location id.
    let mut by_offset: HashMap<usize, Option<u32>> = HashMap::new();
    let mut last: (usize, Option<u32>) = (usize::MAX, None);
    let root = if reader.metadata().ip_version == 4 {
        "0.0.0.0/0"
    } else {
        "::/0"
    };
    for item in reader.within(root.parse().unwrap(), WithinOptions::default())? {
        let item = item?;
        w.stats.networks += 1;
        if w.stats.networks & 0xfff == 0 {
            w.tick();
        }
        let net = item.network()?;
        let (family, from, to) = cidr_bounds(net.network(), net.prefix());
        let Some(offset) = item.offset() else {
            continue;
        };
        if !keep.accepts(family, from, to) {
            w.stats.skipped += 1;
            continue;
        }
        let location = if offset == last.0 {
            last.1
        } else if let Some(l) = by_offset.get(&offset) {
            *l
        } else {
            let rec: Record = item.decode()?.ok_or_else(|| anyhow!("{net}: no record"))?;
            let l = Location::new(
                rec.country_code.unwrap_or(""),
                rec.state1.unwrap_or(""),
                rec.city.unwrap_or(""),
                rec.postcode.unwrap_or(""),
            )
            .map(|l| w.locations.id(l));
            by_offset.insert(offset, l);
            l
        };
        last = (offset, location);
        let Some(location) = location else {
            w.stats.skipped += 1;
            continue;
        };
        let range = Range {
            family,
            from,
            to,
            location,
        };
        if let Some(done) = merger.push(range)? {
            w.write(done)?;
        }
    }
    for r in merger.finish() {
        w.write(r)?;
    }
    Ok(())
}

/// ip-location-db's city CSV: no header, `ip_range_start, ip_range_end,
/// country_code, state1, state2, city, postcode, latitude, longitude, timezone`.
fn read_csv(path: &Path, w: &mut Writer) -> Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)?;
    let mut merger = Merger::new();
    let mut rec = csv::StringRecord::new();
    // Consecutive rows usually repeat the place.
    let mut last: Option<([String; 4], Option<u32>)> = None;
    let mut first = true;
    while rdr.read_record(&mut rec)? {
        let line = rec.position().map_or(0, |p| p.line());
        let row = (|| -> Result<Option<Range>> {
            if rec.len() < 7 {
                bail!(
                    "expected at least 7 columns (ip_range_start, ip_range_end, country_code, \
                     state1, state2, city, postcode, ...), found {}",
                    rec.len()
                );
            }
            let from: Result<IpAddr, _> = rec[0].trim().parse();
            if first && from.is_err() && rec[0].contains("ip") {
                return Ok(None); // a header line
            }
            let from = from.map_err(|_| anyhow!("{:?} is not an IP address", &rec[0]))?;
            let to: IpAddr = rec[1]
                .trim()
                .parse()
                .map_err(|_| anyhow!("{:?} is not an IP address", &rec[1]))?;
            let ((family, from), (to_family, to)) = (split(from), split(to));
            if family != to_family {
                bail!("the range starts and ends in different address families");
            }
            w.stats.networks += 1;
            let fields = [&rec[2], &rec[3], &rec[5], &rec[6]];
            let location = match &last {
                Some((f, l)) if f.iter().zip(fields).all(|(a, b)| a == b) => *l,
                _ => {
                    let l = Location::new(fields[0], fields[1], fields[2], fields[3])
                        .map(|l| w.locations.id(l));
                    last = Some((fields.map(str::to_string), l));
                    l
                }
            };
            let Some(location) = location else {
                w.stats.skipped += 1;
                return Ok(None);
            };
            Ok(Some(Range {
                family,
                from,
                to,
                location,
            }))
        })()
        .with_context(|| format!("line {line}"))?;
        first = false;
        if let Some(range) = row {
            if let Some(done) = merger.push(range).with_context(|| format!("line {line}"))? {
                w.write(done)?;
            }
        }
        if w.stats.networks & 0xfff == 0 {
            w.tick();
        }
    }
    for r in merger.finish() {
        w.write(r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_files_keep_native_ipv6_only() {
        let (_, mapped) = split("::ffff:1.2.3.0".parse().unwrap());
        let (_, compat) = split("::1.2.3.0".parse().unwrap());
        let (_, global) = split("2001:4860::".parse().unwrap());
        assert!(!Keep::V6Only.accepts(Family::V4, 0, 255));
        assert!(!Keep::V6Only.accepts(Family::V6, mapped, mapped + 255));
        assert!(!Keep::V6Only.accepts(Family::V6, compat, compat + 255));
        assert!(Keep::V6Only.accepts(Family::V6, global, global + 255));
        // A block that merely starts in ::/96 but covers more is real data.
        assert!(Keep::V6Only.accepts(Family::V6, 0, u128::MAX >> 8));
        assert!(Keep::V4Only.accepts(Family::V4, 0, 255));
        assert!(!Keep::V4Only.accepts(Family::V6, global, global + 255));
        assert!(Keep::All.accepts(Family::V4, 0, 255));
    }
}
