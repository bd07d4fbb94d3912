//! Which storage locations the server may register or serve: only under the roots it was
//! given. Local paths are resolved (`..`, symlinks) before the check, so no escape works.

use std::path::PathBuf;

use url::Url;

/// The allowed roots.
#[derive(Debug, Clone)]
pub struct AllowedLocations {
    local: Vec<PathBuf>,
    remote: Vec<Url>,
    anywhere: bool,
}

impl AllowedLocations {
    /// No restriction: for the local CLI, whose user can reach the files anyway.
    pub fn anywhere() -> Self {
        Self {
            local: Vec::new(),
            remote: Vec::new(),
            anywhere: true,
        }
    }

    /// Roots as paths or URLs (`/data/lake`, `file:///data/lake`, `s3://bucket/prefix`).
    pub fn new(roots: &[String]) -> Result<Self, String> {
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for root in roots {
            if root.contains("://") && !root.starts_with("file://") {
                let mut url =
                    Url::parse(root).map_err(|e| format!("bad allowed location `{root}`: {e}"))?;
                if !url.path().ends_with('/') {
                    let p = format!("{}/", url.path());
                    url.set_path(&p);
                }
                remote.push(url);
            } else {
                let path = match root.strip_prefix("file://") {
                    Some(_) => Url::parse(root)
                        .ok()
                        .and_then(|u| u.to_file_path().ok())
                        .ok_or(format!("bad allowed location `{root}`"))?,
                    None => PathBuf::from(root),
                };
                let canonical = path
                    .canonicalize()
                    .map_err(|e| format!("allowed location `{root}` is not usable: {e}"))?;
                local.push(canonical);
            }
        }
        Ok(Self {
            local,
            remote,
            anywhere: false,
        })
    }

    /// Whether `location` (a URL ending in `/`, as tarn-table makes them) lies under a root.
    pub fn allows(&self, location: &Url) -> bool {
        if self.anywhere {
            return true;
        }
        if location.scheme() == "file" {
            let Ok(path) = location.to_file_path() else {
                return false;
            };
            // Resolve symlinks and `..`; a path that does not exist cannot be a table.
            let Ok(real) = path.canonicalize() else {
                return false;
            };
            return self.local.iter().any(|root| real.starts_with(root));
        }
        if location.path().split('/').any(|s| s == ".." || s == ".") {
            return false;
        }
        self.remote.iter().any(|root| {
            root.scheme() == location.scheme()
                && root.host_str() == location.host_str()
                && location.path().starts_with(root.path())
        })
    }

    /// The local roots, for messages.
    pub fn describe(&self) -> String {
        let mut all: Vec<String> = self.local.iter().map(|p| p.display().to_string()).collect();
        all.extend(self.remote.iter().map(|u| u.to_string()));
        all.join(", ")
    }
}
