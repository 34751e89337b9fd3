//! Vendor timestamps as (Unix nanoseconds, precision): numbers read from their decimal text,
//! never through `f64` arithmetic, so Mailgun's `1529692198.641821` means 1 µs and Stripe's
//! whole seconds mean 1 s.

use serde_json::Value;

use crate::model::time::{NS_PER_S, parse_rfc3339, precision_ns};
use crate::rules::TimeUnit;

/// Values at or above this many are milliseconds for `s_or_ms`: 1e11 seconds is the year 5138,
/// 1e11 milliseconds is 1973.
const MS_FROM: u64 = 100_000_000_000;

/// A timestamp as (Unix nanoseconds, precision in nanoseconds). Numbers are read from their
/// decimal text: a JSON float such as Mailgun's `1529692198.641821` through its shortest
/// round-trip text (what the writer most likely wrote), so its six decimals mean 1 µs. Numbers
/// in strings are accepted, and so is an RFC 3339 string whatever the unit (and a number where
/// RFC 3339 is expected, as seconds or milliseconds by magnitude): the unit is a hint, the text
/// says what it is.
pub(crate) fn parse_time(value: &Value, unit: TimeUnit) -> Result<(u64, u64), String> {
    let (text, from_float) = match value {
        Value::Number(n) => (n.to_string(), !(n.is_u64() || n.is_i64())),
        Value::String(s) => (s.trim().to_owned(), false),
        _ => return Err("expected a number or a string".to_owned()),
    };
    match Decimal::parse(&text, from_float) {
        Some(decimal) => {
            let unit_ns = match unit {
                TimeUnit::S => NS_PER_S,
                TimeUnit::Ms => 1_000_000,
                TimeUnit::Us => 1_000,
                TimeUnit::Ns => 1,
                TimeUnit::SOrMs | TimeUnit::Rfc3339 => {
                    if decimal.at_least(MS_FROM) {
                        1_000_000
                    } else {
                        NS_PER_S
                    }
                }
            };
            decimal.to_ns(unit_ns).map_err(|why| {
                // Seconds where milliseconds were written, the usual mix-up, say so.
                let unit_name = match unit_ns {
                    NS_PER_S => "seconds",
                    1_000_000 => "milliseconds",
                    1_000 => "microseconds",
                    _ => return why,
                };
                let smaller = match unit_ns {
                    NS_PER_S => "milliseconds",
                    1_000_000 => "microseconds",
                    _ => "nanoseconds",
                };
                match decimal.to_ns(unit_ns / 1_000) {
                    Ok(_) => format!(
                        "{why} as {unit_name}; it looks like {smaller} (set the mapping's `time_unit`)"
                    ),
                    Err(_) => why,
                }
            })
        }
        None => match value {
            Value::String(s) => parse_rfc3339(s.trim()),
            _ => Err("not a number".to_owned()),
        },
    }
}

/// A decimal number as its digits, exactly.
#[derive(Debug, PartialEq)]
struct Decimal {
    negative: bool,
    /// Digits before the point, and after it.
    whole: Vec<u8>,
    fraction: Vec<u8>,
}

