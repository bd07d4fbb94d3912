//! Values in manifests: Delta partition values (strings) parsed as their Iceberg type, and
//! column bounds from Delta's statistics in Iceberg's single-value binary form (spec
//! Appendix D). Bounds are conservative: a bound that may not hold (a truncated string
//! maximum, a timestamp cut to milliseconds, a decimal beyond what an `f64` keeps exact) is
//! widened or left out, never guessed.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::schema::decimal_parts;

/// A typed value of an Iceberg primitive type.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// `boolean`.
    Boolean(bool),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `string`.
    String(String),
    /// `binary`.
    Binary(Vec<u8>),
    /// `date`: days since 1970-01-01.
    Date(i32),
    /// `timestamp` / `timestamptz`: microseconds since the epoch.
    Timestamp(i64),
    /// `decimal(p,s)`: the unscaled value.
    Decimal(i128),
}

impl Datum {
    /// The single-value binary form (little-endian numbers, UTF-8 strings, big-endian
    /// minimal two's-complement decimals).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Datum::Boolean(b) => vec![u8::from(*b)],
            Datum::Int(v) | Datum::Date(v) => v.to_le_bytes().to_vec(),
            Datum::Long(v) | Datum::Timestamp(v) => v.to_le_bytes().to_vec(),
            Datum::Float(v) => v.to_le_bytes().to_vec(),
            Datum::Double(v) => v.to_le_bytes().to_vec(),
            Datum::String(s) => s.as_bytes().to_vec(),
            Datum::Binary(b) => b.clone(),
            Datum::Decimal(v) => minimal_twos_complement(*v),
        }
    }
}

