//! Integer text: brine carries every integer outside −48…159 as decimal ASCII.

use super::Value;

/// CPython refuses to convert integers with more digits than this to or from text
/// (`sys.int_info.default_max_str_digits`), so no CPython peer can send or read more.
pub const MAX_INT_DIGITS: usize = 4300;

/// Whether `text` is canonical decimal (`-?(0|[1-9][0-9]*)`, not `-0`; any number of
/// digits): `None` if not; otherwise its value when it fits `i64` (`Some(None)` if larger).
#[inline]
pub fn canonical_decimal(text: &[u8]) -> Option<Option<i64>> {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (&first, _) = digits.split_first()?;
    if first == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    if digits.len() > 19 {
        return digits.iter().all(u8::is_ascii_digit).then_some(None);
    }
    // One pass: validate and accumulate. 19 digits stay below 10^19 < u64::MAX.
    let mut mag = 0u64;
    for &d in digits {
        let v = d.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        mag = mag * 10 + u64::from(v);
    }
    Some(if neg {
        (mag <= i64::MIN.unsigned_abs()).then(|| 0i64.wrapping_sub_unsigned(mag))
    } else {
        i64::try_from(mag).ok()
    })
}

/// Parse canonical decimal text (see [`canonical_decimal`]; at most [`MAX_INT_DIGITS`]
/// digits) into `Int` (when it fits `i64`) or `BigInt`.
pub fn parse_canonical(text: &[u8]) -> Option<Value> {
    match canonical_decimal(text)? {
        Some(v) => Some(Value::Int(v)),
        None if text.len() - usize::from(text[0] == b'-') > MAX_INT_DIGITS => None,
        // Validated ASCII above, so this cannot fail.
        None => std::str::from_utf8(text)
            .ok()
            .map(|s| Value::BigInt(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_decimal_values() {
        assert_eq!(canonical_decimal(b"0"), Some(Some(0)));
        assert_eq!(
            canonical_decimal(b"-9223372036854775808"),
            Some(Some(i64::MIN))
        );
        assert_eq!(canonical_decimal(b"-9223372036854775809"), Some(None));
        assert_eq!(canonical_decimal(b"9223372036854775808"), Some(None));
        assert_eq!(canonical_decimal(b"99999999999999999999"), Some(None));
    }

    #[test]
    fn canonical_texts() {
        assert_eq!(parse_canonical(b"0"), Some(Value::Int(0)));
        assert_eq!(parse_canonical(b"-1"), Some(Value::Int(-1)));
        assert_eq!(
            parse_canonical(b"9223372036854775807"),
            Some(Value::Int(i64::MAX))
        );
        assert_eq!(
            parse_canonical(b"-9223372036854775808"),
            Some(Value::Int(i64::MIN))
        );
        assert_eq!(
            parse_canonical(b"9223372036854775808"),
            Some(Value::BigInt("9223372036854775808".into()))
        );
        assert_eq!(
            parse_canonical(b"-9223372036854775809"),
            Some(Value::BigInt("-9223372036854775809".into()))
        );
        assert_eq!(
            parse_canonical(b"18446744073709551616"),
            Some(Value::BigInt("18446744073709551616".into()))
        );
    }

    #[test]
    fn non_canonical_texts() {
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+5",
            b" 5",
            b"5 ",
            b"1_0",
            b"--1",
            b"1e3",
            b"\xff",
        ] {
            assert_eq!(parse_canonical(bad), None, "{bad:?}");
        }
        let max = "9".repeat(MAX_INT_DIGITS);
        assert!(parse_canonical(max.as_bytes()).is_some());
        assert!(parse_canonical(format!("-{max}").as_bytes()).is_some());
        assert!(parse_canonical(format!("9{max}").as_bytes()).is_none());
    }
}
