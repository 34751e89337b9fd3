//! Times: Unix nanoseconds to and from RFC 3339. The only user of chrono.

/// Nanoseconds in a second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// A Unix-nanosecond time as RFC 3339 UTC with nanoseconds, e.g. `2026-11-25T15:33:00.123456789Z`.
pub fn rfc3339(unix_nano: u64) -> String {
    let secs = (unix_nano / 1_000_000_000) as i64;
    let nanos = (unix_nano % 1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        // Not `format`: it parses its pattern on every call, and a report formats thousands.
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => format!("{unix_nano}ns"),
    }
}

/// An RFC 3339 timestamp; the number of fractional digits sets the precision (none: 1 s).
pub fn parse_rfc3339(text: &str) -> Result<(u64, u64), String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("not a number or an RFC 3339 timestamp ({e})"))?;
    let secs = u64::try_from(parsed.timestamp())
        .map_err(|_| "before 1970, outside what Unix nanoseconds hold".to_owned())?;
    let time = secs
        .checked_mul(NS_PER_S)
        .and_then(|t| t.checked_add(u64::from(parsed.timestamp_subsec_nanos())))
        .ok_or_else(|| "too far in the future for Unix nanoseconds".to_owned())?;
    // `YYYY-MM-DDTHH:MM:SS` is 19 bytes; a fraction, if any, follows.
    let digits = text
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.').or_else(|| rest.strip_prefix(',')))
        .map_or(0, |f| f.bytes().take_while(u8::is_ascii_digit).count());
    Ok((time, precision_ns(NS_PER_S, digits)))
}

/// One unit divided by 10 per fractional digit, never below 1 ns.
pub fn precision_ns(unit_ns: u64, fraction_digits: usize) -> u64 {
    let mut precision = unit_ns;
    for _ in 0..fraction_digits {
        if precision < 10 {
            return 1;
        }
        precision /= 10;
    }
    precision
}

/// The UTC date of a Unix time, `YYYY-MM-DD`.
pub fn date(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .map(|t| t.date_naive().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_exactly() {
        assert_eq!(
            rfc3339(1_581_452_772_000_000_321),
            "2020-02-11T20:26:12.000000321Z"
        );
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date(1_581_452_772), "2020-02-11");
        assert_eq!(date(0), "1970-01-01");
    }

    #[test]
    fn rfc3339_precision_follows_its_fraction() {
        assert_eq!(
            parse_rfc3339("2020-02-11T20:26:12Z"),
            Ok((1_581_452_772_000_000_000, NS_PER_S))
        );
        assert_eq!(
            parse_rfc3339("2020-02-11T20:26:12.123456Z"),
            Ok((1_581_452_772_123_456_000, 1_000))
        );
    }
}
