//! Delta schemas as Iceberg v2 schemas: the type mapping (as Delta's UniForm maps types),
//! field ids that stay the same across versions, and the `schema.name-mapping.default`
//! that lets readers find Parquet columns that carry no field ids.
//!
//! Delta tables without column mapping have no ids, so ids are assigned by path: a field
//! keeps the id it had in the previous version's schema when its path (matched exactly,
//! then case-insensitively) still holds the same type or a legal Iceberg promotion
//! (int→long, float→double, a wider decimal of the same scale); any other field gets
//! `last-column-id + 1, …`, a struct's own fields before their children.
//!
//! Tables with column mapping (`delta.columnMapping.mode` = `name` or `id`) carry their
//! ids: every struct field (nested ones too) takes its `delta.columnMapping.id`, and the
//! files, the statistics and the partition values use its
//! `delta.columnMapping.physicalName`, which the name mapping therefore lists. A list's
//! element and a map's key and value take the ids Delta records for them in
//! `delta.columnMapping.nested.ids` (written with IcebergCompatV2); without those, they get
//! ids above [`GENERATED_IDS`], kept across versions by their field's id, so they can never
//! collide with an id Delta hands out later.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tarn_table::{Error, ErrorKind, Result};

/// An Iceberg type, serialized as the spec's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Type {
    /// `long`, `string`, `decimal(10,2)`, ...
    Primitive(String),
    /// A nested struct.
    Struct(StructType),
    /// A list.
    List(ListType),
    /// A map.
    Map(MapType),
}

/// `{"type":"struct","fields":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructType {
    /// Always `struct`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The fields, in Delta order.
    pub fields: Vec<Field>,
}

/// `{"type":"list","element-id":…,"element":…,"element-required":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListType {
    /// Always `list`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The element's field id.
    pub element_id: i32,
    /// The element type.
    pub element: Box<Type>,
    /// Whether elements are never null.
    pub element_required: bool,
}

/// `{"type":"map","key-id":…,"key":…,"value-id":…,"value":…,"value-required":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MapType {
    /// Always `map`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The key's field id.
    pub key_id: i32,
    /// The key type.
    pub key: Box<Type>,
    /// The value's field id.
    pub value_id: i32,
    /// The value type.
    pub value: Box<Type>,
    /// Whether values are never null.
    pub value_required: bool,
}

/// A struct field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The field id.
    pub id: i32,
    /// The column name.
    pub name: String,
    /// `true` when the Delta column is not nullable.
    pub required: bool,
    /// Its type.
    #[serde(rename = "type")]
    pub field_type: Type,
    /// The column comment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// The name data files, statistics and partition values use for the column when it
    /// differs from `name` (`delta.columnMapping.physicalName`); not part of Iceberg's JSON.
    #[serde(skip)]
    pub physical: Option<String>,
}

impl Field {
    /// The name the column has in data files, statistics and partition values.
    pub fn physical_name(&self) -> &str {
        self.physical.as_deref().unwrap_or(&self.name)
    }
}

/// A table schema: `{"type":"struct","schema-id":…,"fields":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Always `struct`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id among the table's schemas.
    #[serde(rename = "schema-id")]
    pub schema_id: i32,
    /// The top-level fields.
    pub fields: Vec<Field>,
}

impl Schema {
    /// The top-level field named `name` (exactly, then case-insensitively).
    pub fn field(&self, name: &str) -> Option<&Field> {
        find(&self.fields, name)
    }

    /// The largest field id the schema uses (0 when it has none).
    pub fn max_id(&self) -> i32 {
        fn of(t: &Type) -> i32 {
            match t {
                Type::Primitive(_) => 0,
                Type::Struct(s) => s
                    .fields
                    .iter()
                    .map(|f| f.id.max(of(&f.field_type)))
                    .max()
                    .unwrap_or(0),
                Type::List(l) => l.element_id.max(of(&l.element)),
                Type::Map(m) => m.key_id.max(m.value_id).max(of(&m.key)).max(of(&m.value)),
            }
        }
        self.fields
            .iter()
            .map(|f| f.id.max(of(&f.field_type)))
            .max()
            .unwrap_or(0)
    }

