//! Identifiers in requests.

/// `s` as a UUID in canonical form (lower-case, hyphenated), if it is one:
/// what `$n::text::uuid` accepts, written the way the database prints it.
pub fn parse_uuid(s: &str) -> Option<String> {
    uuid::Uuid::try_parse(s)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_uuid;

    #[test]
    fn uuids_are_read_and_written_canonically() {
        assert_eq!(
            parse_uuid("6F1C2A3E-1111-4C4C-9D9D-0123456789AB").as_deref(),
            Some("6f1c2a3e-1111-4c4c-9d9d-0123456789ab")
        );
        assert!(parse_uuid("6f1c2a3e-1111-4c4c-9d9d-0123456789ag").is_none());
        assert!(parse_uuid("nope").is_none());
        assert!(parse_uuid("").is_none());
    }
}
