//! Column lists as text: parsing `id bigint not null, amount decimal(12,2)` into a Delta
//! schema, and printing Delta types as the lowercase Spark type text engines expect.

use deltalake::kernel::{ArrayType, DataType, MapType, PrimitiveType, StructField, StructType};

use crate::error::{Error, Result};

/// How deeply type text may nest (`array<array<…>>`, `struct<a:map<…>>`): the levels of
/// `<…>`. Deeper text is refused with an error instead of being parsed, so no schema — from
/// a command line or an HTTP request — can exhaust the parser's stack. Real schemas nest a
/// few levels; Spark's own parser gives up long before this.
pub const MAX_TYPE_NESTING: usize = 64;

/// How much of a bad input an error message quotes.
const QUOTE_CHARS: usize = 60;

/// `text` for an error message: at most [`QUOTE_CHARS`] characters, on one line.
fn quoted(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(QUOTE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Parses a comma-separated column list: `name type [not null] [comment '...']`.
///
/// ```
/// let fields = tarn_table::parse_columns("id bigint not null, amount decimal(12,2)").unwrap();
/// assert_eq!(fields.len(), 2);
/// assert!(!fields[0].is_nullable());
/// ```
pub fn parse_columns(text: &str) -> Result<Vec<StructField>> {
    if text.trim().is_empty() {
        return Err(Error::invalid(
            "the schema is empty: give columns like \"id bigint not null, name string\"",
        ));
    }
    let mut fields: Vec<StructField> = Vec::new();
    for part in split_top_level(text, ',')? {
        let part = part.trim();
        if part.is_empty() {
            return Err(Error::invalid(format!(
                "empty column definition in schema `{}`",
                quoted(text)
            )));
        }
        let field = parse_column(part)?;
        if fields
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(field.name()))
        {
            return Err(Error::invalid(format!(
                "column `{}` is defined twice",
                quoted(field.name())
            )));
        }
        fields.push(field);
    }
    Ok(fields)
}

fn parse_column(part: &str) -> Result<StructField> {
    let (name, rest) = take_name(part)?;
    let rest = rest.trim();
    if rest.is_empty() {
        let name = quoted(&name);
        return Err(Error::invalid(format!(
            "column `{name}` has no type (write `{name} string`, `{name} bigint`, ...)"
        )));
    }
    // The type runs until a top-level space that starts `not null` / `null`.
    let lower = rest.to_ascii_lowercase();
    let (type_text, nullable) = if let Some(t) = lower.strip_suffix("not null") {
        (&rest[..t.len()], false)
    } else if let Some(t) = lower.strip_suffix(" null") {
        (&rest[..t.len()], true)
    } else {
        (rest, true)
    };
    let data_type = parse_type(type_text.trim())
        .map_err(|e| Error::invalid(format!("column `{}`: {}", quoted(&name), e.message())))?;
    Ok(StructField::new(name, data_type, nullable))
}

fn take_name(part: &str) -> Result<(String, &str)> {
    let part = part.trim_start();
    if let Some(rest) = part.strip_prefix('`') {
        let end = rest
            .find('`')
            .ok_or_else(|| Error::invalid(format!("unclosed backtick in `{}`", quoted(part))))?;
        return Ok((rest[..end].to_string(), &rest[end + 1..]));
    }
    let end = part.find(char::is_whitespace).unwrap_or(part.len());
    let name = &part[..end];
    if !name.chars().all(|c| c.is_alphanumeric() || c == '_') || name.is_empty() {
        return Err(Error::invalid(format!(
            "invalid column name `{}` (use letters, digits and _, or quote it in backticks)",
            quoted(name)
        )));
    }
    Ok((name.to_string(), &part[end..]))
}

/// Parses one Spark/Delta type: `bigint`, `decimal(12,2)`, `array<string>`,
/// `map<string,int>`, `struct<a:int,b:string>`... Text nested deeper than
/// [`MAX_TYPE_NESTING`] levels is an error.
///
/// ```
/// assert!(tarn_table::parse_type("array<map<string,decimal(12,2)>>").is_ok());
/// let deep = format!("{}int{}", "array<".repeat(100), ">".repeat(100));
/// assert!(tarn_table::parse_type(&deep).unwrap_err().message().contains("nests deeper than 64"));
/// ```
pub fn parse_type(text: &str) -> Result<DataType> {
    parse_nested_type(text, 0)
}

/// [`parse_type`] for text found `depth` levels of `<…>` down.
fn parse_nested_type(text: &str, depth: usize) -> Result<DataType> {
    if depth > MAX_TYPE_NESTING {
        return Err(Error::invalid(format!(
            "type `{}` nests deeper than {MAX_TYPE_NESTING} levels of `<…>`",
            quoted(text.trim())
        )));
    }
    let parse_type = |inner: &str| parse_nested_type(inner, depth + 1);
    let t = text.trim().to_ascii_lowercase();
    let shown = quoted(text.trim());
    let primitive = match t.as_str() {
        "string" | "varchar" | "text" => Some(DataType::STRING),
        "bigint" | "long" | "int64" => Some(DataType::LONG),
        "int" | "integer" | "int32" => Some(DataType::INTEGER),
        "smallint" | "short" | "int16" => Some(DataType::SHORT),
        "tinyint" | "byte" | "int8" => Some(DataType::BYTE),
        "float" | "real" | "float32" => Some(DataType::FLOAT),
        "double" | "float64" => Some(DataType::DOUBLE),
        "boolean" | "bool" => Some(DataType::BOOLEAN),
        "binary" | "bytes" => Some(DataType::BINARY),
        "date" => Some(DataType::DATE),
        "timestamp" | "timestamptz" => Some(DataType::TIMESTAMP),
        "timestamp_ntz" => Some(DataType::TIMESTAMP_NTZ),
        _ => None,
    };
    if let Some(p) = primitive {
        return Ok(p);
    }
    if let Some(args) =
        strip_wrapped(&t, "decimal", '(', ')').or_else(|| strip_wrapped(&t, "numeric", '(', ')'))
    {
        let (p, s) = args
            .split_once(',')
            .ok_or_else(|| Error::invalid(format!("`{shown}`: write decimal(precision,scale)")))?;
        let p: u8 = p
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("`{shown}`: bad precision")))?;
        let s: u8 = s
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("`{shown}`: bad scale")))?;
        return DataType::decimal(p, s).map_err(|_| {
            Error::invalid(format!(
                "`{shown}`: precision must be 1..=38 and scale at most the precision"
            ))
        });
    }
    if t == "decimal" || t == "numeric" {
        return Ok(DataType::decimal(10, 0).expect("valid"));
    }
    if let Some(inner) = strip_wrapped(text.trim(), "array", '<', '>') {
        return Ok(DataType::Array(Box::new(ArrayType::new(
            parse_type(inner)?,
            true,
        ))));
    }
    if let Some(inner) = strip_wrapped(text.trim(), "map", '<', '>') {
        let parts = split_top_level(inner, ',')?;
        if parts.len() != 2 {
            return Err(Error::invalid(format!(
                "`{shown}`: write map<key_type,value_type>"
            )));
        }
        return Ok(DataType::Map(Box::new(MapType::new(
            parse_type(parts[0])?,
            parse_type(parts[1])?,
            true,
        ))));
    }
    if let Some(inner) = strip_wrapped(text.trim(), "struct", '<', '>') {
        let mut fields = Vec::new();
        for part in split_top_level(inner, ',')? {
            let (name, ty) = part
                .split_once(':')
                .ok_or_else(|| Error::invalid(format!("`{shown}`: write struct<name:type,...>")))?;
            let name = name.trim().trim_matches('`');
            if name.is_empty() {
                return Err(Error::invalid(format!(
                    "`{shown}`: a struct field has no name"
                )));
            }
            fields.push(StructField::new(name, parse_type(ty)?, true));
        }
        let st = StructType::try_new(fields)
            .map_err(|e| Error::invalid(format!("`{shown}`: {}", quoted(&e.to_string()))))?;
        return Ok(DataType::Struct(Box::new(st)));
    }
    Err(Error::invalid(format!(
        "unknown type `{shown}` (known: boolean, tinyint, smallint, int, bigint, float, double, decimal(p,s), string, binary, date, timestamp, timestamp_ntz, array<T>, map<K,V>, struct<name:T,...>)"
    )))
}