    /// `schema.name-mapping.default` for this schema alone, as JSON text (see
    /// [`name_mapping`]).
    pub fn name_mapping(&self) -> String {
        name_mapping(&[self]).0
    }

    /// Whether `other` is the same schema apart from its id.
    pub fn same_fields(&self, other: &Schema) -> bool {
        self.fields == other.fields
    }
}

/// One entry of a name mapping: a field id, the names it has had, its children.
struct MappedField {
    id: i32,
    names: Vec<String>,
    fields: Vec<MappedField>,
}

/// `schema.name-mapping.default` of a table whose snapshots use `schemas`, the current
/// schema first, then older ones, newest first: every field id with the names Parquet
/// files use for it (the physical name under column mapping; `element`, `key` and `value`
/// inside lists and maps), in every schema, so that the files of older snapshots are read
/// too (a column an overwrite dropped, a name before a rename). As JSON text, and for each
/// schema whether its files read through the mapping give it its own ids: `false` when a
/// name it uses means another field in a newer schema (a column dropped and added again
/// with another type, or column mapping turned on with ids other than the ones given by
/// name), so its snapshots cannot be served beside the newer ones.
pub fn name_mapping(schemas: &[&Schema]) -> (String, Vec<bool>) {
    fn add(level: &mut Vec<MappedField>, id: i32, name: &str, t: &Type) -> bool {
        let at = match level.iter().position(|f| f.names.iter().any(|n| n == name)) {
            Some(i) if level[i].id == id => i,
            Some(_) => return false,
            None => match level.iter().position(|f| f.id == id) {
                Some(i) => {
                    level[i].names.push(name.to_string());
                    i
                }
                None => {
                    level.push(MappedField {
                        id,
                        names: vec![name.to_string()],
                        fields: vec![],
                    });
                    level.len() - 1
                }
            },
        };
        let children = &mut level[at].fields;
        match t {
            Type::Primitive(_) => true,
            Type::Struct(s) => {
                // Every field is added, even after a conflict (no short circuit).
                let mut ok = true;
                for f in &s.fields {
                    ok &= add(children, f.id, f.physical_name(), &f.field_type);
                }
                ok
            }
            Type::List(l) => add(children, l.element_id, "element", &l.element),
            Type::Map(m) => {
                let key = add(children, m.key_id, "key", &m.key);
                add(children, m.value_id, "value", &m.value) && key
            }
        }
    }
    fn json(level: &[MappedField]) -> Value {
        Value::Array(
            level
                .iter()
                .map(|f| {
                    let mut e = json!({"field-id": f.id, "names": f.names});
                    if !f.fields.is_empty() {
                        e["fields"] = json(&f.fields);
                    }
                    e
                })
                .collect(),
        )
    }
    let mut top = Vec::new();
    let readable = schemas
        .iter()
        .map(|s| {
            let mut ok = true;
            for f in &s.fields {
                ok &= add(&mut top, f.id, f.physical_name(), &f.field_type);
            }
            ok
        })
        .collect();
    (json(&top).to_string(), readable)
}

fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields
        .iter()
        .find(|f| f.name == name)
        .or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
}

fn unsupported(message: String) -> Error {
    Error::new(ErrorKind::Unsupported, message)
}

/// The Iceberg primitive type of a Delta primitive type name, or why there is none.
pub fn primitive(delta: &str, column: &str) -> Result<String> {
    Ok(match delta {
        "boolean" => "boolean".into(),
        "byte" | "short" | "integer" => "int".into(),
        "long" => "long".into(),
        "float" => "float".into(),
        "double" => "double".into(),
        "string" => "string".into(),
        "binary" => "binary".into(),
        "date" => "date".into(),
        "timestamp" => "timestamptz".into(),
        "timestamp_ntz" => "timestamp".into(),
        d if d.starts_with("decimal(") => {
            let (p, s) = decimal_parts(d).ok_or_else(|| {
                unsupported(format!(
                    "column `{column}` has type `{d}`, which is not a decimal"
                ))
            })?;
            format!("decimal({p},{s})")
        }
        other => {
            return Err(unsupported(format!(
                "column `{column}` has type `{other}`, which Iceberg v2 cannot represent"
            )))
        }
    })
}

