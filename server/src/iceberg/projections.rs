//! Each table's derived Iceberg history ([`tarn_iceberg::Projection`]), kept between
//! requests so a load after a new Delta version derives only that version, from its commit
//! alone (no snapshot of the table is loaded), and a load with no new version costs one
//! metadata lookup (is there a commit after the derived one?) and the answer body kept
//! from the first load of that version (with every snapshot, or `snapshots=refs`; gzipped
//! once for the clients that accept it, when it is large).
//! One derivation per table at a time in this process (a per-table lock); across
//! processes, the files are deterministic and the version records created only once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tarn_iceberg::{OpenTable, Projection, Served};
use tarn_table::{Table, TableLocation, TableLog, TimeTravel};

use crate::error::{ApiError, ErrorKind};
use crate::limits::TableOpens;

/// At most this many tables' histories are kept; past it, idle ones are dropped.
pub const MAX_PROJECTIONS: usize = 64;

type Slot = Arc<tokio::sync::Mutex<Entry>>;

/// One table's history and the loadTable answers of its last served version.
#[derive(Debug, Default)]
struct Entry {
    projection: Option<Projection>,
    answers: Answers,
}

/// Answers at least this large go gzipped to the clients that accept it.
pub const GZIP_FROM: usize = 16 * 1024;

/// A loadTable answer: the JSON body, gzipped or not.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// Whether `body` is gzipped (`Content-Encoding: gzip`).
    pub gzip: bool,
}

/// One version's answer: the JSON, and its gzip once a client asked for it.
#[derive(Debug)]
struct Kept {
    version: u64,
    json: Bytes,
    gzip: Option<Bytes>,
}

impl Kept {
    fn answer(&mut self, gzip: bool) -> Answer {
        if !gzip || self.json.len() < GZIP_FROM {
            return Answer {
                body: self.json.clone(),
                gzip: false,
            };
        }
        if self.gzip.is_none() {
            self.gzip = compress(&self.json);
        }
        match &self.gzip {
            Some(body) => Answer {
                body: body.clone(),
                gzip: true,
            },
            None => Answer {
                body: self.json.clone(),
                gzip: false,
            },
        }
    }
}

/// `json` gzipped, at the fastest level: it is done once per version, on a request.
fn compress(json: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(json).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// The answer with every snapshot (`[0]`) and with `snapshots=refs` (`[1]`), each with its
/// version: the whole history serialized, so built once per version, not per load.
#[derive(Debug, Default)]
struct Answers([Option<Kept>; 2]);

impl Answers {
    /// The answer for `served`, built once per version and mode.
    fn answer(&mut self, served: Served, current_only: bool, gzip: bool) -> Answer {
        if let Some(kept) = self.kept(served.version, current_only, gzip) {
            return kept;
        }
        let json = Bytes::from(super::wire::load_table_body(
            &served.metadata_location,
            &served.metadata_json,
        ));
        self.0[usize::from(current_only)]
            .insert(Kept {
                version: served.version,
                json,
                gzip: None,
            })
            .answer(gzip)
    }

    /// The answer kept for `version`, if any.
    fn kept(&mut self, version: u64, current_only: bool, gzip: bool) -> Option<Answer> {
        match &mut self.0[usize::from(current_only)] {
            Some(kept) if kept.version == version => Some(kept.answer(gzip)),
            _ => None,
        }
    }
}

/// The histories of the tables loaded lately, by table location.
#[derive(Debug, Default)]
pub struct Projections {
    slots: Mutex<HashMap<String, Slot>>,
}

impl OpenTable for TableOpens {
    fn open<'a>(
        &'a self,
        location: &'a TableLocation,
        at: &'a TimeTravel,
    ) -> Pin<Box<dyn Future<Output = tarn_table::Result<Table>> + Send + 'a>> {
        Box::pin(TableOpens::open(self, location, at))
    }
}

/// A derivation error as an answer: what Iceberg cannot represent is 406.
fn answer(err: tarn_table::Error) -> ApiError {
    if err.kind() == tarn_table::ErrorKind::Unsupported {
        ApiError::new(ErrorKind::Unsupported, err.message())
    } else {
        ApiError::from(err)
    }
}

impl Projections {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !slots.contains_key(key) && slots.len() >= MAX_PROJECTIONS {
            // Drop histories nobody is using (only this map holds them).
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        slots.entry(key.to_string()).or_default().clone()
    }

    /// The loadTable answer (see [`super::wire::load_table_body`]) of the table at
    /// `location` as of its latest version, its files under the table's own folder or
    /// under `metadata_root` (`tarn serve --iceberg-metadata`); gzipped when `gzip` (the
    /// client accepts it) and it is large.
    pub async fn load(
        &self,
        opens: &TableOpens,
        location: &TableLocation,
        metadata_root: Option<&TableLocation>,
        current_only: bool,
        gzip: bool,
    ) -> Result<Answer, ApiError> {
        let slot = self.slot(location.url().as_str());
        let mut entry = slot.lock().await;
        let Entry {
            projection: guard,
            answers,
        } = &mut *entry;
        if let Some(p) = guard.as_mut() {
            // Both lookups at once: on an object store each is a request. A table whose
            // derived version is gone was replaced at this location: derive it anew.
            let (still_there, newer) = futures::try_join!(
                Table::has_commit(location, p.version()),
                Table::has_commit(location, p.version() + 1)
            )
            .map_err(answer)?;
            if still_there && !newer {
                if let Some(kept) = answers.kept(p.version(), current_only, gzip) {
                    return Ok(kept);
                }
                let served = p.serve(current_only).await.map_err(answer)?;
                return Ok(answers.answer(served, current_only, gzip));
            }
            if still_there {
                // New versions of a table derived before: from their commits alone, without
                // loading a snapshot of the table (whose cost grows with the table).
                let log = TableLog::open(location).map_err(answer)?;
                let fast = match log.last_version_after(p.version()).await {
                    Ok(target) => p.catch_up_from_log(&log, target).await,
                    Err(e) => Err(e),
                };
                match fast {
                    Ok(true) => {
                        let served = p.serve(current_only).await.map_err(answer)?;
                        return Ok(answers.answer(served, current_only, gzip));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        // As below: the next load derives the history again from the log.
                        *guard = None;
                        return Err(answer(e));
                    }
                }
            }
        }
        let latest = opens
            .open(location, &TimeTravel::Latest)
            .await
            .map_err(answer)?;
        let id = latest.metadata().map_err(answer)?.id;
        let reuse = guard
            .as_ref()
            .is_some_and(|p| p.table_id() == id && p.version() <= latest.version());
        let mut projection = match (reuse, guard.take()) {
            (true, Some(p)) => p,
            _ => {
                // Another table's answers may carry the same version numbers.
                *answers = Answers::default();
                Projection::new(&latest, metadata_root)
                    .await
                    .map_err(answer)?
            }
        };
        // On an error the history is dropped: the next load derives it again from the log
        // (files of versions already recorded are not written again).
        projection.catch_up(&latest, opens).await.map_err(answer)?;
        let served = projection.serve(current_only).await;
        *guard = Some(projection);
        Ok(answers.answer(served.map_err(answer)?, current_only, gzip))
    }
}
