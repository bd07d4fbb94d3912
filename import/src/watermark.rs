//! The saved watermark, checked before it goes anywhere near the source.
//!
//! A run reads the previous run's watermark back from the table's Delta log, which anyone
//! who can write `_delta_log` can edit. So the text is never trusted: it must be one value
//! of the cursor's type, written the way a run writes it (the source's own text for the
//! value: `42`, `12.50`, `2026-01-31`, `2026-01-31 10:00:00.5+02`), and what the queries
//! use is that value re-rendered from its parsed parts. Nothing else (no quote, backslash,
//! letter or `;`) can get through. The value then travels as a bound parameter wherever
//! the protocol allows one (see `lib.rs`).

use crate::types::{parse_decimal, ColType};
use crate::{Error, Result};

/// The watermark `text` of cursor `cursor` (of type `col_type`), parsed and re-rendered;
/// an error (one line, naming the cursor) when it is not one value of that type.
pub(crate) fn canonical(text: &str, cursor: &str, col_type: &ColType) -> Result<String> {
    let parsed = match col_type {
        ColType::Int8 | ColType::Int16 | ColType::Int32 | ColType::Int64 => integer(text),
        ColType::Decimal(_, scale) => decimal(text, *scale),
        ColType::Date | ColType::Timestamp | ColType::TimestampNtz => temporal(text),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Error::invalid(format!(
            "the table's saved watermark for cursor `{cursor}` is not a value of type {}: `{}`; the table's _delta_log was changed outside Tarn, so nothing was imported (restore the table to a version Tarn wrote, or re-import it into a new table)",
            col_type.type_text(),
            shown(text)
        ))
    })
}

/// At most 60 characters of `text`, control characters escaped, for an error line.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(60)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// An integer: `-12`, `7`.
fn integer(text: &str) -> Option<String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if !digits(unsigned) {
        return None;
    }
    text.parse::<i64>().ok().map(|v| v.to_string())
}

/// A decimal at `scale`: `-12.50`, `3`.
fn decimal(text: &str, scale: i8) -> Option<String> {
    // parse_decimal also accepts surrounding spaces and a `+`: a run never writes those.
    if text.trim() != text || text.starts_with('+') {
        return None;
    }
    let v = parse_decimal(text, scale).ok()?;
    let scale = scale.max(0) as u32;
    let (sign, magnitude) = (if v < 0 { "-" } else { "" }, v.unsigned_abs());
    if scale == 0 {
        return Some(format!("{sign}{magnitude}"));
    }
    let unit = 10u128.pow(scale);
    Some(format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = scale as usize
    ))
}

