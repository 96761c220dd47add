//! Distinct places (`geoip_locations`): ranges point at them by id.

use std::collections::HashMap;
use std::io::Write;

/// One place as stored: empty strings become `None` (NULL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// ISO 3166-1 alpha-2, upper case.
    pub country_code: String,
    /// `FL`, `QC`: US states and Canadian provinces only.
    pub region_code: Option<&'static str>,
    pub region_name: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl Location {
    /// A place from the fields of the source (`state1` is the region).
    /// `None` when the country is missing.
    pub fn new(country_code: &str, state1: &str, city: &str, postcode: &str) -> Option<Location> {
        let country_code = country_code.trim().to_ascii_uppercase();
        if country_code.is_empty() {
            return None;
        }
        let region_name = non_empty(state1);
        let region_code = region_name
            .as_deref()
            .and_then(|name| leads::subdivisions::code(&country_code, name));
        Some(Location {
            region_code,
            region_name,
            city: non_empty(city),
            postal_code: non_empty(postcode),
            country_code,
        })
    }

    /// A US or Canadian place whose subdivision has no known code.
    pub fn lacks_region_code(&self) -> bool {
        self.region_code.is_none() && leads::subdivisions::uses_codes(&self.country_code)
    }
}

/// The places seen so far, numbered from 1 in order of appearance.
#[derive(Debug, Default)]
pub struct Locations {
    ids: HashMap<Location, u32>,
    list: Vec<Location>,
    /// `lacks_region_code()` of each, by id − 1 (asked once per range).
    uncoded: Vec<bool>,
}

impl Locations {
    /// The id of `location`, numbering it if it is new.
    pub fn id(&mut self, location: Location) -> u32 {
        if let Some(id) = self.ids.get(&location) {
            return *id;
        }
        self.uncoded.push(location.lacks_region_code());
        self.list.push(location.clone());
        let id = self.list.len() as u32;
        self.ids.insert(location, id);
        id
    }

    pub fn get(&self, id: u32) -> &Location {
        &self.list[id as usize - 1]
    }

    /// Whether place `id` is in the US or Canada without a region code.
    pub fn lacks_region_code(&self, id: u32) -> bool {
        self.uncoded[id as usize - 1]
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Every place as `COPY ... FROM STDIN` text rows
    /// (`id, country_code, region_code, region_name, city, postal_code`).
    pub fn copy_text(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.list.len() * 48);
        for (i, l) in self.list.iter().enumerate() {
            write!(out, "{}\t", i + 1).unwrap();
            copy_field(&mut out, Some(&l.country_code));
            out.push(b'\t');
            copy_field(&mut out, l.region_code);
            out.push(b'\t');
            copy_field(&mut out, l.region_name.as_deref());
            out.push(b'\t');
            copy_field(&mut out, l.city.as_deref());
            out.push(b'\t');
            copy_field(&mut out, l.postal_code.as_deref());
            out.push(b'\n');
        }
        out
    }
}

/// One field in COPY's text format: `\N` for NULL, backslash escapes for the
/// characters that delimit rows and columns.
pub fn copy_field(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_and_canadian_regions_get_codes_others_keep_names() {
        let fl = Location::new("us", "Florida", "Miami", "33101").unwrap();
        assert_eq!(
            (fl.country_code.as_str(), fl.region_code),
            ("US", Some("FL"))
        );
        let qc = Location::new("CA", "Québec", "Montreal", "").unwrap();
        assert_eq!(qc.region_code, Some("QC"));
        assert_eq!(qc.postal_code, None);
        let gb = Location::new("GB", "England", "London", "").unwrap();
        assert_eq!(
            (gb.region_code, gb.region_name.as_deref()),
            (None, Some("England"))
        );
        assert!(!gb.lacks_region_code());
        let odd = Location::new("US", "Atlantis", "", "").unwrap();
        assert!(odd.lacks_region_code());
        assert_eq!(odd.city, None);
        assert!(Location::new(" ", "x", "y", "z").is_none());
    }

    #[test]
    fn places_are_numbered_once() {
        let mut l = Locations::default();
        let a = l.id(Location::new("US", "Florida", "Miami", "").unwrap());
        let b = l.id(Location::new("US", "Florida", "Tampa", "").unwrap());
        let a2 = l.id(Location::new("US", "Florida", "Miami", "").unwrap());
        assert_eq!((a, b, a2), (1, 2, 1));
        assert_eq!(l.len(), 2);
        assert_eq!(l.get(2).city.as_deref(), Some("Tampa"));
        assert!(!l.lacks_region_code(1));
        let odd = l.id(Location::new("CA", "Nowhere", "", "").unwrap());
        assert!(l.lacks_region_code(odd));
    }

    #[test]
    fn copy_text_escapes_and_writes_nulls() {
        let mut l = Locations::default();
        l.id(Location::new("GB", "England", "Back\\slash\tTab", "").unwrap());
        assert_eq!(
            String::from_utf8(l.copy_text()).unwrap(),
            "1\tGB\t\\N\tEngland\tBack\\\\slash\\tTab\t\\N\n"
        );
    }
}
