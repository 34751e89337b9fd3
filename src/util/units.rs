//! Units as people write and read them: durations, sizes, gaps and offsets in time.

/// A duration in whole nanoseconds, written as people write one (`10ms`, `1.5s`) in the rules
/// file and read from it once, exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for Nanos {
    type Err = String;

    fn from_str(text: &str) -> Result<Nanos, String> {
        parse_duration(text).map(Nanos)
    }
}

impl std::fmt::Display for Nanos {
    /// In the largest unit that holds it whole: `10ms`, `1500ms`, `250us`, `0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(&str, u64); 5] = [
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ];
        if self.0 == 0 {
            return f.write_str("0");
        }
        let (unit, size) = UNITS
            .into_iter()
            .find(|(_, size)| self.0.is_multiple_of(*size))
            .unwrap_or(("ns", 1));
        write!(f, "{}{unit}", self.0 / size)
    }
}

impl serde::Serialize for Nanos {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Nanos {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `250ms`, `1.5s`, `500us`, `2m`, `0` into nanoseconds, without going through floats.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "" if number.chars().all(|c| c == '0') && !number.is_empty() => 1,
        "" => {
            return Err(format!(
                "{text:?} has no unit; expected a duration like 250ms, 1s or 500us"
            ));
        }
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; expected ns, us, ms, s, m, h or d"
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!(
            "{text:?} is not a duration; expected a number and a unit, like 250ms"
        ));
    }
    let overflow = || format!("{text:?} is too long a duration");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let mut total = whole.checked_mul(scale).ok_or_else(overflow)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        if !digit.is_ascii_digit() {
            return Err(format!(
                "{text:?} is not a duration; expected a number and a unit, like 250ms"
            ));
        }
        place /= 10;
        total = total
            .checked_add(u64::from(digit - b'0') * place)
            .ok_or_else(overflow)?;
    }
    Ok(total)
}

/// Reads a size as users write it: `1073741824`, `512MiB`, `4G` (binary), `2GB` (decimal),
/// `unlimited`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
        return Ok(u64::MAX);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(size_error(text)),
    };
    let n: u64 = digits.parse().map_err(|_| size_error(text))?;
    n.checked_mul(multiplier).ok_or_else(|| size_error(text))
}

fn size_error(text: &str) -> String {
    format!(
        "{text:?} is not a size: expected a number of bytes, optionally with a unit (KiB, MiB, GiB, TiB, or KB, MB, GB, TB), or `unlimited`"
    )
}

/// A byte count as people write it: `1 GiB`, `64 KiB`, `1500 bytes`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if bytes == u64::MAX {
        return "unlimited".to_owned();
    }
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// A duration in words for evidence sentences: `412 ms`, `1.234 s`, `850 µs`.
pub fn human_gap(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!(
            "{}.{:03} s",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1_000_000
        )
    } else if ns >= 1_000_000 {
        format!("{} ms", ns / 1_000_000)
    } else {
        format!("{} µs", ns / 1_000)
    }
}

/// A signed offset from the abort as `+1.234s`; gaps under 10 ms in milliseconds
/// (`-1.234ms`), so that a near-tie is not shown as `+0.000s`.
pub fn offset(delta_ns: i128) -> String {
    let sign = if delta_ns < 0 { '-' } else { '+' };
    let abs = delta_ns.unsigned_abs();
    if abs < 10_000_000 {
        format!(
            "{sign}{}.{:03}ms",
            abs / 1_000_000,
            (abs % 1_000_000) / 1_000
        )
    } else {
        format!(
            "{sign}{}.{:03}s",
            abs / 1_000_000_000,
            (abs % 1_000_000_000) / 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_exactly() {
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("500us").unwrap(), 500_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("2m").unwrap(), 120_000_000_000);
        assert!(parse_duration("250").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("4 g"), Ok(4 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("unlimited"), Ok(u64::MAX));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1500), "1500 bytes");
    }

    #[test]
    fn durations_print_in_their_largest_whole_unit() {
        for text in ["10ms", "1500ms", "250us", "2m", "7ns", "0"] {
            assert_eq!(text.parse::<Nanos>().unwrap().to_string(), text);
        }
        assert_eq!("1.5s".parse::<Nanos>().unwrap().to_string(), "1500ms");
    }

    #[test]
    fn offsets_print_exactly() {
        assert_eq!(offset(1_234_000_000), "+1.234s");
        assert_eq!(offset(-12_345_678), "-0.012s");
        assert_eq!(offset(-1_234_567), "-1.234ms");
        assert_eq!(offset(0), "+0.000ms");
    }
}
