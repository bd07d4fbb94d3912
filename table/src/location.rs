//! Where a table lives: a local path or an object-store URL, plus the options to reach it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Once;

use url::Url;

use crate::error::{Error, Result};

/// A table's location (always a URL ending in `/`) and the storage options used to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLocation {
    url: Url,
    input: String,
    storage_options: HashMap<String, String>,
}

const SCHEMES: &[&str] = &[
    "file", "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "memory",
];

impl TableLocation {
    /// Parses a path (`./wh/orders`, `/data/orders`) or a URL (`file:///..`, `s3://bucket/t`).
    ///
    /// Relative paths are made absolute against the current directory; nothing is touched
    /// on disk.
    pub fn parse(input: &str) -> Result<Self> {
        register_storage_handlers();
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid("the table location is empty"));
        }
        let url = if let Some((scheme, _)) = trimmed.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !SCHEMES.contains(&scheme.as_str()) {
                return Err(Error::invalid(format!(
                    "unsupported table URL scheme `{scheme}://` in `{trimmed}` (use a path, file://, s3://, gs://, az:// or abfss://)"
                )));
            }
            let mut url = Url::parse(trimmed)
                .map_err(|e| Error::invalid(format!("`{trimmed}` is not a valid URL: {e}")))?;
            if url.scheme() == "file" {
                let path = url
                    .to_file_path()
                    .map_err(|_| Error::invalid(format!("`{trimmed}` is not a valid file URL")))?;
                url = dir_url(&normalize(&path))?;
            }
            ensure_trailing_slash(url)
        } else {
            let path = PathBuf::from(trimmed);
            let absolute = if path.is_absolute() {
                path
            } else {
                std::env::current_dir()
                    .map_err(|e| Error::invalid(format!("cannot read the current directory: {e}")))?
                    .join(path)
            };
            dir_url(&normalize(&absolute))?
        };
        Ok(Self {
            url,
            input: trimmed.to_string(),
            storage_options: HashMap::new(),
        })
    }

    /// Adds object-store options (e.g. `aws_endpoint`, `aws_region`).
    pub fn with_storage_options(
        mut self,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.storage_options.extend(options);
        self
    }

    /// The table's URL, ending in `/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The storage options given for this table.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage_options
    }

    /// Whether this is a local directory.
    pub fn local_path(&self) -> Option<PathBuf> {
        (self.url.scheme() == "file")
            .then(|| self.url.to_file_path().ok())
            .flatten()
    }

    /// The table as the user wrote it, for messages.
    pub fn display_name(&self) -> &str {
        &self.input
    }

    /// The last path segment (`./wh/orders` -> `orders`), used as a default SQL name.
    pub fn short_name(&self) -> String {
        self.url
            .path_segments()
            .and_then(|mut segments| segments.rfind(|s| !s.is_empty()).map(str::to_string))
            .unwrap_or_else(|| "t".to_string())
    }
}

impl std::fmt::Display for TableLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.input)
    }
}

fn dir_url(path: &Path) -> Result<Url> {
    Url::from_directory_path(path)
        .map_err(|_| Error::invalid(format!("`{}` is not a valid table path", path.display())))
}

fn ensure_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// Resolves `.` and `..` lexically (the table may not exist yet, so no canonicalize).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Registers the cloud object stores with `deltalake` (S3 registers itself).
fn register_storage_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        deltalake::gcp::register_handlers(None);
        deltalake::azure::register_handlers(None);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_file_urls() {
        let loc = TableLocation::parse("./wh/../wh/orders").unwrap();
        assert_eq!(loc.url().scheme(), "file");
        assert!(loc.url().path().ends_with("/wh/orders/"));
        assert!(!loc.url().path().contains(".."));
        assert_eq!(loc.short_name(), "orders");
    }

    #[test]
    fn s3_urls_keep_bucket_and_prefix() {
        let loc = TableLocation::parse("s3://bucket/a/orders").unwrap();
        assert_eq!(loc.url().as_str(), "s3://bucket/a/orders/");
        assert_eq!(loc.short_name(), "orders");
    }

    #[test]
    fn unknown_schemes_and_empty_locations_are_refused() {
        assert!(TableLocation::parse("ftp://host/t").is_err());
        assert!(TableLocation::parse("  ").is_err());
    }
}