impl Decimal {
    /// `[+-]digits[.digits][e[+-]digits]`. From a float's shortest round-trip text, trailing
    /// zeros of the fraction are formatting (`1513299569.0`), not precision, and are dropped.
    fn parse(text: &str, from_float: bool) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::new();
        let mut point = None;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => digits.push(bytes[i] - b'0'),
                b'.' if point.is_none() => point = Some(digits.len()),
                _ => break,
            }
            i += 1;
        }
        if digits.is_empty() {
            return None;
        }
        let mut exponent: i64 = 0;
        if i < bytes.len() {
            if !matches!(bytes[i], b'e' | b'E') {
                return None;
            }
            exponent = text[i + 1..].parse().ok()?;
            // Far beyond any timestamp; refusing keeps the shifts below small.
            if !(-400..=400).contains(&exponent) {
                return None;
            }
        }
        let point = point.unwrap_or(digits.len()) as i64 + exponent;
        let (whole, mut fraction) = if point <= 0 {
            let mut fraction = vec![0; point.unsigned_abs() as usize];
            fraction.extend_from_slice(&digits);
            (Vec::new(), fraction)
        } else if point as usize >= digits.len() {
            let mut whole = digits;
            whole.resize(point as usize, 0);
            (whole, Vec::new())
        } else {
            let fraction = digits.split_off(point as usize);
            (digits, fraction)
        };
        if from_float {
            while fraction.last() == Some(&0) {
                fraction.pop();
            }
        }
        Some(Decimal {
            negative,
            whole,
            fraction,
        })
    }

    /// Whether the whole part is at least `n`.
    fn at_least(&self, n: u64) -> bool {
        match self.whole_u64() {
            Some(w) => w >= n,
            None => true,
        }
    }

    fn whole_u64(&self) -> Option<u64> {
        self.whole.iter().try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(*d))
        })
    }

    /// Nanoseconds for a number of `unit_ns` units; digits finer than 1 ns are cut off.
    fn to_ns(&self, unit_ns: u64) -> Result<(u64, u64), String> {
        let too_large = || "too large for Unix nanoseconds".to_owned();
        let mut ns = self
            .whole_u64()
            .and_then(|w| w.checked_mul(unit_ns))
            .ok_or_else(too_large)?;
        let mut place = unit_ns;
        for digit in &self.fraction {
            place /= 10;
            if place == 0 {
                break;
            }
            ns = ns
                .checked_add(u64::from(*digit) * place)
                .ok_or_else(too_large)?;
        }
        if self.negative && ns > 0 {
            return Err("negative, before 1970".to_owned());
        }
        Ok((ns, precision_ns(unit_ns, self.fraction.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(v: Value, unit: TimeUnit) -> Result<(u64, u64), String> {
        parse_time(&v, unit)
    }

    #[test]
    fn float_seconds_keep_their_written_digits() {
        let v: Value = serde_json::from_str("1529692198.641821").unwrap();
        assert_eq!(
            time(v, TimeUnit::S).unwrap(),
            (1_529_692_198_641_821_000, 1_000)
        );
        let v: Value = serde_json::from_str("1513299569.0").unwrap();
        assert_eq!(
            time(v, TimeUnit::S).unwrap(),
            (1_513_299_569_000_000_000, NS_PER_S),
            "a float's `.0` is formatting, not precision"
        );
        assert_eq!(
            time(Value::from("1529692198.641820"), TimeUnit::S).unwrap(),
            (1_529_692_198_641_820_000, 1_000),
            "a string's trailing zero was written on purpose"
        );
    }

    #[test]
    fn units_scale_exactly() {
        assert_eq!(
            time(Value::from(1_591_726_752_372u64), TimeUnit::Ms).unwrap(),
            (1_591_726_752_372_000_000, 1_000_000)
        );
        assert_eq!(
            time(Value::from(1_591_726_752_372u64), TimeUnit::SOrMs).unwrap(),
            (1_591_726_752_372_000_000, 1_000_000)
        );
        assert_eq!(
            time(Value::from(1_513_299_569u64), TimeUnit::SOrMs).unwrap(),
            (1_513_299_569_000_000_000, NS_PER_S)
        );
        assert_eq!(
            time(Value::from("1700000000123456"), TimeUnit::Us).unwrap(),
            (1_700_000_000_123_456_000, 1_000)
        );
        assert_eq!(
            time(Value::from(1_700_000_000_123_456_789u64), TimeUnit::Ns).unwrap(),
            (1_700_000_000_123_456_789, 1)
        );
        assert_eq!(
            time(Value::from("1.5e9"), TimeUnit::S).unwrap(),
            (1_500_000_000_000_000_000, NS_PER_S)
        );
        assert_eq!(
            time(Value::from("1700000000.1234567891"), TimeUnit::S).unwrap(),
            (1_700_000_000_123_456_789, 1),
            "digits below 1 ns are cut off"
        );
    }

    #[test]
    fn rfc3339_precision_follows_the_fraction() {
        assert_eq!(
            parse_rfc3339("2026-06-26T14:44:21.805688Z").unwrap(),
            (1_782_485_061_805_688_000, 1_000)
        );
        assert_eq!(
            parse_rfc3339("2020-10-05T16:33:49Z").unwrap(),
            (1_601_915_629_000_000_000, NS_PER_S)
        );
        assert_eq!(
            parse_rfc3339("2020-10-05T18:33:49.5+02:00").unwrap(),
            (1_601_915_629_500_000_000, 100_000_000)
        );
        assert!(parse_rfc3339("1969-12-31T23:59:59Z").is_err());
        assert_eq!(
            time(Value::from("2020-10-05T16:33:49Z"), TimeUnit::S)
                .unwrap()
                .0,
            1_601_915_629_000_000_000,
            "an RFC 3339 string is read whatever the unit says"
        );
    }

    #[test]
    fn bad_times_are_errors_not_wraps() {
        assert!(time(Value::from(-5), TimeUnit::S).is_err());
        assert!(time(Value::from(u64::MAX), TimeUnit::S).is_err());
        assert!(time(Value::from("1e500"), TimeUnit::S).is_err());
        assert!(time(Value::from("soon"), TimeUnit::S).is_err());
        assert!(time(Value::Bool(true), TimeUnit::S).is_err());
        assert!(time(serde_json::json!({"a": 1}), TimeUnit::Rfc3339).is_err());
        assert_eq!(time(Value::from("-0"), TimeUnit::S).unwrap().0, 0);
    }
}
