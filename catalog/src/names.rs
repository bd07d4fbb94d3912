//! Names in the namespace: validation and the dotted forms `catalog.schema` and
//! `catalog.schema.table`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

/// Checks one name part: 1–255 characters of letters, digits, `_`, `-` or `@` (the Unity
/// Catalog rule), so no dots, spaces or path separators.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{kind} name cannot be empty"),
        ));
    }
    if name.len() > 255 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{kind} name `{name}` is longer than 255 characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@'))
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid {kind} name `{name}`: use letters, digits, `_`, `-` or `@` (no dots, spaces or slashes)"),
        ));
    }
    Ok(())
}

/// `catalog.schema`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName {
    /// The catalog.
    pub catalog: String,
    /// The schema.
    pub schema: String,
}

/// `catalog.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    /// The catalog.
    pub catalog: String,
    /// The schema.
    pub schema: String,
    /// The table.
    pub table: String,
}

impl TableName {
    /// A validated name from its parts.
    pub fn new(catalog: &str, schema: &str, table: &str) -> Result<Self> {
        validate_name("catalog", catalog)?;
        validate_name("schema", schema)?;
        validate_name("table", table)?;
        Ok(Self {
            catalog: catalog.into(),
            schema: schema.into(),
            table: table.into(),
        })
    }

    /// The schema part.
    pub fn schema_name(&self) -> SchemaName {
        SchemaName {
            catalog: self.catalog.clone(),
            schema: self.schema.clone(),
        }
    }
}

impl FromStr for TableName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.split('.').collect::<Vec<_>>()[..] {
            [c, sc, t] => TableName::new(c, sc, t),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("invalid table name `{s}`: write catalog.schema.table"),
            )),
        }
    }
}

impl FromStr for SchemaName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.split('.').collect::<Vec<_>>()[..] {
            [c, sc] => {
                validate_name("catalog", c)?;
                validate_name("schema", sc)?;
                Ok(SchemaName {
                    catalog: c.into(),
                    schema: sc.into(),
                })
            }
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("invalid schema name `{s}`: write catalog.schema"),
            )),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.catalog, self.schema, self.table)
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.catalog, self.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_dots_slashes_or_nothing_are_refused() {
        assert!("main.shop.orders".parse::<TableName>().is_ok());
        for bad in [
            "main.shop",
            "main..orders",
            "main.shop.or/ders",
            "a.b.c.d",
            "main.shop.or ders",
            "main.shop..",
        ] {
            assert_eq!(
                bad.parse::<TableName>().unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
        assert!(validate_name("catalog", "../etc").is_err());
    }
}
