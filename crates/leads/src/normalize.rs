//! A lead's user data, normalized and SHA-256 hashed the way each ad platform
//! matches on it.
//!
//! - Meta Conversions API, `user_data`: the "Customer Information Parameters"
//!   page. Email trimmed and lowercased; phone digits only with the country
//!   code; first/last name lowercase without punctuation (UTF-8 kept); city
//!   lowercase without spaces, punctuation or special characters; state the
//!   two-letter code for the US (and Canada), otherwise like city; zip
//!   lowercase without spaces or dashes, first 5 digits for US ZIP codes;
//!   country ISO 3166-1 alpha-2 lowercase. All of these hashed; IP, user
//!   agent, `fbc` and `fbp` sent as they are.
//! - Google Ads enhanced conversions for leads, `userIdentifiers` of
//!   `uploadClickConversions`: values trimmed and lowercased before hashing,
//!   phone in E.164 (with the `+`), dots before the `@` removed for gmail.com
//!   and googlemail.com. Email, phone and names hashed; city, state, country
//!   code and postal code sent unhashed.
//! - GA4 Measurement Protocol user-provided data (`user_data`, also what
//!   server-side GTM forwards): the Google Ads algorithm, with the field rules
//!   of its page: names, city and region without digits or symbols, postal
//!   code without `.` and `~`.
//!
//! Nothing here is sent hashed when it is empty: absent or unusable fields are
//! left out, never sent as `""` or as the hash of `""`.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::subdivisions;

/// Lowercase hex SHA-256.
pub fn sha256_hex(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

fn some_if_non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Whitespace runs become one space, none at the ends.
fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Combining diacritical marks: kept with the letter they belong to when the
/// text arrives decomposed (`e` + U+0301 rather than `é`).
fn is_combining(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0300..=0x036f | 0x1ab0..=0x1aff | 0x1dc0..=0x1dff | 0x20d0..=0x20ff | 0xfe20..=0xfe2f
    )
}

/// Lowercased, keeping only the characters `keep` accepts, whitespace
/// collapsed (or dropped when `keep` rejects it).
fn filtered_lower(raw: &str, keep: impl Fn(char) -> bool) -> Option<String> {
    let kept: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| keep(c))
        .collect();
    some_if_non_empty(collapse_spaces(&kept))
}

// ---------------------------------------------------------------- email

/// Email: trimmed, lowercased; `None` if not a plausible address (exactly one
/// '@', non-empty local part, a domain with a dot inside it, no whitespace,
/// at most 254 bytes).
pub fn email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    if e.is_empty() || e.len() > 254 || e.chars().any(char::is_whitespace) {
        return None;
    }
    let (local, domain) = e.split_once('@')?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    (!local.is_empty() && domain_ok).then_some(e)
}

/// Google's extra rule for gmail.com and googlemail.com: the dots in the local
/// part removed. A "+tag" suffix is kept (Google does not say to remove it).
/// The input is already normalized by [`email`].
pub fn email_for_google(normalized: &str) -> String {
    match normalized.split_once('@') {
        Some((local, domain)) if domain == "gmail.com" || domain == "googlemail.com" => {
            format!("{}@{domain}", local.replace('.', ""))
        }
        _ => normalized.to_owned(),
    }
}

// ---------------------------------------------------------------- phone

/// Country calling codes and national trunk prefixes, by ISO 3166-1 alpha-2.
///
/// This is normalization, not numbering-plan validation: it knows how to put
/// the code in front of a national number and drop its trunk prefix, and,
/// for NANP, that the national number has 10 digits. An empty trunk list means
/// the national number is dialled as it is written after the country code
/// (Italy keeps its leading 0; Spain, Poland, the Nordics have none).
#[rustfmt::skip]
const CALLING_CODES: &[(&str, &str, &[&str])] = &[
    // North American Numbering Plan
    ("US", "1", &[]), ("CA", "1", &[]), ("PR", "1", &[]), ("VI", "1", &[]), ("GU", "1", &[]),
    ("AS", "1", &[]), ("MP", "1", &[]), ("AG", "1", &[]), ("AI", "1", &[]), ("BB", "1", &[]),
    ("BM", "1", &[]), ("BS", "1", &[]), ("DM", "1", &[]), ("DO", "1", &[]), ("GD", "1", &[]),
    ("JM", "1", &[]), ("KN", "1", &[]), ("KY", "1", &[]), ("LC", "1", &[]), ("MS", "1", &[]),
    ("SX", "1", &[]), ("TC", "1", &[]), ("TT", "1", &[]), ("VC", "1", &[]), ("VG", "1", &[]),
    // EU / EEA
    ("AT", "43", &["0"]), ("BE", "32", &["0"]), ("BG", "359", &["0"]), ("HR", "385", &["0"]),
    ("CY", "357", &[]), ("CZ", "420", &[]), ("DK", "45", &[]), ("EE", "372", &[]),
    ("FI", "358", &["0"]), ("FR", "33", &["0"]), ("DE", "49", &["0"]), ("GR", "30", &[]),
    ("HU", "36", &["06"]), ("IE", "353", &["0"]), ("IT", "39", &[]), ("LV", "371", &[]),
    ("LT", "370", &["8", "0"]), ("LU", "352", &[]), ("MT", "356", &[]), ("NL", "31", &["0"]),
    ("PL", "48", &[]), ("PT", "351", &[]), ("RO", "40", &["0"]), ("SK", "421", &["0"]),
    ("SI", "386", &["0"]), ("ES", "34", &[]), ("SE", "46", &["0"]),
    ("IS", "354", &[]), ("LI", "423", &[]), ("NO", "47", &[]),
    // Rest of Europe
    ("GB", "44", &["0"]), ("GG", "44", &["0"]), ("JE", "44", &["0"]), ("IM", "44", &["0"]),
    ("CH", "41", &["0"]), ("TR", "90", &["0"]), ("RU", "7", &["8"]), ("UA", "380", &["0"]),
    // Oceania, Asia
    ("AU", "61", &["0"]), ("NZ", "64", &["0"]), ("IN", "91", &["0"]), ("JP", "81", &["0"]),
    ("KR", "82", &["0"]), ("CN", "86", &["0"]), ("HK", "852", &[]), ("TW", "886", &["0"]),
    ("SG", "65", &[]), ("MY", "60", &["0"]), ("TH", "66", &["0"]), ("ID", "62", &["0"]),
    ("PH", "63", &["0"]), ("VN", "84", &["0"]), ("PK", "92", &["0"]), ("BD", "880", &["0"]),
    // Middle East, Africa
    ("AE", "971", &["0"]), ("SA", "966", &["0"]), ("IL", "972", &["0"]), ("EG", "20", &["0"]),
    ("MA", "212", &["0"]), ("ZA", "27", &["0"]), ("NG", "234", &["0"]), ("KE", "254", &["0"]),
    // Latin America
    ("BR", "55", &["0"]), ("MX", "52", &[]), ("AR", "54", &["0"]), ("CL", "56", &[]),
    ("CO", "57", &[]), ("PE", "51", &["0"]),
];

