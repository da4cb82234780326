//! The `ETag` of a lead's follow-up version, and the version an `If-Match` names.

/// The `ETag` of a lead's follow-up version.
pub fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// The version an `If-Match` names (`"v3"`, `W/"v3"` or `v3`).
pub fn parse_etag(value: &str) -> Option<i64> {
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('v')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip() {
        assert_eq!(parse_etag(&etag(7)), Some(7));
        assert_eq!(parse_etag("W/\"v3\""), Some(3));
        assert_eq!(parse_etag("\"x3\""), None);
    }
}