/// The precision and scale of `decimal(p,s)` (spaces allowed).
pub fn decimal_parts(text: &str) -> Option<(u32, u32)> {
    let inner = text.trim().strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// Whether a field of type `old` may keep its id when it becomes `new` (the same type, or
/// an Iceberg promotion).
fn promotable(old: &str, new: &str) -> bool {
    if old == new {
        return true;
    }
    match (old, new) {
        ("int", "long") | ("float", "double") => true,
        _ => match (decimal_parts(old), decimal_parts(new)) {
            (Some((p1, s1)), Some((p2, s2))) => s1 == s2 && p2 >= p1,
            _ => false,
        },
    }
}

/// Whether `old` and `new` are the same kind of type, so a field may keep its id.
fn same_kind(old: &Type, new: &Value) -> bool {
    match (old, new) {
        (Type::Primitive(o), Value::String(n)) => primitive(n, "").is_ok_and(|n| promotable(o, &n)),
        (Type::Struct(_), Value::Object(o)) => o.get("type") == Some(&json!("struct")),
        (Type::List(_), Value::Object(o)) => o.get("type") == Some(&json!("array")),
        (Type::Map(_), Value::Object(o)) => o.get("type") == Some(&json!("map")),
        _ => false,
    }
}

/// Under column mapping, the ids Tarn gives list elements and map keys and values that
/// Delta gave none start after this one. Delta's own ids count up from 1 and stay far
/// below it, so the two never meet, whatever columns Delta adds later.
pub const GENERATED_IDS: i32 = 1_000_000_000;

/// How a Delta schema names and identifies its columns (`delta.columnMapping.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnMapping {
    /// No column mapping: names are the physical names, ids are Tarn's.
    None,
    /// `name` or `id` mode: ids and physical names in each field's metadata.
    Mapped,
}

impl ColumnMapping {
    /// The mapping of a table whose `delta.columnMapping.mode` property is `mode`.
    pub fn from_mode(mode: Option<&str>) -> Result<Self> {
        match mode {
            None | Some("none") => Ok(Self::None),
            Some("name") | Some("id") => Ok(Self::Mapped),
            Some(other) => Err(unsupported(format!(
                "the table's column mapping mode `{other}` is not one of none, name, id"
            ))),
        }
    }
}

/// Hands out new field ids after the table's last one.
struct Ids {
    last: i32,
    mapping: ColumnMapping,
}

impl Ids {
    fn next(&mut self) -> i32 {
        self.last += 1;
        self.last
    }
}

/// The Iceberg schema of the Delta schema JSON `delta`, with ids kept from `previous`
/// (the schema of the version before, if any) and new ones after `last_column_id`, or,
/// under column mapping, Delta's ids. Returns the fields and the new last column id.
pub fn convert(
    delta: &Value,
    previous: Option<&Schema>,
    last_column_id: i32,
    mapping: ColumnMapping,
) -> Result<(Vec<Field>, i32)> {
    let last = match mapping {
        ColumnMapping::None => last_column_id,
        ColumnMapping::Mapped => last_column_id.max(GENERATED_IDS),
    };
    let mut ids = Ids { last, mapping };
    let fields = struct_fields(delta, previous.map(|s| s.fields.as_slice()), &mut ids, "")?;
    let schema = Schema {
        kind: "struct".into(),
        schema_id: 0,
        fields,
    };
    let last = last_column_id.max(schema.max_id());
    Ok((schema.fields, last))
}