const NO_COUNTRY: &str =
    "no country calling code: give the number with + and the country code, or the lead's country";

fn calling_code(country: &str) -> Option<(&'static str, &'static [&'static str])> {
    CALLING_CODES
        .iter()
        .find(|(c, _, _)| c.eq_ignore_ascii_case(country))
        .map(|(_, code, trunk)| (*code, *trunk))
}

/// The known calling code an international number starts with (ITU codes are
/// prefix-free, so at most one matches).
fn known_code_of(digits: &str) -> Option<(&'static str, &'static [&'static str])> {
    CALLING_CODES
        .iter()
        .find(|(_, code, _)| digits.starts_with(code))
        .map(|(_, code, trunk)| (*code, *trunk))
}

/// How many leading digits are an international dialling prefix: "00"
/// anywhere, also "011" from NANP countries and "0011" from Australia.
fn exit_prefix_len(country: Option<&str>, digits: &str) -> Option<usize> {
    let code = country.and_then(calling_code).map(|(code, _)| code);
    if country.is_some_and(|c| c.eq_ignore_ascii_case("AU")) && digits.starts_with("0011") {
        Some(4)
    } else if digits.starts_with("00") {
        Some(2)
    } else if code == Some("1") && digits.starts_with("011") {
        Some(3)
    } else {
        None
    }
}

/// A NANP national number: 10 digits, the area code not starting with 0 or 1.
fn check_nanp(national: &str) -> Result<(), String> {
    match national.len() {
        n if n < 10 => Err("too short".into()),
        n if n > 10 => Err("too long".into()),
        _ if national.starts_with(['0', '1']) => Err("invalid area code".into()),
        _ => Ok(()),
    }
}

fn assemble(code: &str, national: &str) -> Result<String, String> {
    let len = code.len() + national.len();
    if national.is_empty() || len < 8 {
        Err("too short".into())
    } else if len > 15 {
        Err("too long".into())
    } else {
        Ok(format!("+{code}{national}"))
    }
}

fn international(digits: &str) -> Result<String, String> {
    if digits.is_empty() {
        return Err("too short".into());
    }
    if digits.starts_with('0') {
        return Err("invalid country calling code".into());
    }
    match known_code_of(digits) {
        Some((code, trunk)) => {
            let mut national = &digits[code.len()..];
            if code == "1" {
                check_nanp(national)?;
            } else if trunk.contains(&"0") {
                // "+44 020 ...": the trunk 0 written after the country code.
                national = national.strip_prefix('0').unwrap_or(national);
            }
            assemble(code, national)
        }
        None => {
            let len = digits.len();
            if len < 8 {
                Err("too short".into())
            } else if len > 15 {
                Err("too long".into())
            } else {
                Ok(format!("+{digits}"))
            }
        }
    }
}

fn national(digits: &str, country: Option<&str>) -> Result<String, String> {
    let country = country.ok_or_else(|| NO_COUNTRY.to_owned())?;
    let (code, trunk) = calling_code(country).ok_or_else(|| {
        format!(
            "no country calling code known for country {country:?}: give the number with + and the country code"
        )
    })?;
    if code == "1" {
        let national = match digits.strip_prefix('1') {
            Some(rest) if digits.len() == 11 => rest,
            _ => digits,
        };
        check_nanp(national)?;
        return assemble(code, national);
    }
    let national = trunk
        .iter()
        .find_map(|t| digits.strip_prefix(t))
        .unwrap_or(digits);
    assemble(code, national)
}

/// Phone to E.164 (`+14155550123`).
///
/// Accepts spaces, dashes, dots, slashes and parentheses. A leading `+` or
/// `00` (also `011` with a NANP country, `0011` with AU) means the country
/// calling code is included; a `(0)` after it (`+44 (0)20 ...`) and a trunk
/// `0` written after it are dropped. Otherwise the calling code of `country`
/// (ISO alpha-2, any case) is put in front after dropping the national trunk
/// prefix where the country uses one; for NANP countries an 11-digit number
/// starting with 1 already carries the code. The result has 8..=15 digits
/// after the `+` (NANP: exactly 1 + 10).
pub fn phone_e164(raw: &str, country: Option<&str>) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.chars().any(char::is_alphabetic) {
        return Err("has letters".into());
    }
    let (plus, body) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if let Some(c) = body.chars().find(|&c| {
        !(c.is_ascii_digit() || c.is_whitespace() || matches!(c, '-' | '.' | '(' | ')' | '/'))
    }) {
        return Err(format!("unexpected character {c:?}"));
    }
    let digits_of = |t: &str| -> String { t.chars().filter(char::is_ascii_digit).collect() };
    let country = country.map(str::trim).filter(|c| !c.is_empty());
    let all = digits_of(body);
    let exit = if plus {
        Some(0)
    } else {
        exit_prefix_len(country, &all)
    };
    match exit {
        Some(n) => {
            let digits = digits_of(&body.replace("(0)", ""));
            international(digits.get(n..).unwrap_or(""))
        }
        None => national(&all, country),
    }
}

/// Meta's `ph`: digits only, country code included, no `+` ("14155550123").
pub fn phone_for_meta(e164: &str) -> String {
    e164.chars().filter(char::is_ascii_digit).collect()
}

/// An E.164 number as given to the builders: `+` and 8..=15 digits.
fn checked_e164(s: &str) -> Option<String> {
    let s = s.trim();
    let digits = s.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| s.to_owned())
}

