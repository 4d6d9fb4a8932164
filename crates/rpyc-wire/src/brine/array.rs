//! The checks on a by-value array (docs/by-value.md#arrays): `ARRAY` wraps a `TUP4` of
//! `(dtype, shape, strides, data)`. Every sink that builds an array runs [`check`] first, so
//! no peer can make the receiver read outside `data`, allocate from a claimed shape, or
//! build an array of Python objects.

use crate::error::WireError;

/// Most dimensions an array may have (numpy's own limit is 32 before 2.0).
pub const MAX_DIMS: usize = 32;

/// Largest item size accepted (a `S`/`U` dtype of a megabyte per item is already odd).
pub const MAX_ITEMSIZE: usize = 1 << 20;

/// Why an array header is refused (the receiver reports it; the connection goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayError(pub String);

impl std::fmt::Display for ArrayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(why: impl Into<String>) -> ArrayError {
    ArrayError(why.into())
}

/// A plain dtype: numpy's type string (`"<f8"`, `"|b1"`, `">i4"`, `"<U3"`...): an optional
/// byte order, a kind among `b i u f c S U`, and the item size in bytes (for `U`, in
/// characters of 4 bytes). Returns the item size in bytes. Object dtypes
/// (`O`), structured or datetime dtypes are refused: they are not plain data.
pub fn item_size(dtype: &str) -> Result<usize, ArrayError> {
    let body = dtype.strip_prefix(['<', '>', '|', '=']).unwrap_or(dtype);
    let mut chars = body.chars();
    let kind = chars.next().ok_or_else(|| bad("empty dtype"))?;
    let digits = chars.as_str();
    if kind == 'O' {
        return Err(bad(format!(
            "dtype {dtype:?} holds Python objects: arrays of objects never travel by value \
             (send the objects themselves, or convert the array to a plain dtype)"
        )));
    }
    if !"biufcSU".contains(kind) {
        return Err(bad(format!(
            "dtype {dtype:?} is not a plain dtype (kinds b, i, u, f, c, S, U travel by value)"
        )));
    }
    let size: usize = match digits.parse() {
        Ok(n) if !digits.starts_with('0') && !digits.starts_with('+') => n,
        _ => return Err(bad(format!("dtype {dtype:?} has no valid item size"))),
    };
    let fits = match kind {
        'b' => size == 1,
        'i' | 'u' => matches!(size, 1 | 2 | 4 | 8),
        'f' => matches!(size, 2 | 4 | 8 | 16),
        'c' => matches!(size, 8 | 16 | 32),
        'U' => size <= MAX_ITEMSIZE / 4,
        _ => size <= MAX_ITEMSIZE,
    };
    if !fits {
        return Err(bad(format!("dtype {dtype:?} has an impossible item size")));
    }
    Ok(if kind == 'U' { size * 4 } else { size })
}

/// Check an array header against the `nbytes` it carries: the dtype is plain, `shape` and
/// `strides` have the same number (at most [`MAX_DIMS`]) of non-negative entries, and every
/// item the strides address lies inside the data. Returns the number of bytes the items
/// span (what the receiver copies).
pub fn check(
    dtype: &str,
    shape: &[i64],
    strides: &[i64],
    nbytes: usize,
) -> Result<usize, ArrayError> {
    let itemsize = item_size(dtype)?;
    if shape.len() > MAX_DIMS {
        return Err(bad(format!(
            "array of {} dimensions (at most {MAX_DIMS})",
            shape.len()
        )));
    }
    if strides.len() != shape.len() {
        return Err(bad(format!(
            "array has {} strides for {} dimensions",
            strides.len(),
            shape.len()
        )));
    }
    let mut count: u128 = 1;
    let mut last: u128 = 0; // offset of the last item addressed
    for (&n, &s) in shape.iter().zip(strides) {
        if n < 0 || s < 0 {
            return Err(bad(format!(
                "array shape {shape:?} / strides {strides:?}: negative entries are refused"
            )));
        }
        count = count.saturating_mul(n as u128);
        if n > 0 {
            last = last.saturating_add((n as u128 - 1).saturating_mul(s as u128));
        }
    }
    if count == 0 {
        return Ok(0);
    }
    let span = last.saturating_add(itemsize as u128);
    if span > nbytes as u128 {
        return Err(bad(format!(
            "array of shape {shape:?}, strides {strides:?} and dtype {dtype:?} addresses {span} \
             bytes but carries {nbytes}: truncated data, or a shape or strides pointing outside it"
        )));
    }
    // (span <= nbytes, a usize.)
    Ok(span as usize)
}

