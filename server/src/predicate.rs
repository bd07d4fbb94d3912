//! Delta Sharing's `jsonPredicateHints`, evaluated against a file's partition values to skip
//! files that cannot match. Hints are best-effort by the protocol (the client filters rows
//! again), so anything not understood — a data column, an unknown op or type — keeps the
//! file: only a definite "no" prunes.
//!
//! A hint nested deeper than [`MAX_PREDICATE_DEPTH`] is the client's error and is refused
//! ([`parse_hint`]), as the reference server does: nothing a request sends may make the
//! evaluation recurse without bound.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// How deeply the ops of a `jsonPredicateHints` tree may nest, counting the `column` and
/// `literal` leaves as the protocol does (`not` of `equal` of `column` is 3 levels): 64,
/// each a JSON object inside a `children` array. The JSON text of a deeper hint nests past
/// serde_json's own limit of 128 levels.
pub const MAX_PREDICATE_DEPTH: usize = 64;

/// Three-valued logic: `None` is "unknown".
type Tri = Option<bool>;

/// Reads a `jsonPredicateHints` string. `Ok(None)`: not a JSON predicate tree, which the
/// protocol says to ignore (every file is kept). `Err`: a hint nested deeper than
/// [`MAX_PREDICATE_DEPTH`] levels, which the request should be refused for.
pub fn parse_hint(text: &str) -> Result<Option<Value>, String> {
    // Each op level is an object inside a `children` array: two levels of JSON text.
    if json_depth(text) > 2 * MAX_PREDICATE_DEPTH {
        return Err(too_deep());
    }
    let Ok(predicate) = serde_json::from_str::<Value>(text) else {
        return Ok(None);
    };
    if op_depth(&predicate) > MAX_PREDICATE_DEPTH {
        return Err(too_deep());
    }
    Ok(Some(predicate))
}

fn too_deep() -> String {
    format!(
        "jsonPredicateHints nests deeper than {MAX_PREDICATE_DEPTH} levels of ops: send a flatter predicate (an `and` or `or` takes any number of children)"
    )
}

/// The deepest nesting of `[`/`{` in JSON text, outside strings (one pass, no recursion).
fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The depth of a predicate tree: ops inside `children` (iterative, no recursion).
fn op_depth(predicate: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(predicate, 1usize)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            pending.extend(children.iter().map(|c| (c, depth + 1)));
        }
    }
    deepest
}

/// Whether a file with these partition values may hold rows matching `predicate`. Nodes
/// deeper than [`MAX_PREDICATE_DEPTH`] count as "unknown".
pub fn may_match(
    predicate: &Value,
    partition_columns: &[String],
    values: &BTreeMap<String, Option<String>>,
) -> bool {
    eval(predicate, partition_columns, values, 1) != Some(false)
}