// ---------------------------------------------------------------- names

/// Meta `fn` / `ln`: trimmed, lowercased (Unicode), punctuation and symbols
/// removed; letters of any script and digits kept, inner whitespace collapsed
/// to one space.
pub fn name_for_meta(raw: &str) -> Option<String> {
    filtered_lower(raw, |c| {
        c.is_alphanumeric() || c.is_whitespace() || is_combining(c)
    })
}

/// Google Ads first / last name: trimmed and lowercased (inner whitespace
/// runs collapsed to one space), punctuation kept; `None` when there is no
/// letter or digit at all.
pub fn name_for_google(raw: &str) -> Option<String> {
    if !raw.chars().any(char::is_alphanumeric) {
        return None;
    }
    some_if_non_empty(collapse_spaces(&raw.trim().to_lowercase()))
}

/// GA4 `sha256_first_name` / `sha256_last_name`, and `city` / `region`: digits
/// and symbols removed, lowercased, trimmed (inner whitespace collapsed).
fn text_for_ga4(raw: &str) -> Option<String> {
    filtered_lower(raw, |c| {
        c.is_alphabetic() || c.is_whitespace() || is_combining(c)
    })
}

// ---------------------------------------------------------------- address

/// Letters only, lowercased: no spaces, digits, punctuation or symbols.
fn letters_only(raw: &str) -> Option<String> {
    filtered_lower(raw, |c| c.is_alphabetic() || is_combining(c))
}

/// Meta `ct`: lowercase, spaces, punctuation and special characters (and
/// digits) removed: "New York" -> "newyork", "St. Louis" -> "stlouis".
pub fn city_for_meta(raw: &str) -> Option<String> {
    letters_only(raw)
}

/// The US state or Canadian province code for `raw` when the country writes
/// subdivisions as codes: `Some(Some(code))`, `Some(None)` when the name is
/// not known, `None` for other countries.
fn subdivision_code(raw: &str, country: Option<&str>) -> Option<Option<&'static str>> {
    let country = country.and_then(country_code)?;
    subdivisions::uses_codes(&country).then(|| subdivisions::code(&country, raw))
}

/// Meta `st`: for the US and Canada the two-letter code, lowercased
/// ("Florida" -> "fl"; `None` for a name that is not a state or province);
/// elsewhere lowercase with spaces, punctuation and digits removed.
pub fn state_for_meta(raw: &str, country: Option<&str>) -> Option<String> {
    non_empty(raw)?;
    match subdivision_code(raw, country) {
        Some(code) => code.map(str::to_ascii_lowercase),
        None => letters_only(raw),
    }
}

/// Countries whose postal codes are USPS ZIP codes.
fn uses_us_zip(country: Option<&str>) -> bool {
    country
        .and_then(country_code)
        .is_some_and(|c| matches!(c.as_str(), "US" | "PR" | "VI" | "GU" | "AS" | "MP"))
}

/// The 5-digit ZIP code at the start of a US postal code ("94035-1234").
fn us_zip5(raw: &str) -> Option<String> {
    let five: String = raw.trim().chars().take(5).collect();
    (five.len() == 5 && five.bytes().all(|b| b.is_ascii_digit())).then_some(five)
}

/// Meta `zp`: lowercase, spaces and dashes removed; US ZIP codes: the first 5
/// digits only ("94035-1234" -> "94035"; `None` when there are not 5).
pub fn zip_for_meta(raw: &str, country: Option<&str>) -> Option<String> {
    non_empty(raw)?;
    if uses_us_zip(country) {
        return us_zip5(raw);
    }
    let cleaned: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| !c.is_whitespace() && c != '-')
        .collect();
    some_if_non_empty(cleaned)
}

/// Country as an ISO 3166-1 alpha-2 code, upper case ("us" -> "US"). Only a
/// two-letter code is accepted ("UK" is read as "GB"); names give `None`.
/// Meta wants it lowercased.
pub fn country_code(raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.len() != 2 || !t.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let upper = t.to_ascii_uppercase();
    Some(if upper == "UK" { "GB".into() } else { upper })
}

// ---------------------------------------------------------------- builders

/// A lead's contact data as the builders take it.
#[derive(Debug, Clone, Default)]
pub struct Contact<'a> {
    /// Already normalized by [`email`].
    pub email: Option<&'a str>,
    /// Already E.164 ([`phone_e164`]).
    pub phone_e164: Option<&'a str>,
    /// Raw.
    pub first_name: Option<&'a str>,
    /// Raw.
    pub last_name: Option<&'a str>,
    pub city: Option<&'a str>,
    /// The code for US/CA already, raw otherwise.
    pub state: Option<&'a str>,
    pub zip: Option<&'a str>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<&'a str>,
    /// The visitor's anonymous id.
    pub external_id: Option<&'a str>,
    /// Full IP, not hashed.
    pub client_ip: Option<&'a str>,
    /// Not hashed.
    pub user_agent: Option<&'a str>,
    /// Not hashed.
    pub fbc: Option<&'a str>,
    /// Not hashed.
    pub fbp: Option<&'a str>,
}