/// Where Delta records the ids of the list elements and map keys and values inside one
/// struct field (`delta.columnMapping.nested.ids`, keyed by the Parquet path from that
/// field's physical name: `col-1.element`, `col-2.key`, `col-2.value.element`).
#[derive(Clone, Copy)]
struct NestedIds<'a> {
    ids: Option<&'a serde_json::Map<String, Value>>,
    path: &'a str,
}

impl NestedIds<'_> {
    fn get(&self, child: &str) -> Option<i32> {
        self.ids?
            .get(&format!("{}.{child}", self.path))?
            .as_i64()
            .and_then(|id| i32::try_from(id).ok())
    }
}

/// The id and physical name a column-mapped field carries in its metadata.
fn mapped_field(metadata: Option<&Value>, path: &str) -> Result<(i32, String)> {
    let get = |key: &str| metadata.and_then(|m| m.get(key));
    let id = get("delta.columnMapping.id")
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            unsupported(format!(
                "column `{path}` has no delta.columnMapping.id, which column mapping requires"
            ))
        })?;
    if id <= 0 || id >= GENERATED_IDS as i64 {
        return Err(unsupported(format!(
            "column `{path}` has the column mapping id {id}, outside the ids the Iceberg catalog serves (1 to {})",
            GENERATED_IDS - 1
        )));
    }
    let physical = get("delta.columnMapping.physicalName")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            unsupported(format!(
                "column `{path}` has no delta.columnMapping.physicalName, which column mapping requires"
            ))
        })?;
    Ok((id as i32, physical.to_string()))
}

fn malformed(what: &str) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("the Delta schema is malformed: {what}"),
    )
}

fn struct_fields(
    delta: &Value,
    previous: Option<&[Field]>,
    ids: &mut Ids,
    prefix: &str,
) -> Result<Vec<Field>> {
    let list = delta
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("a struct without `fields`"))?;
    // A struct's own fields get their ids first, then their children (breadth-first).
    let mut heads = Vec::with_capacity(list.len());
    for f in list {
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("a field without a name"))?;
        let data_type = f
            .get("type")
            .ok_or_else(|| malformed("a field without a type"))?;
        let (id, physical, old) = match ids.mapping {
            ColumnMapping::None => {
                let old = previous
                    .and_then(|p| find(p, name))
                    .filter(|o| same_kind(&o.field_type, data_type));
                let id = match old {
                    Some(o) => o.id,
                    None => ids.next(),
                };
                (id, None, old)
            }
            ColumnMapping::Mapped => {
                let (id, physical) = mapped_field(f.get("metadata"), &format!("{prefix}{name}"))?;
                let old = previous
                    .and_then(|p| p.iter().find(|o| o.id == id))
                    .filter(|o| same_kind(&o.field_type, data_type));
                (id, Some(physical), old)
            }
        };
        heads.push((f, name, data_type, old, id, physical));
    }
    let mut out = Vec::with_capacity(heads.len());
    for (f, name, data_type, old, id, physical) in heads {
        let path = format!("{prefix}{name}");
        let nested = NestedIds {
            ids: f
                .get("metadata")
                .and_then(|m| m.get("delta.columnMapping.nested.ids"))
                .and_then(Value::as_object),
            path: physical.as_deref().unwrap_or(name),
        };
        let field_type = convert_type(data_type, old.map(|o| &o.field_type), ids, &path, nested)?;
        let nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
        let doc = f
            .get("metadata")
            .and_then(|m| m.get("comment"))
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(Field {
            id,
            name: name.to_string(),
            required: !nullable,
            field_type,
            doc,
            physical: physical.filter(|p| p != name),
        });
    }
    Ok(out)
}

/// The id of a list element, map key or map value (`child`, a Parquet path step): the one
/// Delta recorded, else the one it had before, else a new one.
fn child_id(ids: &mut Ids, nested: NestedIds, child: &str, old: Option<i32>) -> i32 {
    let recorded = match ids.mapping {
        ColumnMapping::Mapped => nested.get(child),
        ColumnMapping::None => None,
    };
    recorded.or(old).unwrap_or_else(|| ids.next())
}