/// What [`super::SkipByValue`] keeps of an item: enough to check an array header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// `None`: as an array's shape, a numpy scalar (no dimensions; `None` rather than `()`
    /// so that the receiver tells it from a 0-d array, docs/by-value.md#wire-format).
    None,
    Int(i64),
    Str(String),
    Bytes(usize),
    /// A tuple: its members that are integers (`None` for any other member).
    Ints(Vec<Option<i64>>),
    Other,
}

/// Check the four members of an `ARRAY` as [`super::SkipByValue`] kept them.
pub(crate) fn check_parts(parts: &[Scalar], offset: usize) -> Result<(), WireError> {
    let fail = |why: String| WireError::BadMessage(format!("ARRAY at offset {offset}: {why}"));
    let ints = |s: &Scalar| -> Option<Vec<i64>> {
        match s {
            Scalar::Ints(v) => v.iter().copied().collect(),
            _ => None,
        }
    };
    match parts {
        [Scalar::Str(dtype), Scalar::None, strides, Scalar::Bytes(n)] => {
            // (a numpy scalar: no dimensions)
            let Some(strides) = ints(strides) else {
                return Err(fail("strides must be a tuple of integers".into()));
            };
            check(dtype, &[], &strides, *n)
                .map(drop)
                .map_err(|e| fail(e.0))
        }
        [Scalar::Str(dtype), shape, strides, Scalar::Bytes(n)] => {
            let (Some(shape), Some(strides)) = (ints(shape), ints(strides)) else {
                return Err(fail("shape and strides must be tuples of integers".into()));
            };
            check(dtype, &shape, &strides, *n)
                .map(drop)
                .map_err(|e| fail(e.0))
        }
        _ => Err(fail("expected (dtype, shape, strides, data)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_dtypes_pass_and_objects_do_not() {
        assert_eq!(item_size("<f8"), Ok(8));
        assert_eq!(item_size("|b1"), Ok(1));
        assert_eq!(item_size(">i2"), Ok(2));
        assert_eq!(item_size("<U3"), Ok(12));
        assert!(item_size("|O").unwrap_err().0.contains("objects"));
        assert!(item_size("|O8").is_err());
        assert!(item_size("<M8[ns]").is_err());
        assert!(item_size("<f3").is_err());
        assert!(item_size("<f08").is_err());
        assert!(item_size("").is_err());
        assert!(item_size("<U0").is_err());
    }

    #[test]
    fn shapes_must_fit_the_data() {
        assert_eq!(check("<f8", &[2, 3], &[24, 8], 48), Ok(48));
        assert_eq!(check("<f8", &[], &[], 8), Ok(8));
        assert_eq!(check("<f8", &[0, 5], &[40, 8], 0), Ok(0));
        // a huge shape: no allocation, a refusal
        assert!(check("<f8", &[1 << 40, 1 << 40], &[8 << 40, 8], 64).is_err());
        assert!(check("<f8", &[i64::MAX, i64::MAX], &[i64::MAX, i64::MAX], 64).is_err());
        // strides pointing outside the buffer
        assert!(check("<f8", &[2, 3], &[1000, 8], 48).is_err());
        // truncated data
        assert!(check("<f8", &[6], &[8], 47).is_err());
        assert!(check("<f8", &[2], &[-8], 16).is_err());
        assert!(check("<f8", &[2, 3], &[24], 48).is_err());
        assert!(check("<f8", &[1; 33], &[8; 33], 8).is_err());
    }
}

#[cfg(test)]
mod reader_tests {
    //! The reader in by-value mode (with [`crate::brine::SkipByValue`]) and without it.
    use crate::brine::{read, Cursor, Skip, SkipByValue};
    use crate::error::WireError;

    fn by_value(data: &[u8]) -> Result<(), WireError> {
        let mut cur = Cursor::new(data);
        read(&mut cur, 0, 64, &mut SkipByValue)?;
        cur.finish()
    }

    fn plain(data: &[u8]) -> Result<(), WireError> {
        let mut cur = Cursor::new(data);
        read(&mut cur, 0, 64, &mut Skip)?;
        cur.finish()
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn array(shape: &str, strides: &str, data_len: u8) -> Vec<u8> {
        let mut v = hex(&format!("1f 13 08 0c 3c 66 38 {shape} {strides} 0e"));
        v.push(data_len);
        v.extend(std::iter::repeat_n(0, usize::from(data_len)));
        v
    }

    #[test]
    fn containers_nest() {
        // [1, {"a": 2}, {3}]
        let v = hex("1c 12 51 1d 11 08 0a 61 52 1e 10 53");
        assert_eq!(by_value(&v), Ok(()));
        assert!(matches!(
            plain(&v),
            Err(WireError::UnknownTag { tag: 0x1c, .. })
        ));
    }

    #[test]
    fn odd_dicts_and_wrong_shapes_are_malformed() {
        assert!(matches!(
            by_value(&hex("1d 12 51 52 53")),
            Err(WireError::BadContainer { what: "DICT", .. })
        ));
        assert!(matches!(
            by_value(&hex("1f 12 51 52 53")),
            Err(WireError::BadContainer { what: "ARRAY", .. })
        ));
        assert!(matches!(
            by_value(&hex("f1 11 51 52")),
            Err(WireError::BadContainer { .. })
        ));
        assert!(matches!(
            by_value(&hex("1c 51")),
            Err(WireError::BadContainer { .. })
        ));
    }

    #[test]
    fn a_list_longer_than_its_input_is_truncated_not_allocated() {
        assert!(matches!(
            by_value(&hex("1c 15 40 00 00 00 51")),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn nesting_counts_by_value_containers() {
        let mut v = hex(&"1c 10 ".repeat(70));
        v.push(0x51);
        assert!(matches!(
            by_value(&v),
            Err(WireError::NestingTooDeep { .. })
        ));
    }

    #[test]
    fn arrays_are_checked() {
        assert_eq!(by_value(&array("11 52 52", "11 60 58", 32)), Ok(()));
        let outside = by_value(&array("11 52 52", "11 16 04 31 30 30 30 58", 32));
        assert!(matches!(outside, Err(WireError::BadMessage(m)) if m.contains("outside")));
        let short = by_value(&array("11 52 52", "11 60 58", 31));
        assert!(matches!(short, Err(WireError::BadMessage(m)) if m.contains("truncated")));
    }

    #[test]
    fn a_none_shape_is_a_scalar_of_one_item() {
        // shape None, strides (): one float64
        assert_eq!(by_value(&array("00", "02", 8)), Ok(()));
        let short = by_value(&array("00", "02", 7));
        assert!(matches!(short, Err(WireError::BadMessage(m)) if m.contains("truncated")));
        // a scalar has no strides
        let strided = by_value(&array("00", "10 58", 8));
        assert!(matches!(strided, Err(WireError::BadMessage(m)) if m.contains("strides")));
        // and None is no stride tuple
        let bad = by_value(&array("02", "00", 8));
        assert!(matches!(bad, Err(WireError::BadMessage(m)) if m.contains("tuples")));
    }
}
