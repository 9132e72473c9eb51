//! Tables and their column schemas.
//!
//! A table's schema changes with DDL; each change gets a new [`TableSchema::version`] so that
//! every logged row event names the exact schema it was decoded with
//! (docs/correctness.md, C9).
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `db.table`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableRef {
    /// The database (schema) name.
    pub db: String,
    /// The table name.
    pub table: String,
}

impl TableRef {
    /// Builds a table reference.
    pub fn new(db: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            db: db.into(),
            table: table.into(),
        }
    }

    /// The name quoted for SQL: `` `db`.`t` `` with backticks doubled.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.db), quote_ident(&self.table))
    }
}

/// Quotes an identifier for MySQL with backticks, doubling embedded backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

/// Error parsing a `db.table` name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid table name {input:?}: expected db.table (both parts non-empty)")]
pub struct TableRefError {
    /// What was given.
    pub input: String,
}

impl FromStr for TableRef {
    type Err = TableRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('.') {
            Some((db, t)) if !db.is_empty() && !t.is_empty() => Ok(TableRef::new(db, t)),
            _ => Err(TableRefError {
                input: s.to_string(),
            }),
        }
    }
}

/// The collation id MySQL uses for binary strings.
pub const BINARY_COLLATION: u16 = 63;

/// A column's type, with the parameters needed to decode and print its values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    /// TINYINT
    TinyInt,
    /// SMALLINT
    SmallInt,
    /// MEDIUMINT
    MediumInt,
    /// INT
    Int,
    /// BIGINT
    BigInt,
    /// FLOAT
    Float,
    /// DOUBLE
    Double,
    /// DECIMAL(precision, scale)
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// YEAR
    Year,
    /// DATE
    Date,
    /// TIME(fsp)
    Time {
        /// Fractional-second digits, 0..=6.
        fsp: u8,
    },
    /// DATETIME(fsp)
    DateTime {
        /// Fractional-second digits, 0..=6.
        fsp: u8,
    },
    /// TIMESTAMP(fsp)
    Timestamp {
        /// Fractional-second digits, 0..=6.
        fsp: u8,
    },
    /// CHAR/BINARY (fixed length)
    Char,
    /// VARCHAR/VARBINARY
    VarChar,
    /// TEXT/BLOB of any size
    Blob,
    /// ENUM
    Enum,
    /// SET
    Set,
    /// BIT(bits)
    Bit {
        /// Width, 1..=64.
        bits: u8,
    },
    /// JSON
    Json,
    /// GEOMETRY and its subtypes
    Geometry,
    /// VECTOR (MySQL 9)
    Vector,
}

impl ColumnType {
    /// True for the integer types.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            ColumnType::TinyInt
                | ColumnType::SmallInt
                | ColumnType::MediumInt
                | ColumnType::Int
                | ColumnType::BigInt
        )
    }

    /// Fractional-second digits for temporal types (0 otherwise).
    pub fn fsp(&self) -> u8 {
        match self {
            ColumnType::Time { fsp }
            | ColumnType::DateTime { fsp }
            | ColumnType::Timestamp { fsp } => *fsp,
            _ => 0,
        }
    }
}

/// One column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Type and parameters.
    pub ty: ColumnType,
    /// UNSIGNED (integers, and DECIMAL/FLOAT/DOUBLE for display).
    pub unsigned: bool,
    /// Nullable.
    pub nullable: bool,
    /// Collation id for character and binary columns (63 = binary).
    pub collation: Option<u16>,
    /// ENUM/SET member names, in order, as raw bytes in the column's charset.
    pub members: Vec<Vec<u8>>,
    /// The full SQL type as `information_schema.COLUMNS.COLUMN_TYPE` prints it, when known.
    pub sql_type: Option<String>,
    /// A generated (virtual or stored) column: never written by INSERT in dumps.
    pub generated: bool,
    /// An invisible column (MySQL 8.0.23+): still written, by explicit column lists.
    pub invisible: bool,
}

impl ColumnDef {
    /// A column with defaults for everything but name and type.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Self {
            name: name.into(),
            ty,
            unsigned: false,
            nullable: true,
            collation: None,
            members: Vec::new(),
            sql_type: None,
            generated: false,
            invisible: false,
        }
    }

    /// True when string values are binary (no character set).
    pub fn is_binary(&self) -> bool {
        self.collation == Some(BINARY_COLLATION)
    }
}

/// A table's schema at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Which table.
    pub table: TableRef,
    /// Increases by one with each schema change the log sees.
    pub version: u32,
    /// Columns in table order.
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key (empty: the table has none).
    pub primary_key: Vec<usize>,
}

impl TableSchema {
    /// True when the table has a primary key.
    pub fn has_primary_key(&self) -> bool {
        !self.primary_key.is_empty()
    }

    /// True when column count and types match another version (names aside).
    pub fn same_layout(&self, other: &TableSchema) -> bool {
        self.columns.len() == other.columns.len()
            && self
                .columns
                .iter()
                .zip(&other.columns)
                .all(|(a, b)| a.ty == b.ty && a.unsigned == b.unsigned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ref_parse_and_quote() {
        let t: TableRef = "shop.orders".parse().expect("valid");
        assert_eq!(t, TableRef::new("shop", "orders"));
        assert_eq!(TableRef::new("a`b", "c d").quoted(), "`a``b`.`c d`");
        assert!("shop".parse::<TableRef>().is_err());
        assert!(".t".parse::<TableRef>().is_err());
        assert!("d.".parse::<TableRef>().is_err());
    }
}
