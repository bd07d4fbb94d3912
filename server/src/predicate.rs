//! Delta Sharing's `jsonPredicateHints`, evaluated against a file's partition values to skip
//! files that cannot match. Hints are best-effort by the protocol (the client filters rows
//! again), so anything not understood — a data column, an unknown op or type — keeps the
//! file: only a definite "no" prunes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

/// Three-valued logic: `None` is "unknown".
type Tri = Option<bool>;

/// Whether a file with these partition values may hold rows matching `predicate`.
pub fn may_match(
    predicate: &Value,
    partition_columns: &[String],
    values: &BTreeMap<String, Option<String>>,
) -> bool {
    eval(predicate, partition_columns, values) != Some(false)
}

/// An operand: a value (`None` for null) and its declared type.
struct Operand<'a> {
    value: Option<&'a str>,
    value_type: &'a str,
}

fn operand<'a>(
    node: &'a Value,
    partition_columns: &[String],
    values: &'a BTreeMap<String, Option<String>>,
) -> Option<Operand<'a>> {
    let value_type = node.get("valueType")?.as_str()?;
    match node.get("op")?.as_str()? {
        "column" => {
            let name = node.get("name")?.as_str()?;
            if !partition_columns.iter().any(|c| c == name) {
                return None;
            }
            Some(Operand {
                value: values.get(name)?.as_deref(),
                value_type,
            })
        }
        "literal" => Some(Operand {
            value: Some(node.get("value")?.as_str()?),
            value_type,
        }),
        _ => None,
    }
}

fn compare(a: &str, b: &str, value_type: &str) -> Option<Ordering> {
    match value_type {
        "int" | "long" => Some(
            a.trim()
                .parse::<i64>()
                .ok()?
                .cmp(&b.trim().parse::<i64>().ok()?),
        ),
        "float" | "double" => a
            .trim()
            .parse::<f64>()
            .ok()?
            .partial_cmp(&b.trim().parse::<f64>().ok()?),
        "bool" | "boolean" => Some(
            a.trim()
                .parse::<bool>()
                .ok()?
                .cmp(&b.trim().parse::<bool>().ok()?),
        ),
        "string" => Some(a.cmp(b)),
        "date" => Some(
            chrono::NaiveDate::parse_from_str(a.trim(), "%Y-%m-%d")
                .ok()?
                .cmp(&chrono::NaiveDate::parse_from_str(b.trim(), "%Y-%m-%d").ok()?),
        ),
        "timestamp" => Some(
            tarn_table::parse_timestamp(a)
                .ok()?
                .cmp(&tarn_table::parse_timestamp(b).ok()?),
        ),
        _ => None,
    }
}

fn eval(node: &Value, cols: &[String], values: &BTreeMap<String, Option<String>>) -> Tri {
    let op = node.get("op")?.as_str()?;
    let children = node.get("children").and_then(Value::as_array);
    match op {
        "and" => {
            let results: Vec<Tri> = children?.iter().map(|c| eval(c, cols, values)).collect();
            if results.is_empty() {
                None
            } else if results.contains(&Some(false)) {
                Some(false)
            } else if results.iter().all(|r| *r == Some(true)) {
                Some(true)
            } else {
                None
            }
        }
        "or" => {
            let results: Vec<Tri> = children?.iter().map(|c| eval(c, cols, values)).collect();
            if results.is_empty() {
                None
            } else if results.contains(&Some(true)) {
                Some(true)
            } else if results.iter().all(|r| *r == Some(false)) {
                Some(false)
            } else {
                None
            }
        }
        "not" => match children?.as_slice() {
            [child] => eval(child, cols, values).map(|b| !b),
            _ => None,
        },
        "isNull" => match children?.as_slice() {
            [child] => Some(operand(child, cols, values)?.value.is_none()),
            _ => None,
        },
        "equal" | "lessThan" | "lessThanOrEqual" | "greaterThan" | "greaterThanOrEqual" => {
            let [a, b] = children?.as_slice() else {
                return None;
            };
            let (a, b) = (operand(a, cols, values)?, operand(b, cols, values)?);
            if a.value_type != b.value_type {
                return None;
            }
            // A comparison with null is null, which never selects a row.
            let (Some(x), Some(y)) = (a.value, b.value) else {
                return Some(false);
            };
            let ord = compare(x, y, a.value_type)?;
            Some(match op {
                "equal" => ord == Ordering::Equal,
                "lessThan" => ord == Ordering::Less,
                "lessThanOrEqual" => ord != Ordering::Greater,
                "greaterThan" => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(region: Option<&str>, day: &str) -> BTreeMap<String, Option<String>> {
        [
            ("region".to_string(), region.map(str::to_string)),
            ("day".to_string(), Some(day.to_string())),
        ]
        .into()
    }

    fn col(name: &str, t: &str) -> Value {
        json!({"op": "column", "name": name, "valueType": t})
    }

    fn lit(v: &str, t: &str) -> Value {
        json!({"op": "literal", "value": v, "valueType": t})
    }

    #[test]
    fn prunes_only_on_definite_partition_mismatches() {
        let cols = vec!["region".to_string(), "day".to_string()];
        let eu = json!({"op": "equal", "children": [col("region", "string"), lit("EU", "string")]});
        assert!(may_match(&eu, &cols, &values(Some("EU"), "2026-01-01")));
        assert!(!may_match(&eu, &cols, &values(Some("US"), "2026-01-01")));
        assert!(!may_match(&eu, &cols, &values(None, "2026-01-01")));
        let recent = json!({"op": "greaterThanOrEqual", "children": [col("day", "date"), lit("2026-01-02", "date")]});
        let both = json!({"op": "and", "children": [eu, recent]});
        assert!(!may_match(&both, &cols, &values(Some("EU"), "2026-01-01")));
        assert!(may_match(&both, &cols, &values(Some("EU"), "2026-01-03")));
        let either = json!({"op": "or", "children": [both, {"op": "isNull", "children": [col("region", "string")]}]});
        assert!(may_match(&either, &cols, &values(None, "2025-01-01")));
        let not_eu = json!({"op": "not", "children": [{"op": "equal", "children": [col("region", "string"), lit("EU", "string")]}]});
        assert!(!may_match(
            &not_eu,
            &cols,
            &values(Some("EU"), "2026-01-01")
        ));
    }

    #[test]
    fn keeps_files_when_the_hint_is_not_understood() {
        let cols = vec!["region".to_string()];
        let v = values(Some("EU"), "2026-01-01");
        // A data column, an unknown op, a type mismatch, a malformed node.
        for hint in [
            json!({"op": "equal", "children": [col("amount", "int"), lit("3", "int")]}),
            json!({"op": "like", "children": [col("region", "string"), lit("E%", "string")]}),
            json!({"op": "equal", "children": [col("region", "string"), lit("3", "int")]}),
            json!({"op": "equal"}),
            json!("nonsense"),
        ] {
            assert!(may_match(&hint, &cols, &v), "{hint}");
        }
        // Numbers compare as numbers, not as text.
        let cols = vec!["n".to_string()];
        let v: BTreeMap<_, _> = [("n".to_string(), Some("10".to_string()))].into();
        let lt = json!({"op": "lessThan", "children": [col("n", "int"), lit("9", "int")]});
        assert!(!may_match(&lt, &cols, &v));
    }
}