/// [`may_match`] for many files, evaluating the predicate once per distinct set of
/// partition values (a table has far fewer partitions than files). CPU work: call it off
/// the async threads.
pub fn filter<T>(
    predicate: &Value,
    partition_columns: &[String],
    items: Vec<T>,
    values: impl Fn(&T) -> &BTreeMap<String, Option<String>>,
) -> Vec<T> {
    let mut seen: HashMap<BTreeMap<String, Option<String>>, bool> = HashMap::new();
    items
        .into_iter()
        .filter(|item| {
            let v = values(item);
            if let Some(known) = seen.get(v) {
                return *known;
            }
            let keep = may_match(predicate, partition_columns, v);
            seen.insert(v.clone(), keep);
            keep
        })
        .collect()
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

fn eval(
    node: &Value,
    cols: &[String],
    values: &BTreeMap<String, Option<String>>,
    depth: usize,
) -> Tri {
    if depth > MAX_PREDICATE_DEPTH {
        return None;
    }
    let eval_child = |child: &Value| eval(child, cols, values, depth + 1);
    let op = node.get("op")?.as_str()?;
    let children = node.get("children").and_then(Value::as_array);
    match op {
        "and" => {
            let results: Vec<Tri> = children?.iter().map(eval_child).collect();
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
            let results: Vec<Tri> = children?.iter().map(eval_child).collect();
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
            [child] => eval_child(child).map(|b| !b),
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

/// Property tests: any hint text is read without a panic; evaluation follows three-valued
/// logic; the many-files [`filter`] agrees with [`may_match`] file by file. The number of
/// cases is fixed (`PROPTEST_CASES`, 256 unless set) so CI stays fast.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    const COLUMNS: [(&str, &str); 3] = [("region", "string"), ("day", "date"), ("n", "int")];

    fn partition_columns() -> Vec<String> {
        COLUMNS.iter().map(|(c, _)| c.to_string()).collect()
    }

    fn leaf() -> impl Strategy<Value = Value> {
        let column = (0..COLUMNS.len() + 1).prop_map(|i| match COLUMNS.get(i) {
            Some((name, t)) => json!({"op": "column", "name": name, "valueType": t}),
            // A data column: never known.
            None => json!({"op": "column", "name": "amount", "valueType": "int"}),
        });
        let literal = prop_oneof![
            "(EU|US|APAC)"
                .prop_map(|v| json!({"op": "literal", "value": v, "valueType": "string"})),
            "2026-01-0[1-4]"
                .prop_map(|v| json!({"op": "literal", "value": v, "valueType": "date"})),
            (-3i64..4)
                .prop_map(|v| json!({"op": "literal", "value": v.to_string(), "valueType": "int"})),
        ];
        let op = prop_oneof![
            Just("equal"),
            Just("lessThan"),
            Just("lessThanOrEqual"),
            Just("greaterThan"),
            Just("greaterThanOrEqual"),
        ];
        prop_oneof![
            (op, column.clone(), literal)
                .prop_map(|(op, c, l)| json!({"op": op, "children": [c, l]})),
            column.prop_map(|c| json!({"op": "isNull", "children": [c]})),
        ]
    }

    fn predicate() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4)
                    .prop_map(|c| json!({"op": "and", "children": c})),
                prop::collection::vec(inner.clone(), 1..4)
                    .prop_map(|c| json!({"op": "or", "children": c})),
                inner.prop_map(|c| json!({"op": "not", "children": [c]})),
            ]
        })
    }

    fn values() -> impl Strategy<Value = BTreeMap<String, Option<String>>> {
        (
            prop::option::of("(EU|US|APAC)"),
            prop::option::of("2026-01-0[1-4]"),
            prop::option::of((-3i64..4).prop_map(|n| n.to_string())),
        )
            .prop_map(|(region, day, n)| {
                [
                    ("region".to_string(), region),
                    ("day".to_string(), day),
                    ("n".to_string(), n),
                ]
                .into()
            })
    }

    fn tri(p: &Value, v: &BTreeMap<String, Option<String>>) -> Tri {
        eval(p, &partition_columns(), v, 1)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_is_read_without_a_panic(text in any::<String>()) {
            let _ = parse_hint(&text);
        }

        #[test]
        fn json_like_text_is_read_without_a_panic(
            pieces in prop::collection::vec(
                prop_oneof![
                    Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"),
                    Just("\"op\""), Just("\"children\""), Just("\"not\""), Just("\"and\""),
                    Just("\"a\\\"[{\""), Just("\\"), Just("1"),
                ],
                0..300,
            )
        ) {
            let text = pieces.concat();
            if let Ok(Some(p)) = parse_hint(&text) {
                let _ = may_match(&p, &partition_columns(), &BTreeMap::new());
            }
        }

        #[test]
        fn a_hint_round_trips_through_its_text(p in predicate(), v in values()) {
            let parsed = parse_hint(&p.to_string()).unwrap().unwrap();
            prop_assert_eq!(&parsed, &p);
            prop_assert_eq!(tri(&parsed, &v), tri(&p, &v));
        }

        #[test]
        fn evaluation_is_three_valued_logic(
            p in predicate(), q in predicate(), v in values()
        ) {
            let (a, b) = (tri(&p, &v), tri(&q, &v));
            let not = json!({"op": "not", "children": [p.clone()]});
            prop_assert_eq!(tri(&not, &v), a.map(|x| !x));
            let and = json!({"op": "and", "children": [p.clone(), q.clone()]});
            let expected_and = match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            prop_assert_eq!(tri(&and, &v), expected_and);
            let or = json!({"op": "or", "children": [p, q]});
            let expected_or = match (a, b) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            prop_assert_eq!(tri(&or, &v), expected_or);
        }

        #[test]
        fn filtering_many_files_agrees_with_each_file(
            p in predicate(), files in prop::collection::vec(values(), 0..40)
        ) {
            let cols = partition_columns();
            let expected: Vec<_> = files
                .iter()
                .filter(|v| may_match(&p, &cols, v))
                .cloned()
                .collect();
            prop_assert_eq!(filter(&p, &cols, files, |v| v), expected);
        }

        #[test]
        fn nesting_is_accepted_up_to_the_limit(levels in 0usize..150) {
            let mut hint = json!({"op": "isNull", "children": [
                {"op": "column", "name": "region", "valueType": "string"}]});
            for _ in 1..levels.max(1) {
                hint = json!({"op": "not", "children": [hint]});
            }
            let text = hint.to_string();
            // The ops: the nots, the isNull and its column.
            let depth = levels.max(1) + 1;
            match parse_hint(&text) {
                Ok(Some(_)) => prop_assert!(depth <= MAX_PREDICATE_DEPTH, "{} levels", depth),
                Err(e) => {
                    prop_assert!(depth > MAX_PREDICATE_DEPTH, "{} levels", depth);
                    prop_assert!(e.contains("nests deeper than 64"));
                }
                Ok(None) => prop_assert!(false, "a valid hint was not read"),
            }
        }
    }

    #[test]
    fn fifty_thousand_levels_are_an_error_not_a_crash() {
        let text = format!(
            "{}{}",
            "{\"op\":\"not\",\"children\":[".repeat(50_000),
            "]}".repeat(50_000)
        );
        assert!(parse_hint(&text).is_err());
        // Past serde_json's limit the text is refused before it is parsed; a tree built in
        // memory deeper than the limit is "unknown" (kept), not a deep recursion.
        let mut deep = json!({"op": "isNull", "children": [
            {"op": "column", "name": "region", "valueType": "string"}]});
        for _ in 0..1000 {
            deep = json!({"op": "not", "children": [deep]});
        }
        assert!(may_match(&deep, &partition_columns(), &BTreeMap::new()));
    }
}
