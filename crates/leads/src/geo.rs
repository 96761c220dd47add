//! Which address a lead ends up with. Per field, the visitor's own value wins,
//! then what the chat assistant extracted, then the IP lookup. An IP lookup
//! that places the visitor in another country than the one already known
//! (a VPN, a traveller) fills nothing: a city from the wrong country would
//! hurt matching more than no city.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lead::AddressFields;
use crate::subdivisions;

/// Where a field came from, most trusted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    User,
    Ai,
    Ip,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::User => "user",
            Source::Ai => "ai",
            Source::Ip => "ip",
        }
    }
}

/// What an IP lookup found.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct IpLocation {
    /// ISO 3166-1 alpha-2.
    pub country_code: Option<String>,
    /// Two-letter code where the provider knows one ('FL').
    pub region_code: Option<String>,
    /// The subdivision's name ('Florida', 'England').
    pub region_name: Option<String>,
    pub city: Option<String>,
    pub zip: Option<String>,
}

/// The address a lead is stored with, and the source of each field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Address {
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub sources: BTreeMap<&'static str, Source>,
}

impl Address {
    /// The least trusted source that supplied any field (`leads.geo_source`).
    pub fn geo_source(&self) -> Option<Source> {
        self.sources.values().copied().max()
    }
}

