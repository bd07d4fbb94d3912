//! Delta Sharing's model: shares (named groups of catalog tables, each under a
//! `schema.table` name of the share's own), recipients (a bearer token granted some shares)
//! and the server's signing secret. [`SharingStore`] is the contract; the SQL catalog
//! implements it, so shares live beside the tables they expose.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A share: a named set of tables handed to recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    /// Stable id (UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub comment: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// A catalog table exposed in a share as `share.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTable {
    /// Stable id (UUID) of this sharing (not of the catalog table).
    pub id: String,
    /// The share.
    pub share_name: String,
    /// The schema name recipients see.
    pub schema_name: String,
    /// The table name recipients see.
    pub name: String,
    /// The catalog table's id.
    pub table_id: String,
    /// Whether recipients may read history (time travel, version ranges, change feed).
    pub history: bool,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// A table to add to a share.
#[derive(Debug, Clone)]
pub struct NewSharedTable {
    /// The share.
    pub share_name: String,
    /// The schema name recipients will see.
    pub schema_name: String,
    /// The table name recipients will see.
    pub name: String,
    /// The catalog table's id.
    pub table_id: String,
    /// Whether recipients may read history.
    pub history: bool,
}

/// Someone outside reading shares with a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientInfo {
    /// Stable id (UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// The shares granted, by name.
    pub shares: Vec<String>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Token expiry, ms since the epoch, if any.
    pub expires_at: Option<i64>,
    /// When access was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl RecipientInfo {
    /// Whether the token works at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now_ms)
    }
}

/// The sharing half of a catalog. Every method is atomic.
#[async_trait]
pub trait SharingStore: Send + Sync + std::fmt::Debug {
    /// Creates a share. `AlreadyExists` if the name is taken.
    async fn create_share(&self, name: &str, comment: Option<String>) -> Result<ShareInfo>;
    /// The share, or `NotFound`.
    async fn get_share(&self, name: &str) -> Result<ShareInfo>;
    /// All shares, by name.
    async fn list_shares(&self) -> Result<Vec<ShareInfo>>;
    /// Deletes a share, its table list and its grants (never table data).
    async fn delete_share(&self, name: &str) -> Result<()>;

    /// Adds a table. `NotFound` if the share or catalog table does not exist,
    /// `AlreadyExists` if the share already has `schema.name`.
    async fn add_shared_table(&self, new: NewSharedTable) -> Result<SharedTable>;
    /// Removes `schema.name` from a share, or `NotFound`.
    async fn remove_shared_table(&self, share: &str, schema: &str, name: &str) -> Result<()>;
    /// The tables of a share, by schema then name (`NotFound` if the share does not exist).
    async fn list_shared_tables(&self, share: &str) -> Result<Vec<SharedTable>>;
    /// A shared table by the id of its sharing, or `NotFound`.
    async fn get_shared_table(&self, id: &str) -> Result<SharedTable>;

    /// Creates a recipient holding the token hashed to `token_hash`, granted `shares`
    /// (`NotFound` if one does not exist; nothing is created then).
    async fn create_recipient(
        &self,
        name: &str,
        token_hash: &str,
        expires_at: Option<i64>,
        shares: &[String],
    ) -> Result<RecipientInfo>;
    /// The recipient whose token hashes to `token_hash`, or `NotFound`.
    async fn find_recipient(&self, token_hash: &str) -> Result<RecipientInfo>;
    /// The recipient by id, or `NotFound`.
    async fn get_recipient(&self, id: &str) -> Result<RecipientInfo>;
    /// All recipients, by name.
    async fn list_recipients(&self) -> Result<Vec<RecipientInfo>>;
    /// Grants a share to a recipient (granting twice is a no-op).
    async fn grant_share(&self, recipient: &str, share: &str) -> Result<RecipientInfo>;
    /// Takes a share back from a recipient, or `NotFound` if it was not granted.
    async fn revoke_share(&self, recipient: &str, share: &str) -> Result<RecipientInfo>;
    /// Revokes a recipient's token for good: every request with it is refused from now on.
    async fn revoke_recipient(&self, name: &str) -> Result<RecipientInfo>;

    /// The secret named `name`, created (random, 256 bits) on first use and the same for
    /// every server on this catalog from then on.
    async fn secret(&self, name: &str) -> Result<Vec<u8>>;
}