fn convert_type(
    delta: &Value,
    old: Option<&Type>,
    ids: &mut Ids,
    path: &str,
    nested: NestedIds,
) -> Result<Type> {
    match delta {
        Value::String(name) => Ok(Type::Primitive(primitive(name, path)?)),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("struct") => {
                let previous = match old {
                    Some(Type::Struct(s)) => Some(s.fields.as_slice()),
                    _ => None,
                };
                Ok(Type::Struct(StructType {
                    kind: "struct".into(),
                    fields: struct_fields(delta, previous, ids, &format!("{path}."))?,
                }))
            }
            Some("array") => {
                let element = o
                    .get("elementType")
                    .ok_or_else(|| malformed("an array without `elementType`"))?;
                let old = match old {
                    Some(Type::List(l)) if same_kind(&l.element, element) => Some(l),
                    _ => None,
                };
                let element_id = child_id(ids, nested, "element", old.map(|l| l.element_id));
                let inner = format!("{}.element", nested.path);
                let element = convert_type(
                    element,
                    old.map(|l| l.element.as_ref()),
                    ids,
                    &format!("{path}.element"),
                    NestedIds {
                        path: &inner,
                        ..nested
                    },
                )?;
                Ok(Type::List(ListType {
                    kind: "list".into(),
                    element_id,
                    element: Box::new(element),
                    element_required: !o
                        .get("containsNull")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                }))
            }
            Some("map") => {
                let key = o
                    .get("keyType")
                    .ok_or_else(|| malformed("a map without `keyType`"))?;
                let value = o
                    .get("valueType")
                    .ok_or_else(|| malformed("a map without `valueType`"))?;
                let old = match old {
                    Some(Type::Map(m)) if same_kind(&m.key, key) && same_kind(&m.value, value) => {
                        Some(m)
                    }
                    _ => None,
                };
                let key_id = child_id(ids, nested, "key", old.map(|m| m.key_id));
                let value_id = child_id(ids, nested, "value", old.map(|m| m.value_id));
                let (key_path, value_path) = (
                    format!("{}.key", nested.path),
                    format!("{}.value", nested.path),
                );
                let key = convert_type(
                    key,
                    old.map(|m| m.key.as_ref()),
                    ids,
                    &format!("{path}.key"),
                    NestedIds {
                        path: &key_path,
                        ..nested
                    },
                )?;
                let value = convert_type(
                    value,
                    old.map(|m| m.value.as_ref()),
                    ids,
                    &format!("{path}.value"),
                    NestedIds {
                        path: &value_path,
                        ..nested
                    },
                )?;
                Ok(Type::Map(MapType {
                    kind: "map".into(),
                    key_id,
                    key: Box::new(key),
                    value_id,
                    value: Box::new(value),
                    value_required: !o
                        .get("valueContainsNull")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                }))
            }
            Some(other) => Err(unsupported(format!(
                "column `{path}` has type `{other}`, which Iceberg v2 cannot represent"
            ))),
            None => Err(malformed("a type object without `type`")),
        },
        _ => Err(malformed("a type that is neither a name nor an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(delta: Value, previous: Option<&Schema>) -> Schema {
        let last = previous.map_or(0, Schema::max_id);
        let (fields, _) = convert(&delta, previous, last, ColumnMapping::None).unwrap();
        Schema {
            kind: "struct".into(),
            schema_id: 0,
            fields,
        }
    }

    #[test]
    fn types_map_as_uniform_maps_them() {
        let s = schema(
            json!({"type":"struct","fields":[
                {"name":"b","type":"byte","nullable":false,"metadata":{}},
                {"name":"t","type":"timestamp","nullable":true,"metadata":{"comment":"when"}},
                {"name":"n","type":"timestamp_ntz","nullable":true,"metadata":{}},
                {"name":"d","type":"decimal(10, 2)","nullable":true,"metadata":{}},
                {"name":"l","type":{"type":"array","elementType":"string","containsNull":false},"nullable":true,"metadata":{}},
                {"name":"m","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[
                    {"name":"x","type":"short","nullable":true,"metadata":{}}]},"valueContainsNull":true},"nullable":true,"metadata":{}}]}),
            None,
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            json!({"type":"struct","schema-id":0,"fields":[
                {"id":1,"name":"b","required":true,"type":"int"},
                {"id":2,"name":"t","required":false,"type":"timestamptz","doc":"when"},
                {"id":3,"name":"n","required":false,"type":"timestamp"},
                {"id":4,"name":"d","required":false,"type":"decimal(10,2)"},
                {"id":5,"name":"l","required":false,"type":{"type":"list","element-id":7,"element":"string","element-required":true}},
                {"id":6,"name":"m","required":false,"type":{"type":"map","key-id":8,"key":"string","value-id":9,
                    "value":{"type":"struct","fields":[{"id":10,"name":"x","required":false,"type":"int"}]},"value-required":false}}]})
        );
        let back: Schema = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.max_id(), 10);
    }

    #[test]
    fn ids_stay_across_versions_and_new_columns_get_new_ids() {
        let v0 = schema(
            json!({"type":"struct","fields":[
                {"name":"id","type":"integer","nullable":true,"metadata":{}},
                {"name":"s","type":{"type":"struct","fields":[{"name":"a","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}),
            None,
        );
        let v1 = schema(
            json!({"type":"struct","fields":[
                {"name":"ID","type":"long","nullable":true,"metadata":{}},
                {"name":"s","type":{"type":"struct","fields":[
                    {"name":"a","type":"string","nullable":true,"metadata":{}},
                    {"name":"b","type":"date","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},
                {"name":"new","type":"string","nullable":true,"metadata":{}}]}),
            Some(&v0),
        );
        assert_eq!(v1.fields[0].id, 1, "int→long is a promotion: same id");
        let Type::Struct(s) = &v1.fields[1].field_type else {
            panic!()
        };
        // Breadth-first: the new top-level column before the new nested one.
        assert_eq!(v1.fields[2].id, 4);
        assert_eq!((s.fields[0].id, s.fields[1].id), (3, 5));
        // An incompatible change gets a new id.
        let v2 = schema(
            json!({"type":"struct","fields":[{"name":"id","type":"string","nullable":true,"metadata":{}}]}),
            Some(&v1),
        );
        assert_eq!(v2.fields[0].id, 6);
    }

    #[test]
    fn types_without_an_iceberg_equivalent_are_refused_with_the_column() {
        let err = convert(
            &json!({"type":"struct","fields":[{"name":"v","type":"variant","nullable":true,"metadata":{}}]}),
            None,
            0,
            ColumnMapping::None,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            err.message().contains("column `v` has type `variant`"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn name_mapping_names_list_and_map_children_as_parquet_does() {
        let s = schema(
            json!({"type":"struct","fields":[
                {"name":"l","type":{"type":"array","elementType":"long","containsNull":true},"nullable":true,"metadata":{}},
                {"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}}]}),
            None,
        );
        let mapping: Value = serde_json::from_str(&s.name_mapping()).unwrap();
        assert_eq!(
            mapping,
            json!([
                {"field-id":1,"names":["l"],"fields":[{"field-id":3,"names":["element"]}]},
                {"field-id":2,"names":["m"],"fields":[{"field-id":4,"names":["key"]},{"field-id":5,"names":["value"]}]}])
        );
    }
    fn mapped(id: i64, physical: &str) -> Value {
        json!({"delta.columnMapping.id": id, "delta.columnMapping.physicalName": physical})
    }

    fn mapped_schema(delta: Value, previous: Option<&Schema>) -> (Schema, i32) {
        let last = previous.map_or(0, Schema::max_id);
        let (fields, last) = convert(&delta, previous, last, ColumnMapping::Mapped).unwrap();
        let schema = Schema {
            kind: "struct".into(),
            schema_id: 0,
            fields,
        };
        (schema, last)
    }

    #[test]
    fn column_mapped_fields_take_delta_ids_and_physical_names_at_every_level() {
        let mut listed = mapped(2, "col-l");
        listed["delta.columnMapping.nested.ids"] = json!({"col-l.element": 7});
        let (s, last) = mapped_schema(
            json!({"type":"struct","fields":[
                {"name":"Id","type":"long","nullable":false,"metadata":mapped(5, "col-id")},
                {"name":"l","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":listed},
                {"name":"s","type":{"type":"struct","fields":[
                    {"name":"a b","type":"integer","nullable":true,"metadata":mapped(4, "col-a")}]},"nullable":true,"metadata":mapped(3, "col-s")},
                {"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":mapped(6, "col-m")}]}),
            None,
        );
        let ids: Vec<i32> = s.fields.iter().map(|f| f.id).collect();
        assert_eq!(ids, [5, 2, 3, 6], "Delta's ids");
        let Type::List(l) = &s.fields[1].field_type else {
            panic!()
        };
        assert_eq!(l.element_id, 7, "the element id Delta recorded");
        let Type::Map(m) = &s.fields[3].field_type else {
            panic!()
        };
        // No nested ids recorded for the map: ids above Delta's range.
        assert_eq!(
            (m.key_id, m.value_id),
            (GENERATED_IDS + 1, GENERATED_IDS + 2)
        );
        assert_eq!(last, GENERATED_IDS + 2);
        // Iceberg's JSON has the logical names; the mapping has the physical ones.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["fields"][2]["type"]["fields"][0]["name"], "a b");
        assert!(!json.to_string().contains("col-"), "{json}");
        let mapping: Value = serde_json::from_str(&s.name_mapping()).unwrap();
        assert_eq!(
            mapping,
            json!([
                {"field-id":5,"names":["col-id"]},
                {"field-id":2,"names":["col-l"],"fields":[{"field-id":7,"names":["element"]}]},
                {"field-id":3,"names":["col-s"],"fields":[{"field-id":4,"names":["col-a"]}]},
                {"field-id":6,"names":["col-m"],"fields":[
                    {"field-id":GENERATED_IDS + 1,"names":["key"]},{"field-id":GENERATED_IDS + 2,"names":["value"]}]}])
        );
    }

    #[test]
    fn generated_nested_ids_stay_and_never_meet_the_ids_delta_adds_later() {
        let (v0, _) = mapped_schema(
            json!({"type":"struct","fields":[
                {"name":"l","type":{"type":"array","elementType":"long","containsNull":true},"nullable":true,"metadata":mapped(1, "col-l")}]}),
            None,
        );
        // Delta adds a column with the next id and renames `l`: the element keeps its id.
        let (v1, _) = mapped_schema(
            json!({"type":"struct","fields":[
                {"name":"renamed","type":{"type":"array","elementType":"long","containsNull":true},"nullable":true,"metadata":mapped(1, "col-l")},
                {"name":"n","type":"long","nullable":true,"metadata":mapped(2, "col-n")}]}),
            Some(&v0),
        );
        assert_eq!(v0.fields[0].field_type, v1.fields[0].field_type);
        let Type::List(l) = &v1.fields[0].field_type else {
            panic!()
        };
        assert_eq!(l.element_id, GENERATED_IDS + 1);
        assert_eq!(v1.fields[1].id, 2);
    }

    #[test]
    fn a_column_mapped_field_without_its_id_or_an_unknown_mode_is_refused() {
        let err = convert(
            &json!({"type":"struct","fields":[{"name":"v","type":"long","nullable":true,"metadata":{}}]}),
            None,
            0,
            ColumnMapping::Mapped,
        )
        .unwrap_err();
        assert!(
            err.message()
                .contains("column `v` has no delta.columnMapping.id"),
            "{}",
            err.message()
        );
        let err = ColumnMapping::from_mode(Some("other")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(
            ColumnMapping::from_mode(Some("id")).unwrap(),
            ColumnMapping::Mapped
        );
        assert_eq!(ColumnMapping::from_mode(None).unwrap(), ColumnMapping::None);
    }
}