/// Lowercase Spark type text for a Delta type: `bigint`, `int`, `decimal(12,2)`, `struct<a:int>`.
pub fn type_text(data_type: &DataType) -> String {
    match data_type {
        DataType::Primitive(p) => match p {
            PrimitiveType::String => "string".into(),
            PrimitiveType::Long => "bigint".into(),
            PrimitiveType::Integer => "int".into(),
            PrimitiveType::Short => "smallint".into(),
            PrimitiveType::Byte => "tinyint".into(),
            PrimitiveType::Float => "float".into(),
            PrimitiveType::Double => "double".into(),
            PrimitiveType::Boolean => "boolean".into(),
            PrimitiveType::Binary => "binary".into(),
            PrimitiveType::Date => "date".into(),
            PrimitiveType::Timestamp => "timestamp".into(),
            PrimitiveType::TimestampNtz => "timestamp_ntz".into(),
            PrimitiveType::Decimal(d) => format!("decimal({},{})", d.precision(), d.scale()),
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{other:?}").to_ascii_lowercase()),
        },
        DataType::Array(a) => format!("array<{}>", type_text(a.element_type())),
        DataType::Map(m) => format!(
            "map<{},{}>",
            type_text(m.key_type()),
            type_text(m.value_type())
        ),
        DataType::Struct(s) => format!(
            "struct<{}>",
            s.fields()
                .map(|f| format!("{}:{}", f.name(), type_text(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::Variant(_) => "variant".into(),
    }
}

/// `name(args)` -> `args` when `text` has that shape.
fn strip_wrapped<'a>(text: &'a str, name: &str, open: char, close: char) -> Option<&'a str> {
    let rest = text
        .get(..name.len())
        .filter(|head| head.eq_ignore_ascii_case(name))
        .map(|_| &text[name.len()..])?;
    let rest = rest.trim_start();
    rest.strip_prefix(open)?.strip_suffix(close)
}

/// Splits on `sep` outside of `<>` and `()`.
fn split_top_level(text: &str, sep: char) -> Result<Vec<&str>> {
    let mut depth = 0i32;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(Error::invalid(format!(
                        "unbalanced `{c}` in `{}`",
                        quoted(text)
                    )));
                }
            }
            c if c == sep && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(Error::invalid(format!(
            "unbalanced brackets in `{}`",
            quoted(text)
        )));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_schema() {
        let f = parse_columns(
            "id bigint not null, customer string, amount decimal(12,2), created_at timestamp",
        )
        .unwrap();
        let texts: Vec<_> = f
            .iter()
            .map(|f| (f.name().clone(), type_text(f.data_type()), f.is_nullable()))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("id".into(), "bigint".into(), false),
                ("customer".into(), "string".into(), true),
                ("amount".into(), "decimal(12,2)".into(), true),
                ("created_at".into(), "timestamp".into(), true),
            ]
        );
    }

    #[test]
    fn nested_types_round_trip_as_spark_text() {
        for t in [
            "array<string>",
            "map<string,int>",
            "struct<a:int,b:array<bigint>>",
            "decimal(38,10)",
        ] {
            assert_eq!(type_text(&parse_type(t).unwrap()), t);
        }
    }

    #[test]
    fn empty_unknown_and_duplicate_columns_are_errors() {
        assert!(parse_columns("  ").unwrap_err().message().contains("empty"));
        assert!(parse_columns("a strin")
            .unwrap_err()
            .message()
            .contains("unknown type `strin`"));
        assert!(parse_columns("a int, A int")
            .unwrap_err()
            .message()
            .contains("twice"));
        assert!(parse_columns("a")
            .unwrap_err()
            .message()
            .contains("no type"));
        assert!(parse_columns("a decimal(40,2)").is_err());
    }
}
