//! Property tests of the type-text parser (`parse_type`, `parse_columns`): whatever text it
//! is given it answers `Ok` or one short line of error — never a panic, never a stack
//! overflow — and every Delta type prints as text that parses back to the same type. The
//! number of cases is fixed (`PROPTEST_CASES`, 256 unless set) so CI stays fast.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tarn_table::deltalake::kernel::{ArrayType, DataType, MapType, StructField, StructType};
use tarn_table::{parse_columns, parse_type, type_text, MAX_TYPE_NESTING};

fn config() -> ProptestConfig {
    ProptestConfig {
        // No regression files in the source tree: a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn primitive() -> impl Strategy<Value = DataType> {
    prop_oneof![
        Just(DataType::STRING),
        Just(DataType::LONG),
        Just(DataType::INTEGER),
        Just(DataType::SHORT),
        Just(DataType::BYTE),
        Just(DataType::FLOAT),
        Just(DataType::DOUBLE),
        Just(DataType::BOOLEAN),
        Just(DataType::BINARY),
        Just(DataType::DATE),
        Just(DataType::TIMESTAMP),
        Just(DataType::TIMESTAMP_NTZ),
        (1u8..=38)
            .prop_flat_map(|p| (Just(p), 0..=p))
            .prop_map(|(p, s)| DataType::decimal(p, s).unwrap()),
    ]
}

/// Any type the parser can write: nested types are nullable inside, as parsed text makes
/// them; struct field names are identifiers, distinct regardless of case.
fn data_type() -> impl Strategy<Value = DataType> {
    primitive().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|t| DataType::Array(Box::new(ArrayType::new(t, true)))),
            (inner.clone(), inner.clone())
                .prop_map(|(k, v)| DataType::Map(Box::new(MapType::new(k, v, true)))),
            prop::collection::vec(("[a-z_][a-z0-9_]{0,6}", inner), 1..4).prop_map(|fields| {
                let unique: BTreeMap<String, DataType> = fields
                    .into_iter()
                    .map(|(name, t)| (name.to_ascii_lowercase(), t))
                    .collect();
                let fields = unique
                    .into_iter()
                    .map(|(name, t)| StructField::new(name, t, true));
                DataType::Struct(Box::new(StructType::try_new(fields).unwrap()))
            }),
        ]
    })
}

/// Text made of the pieces type text is made of, in any order.
fn type_like_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("array<"),
        Just("map<"),
        Just("struct<"),
        Just("decimal("),
        Just("a:"),
        Just("`b`:"),
        Just(","),
        Just(">"),
        Just("<"),
        Just(")"),
        Just("("),
        Just("int"),
        Just("string"),
        Just(" "),
        Just("38"),
        Just("not null"),
        Just("`"),
        Just("é"),
        Just("\n"),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
}

/// An error is one line, short, whatever the input's size.
fn check_error(result: Result<impl std::fmt::Debug, tarn_table::Error>) {
    if let Err(e) = result {
        let message = e.message();
        assert!(!message.contains('\n'), "{message:?}");
        assert!(message.chars().count() < 600, "{message:?}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_type_round_trips_through_its_text(t in data_type()) {
        let text = type_text(&t);
        prop_assert_eq!(parse_type(&text).unwrap(), t, "{}", text);
    }

    #[test]
    fn columns_round_trip_with_names_and_nullability(
        columns in prop::collection::btree_map("[a-z][a-z0-9_]{0,6}", (data_type(), any::<bool>()), 1..5)
    ) {
        let text = columns
            .iter()
            .map(|(name, (t, nullable))| {
                format!("{name} {}{}", type_text(t), if *nullable { "" } else { " not null" })
            })
            .collect::<Vec<_>>()
            .join(", ");
        let fields = parse_columns(&text).unwrap();
        prop_assert_eq!(fields.len(), columns.len());
        for (field, (name, (t, nullable))) in fields.iter().zip(&columns) {
            prop_assert_eq!(field.name(), name);
            prop_assert_eq!(field.data_type(), t);
            prop_assert_eq!(field.is_nullable(), *nullable);
        }
    }

    #[test]
    fn any_text_is_a_type_or_one_line_of_error(text in any::<String>()) {
        check_error(parse_type(&text));
        check_error(parse_columns(&text));
    }

    #[test]
    fn type_like_text_is_a_type_or_one_line_of_error(text in type_like_text()) {
        check_error(parse_type(&text));
        check_error(parse_columns(&format!("c {text}")));
    }

    #[test]
    fn nesting_is_accepted_up_to_the_limit(levels in 0usize..200, kind in 0..3) {
        let (open, close) = match kind {
            0 => ("array<", ">"),
            1 => ("map<string,", ">"),
            _ => ("struct<f:", ">"),
        };
        let text = format!("{}int{}", open.repeat(levels), close.repeat(levels));
        let parsed = parse_type(&text);
        prop_assert_eq!(parsed.is_ok(), levels <= MAX_TYPE_NESTING, "{} levels", levels);
        check_error(parsed);
    }
}

#[test]
fn fifty_thousand_levels_are_an_error_not_a_crash() {
    // This overflowed the stack (and killed `tarn serve`) before nesting was bounded.
    let text = format!("{}int{}", "array<".repeat(50_000), ">".repeat(50_000));
    let err = parse_type(&text).unwrap_err();
    assert!(
        err.message().contains("nests deeper than 64"),
        "{}",
        err.message()
    );
    assert!(err.message().len() < 300);
    let err = parse_columns(&format!("a {text}, b int")).unwrap_err();
    assert!(
        err.message().starts_with("column `a`: type `array<"),
        "{}",
        err.message()
    );
}