fn clean(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether an IP lookup could add anything: city, state, zip or country still
/// missing after the visitor's and the assistant's values (the country also
/// matters: platforms match on it, and it reads national phone numbers).
pub fn needs_lookup(user: &AddressFields, ai: &AddressFields) -> bool {
    let has = |f: fn(&AddressFields) -> &Option<String>| clean(f(user)).or(clean(f(ai))).is_some();
    !(has(|a| &a.city) && has(|a| &a.state) && has(|a| &a.zip) && has(|a| &a.country))
}

/// Merges the three sources. States of US and Canadian addresses come out as
/// two-letter codes ("Florida" → "FL"); countries as upper-case codes.
pub fn merge(user: &AddressFields, ai: &AddressFields, ip: Option<&IpLocation>) -> Address {
    let mut out = Address::default();
    let country_of =
        |a: &AddressFields| clean(&a.country).and_then(|c| crate::normalize::country_code(&c));
    let mut pick = |name: &'static str, values: [(Source, Option<String>); 3]| {
        for (source, value) in values {
            if let Some(v) = value {
                out.sources.insert(name, source);
                return Some(v);
            }
        }
        None
    };
    let known_country = country_of(user).or_else(|| country_of(ai));
    let ip_country = ip
        .and_then(|l| l.country_code.as_deref())
        .and_then(crate::normalize::country_code);
    let ip_agrees = match (&known_country, &ip_country) {
        (Some(k), Some(i)) => k == i,
        (None, Some(_)) => true,
        (_, None) => false,
    };
    let ip = ip.filter(|_| ip_agrees);
    let ip_state = ip.and_then(|l| l.region_code.clone().or_else(|| l.region_name.clone()));

    out.country = pick(
        "country",
        [
            (Source::User, country_of(user)),
            (Source::Ai, country_of(ai)),
            (Source::Ip, ip.and(ip_country)),
        ],
    );
    out.city = pick(
        "city",
        [
            (Source::User, clean(&user.city)),
            (Source::Ai, clean(&ai.city)),
            (Source::Ip, ip.and_then(|l| clean(&l.city))),
        ],
    );
    out.state = pick(
        "state",
        [
            (Source::User, clean(&user.state)),
            (Source::Ai, clean(&ai.state)),
            (Source::Ip, ip_state.and_then(|s| clean(&Some(s)))),
        ],
    );
    out.zip = pick(
        "zip",
        [
            (Source::User, clean(&user.zip)),
            (Source::Ai, clean(&ai.zip)),
            (Source::Ip, ip.and_then(|l| clean(&l.zip))),
        ],
    );
    if let (Some(country), Some(state)) = (&out.country, &out.state) {
        if let Some(code) = subdivisions::code(country, state) {
            out.state = Some(code.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(city: &str, state: &str, zip: &str, country: &str) -> AddressFields {
        let o = |s: &str| (!s.is_empty()).then(|| s.to_string());
        AddressFields {
            city: o(city),
            state: o(state),
            zip: o(zip),
            country: o(country),
        }
    }

    fn miami() -> IpLocation {
        IpLocation {
            country_code: Some("US".into()),
            region_code: None,
            region_name: Some("Florida".into()),
            city: Some("Miami".into()),
            zip: Some("33101".into()),
        }
    }

    #[test]
    fn user_beats_ai_beats_ip_per_field() {
        let a = merge(
            &fields("Tampa", "", "", ""),
            &fields("Orlando", "FL", "", ""),
            Some(&miami()),
        );
        assert_eq!(a.city.as_deref(), Some("Tampa"));
        assert_eq!(a.state.as_deref(), Some("FL"));
        assert_eq!(a.zip.as_deref(), Some("33101"));
        assert_eq!(a.country.as_deref(), Some("US"));
        assert_eq!(a.sources["city"], Source::User);
        assert_eq!(a.sources["state"], Source::Ai);
        assert_eq!(a.sources["zip"], Source::Ip);
        assert_eq!(a.geo_source(), Some(Source::Ip));
    }

    #[test]
    fn state_names_become_codes_for_us_and_canada_only() {
        let a = merge(
            &fields("", "", "", ""),
            &fields("", "", "", ""),
            Some(&miami()),
        );
        assert_eq!(a.state.as_deref(), Some("FL"));
        let a = merge(
            &fields("Montreal", "Quebec", "", "ca"),
            &AddressFields::default(),
            None,
        );
        assert_eq!(
            (a.state.as_deref(), a.country.as_deref()),
            (Some("QC"), Some("CA"))
        );
        let a = merge(
            &fields("London", "England", "", "GB"),
            &AddressFields::default(),
            None,
        );
        assert_eq!(a.state.as_deref(), Some("England"));
        assert_eq!(a.geo_source(), Some(Source::User));
    }

    #[test]
    fn an_ip_in_another_country_fills_nothing() {
        let a = merge(
            &fields("", "", "", "DE"),
            &AddressFields::default(),
            Some(&miami()),
        );
        assert_eq!((a.city, a.state, a.zip), (None, None, None));
        assert_eq!(a.country.as_deref(), Some("DE"));
    }

    #[test]
    fn lookups_are_needed_only_when_city_state_or_zip_is_missing() {
        let none = AddressFields::default();
        assert!(needs_lookup(&none, &none));
        assert!(needs_lookup(&fields("Tampa", "FL", "", ""), &none));
        assert!(needs_lookup(
            &fields("Tampa", "FL", "", ""),
            &fields("", "", "33601", "")
        ));
        assert!(!needs_lookup(
            &fields("Tampa", "FL", "", ""),
            &fields("", "", "33601", "us")
        ));
        assert!(!needs_lookup(&fields("Tampa", "FL", "33601", "US"), &none));
    }

    #[test]
    fn no_address_means_no_geo_source() {
        let a = merge(&AddressFields::default(), &AddressFields::default(), None);
        assert_eq!(a.geo_source(), None);
        assert!(a.sources.is_empty());
    }
}

/// The countries national phone numbers are read with, in order: the one the
/// visitor or the assistant gave, then the client's market; the client's
/// market before the IP's country (a VPN, a traveller).
pub fn phone_countries<'a>(address: &'a Address, default_country: Option<&'a str>) -> Vec<&'a str> {
    let given = address
        .sources
        .get("country")
        .is_some_and(|s| *s != Source::Ip);
    let ordered = if given {
        [address.country.as_deref(), default_country]
    } else {
        [default_country, address.country.as_deref()]
    };
    let mut out: Vec<&str> = Vec::new();
    for c in ordered.into_iter().flatten() {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod phone_country_tests {
    use super::*;

    fn address(country: &str, source: Source) -> Address {
        let mut a = Address {
            country: Some(country.into()),
            ..Address::default()
        };
        a.sources.insert("country", source);
        a
    }

    #[test]
    fn a_given_country_comes_first_an_ip_country_last() {
        assert_eq!(
            phone_countries(&address("FR", Source::User), Some("US")),
            ["FR", "US"]
        );
        assert_eq!(
            phone_countries(&address("FR", Source::Ip), Some("US")),
            ["US", "FR"]
        );
        assert_eq!(
            phone_countries(&address("US", Source::Ai), Some("US")),
            ["US"]
        );
        assert_eq!(
            phone_countries(&Address::default(), None),
            Vec::<&str>::new()
        );
    }
}