impl Contact<'_> {
    fn email(&self) -> Option<String> {
        self.email.and_then(email)
    }
    fn phone(&self) -> Option<String> {
        self.phone_e164.and_then(checked_e164)
    }
    fn country(&self) -> Option<String> {
        self.country.and_then(country_code)
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

fn put_hashed(map: &mut Map<String, Value>, key: &str, value: Option<String>) {
    put(map, key, value.map(|v| sha256_hex(&v)));
}

/// Meta Conversions API `user_data`: `em`, `ph`, `fn`, `ln`, `ct`, `st`, `zp`,
/// `country`, `external_id` as arrays of one SHA-256 hex each;
/// `client_ip_address`, `client_user_agent`, `fbc`, `fbp` as plain strings.
/// Absent or unusable fields are omitted.
pub fn meta_user_data(c: &Contact) -> Value {
    let mut m = Map::new();
    let one = |v: Option<String>| v.map(|v| json!([sha256_hex(&v)]));
    let country = c.country();
    put(&mut m, "em", one(c.email()));
    put(&mut m, "ph", one(c.phone().map(|p| phone_for_meta(&p))));
    put(&mut m, "fn", one(c.first_name.and_then(name_for_meta)));
    put(&mut m, "ln", one(c.last_name.and_then(name_for_meta)));
    put(&mut m, "ct", one(c.city.and_then(city_for_meta)));
    put(
        &mut m,
        "st",
        one(c.state.and_then(|s| state_for_meta(s, country.as_deref()))),
    );
    put(
        &mut m,
        "zp",
        one(c.zip.and_then(|z| zip_for_meta(z, country.as_deref()))),
    );
    put(
        &mut m,
        "country",
        one(country.as_deref().map(str::to_ascii_lowercase)),
    );
    put(
        &mut m,
        "external_id",
        one(c.external_id.and_then(non_empty).map(str::to_owned)),
    );
    put(&mut m, "client_ip_address", c.client_ip.and_then(non_empty));
    put(
        &mut m,
        "client_user_agent",
        c.user_agent.and_then(non_empty),
    );
    put(&mut m, "fbc", c.fbc.and_then(non_empty));
    put(&mut m, "fbp", c.fbp.and_then(non_empty));
    Value::Object(m)
}

/// Google Ads state: the code for the US and Canada, as written otherwise.
fn state_for_google(raw: &str, country: Option<&str>) -> Option<String> {
    non_empty(raw)?;
    match subdivision_code(raw, country) {
        Some(code) => code.map(str::to_owned),
        None => some_if_non_empty(collapse_spaces(raw)),
    }
}

/// Postal code sent unhashed to Google Ads: 5-digit ZIP for the US, trimmed
/// otherwise.
fn postal_for_google(raw: &str, country: Option<&str>) -> Option<String> {
    non_empty(raw)?;
    if uses_us_zip(country) {
        return us_zip5(raw);
    }
    some_if_non_empty(collapse_spaces(raw))
}

/// Google Ads enhanced conversions for leads, `userIdentifiers` of
/// `uploadClickConversions`: `{"hashedEmail"}`, `{"hashedPhoneNumber"}` (hash
/// of the E.164 form with `+`), `{"addressInfo": {"hashedFirstName",
/// "hashedLastName", "city", "state", "countryCode", "postalCode"}}` — names
/// hashed, the rest unhashed per Google's spec. `addressInfo` only when it
/// has a field; absent fields omitted.
pub fn google_user_identifiers(c: &Contact) -> Value {
    let country = c.country();
    let mut ids = Vec::new();
    if let Some(e) = c.email() {
        ids.push(json!({ "hashedEmail": sha256_hex(&email_for_google(&e)) }));
    }
    if let Some(p) = c.phone() {
        ids.push(json!({ "hashedPhoneNumber": sha256_hex(&p) }));
    }
    let mut address = Map::new();
    put_hashed(
        &mut address,
        "hashedFirstName",
        c.first_name.and_then(name_for_google),
    );
    put_hashed(
        &mut address,
        "hashedLastName",
        c.last_name.and_then(name_for_google),
    );
    put(
        &mut address,
        "city",
        c.city.and_then(|s| some_if_non_empty(collapse_spaces(s))),
    );
    put(
        &mut address,
        "state",
        c.state
            .and_then(|s| state_for_google(s, country.as_deref())),
    );
    put(&mut address, "countryCode", country.clone());
    put(
        &mut address,
        "postalCode",
        c.zip.and_then(|z| postal_for_google(z, country.as_deref())),
    );
    if !address.is_empty() {
        ids.push(json!({ "addressInfo": address }));
    }
    Value::Array(ids)
}

/// Data Manager given / family name: lowercased, punctuation removed,
/// whitespace runs collapsed, trimmed; `None` when nothing is left.
fn name_for_data_manager(raw: &str) -> Option<String> {
    let kept: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || is_combining(*c))
        .collect();
    some_if_non_empty(collapse_spaces(kept.trim()))
}

/// Google Data Manager API `UserData` of an event:
/// `{"userIdentifiers": [{"emailAddress"}, {"phoneNumber"}, {"address":
/// {"givenName", "familyName", "regionCode", "postalCode"}}]}` — e-mail (with
/// Google's gmail rule), E.164 phone and names as SHA-256 lowercase hex (the
/// request says `encoding: HEX`), region and postal code unhashed. The
/// address only when all four parts are known: Data Manager requires each.
pub fn data_manager_user_data(c: &Contact) -> Value {
    let country = c.country();
    let mut ids = Vec::new();
    if let Some(e) = c.email() {
        ids.push(json!({ "emailAddress": sha256_hex(&email_for_google(&e)) }));
    }
    if let Some(p) = c.phone() {
        ids.push(json!({ "phoneNumber": sha256_hex(&p) }));
    }
    let given = c.first_name.and_then(name_for_data_manager);
    let family = c.last_name.and_then(name_for_data_manager);
    let postal = c.zip.and_then(|z| postal_for_google(z, country.as_deref()));
    if let (Some(given), Some(family), Some(region), Some(postal)) =
        (given, family, country, postal)
    {
        ids.push(json!({ "address": {
            "givenName": sha256_hex(&given), "familyName": sha256_hex(&family),
            "regionCode": region, "postalCode": postal,
        } }));
    }
    json!({ "userIdentifiers": ids })
}

