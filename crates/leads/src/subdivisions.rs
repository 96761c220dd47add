//! US states and Canadian provinces: ad platforms match on the two-letter
//! subdivision code (`FL`, `QC`), while geo databases and people write names.

#[rustfmt::skip]
const US: &[(&str, &str)] = &[
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"),
    ("CA", "California"), ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"),
    ("DC", "District of Columbia"), ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"),
    ("ID", "Idaho"), ("IL", "Illinois"), ("IN", "Indiana"), ("IA", "Iowa"),
    ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"), ("ME", "Maine"),
    ("MD", "Maryland"), ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"),
    ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"),
    ("NV", "Nevada"), ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"),
    ("NY", "New York"), ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"),
    ("OK", "Oklahoma"), ("OR", "Oregon"), ("PA", "Pennsylvania"), ("RI", "Rhode Island"),
    ("SC", "South Carolina"), ("SD", "South Dakota"), ("TN", "Tennessee"), ("TX", "Texas"),
    ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"), ("WA", "Washington"),
    ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
    ("AS", "American Samoa"), ("GU", "Guam"), ("MP", "Northern Mariana Islands"),
    ("PR", "Puerto Rico"), ("VI", "U.S. Virgin Islands"), ("UM", "United States Minor Outlying Islands"),
];

#[rustfmt::skip]
const CA: &[(&str, &str)] = &[
    ("AB", "Alberta"), ("BC", "British Columbia"), ("MB", "Manitoba"), ("NB", "New Brunswick"),
    ("NL", "Newfoundland and Labrador"), ("NS", "Nova Scotia"), ("NT", "Northwest Territories"),
    ("NU", "Nunavut"), ("ON", "Ontario"), ("PE", "Prince Edward Island"), ("QC", "Quebec"),
    ("SK", "Saskatchewan"), ("YT", "Yukon"),
];

/// Other spellings seen in geo databases and forms.
#[rustfmt::skip]
const ALIASES: &[(&str, &str, &str)] = &[
    ("US", "washington dc", "DC"), ("US", "washington, d.c.", "DC"), ("US", "d.c.", "DC"),
    ("US", "virgin islands", "VI"), ("US", "us virgin islands", "VI"),
    ("CA", "québec", "QC"), ("CA", "newfoundland", "NL"), ("CA", "yukon territory", "YT"),
    ("CA", "pei", "PE"),
];

fn table(country: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match country.to_ascii_uppercase().as_str() {
        "US" => Some(US),
        "CA" => Some(CA),
        _ => None,
    }
}

/// Whether subdivisions of this country are written as two-letter codes.
pub fn uses_codes(country: &str) -> bool {
    table(country).is_some()
}

/// The two-letter code of a US state or Canadian province given by code or
/// name (any case, surrounding spaces ignored); `None` for other countries or
/// names it does not know.
pub fn code(country: &str, state: &str) -> Option<&'static str> {
    let entries = table(country)?;
    let wanted = state.trim();
    if let Some((c, _)) = entries
        .iter()
        .find(|(c, n)| c.eq_ignore_ascii_case(wanted) || n.eq_ignore_ascii_case(wanted))
    {
        return Some(c);
    }
    let lower = wanted.to_lowercase();
    ALIASES
        .iter()
        .find(|(c, alias, _)| c.eq_ignore_ascii_case(country) && *alias == lower)
        .map(|(_, _, code)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_become_codes() {
        assert_eq!(code("US", "Florida"), Some("FL"));
        assert_eq!(code("us", " florida "), Some("FL"));
        assert_eq!(code("US", "fl"), Some("FL"));
        assert_eq!(code("US", "District of Columbia"), Some("DC"));
        assert_eq!(code("US", "Washington, D.C."), Some("DC"));
        assert_eq!(code("CA", "Quebec"), Some("QC"));
        assert_eq!(code("CA", "Québec"), Some("QC"));
        assert_eq!(code("CA", "British Columbia"), Some("BC"));
    }

    #[test]
    fn unknown_names_and_other_countries_have_no_code() {
        assert_eq!(code("US", "Atlantis"), None);
        assert_eq!(code("GB", "England"), None);
        assert!(!uses_codes("DE"));
        assert!(uses_codes("ca"));
    }

    #[test]
    fn every_state_and_province_is_there_once() {
        assert_eq!(US.len(), 57);
        assert_eq!(CA.len(), 13);
        for t in [US, CA] {
            let mut codes: Vec<_> = t.iter().map(|(c, _)| c).collect();
            codes.sort();
            codes.dedup();
            assert_eq!(codes.len(), t.len());
        }
    }
}