/// The fewest big-endian two's-complement bytes that hold `v`.
pub fn minimal_twos_complement(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// The bytes of a decimal of precision `p` in Avro's `fixed` form (spec: the minimum
/// number of bytes for the precision), sign-extended.
pub fn decimal_fixed(v: i128, precision: u32) -> Vec<u8> {
    let size = decimal_size(precision);
    let bytes = v.to_be_bytes();
    bytes[bytes.len() - size..].to_vec()
}

/// The minimum number of bytes that holds any decimal of `precision` digits.
pub fn decimal_size(precision: u32) -> usize {
    (1..=16usize)
        .find(|n| {
            let bits = (8 * n - 1) as f64;
            (2f64.powf(bits) - 1.0).log10().floor() >= precision as f64
        })
        .unwrap_or(16)
}

fn parse_decimal_text(text: &str, scale: u32) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > scale as usize
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
        || int.is_empty() && frac.is_empty()
    {
        return None;
    }
    let digits = format!("{int}{frac:0<width$}", width = scale as usize);
    let v: i128 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn micros_of_text(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, format) {
            return Some(n.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc().timestamp_micros())
}

fn days_of_text(text: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

/// A Delta partition value (PROTOCOL.md "Partition Value Serialization") as a value of the
/// Iceberg type `iceberg_type`; `None` for null (`None` or empty) or a value that does
/// not parse. Timestamps without a zone are UTC, as delta-rs and Tarn write them.
pub fn partition_value(text: Option<&str>, iceberg_type: &str) -> Option<Datum> {
    let t = text.filter(|t| !t.is_empty())?;
    Some(match iceberg_type {
        "boolean" => Datum::Boolean(match t {
            "true" => true,
            "false" => false,
            _ => return None,
        }),
        "int" => Datum::Int(t.parse().ok()?),
        "long" => Datum::Long(t.parse().ok()?),
        "float" => Datum::Float(t.parse().ok()?),
        "double" => Datum::Double(t.parse().ok()?),
        "string" => Datum::String(t.to_string()),
        "binary" => Datum::Binary(t.as_bytes().to_vec()),
        "date" => Datum::Date(days_of_text(t)?),
        "timestamp" | "timestamptz" => Datum::Timestamp(micros_of_text(t)?),
        d => {
            let (_, s) = decimal_parts(d)?;
            Datum::Decimal(parse_decimal_text(t, s)?)
        }
    })
}

/// Which end of a range a statistic gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `minValues`.
    Lower,
    /// `maxValues`.
    Upper,
}

/// A bound for a column of `iceberg_type` from a Delta statistic, or `None` when the
/// statistic cannot give a bound that surely holds.
pub fn bound(stat: &Value, iceberg_type: &str, end: End) -> Option<Datum> {
    Some(match iceberg_type {
        "boolean" => Datum::Boolean(stat.as_bool()?),
        "int" => Datum::Int(i32::try_from(stat.as_i64()?).ok()?),
        "long" => Datum::Long(stat.as_i64()?),
        "float" | "double" => {
            let v = stat.as_f64()?;
            if !v.is_finite() {
                return None;
            }
            // -0.0 and 0.0 are equal in the stats but ordered apart in Iceberg.
            let v = match end {
                End::Lower if v == 0.0 => -0.0,
                End::Upper if v == 0.0 => 0.0,
                _ => v,
            };
            if iceberg_type == "float" {
                let f = v as f32;
                // The f32 nearest a JSON text may lie on the wrong side of the value.
                if f64::from(f) != v && v.abs() > 0.0 {
                    let wider = match end {
                        End::Lower => f.next_down(),
                        End::Upper => f.next_up(),
                    };
                    Datum::Float(wider)
                } else {
                    Datum::Float(f)
                }
            } else {
                Datum::Double(v)
            }
        }
        "string" => {
            let s = stat.as_str()?;
            // Delta writers cut long strings to a prefix: a prefix is a lower bound but not
            // an upper one.
            if end == End::Upper && s.chars().count() >= 32 {
                return None;
            }
            Datum::String(s.to_string())
        }
        "date" => Datum::Date(days_of_text(stat.as_str()?)?),
        "timestamp" | "timestamptz" => {
            let micros = micros_of_text(stat.as_str()?)?;
            // Delta stats keep milliseconds: the largest value may be up to 999 µs later.
            match end {
                End::Lower => Datum::Timestamp(micros),
                End::Upper => Datum::Timestamp(micros.checked_add(999)?),
            }
        }
        d => {
            let (p, s) = decimal_parts(d)?;
            // JSON numbers go through f64: exact only up to 15 digits.
            if p > 15 {
                return None;
            }
            let v = stat.as_f64()?;
            let unscaled = (v * 10f64.powi(s as i32)).round();
            if !unscaled.is_finite() {
                return None;
            }
            Datum::Decimal(unscaled as i128)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_value_bytes_are_as_the_spec_says() {
        assert_eq!(Datum::Int(-1).to_bytes(), vec![0xff; 4]);
        assert_eq!(Datum::Decimal(100).to_bytes(), vec![0x64]);
        assert_eq!(Datum::Decimal(-128).to_bytes(), vec![0x80]);
        assert_eq!(Datum::Decimal(128).to_bytes(), vec![0x00, 0x80]);
        assert_eq!(
            partition_value(Some("2024-01-31"), "date")
                .unwrap()
                .to_bytes(),
            19753i32.to_le_bytes().to_vec()
        );
        assert_eq!(decimal_size(9), 4);
        assert_eq!(decimal_size(10), 5);
        assert_eq!(decimal_size(18), 8);
        assert_eq!(decimal_fixed(-1, 10), vec![0xff; 5]);
    }

    #[test]
    fn partition_values_parse_as_delta_writes_them() {
        assert_eq!(partition_value(Some(""), "string"), None);
        assert_eq!(partition_value(None, "long"), None);
        assert_eq!(
            partition_value(Some("2024-01-01 10:00:00"), "timestamptz"),
            Some(Datum::Timestamp(1_704_103_200_000_000))
        );
        assert_eq!(
            partition_value(Some("2024-01-01T10:00:00.000001Z"), "timestamptz"),
            Some(Datum::Timestamp(1_704_103_200_000_001))
        );
        assert_eq!(
            partition_value(Some("-1.5"), "decimal(10,2)"),
            Some(Datum::Decimal(-150))
        );
        assert_eq!(
            partition_value(Some("true"), "boolean"),
            Some(Datum::Boolean(true))
        );
    }

    #[test]
    fn bounds_are_widened_or_left_out_when_they_may_not_hold() {
        let ts = json!("2024-01-01T10:00:00.123Z");
        assert_eq!(
            bound(&ts, "timestamptz", End::Upper),
            Some(Datum::Timestamp(1_704_103_200_123_999))
        );
        assert_eq!(
            bound(&ts, "timestamptz", End::Lower),
            Some(Datum::Timestamp(1_704_103_200_123_000))
        );
        let long = json!("a".repeat(32));
        assert!(bound(&long, "string", End::Upper).is_none());
        assert!(bound(&long, "string", End::Lower).is_some());
        assert_eq!(
            bound(&json!(0.0), "double", End::Lower).unwrap().to_bytes(),
            (-0.0f64).to_le_bytes().to_vec()
        );
        assert_eq!(
            bound(&json!(1.25), "decimal(10,2)", End::Lower),
            Some(Datum::Decimal(125))
        );
        assert!(bound(&json!(1.25), "decimal(20,2)", End::Lower).is_none());
        let f = bound(&json!(0.1), "float", End::Upper).unwrap();
        let Datum::Float(f) = f else { panic!() };
        assert!(f64::from(f) >= 0.1);
    }
}