/// GA4 `region`: the lowercased code for the US and Canada, otherwise digits
/// and symbols removed, lowercased.
fn region_for_ga4(raw: &str, country: Option<&str>) -> Option<String> {
    non_empty(raw)?;
    match subdivision_code(raw, country) {
        Some(code) => code.map(str::to_ascii_lowercase),
        None => text_for_ga4(raw),
    }
}

/// GA4 `postal_code`: `.` and `~` removed, trimmed.
fn postal_for_ga4(raw: &str) -> Option<String> {
    let kept: String = raw.chars().filter(|c| !matches!(c, '.' | '~')).collect();
    non_empty(&kept).map(str::to_owned)
}

/// GA4 Measurement Protocol user-provided data (`user_data`):
/// `{"sha256_email_address": [..], "sha256_phone_number": [..], "address":
/// [{"sha256_first_name", "sha256_last_name", "city", "region",
/// "postal_code", "country"}]}`. Absent fields omitted, `address` only when it
/// has a field.
pub fn ga4_user_data(c: &Contact) -> Value {
    let country = c.country();
    let mut m = Map::new();
    let one = |v: Option<String>| v.map(|v| json!([sha256_hex(&v)]));
    put(
        &mut m,
        "sha256_email_address",
        one(c.email().map(|e| email_for_google(&e))),
    );
    put(&mut m, "sha256_phone_number", one(c.phone()));
    let mut address = Map::new();
    put_hashed(
        &mut address,
        "sha256_first_name",
        c.first_name.and_then(text_for_ga4),
    );
    put_hashed(
        &mut address,
        "sha256_last_name",
        c.last_name.and_then(text_for_ga4),
    );
    put(&mut address, "city", c.city.and_then(text_for_ga4));
    put(
        &mut address,
        "region",
        c.state.and_then(|s| region_for_ga4(s, country.as_deref())),
    );
    put(&mut address, "postal_code", c.zip.and_then(postal_for_ga4));
    put(&mut address, "country", country);
    if !address.is_empty() {
        m.insert("address".into(), json!([address]));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently: `printf %s '<input>' | sha256sum`.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const TEST_AT_EXAMPLE: &str =
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";
    const JOHN_DOT_DOE_GMAIL: &str =
        "375320dd9ae7ed408002f3768e16cb5f28c861062fd50dff9a3bff62e9dce4ef";
    const JOHNDOE_GMAIL: &str = "06a240d11cc201676da976f7b49341181fd180da37cbe40a77432c0a366c80c3";
    const JANE_OUTLOOK: &str = "5a0b70300b36ef454b660f484ad2a9353e2b4e199f623fe55789406eb07055f5";
    const PH_DIGITS: &str = "413ba75461ab5f99d36820e561ea97e2bd80f9cb586f7ecea6cf4c496518950a"; // 14155550123
    const PH_E164: &str = "36a2cef4ff9bf7a1abd2a93359136b870393be4106e6c5d19b72ff564f9deca4"; // +14155550123
    const MARYANN: &str = "16b3f07f0ec2f9dd127b71dc2e6c791b7d93116a1c3bc99d057eaa7a8a077e73";
    const MARY_HYPHEN_ANN: &str =
        "ed4bdd3a7368920a4d1f4e692201f7a4aee19278a930c824649af01bbc38c63f";
    const DOESMITH: &str = "5f3838f5295eddc975d6b1a4c7f5f1721fb3b87987e48758a7bc6303a4d2aebe"; // dœsmith
    const DOE_HYPHEN_SMITH: &str =
        "d31122f76ed4841cd87f17199ebbc6784222bd2efd4d27fdc3c1c0084546865b"; // dœ-smith
    const SANFRANCISCO: &str = "1a6bd4d9d79dc0a79b53795c70d3349fa9e38968a3fbefbfe8783efb1d2b6aac";
    const CA: &str = "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126";
    const ZIP_94103: &str = "91dc2519ea98c5002cf2091e6a12b772eafdce9dca618e626d7d3b8275361789";
    const US: &str = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621";
    const GB: &str = "0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677";
    const VISITOR: &str = "d1ab8734f69dc8c0fc6f6090b21329311d31d5e09ffe16f7e1c1b0cca50c244e"; // v_123abc
    const PH_GB: &str = "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d"; // +442079460958

    #[test]
    fn sha256_known_vectors() {
        // FIPS 180-2 "abc" and the empty string.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex(""), EMPTY);
        assert_eq!(sha256_hex("test@example.com"), TEST_AT_EXAMPLE);
        assert_eq!(sha256_hex("dœsmith"), DOESMITH);
    }

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            email("  Test@Example.COM \n").as_deref(),
            Some("test@example.com")
        );
        assert_eq!(
            sha256_hex(&email(" TEST@example.com").unwrap()),
            TEST_AT_EXAMPLE
        );
        assert_eq!(
            email("first.last+tag@sub.example.co.uk").as_deref(),
            Some("first.last+tag@sub.example.co.uk")
        );
        for bad in [
            "",
            "   ",
            "test",
            "test@",
            "@example.com",
            "test@example",
            "a@b@example.com",
            "te st@example.com",
            "test@.example.com",
            "test@example.com.",
            "test@example..com",
        ] {
            assert_eq!(email(bad), None, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        assert_eq!(email(&long), None);
        assert!(email(&long[1..]).is_some());
    }

    #[test]
    fn google_removes_dots_only_for_gmail() {
        assert_eq!(email_for_google("john.doe@gmail.com"), "johndoe@gmail.com");
        assert_eq!(
            email_for_google("j.o.h.n@googlemail.com"),
            "john@googlemail.com"
        );
        assert_eq!(
            email_for_google("john.doe+ads@gmail.com"),
            "johndoe+ads@gmail.com"
        );
        assert_eq!(
            email_for_google("john.doe@example.com"),
            "john.doe@example.com"
        );
        assert_eq!(
            email_for_google("john.doe@gmail.com.au"),
            "john.doe@gmail.com.au"
        );
        assert_eq!(
            email_for_google("john.doe@mail.gmail.com"),
            "john.doe@mail.gmail.com"
        );
    }

    #[test]
    fn phones_become_e164() {
        let ok: &[(&str, Option<&str>, &str)] = &[
            ("(415) 555-0123", Some("US"), "+14155550123"),
            ("415.555.0123", Some("us"), "+14155550123"),
            ("1-415-555-0123", Some("US"), "+14155550123"),
            ("14155550123", Some("CA"), "+14155550123"),
            ("+1 (415) 555-0123", None, "+14155550123"),
            ("+1 415 555 0123", Some("GB"), "+14155550123"),
            ("011 44 20 7946 0958", Some("US"), "+442079460958"),
            ("+44 20 7946 0958", None, "+442079460958"),
            ("0044 20 7946 0958", None, "+442079460958"),
            ("0044 20 7946 0958", Some("DE"), "+442079460958"),
            ("020 7946 0958", Some("GB"), "+442079460958"),
            ("020 7946 0958", Some(" gb "), "+442079460958"),
            ("+44 (0)20 7946 0958", None, "+442079460958"),
            ("+44 020 7946 0958", None, "+442079460958"),
            ("0011 44 20 7946 0958", Some("AU"), "+442079460958"),
            ("0412 345 678", Some("AU"), "+61412345678"),
            ("030 1234567", Some("DE"), "+49301234567"),
            ("030/1234567", Some("DE"), "+49301234567"),
            ("06 12 34 56 78", Some("FR"), "+33612345678"),
            ("06 1234 5678", Some("IT"), "+390612345678"),
            ("+39 06 1234 5678", None, "+390612345678"),
            ("612 345 678", Some("ES"), "+34612345678"),
            ("06 30 123 4567", Some("HU"), "+36301234567"),
            ("8 (495) 123-45-67", Some("RU"), "+74951234567"),
            ("090-1234-5678", Some("JP"), "+819012345678"),
            (
                "\u{a0}+1\u{a0}415\u{a0}555\u{a0}0123\u{a0}",
                None,
                "+14155550123",
            ),
            ("+86 139 1234 5678", None, "+8613912345678"),
            ("+354 611 1234", None, "+3546111234"),
        ];
        for (raw, country, want) in ok {
            assert_eq!(
                phone_e164(raw, *country).as_deref(),
                Ok(*want),
                "{raw:?} {country:?}"
            );
        }
    }

    #[test]
    fn bad_phones_say_why() {
        let err = |raw: &str, country: Option<&str>| phone_e164(raw, country).unwrap_err();
        assert_eq!(err("415-555-CALL", Some("US")), "has letters");
        assert_eq!(err("+44 20 7946 0958 ext 12", None), "has letters");
        assert_eq!(err("12345", Some("US")), "too short");
        assert_eq!(err("555-0123", Some("US")), "too short");
        assert_eq!(err("+44 20", None), "too short");
        assert_eq!(err("0044", None), "too short");
        assert_eq!(err("+", None), "too short");
        assert_eq!(err("+1 415 555 01234", None), "too long");
        assert_eq!(err("+99 1234 5678 9012 3456", None), "too long");
        assert_eq!(err("020 7946 0958 1234 5678", Some("GB")), "too long");
        assert_eq!(err("015 555 0123", Some("US")), "invalid area code");
        assert_eq!(err("+0 415 555 0123", None), "invalid country calling code");
        assert_eq!(err("415#555#0123", Some("US")), "unexpected character '#'");
        assert_eq!(err("+1 415 +555 0123", None), "unexpected character '+'");
        assert_eq!(err("   ", Some("US")), "empty");
        let no_country = "no country calling code: give the number with + and the country code, or the lead's country";
        assert_eq!(err("4155550123", None), no_country);
        assert_eq!(err("4155550123", Some("  ")), no_country);
        assert!(err("4155550123", Some("XX"))
            .starts_with("no country calling code known for country \"XX\""));
    }

    #[test]
    fn calling_code_table_is_consistent() {
        for (i, (country, code, trunk)) in CALLING_CODES.iter().enumerate() {
            assert_eq!(country.len(), 2);
            assert!(country.bytes().all(|b| b.is_ascii_uppercase()), "{country}");
            assert!(
                code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0'),
                "{country}"
            );
            assert!(trunk.iter().all(|t| t.starts_with(['0', '8'])), "{country}");
            for (other, other_code, _) in &CALLING_CODES[..i] {
                assert_ne!(country, other, "{country} twice");
                // Prefix-free, so an international number has one reading.
                if code != other_code {
                    assert!(
                        !code.starts_with(other_code) && !other_code.starts_with(code),
                        "{country} {other}"
                    );
                }
            }
        }
        let eu_eea_and_more = [
            "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
            "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS",
            "LI", "NO", "US", "CA", "PR", "JM", "DO", "TT", "BS", "BB", "GB", "CH", "AU", "NZ",
            "IN", "BR", "MX", "AR", "CL", "CO", "PE", "ZA", "NG", "KE", "EG", "MA", "AE", "SA",
            "IL", "TR", "RU", "UA", "JP", "KR", "CN", "HK", "TW", "SG", "MY", "TH", "ID", "PH",
            "VN", "PK", "BD",
        ];
        for c in eu_eea_and_more {
            assert!(calling_code(c).is_some(), "{c} missing");
        }
    }

    #[test]
    fn meta_phone_is_digits_with_country_code() {
        assert_eq!(phone_for_meta("+14155550123"), "14155550123");
        assert_eq!(sha256_hex(&phone_for_meta("+14155550123")), PH_DIGITS);
        assert_eq!(
            sha256_hex(&phone_e164("(415) 555-0123", Some("US")).unwrap()),
            PH_E164
        );
    }

    #[test]
    fn names() {
        assert_eq!(name_for_meta("  Dœ-Smith ").as_deref(), Some("dœsmith"));
        assert_eq!(name_for_meta("O'Brien").as_deref(), Some("obrien"));
        assert_eq!(name_for_meta("Mary-Ann").as_deref(), Some("maryann"));
        assert_eq!(name_for_meta("José  María").as_deref(), Some("josé maría"));
        assert_eq!(name_for_meta("ÅSA").as_deref(), Some("åsa"));
        assert_eq!(name_for_meta("Zoë, Jr.").as_deref(), Some("zoë jr"));
        assert_eq!(
            name_for_meta("Louis XIV 2nd").as_deref(),
            Some("louis xiv 2nd")
        );
        assert_eq!(name_for_meta("김민준").as_deref(), Some("김민준"));
        // Decomposed accents stay with their letter.
        assert_eq!(name_for_meta("Jose\u{301}").as_deref(), Some("jose\u{301}"));
        assert_eq!(sha256_hex(&name_for_meta("Dœ-Smith").unwrap()), DOESMITH);

        assert_eq!(name_for_google("  Dœ-Smith ").as_deref(), Some("dœ-smith"));
        assert_eq!(name_for_google("O'Brien").as_deref(), Some("o'brien"));
        assert_eq!(name_for_google(" Mary   Ann ").as_deref(), Some("mary ann"));
        assert_eq!(
            sha256_hex(&name_for_google("Dœ-Smith").unwrap()),
            DOE_HYPHEN_SMITH
        );

        assert_eq!(text_for_ga4(" Dœ-Smith3 ").as_deref(), Some("dœsmith"));
        assert_eq!(text_for_ga4("Mary Ann").as_deref(), Some("mary ann"));

        for empty in ["", "   ", "--", ".'"] {
            assert_eq!(name_for_meta(empty), None, "{empty:?}");
            assert_eq!(text_for_ga4(empty), None, "{empty:?}");
        }
        assert_eq!(name_for_google(" \t "), None);
        assert_eq!(name_for_google(" - "), None);
    }

    #[test]
    fn cities() {
        assert_eq!(city_for_meta("New York").as_deref(), Some("newyork"));
        assert_eq!(city_for_meta("St. Louis").as_deref(), Some("stlouis"));
        assert_eq!(
            city_for_meta(" Winston-Salem ").as_deref(),
            Some("winstonsalem")
        );
        assert_eq!(city_for_meta("München").as_deref(), Some("münchen"));
        assert_eq!(
            city_for_meta("San Francisco").as_deref(),
            Some("sanfrancisco")
        );
        assert_eq!(city_for_meta("  "), None);
        assert_eq!(city_for_meta("123"), None);
    }

    #[test]
    fn states() {
        assert_eq!(state_for_meta("Florida", Some("US")).as_deref(), Some("fl"));
        assert_eq!(state_for_meta(" fl ", Some("us")).as_deref(), Some("fl"));
        assert_eq!(state_for_meta("Quebec", Some("CA")).as_deref(), Some("qc"));
        assert_eq!(state_for_meta("Québec", Some("CA")).as_deref(), Some("qc"));
        assert_eq!(state_for_meta("Narnia", Some("US")), None);
        assert_eq!(
            state_for_meta("Baden-Württemberg", Some("DE")).as_deref(),
            Some("badenwürttemberg")
        );
        assert_eq!(
            state_for_meta("Bayern", Some("de")).as_deref(),
            Some("bayern")
        );
        assert_eq!(
            state_for_meta("Île-de-France", Some("FR")).as_deref(),
            Some("îledefrance")
        );
        assert_eq!(
            state_for_meta("New South Wales", None).as_deref(),
            Some("newsouthwales")
        );
        assert_eq!(state_for_meta(" ", Some("US")), None);

        assert_eq!(
            state_for_google("Florida", Some("US")).as_deref(),
            Some("FL")
        );
        assert_eq!(
            state_for_google("Bayern", Some("DE")).as_deref(),
            Some("Bayern")
        );
        assert_eq!(region_for_ga4("Florida", Some("US")).as_deref(), Some("fl"));
        assert_eq!(
            region_for_ga4("Baden-Württemberg", Some("DE")).as_deref(),
            Some("badenwürttemberg")
        );
        assert_eq!(
            region_for_ga4("New South Wales", Some("AU")).as_deref(),
            Some("new south wales")
        );
    }

    #[test]
    fn zips() {
        assert_eq!(
            zip_for_meta("94035-1234", Some("US")).as_deref(),
            Some("94035")
        );
        assert_eq!(
            zip_for_meta(" 94035 ", Some("us")).as_deref(),
            Some("94035")
        );
        assert_eq!(
            zip_for_meta("940351234", Some("US")).as_deref(),
            Some("94035")
        );
        assert_eq!(
            zip_for_meta("00901-1234", Some("PR")).as_deref(),
            Some("00901")
        );
        assert_eq!(zip_for_meta("2134", Some("US")), None);
        assert_eq!(
            zip_for_meta("SW1A 1AA", Some("GB")).as_deref(),
            Some("sw1a1aa")
        );
        assert_eq!(
            zip_for_meta("1000-001", Some("PT")).as_deref(),
            Some("1000001")
        );
        assert_eq!(
            zip_for_meta("H3Z 2Y7", Some("CA")).as_deref(),
            Some("h3z2y7")
        );
        assert_eq!(zip_for_meta("10115", Some("DE")).as_deref(), Some("10115"));
        assert_eq!(
            zip_for_meta("94035-1234", None).as_deref(),
            Some("940351234")
        );
        assert_eq!(zip_for_meta(" - ", Some("GB")), None);
        assert_eq!(zip_for_meta("", Some("US")), None);

        assert_eq!(
            postal_for_google("94035-1234", Some("US")).as_deref(),
            Some("94035")
        );
        assert_eq!(
            postal_for_google(" SW1A 1AA ", Some("GB")).as_deref(),
            Some("SW1A 1AA")
        );
        assert_eq!(
            postal_for_ga4(" 94035-1234 ").as_deref(),
            Some("94035-1234")
        );
        assert_eq!(postal_for_ga4("1.000~"), Some("1000".into()));
    }

    #[test]
    fn countries() {
        assert_eq!(country_code("us").as_deref(), Some("US"));
        assert_eq!(country_code(" DE ").as_deref(), Some("DE"));
        assert_eq!(country_code("UK").as_deref(), Some("GB"));
        for bad in ["", "  ", "USA", "U", "U1", "United States", "ü s"] {
            assert_eq!(country_code(bad), None, "{bad:?}");
        }
    }

    fn full() -> Contact<'static> {
        Contact {
            email: Some("john.doe@gmail.com"),
            phone_e164: Some("+14155550123"),
            first_name: Some(" Mary-Ann "),
            last_name: Some("Dœ-Smith"),
            city: Some("San Francisco"),
            state: Some("CA"),
            zip: Some("94103-1234"),
            country: Some("us"),
            external_id: Some("v_123abc"),
            client_ip: Some("2001:4860:4860::8888"),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)"),
            fbc: Some("fb.1.1700000000000.AbCdEf"),
            fbp: Some("fb.1.1700000000000.123456789"),
        }
    }

    /// Blank strings everywhere: nothing may come out, in particular no hash
    /// of "".
    fn blank() -> Contact<'static> {
        Contact {
            email: Some(" "),
            phone_e164: Some(""),
            first_name: Some(" "),
            last_name: Some("-"),
            city: Some(""),
            state: Some(" "),
            zip: Some(" "),
            country: Some(""),
            external_id: Some("  "),
            client_ip: Some(""),
            user_agent: Some(" "),
            fbc: Some(""),
            fbp: Some(""),
        }
    }

    #[test]
    fn meta_user_data_end_to_end() {
        assert_eq!(
            meta_user_data(&full()),
            json!({
                "em": [JOHN_DOT_DOE_GMAIL],
                "ph": [PH_DIGITS],
                "fn": [MARYANN],
                "ln": [DOESMITH],
                "ct": [SANFRANCISCO],
                "st": [CA],
                "zp": [ZIP_94103],
                "country": [US],
                "external_id": [VISITOR],
                "client_ip_address": "2001:4860:4860::8888",
                "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                "fbc": "fb.1.1700000000000.AbCdEf",
                "fbp": "fb.1.1700000000000.123456789",
            })
        );
        assert_eq!(meta_user_data(&Contact::default()), json!({}));
        assert_eq!(meta_user_data(&blank()), json!({}));
        assert_eq!(
            meta_user_data(&Contact {
                email: Some("test@example.com"),
                phone_e164: Some("+442079460958"),
                country: Some("GB"),
                state: Some("Narnia"),
                ..Default::default()
            }),
            json!({ "em": [TEST_AT_EXAMPLE], "ph": ["35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823"], "country": [GB], "st": ["ad0d5e9ea49c64d351dab8126a7e55afc01db831017713a7b3f522cdd46a6431"] })
        );
        // Unusable values are dropped, not hashed.
        assert_eq!(
            meta_user_data(&Contact {
                email: Some("not an email"),
                phone_e164: Some("4155550123"),
                state: Some("Narnia"),
                country: Some("US"),
                zip: Some("123"),
                ..Default::default()
            }),
            json!({ "country": [US] })
        );
    }

    #[test]
    fn google_user_identifiers_end_to_end() {
        assert_eq!(
            google_user_identifiers(&full()),
            json!([
                { "hashedEmail": JOHNDOE_GMAIL },
                { "hashedPhoneNumber": PH_E164 },
                { "addressInfo": {
                    "hashedFirstName": MARY_HYPHEN_ANN,
                    "hashedLastName": DOE_HYPHEN_SMITH,
                    "city": "San Francisco",
                    "state": "CA",
                    "countryCode": "US",
                    "postalCode": "94103",
                } },
            ])
        );
        assert_eq!(google_user_identifiers(&Contact::default()), json!([]));
        assert_eq!(google_user_identifiers(&blank()), json!([]));
        assert_eq!(
            google_user_identifiers(&Contact {
                email: Some("jane@outlook.com"),
                first_name: Some("  "),
                ..Default::default()
            }),
            json!([{ "hashedEmail": JANE_OUTLOOK }])
        );
        assert_eq!(
            google_user_identifiers(&Contact {
                phone_e164: Some("+442079460958"),
                zip: Some("SW1A 1AA"),
                country: Some("gb"),
                ..Default::default()
            }),
            json!([
                { "hashedPhoneNumber": PH_GB },
                { "addressInfo": { "countryCode": "GB", "postalCode": "SW1A 1AA" } },
            ])
        );
    }

    #[test]
    fn ga4_user_data_end_to_end() {
        assert_eq!(
            ga4_user_data(&full()),
            json!({
                "sha256_email_address": [JOHNDOE_GMAIL],
                "sha256_phone_number": [PH_E164],
                "address": [{
                    "sha256_first_name": MARYANN,
                    "sha256_last_name": DOESMITH,
                    "city": "san francisco",
                    "region": "ca",
                    "postal_code": "94103-1234",
                    "country": "US",
                }],
            })
        );
        assert_eq!(ga4_user_data(&Contact::default()), json!({}));
        assert_eq!(ga4_user_data(&blank()), json!({}));
        assert_eq!(
            ga4_user_data(&Contact {
                email: Some("Test@Example.com "),
                ..Default::default()
            }),
            json!({ "sha256_email_address": [TEST_AT_EXAMPLE] })
        );
        assert_eq!(
            ga4_user_data(&Contact {
                city: Some("München"),
                state: Some("Bayern"),
                country: Some("DE"),
                ..Default::default()
            }),
            json!({ "address": [{ "city": "münchen", "region": "bayern", "country": "DE" }] })
        );
    }

    #[test]
    fn no_output_ever_carries_the_hash_of_nothing() {
        for c in [full(), blank(), Contact::default()] {
            for v in [
                meta_user_data(&c),
                google_user_identifiers(&c),
                ga4_user_data(&c),
            ] {
                let text = v.to_string();
                assert!(!text.contains(EMPTY), "{text}");
                assert!(!text.contains("\"\""), "{text}");
            }
        }
    }
}
