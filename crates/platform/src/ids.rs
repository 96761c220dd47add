//! Identifier formats shared by the endpoints' input checks.

/// Whether `s` is a UUID in its canonical textual form (any case): what
/// `$n::text::uuid` will accept without error.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::is_uuid;

    #[test]
    fn canonical_uuids_only() {
        assert!(is_uuid("6f1c2a3e-1111-4c4c-9d9d-0123456789AB"));
        assert!(!is_uuid("6f1c2a3e11114c4c9d9d0123456789ab"));
        assert!(!is_uuid("6f1c2a3e-1111-4c4c-9d9d-0123456789ag"));
        assert!(!is_uuid("nope"));
    }
}
