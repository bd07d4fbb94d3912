//! Which storage locations the server may register or serve: only under the roots it was
//! given. Local paths are resolved (`..`, symlinks) before the check, so no escape works.
//! A URL is under a root when every part that names a bucket or container is the same —
//! scheme, user part (the Azure container in `abfss://container@account…`), host (the S3
//! or GCS bucket, the Azure account or `az://` container) and port — and its path continues
//! the root's path at a `/`, with no `.`/`..` segment (even percent-encoded).

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
                let shown = tarn_secrets::redact_url(root);
                let mut url =
                    Url::parse(root).map_err(|e| format!("bad allowed location `{shown}`: {e}"))?;
                // A query or fragment is not part of where tables are, and the usual one is a
                // credential (`?sig=…`, a SAS token) that messages would then show.
                if url.query().is_some() || url.fragment().is_some() {
                    let bare =
                        tarn_secrets::redact_url(root.split(['?', '#']).next().unwrap_or(""));
                    return Err(format!(
                        "allowed location `{bare}` has a query or fragment (not shown): give the bucket and prefix only, and the storage credentials in the environment (AWS_*, AZURE_*, GOOGLE_*)"
                    ));
                }
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
                        .ok_or(format!(
                            "bad allowed location `{}`",
                            tarn_secrets::redact_url(root)
                        ))?,
                    None => PathBuf::from(root),
                };
                let canonical = path.canonicalize().map_err(|e| {
                    let shown = tarn_secrets::redact_url(root);
                    format!("allowed location `{shown}` is not usable: {e}")
                })?;
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
        if !plain_path(location) {
            return false;
        }
        self.remote
            .iter()
            .any(|root| same_container(root, location) && location.path().starts_with(root.path()))
    }

    /// The roots, for messages (without any password a URL holds).
    pub fn describe(&self) -> String {
        let mut all: Vec<String> = self.local.iter().map(|p| p.display().to_string()).collect();
        all.extend(self.remote.iter().map(|u| {
            let mut shown = u.clone();
            if shown.password().is_some() {
                let _ = shown.set_password(Some("***"));
            }
            shown.to_string()
        }));
        all.join(", ")
    }
}

/// Whether `a` and `b` name the same bucket or container: scheme, user part, password,
/// host (case-insensitively, as DNS names are) and port.
fn same_container(a: &Url, b: &Url) -> bool {
    let host = |u: &Url| u.host_str().map(str::to_ascii_lowercase);
    a.scheme().eq_ignore_ascii_case(b.scheme())
        && a.username() == b.username()
        && a.password() == b.password()
        && host(a) == host(b)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A location path an object store reads as written: no query or fragment, and no segment
/// that is `.` or `..` or holds a `/` or a backslash once percent-decoded.
fn plain_path(location: &Url) -> bool {
    location.query().is_none()
        && location.fragment().is_none()
        && location.path().split('/').all(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            decoded != "." && decoded != ".." && !decoded.contains(['/', '\\'])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(root: &str) -> AllowedLocations {
        AllowedLocations::new(&[root.to_string()]).unwrap()
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    #[test]
    fn a_root_with_a_query_is_refused_without_showing_its_secret() {
        for root in [
            "abfss://lake@acct.dfs.core.windows.net/data?sv=2022&sig=SECRETSIG",
            "s3://bucket/prefix?x=1#SECRETFRAG",
            "s3://key:SECRETPW@bucket/prefix?token=SECRETTOKEN",
        ] {
            let err = AllowedLocations::new(&[root.to_string()]).unwrap_err();
            assert!(err.contains("query or fragment"), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
        let err = AllowedLocations::new(&["s3://u:SECRETPW@[bad/".to_string()]).unwrap_err();
        assert!(err.starts_with("bad allowed location"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
        let shown = allowed("s3://key:SECRETPW@bucket/prefix").describe();
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn azure_containers_in_the_user_part_are_compared() {
        let a = allowed("abfss://lake@acct.dfs.core.windows.net/data");
        assert!(a.allows(&url("abfss://lake@acct.dfs.core.windows.net/data/t/")));
        assert!(a.allows(&url("abfss://lake@ACCT.dfs.core.windows.net/data/t/")));
        for bad in [
            "abfss://other@acct.dfs.core.windows.net/data/t/",
            "abfss://acct.dfs.core.windows.net/data/t/",
            "abfss://lake@other.dfs.core.windows.net/data/t/",
            "abfs://lake@acct.dfs.core.windows.net/data/t/",
            "abfss://lake@acct.dfs.core.windows.net:8443/data/t/",
            "abfss://lake:pw@acct.dfs.core.windows.net/data/t/",
            "abfss://lake@acct.dfs.core.windows.net/database/t/",
            "abfss://lake@acct.dfs.core.windows.net/data/../other/",
            "abfss://lake@acct.dfs.core.windows.net/data/%2e%2e/other/",
            "abfss://lake@acct.dfs.core.windows.net/data/a%2F..%2F..%2Fother/",
            "abfss://lake@acct.dfs.core.windows.net/data/t/?x=1",
        ] {
            assert!(!a.allows(&url(bad)), "{bad}");
        }
    }

    #[test]
    fn buckets_and_prefixes_end_on_a_component_boundary() {
        let a = allowed("s3://bucket/lake");
        assert!(a.allows(&url("s3://bucket/lake/t/")));
        for bad in [
            "s3://bucket/lakehouse/t/",
            "s3://bucket2/lake/t/",
            "s3://user@bucket/lake/t/",
            "s3://bucket:9000/lake/t/",
            "gs://bucket/lake/t/",
        ] {
            assert!(!a.allows(&url(bad)), "{bad}");
        }
        let a = allowed("az://container/lake/");
        assert!(a.allows(&url("az://container/lake/t/")));
        assert!(!a.allows(&url("az://container2/lake/t/")));
        assert!(!a.allows(&url("az://other@container/lake/t/")));
        let a = allowed("gs://bucket");
        assert!(a.allows(&url("gs://bucket/anything/t/")));
        assert!(!a.allows(&url("gs://bucketx/anything/t/")));
    }
}
