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
    /// The table's foreign keys (it is the child), as `information_schema` stated them when
    /// this version was read. Empty for schemas recorded before foreign keys were tracked.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
}

/// What a foreign key does to the child rows when the parent row is deleted or its
/// referenced columns change (`information_schema.REFERENTIAL_CONSTRAINTS`
/// `DELETE_RULE` / `UPDATE_RULE`, compared exactly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FkAction {
    /// `RESTRICT`: the parent change is refused while children exist.
    Restrict,
    /// `NO ACTION`: the same as RESTRICT in InnoDB.
    NoAction,
    /// `CASCADE`: children are deleted (on delete) or take the new key (on update).
    Cascade,
    /// `SET NULL`: the children's foreign-key columns become NULL.
    SetNull,
    /// `SET DEFAULT`: parsed by MySQL, rejected by InnoDB.
    SetDefault,
}

impl FkAction {
    /// Parses a rule as information_schema prints it (`CASCADE`, `SET NULL`, ...), exactly.
    pub fn from_rule(rule: &str) -> Option<FkAction> {
        Some(match rule {
            "RESTRICT" => FkAction::Restrict,
            "NO ACTION" => FkAction::NoAction,
            "CASCADE" => FkAction::Cascade,
            "SET NULL" => FkAction::SetNull,
            "SET DEFAULT" => FkAction::SetDefault,
            _ => return None,
        })
    }

    /// True when the action changes child rows (CASCADE, SET NULL, SET DEFAULT).
    pub fn changes_children(self) -> bool {
        matches!(
            self,
            FkAction::Cascade | FkAction::SetNull | FkAction::SetDefault
        )
    }

    /// The rule as SQL spells it.
    pub fn as_sql(self) -> &'static str {
        match self {
            FkAction::Restrict => "RESTRICT",
            FkAction::NoAction => "NO ACTION",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// One foreign key of a (child) table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// The child's columns, in constraint order.
    pub columns: Vec<String>,
    /// The referenced (parent) table.
    pub parent: TableRef,
    /// The parent's referenced columns, paired with `columns`.
    pub parent_columns: Vec<String>,
    /// ON DELETE.
    pub on_delete: FkAction,
    /// ON UPDATE.
    pub on_update: FkAction,
}

impl ForeignKey {
    /// True when deleting or re-keying a parent row can change child rows.
    pub fn cascades(&self) -> bool {
        self.on_delete.changes_children() || self.on_update.changes_children()
    }
}

/// [`TableSchema`] as schema records were encoded before foreign keys were tracked (the
/// binary codec is positional: an old record simply ends before `foreign_keys`).
#[derive(Deserialize)]
struct TableSchemaV1 {
    table: TableRef,
    version: u32,
    columns: Vec<ColumnDef>,
    primary_key: Vec<usize>,
}

impl TableSchema {
    /// Decodes a persisted schema record, current or from before foreign keys were tracked.
    pub fn decode_record(bytes: &[u8]) -> Result<TableSchema, crate::codec::CodecError> {
        match crate::codec::decode::<TableSchema>("schema", bytes) {
            Ok(s) => Ok(s),
            Err(e) => match crate::codec::decode::<TableSchemaV1>("schema", bytes) {
                Ok(v1) => Ok(TableSchema {
                    table: v1.table,
                    version: v1.version,
                    columns: v1.columns,
                    primary_key: v1.primary_key,
                    foreign_keys: Vec::new(),
                }),
                Err(_) => Err(e),
            },
        }
    }

    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
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