/// A date or a timestamp as PostgreSQL (ISO `DateStyle`) and MySQL write them:
/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH[:MM[:SS]]][ BC]`, or PostgreSQL's `infinity` and
/// `-infinity`. Calendar and clock fields are range-checked.
fn temporal(text: &str) -> Option<String> {
    if text == "infinity" || text == "-infinity" {
        return Some(text.to_string());
    }
    let (rest, bc) = match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (date, time) = match rest.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut out = date_part(date)?;
    if let Some(time) = time {
        out.push(' ');
        out.push_str(&time_part(time)?);
    }
    if bc {
        out.push_str(" BC");
    }
    Some(out)
}

fn date_part(date: &str) -> Option<String> {
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !(4..=7).contains(&y.len()) || !digits(y) {
        return None;
    }
    if m.len() != 2 || d.len() != 2 || !digits(m) || !digits(d) {
        return None;
    }
    let (year, month, day): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days)
        .contains(&day)
        .then(|| format!("{y}-{month:02}-{day:02}"))
}

/// `HH:MM:SS[.ffffff][±HH[:MM[:SS]]]`.
fn time_part(time: &str) -> Option<String> {
    let (clock, offset) = match time.find(['+', '-']) {
        Some(i) => (&time[..i], Some(&time[i..])),
        None => (time, None),
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (clock, None),
    };
    let mut out = fields(hms, 3, &[23, 59, 59])?;
    if let Some(f) = fraction {
        if !(1..=6).contains(&f.len()) || !digits(f) {
            return None;
        }
        out.push('.');
        out.push_str(f);
    }
    if let Some(offset) = offset {
        let (sign, hms) = offset.split_at(1);
        let count = hms.split(':').count();
        out.push_str(sign);
        out.push_str(&fields(hms, count, &[15, 59, 59])?);
    }
    Some(out)
}

/// `count` (1 to 3) two-digit fields separated by `:`, each at most its `max`.
fn fields(text: &str, count: usize, max: &[u32; 3]) -> Option<String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != count || count > 3 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for (part, max) in parts.iter().zip(max) {
        if part.len() != 2 || !digits(part) || part.parse::<u32>().ok()? > *max {
            return None;
        }
        out.push(*part);
    }
    Some(out.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str, t: &ColType) -> String {
        canonical(text, "c", t).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn what_runs_write_is_accepted_as_written() {
        for (text, t) in [
            ("42", ColType::Int64),
            ("-32768", ColType::Int16),
            ("12.50", ColType::Decimal(12, 2)),
            ("-0.0000000001", ColType::Decimal(38, 10)),
            ("18446744073709551615", ColType::Decimal(20, 0)),
            ("2026-01-31", ColType::Date),
            ("0001-01-01 BC", ColType::Date),
            ("5874897-12-31", ColType::Date),
            ("2024-02-29", ColType::Date),
            ("2026-01-03 00:00:00+00", ColType::Timestamp),
            ("2026-01-31 10:00:00.5+05:30", ColType::Timestamp),
            ("1900-01-01 00:00:00-00:17:30", ColType::Timestamp),
            ("9999-12-31 23:59:59.999999", ColType::TimestampNtz),
            ("2026-01-31 10:00:00", ColType::Timestamp),
            ("infinity", ColType::Timestamp),
            ("-infinity", ColType::Date),
        ] {
            assert_eq!(ok(text, &t), text, "{text}");
        }
        // Re-rendered: a decimal at its column's scale.
        assert_eq!(ok("12.5", &ColType::Decimal(12, 2)), "12.50");
        assert_eq!(ok("7", &ColType::Decimal(12, 2)), "7.00");
        assert_eq!(ok("-0.5", &ColType::Decimal(3, 1)), "-0.5");
        assert_eq!(
            ok("2026-01-31T10:00:00", &ColType::Timestamp),
            "2026-01-31 10:00:00"
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_cursor() {
        for (text, t) in [
            ("1'; DROP TABLE orders; --", ColType::Int64),
            (
                "2026-01-03 00:00:00+00'; DROP TABLE orders; --",
                ColType::Timestamp,
            ),
            ("\\'; DROP TABLE orders; -- ", ColType::Timestamp),
            ("2026-01-03\\' OR 1=1 -- ", ColType::Date),
            ("1 OR 1=1", ColType::Int64),
            ("0x10", ColType::Int64),
            ("99999999999999999999", ColType::Int64),
            ("", ColType::Int64),
            ("+5", ColType::Int64),
            (" 5", ColType::Decimal(5, 0)),
            ("1.234", ColType::Decimal(12, 2)),
            ("1e5", ColType::Decimal(12, 2)),
            ("2026-02-30", ColType::Date),
            ("2026-13-01", ColType::Date),
            ("26-01-01", ColType::Date),
            ("2026-01-31 24:00:00", ColType::Timestamp),
            ("2026-01-31 10:00:00.1234567", ColType::Timestamp),
            ("2026-01-31 10:00", ColType::Timestamp),
            ("2026-01-31 10:00:00+16", ColType::Timestamp),
            ("2026-01-31 10:00:00 PST", ColType::Timestamp),
            ("now", ColType::Timestamp),
            ("2026-01-31\0", ColType::Date),
        ] {
            let err = canonical(text, "updated_at", &t).unwrap_err();
            assert!(
                err.message().contains("cursor `updated_at`")
                    && err.message().contains("nothing was imported"),
                "{text}: {err}"
            );
            assert_eq!(err.message().lines().count(), 1, "{err}");
        }
    }
}
