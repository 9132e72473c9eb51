//! Baseline stores: a local directory or S3-compatible object storage, through object_store.
//!
//! Layout under the store's root: `<source>/<baseline id>/<db>/<table>.parquet` and
//! `<source>/<baseline id>/manifest.json`. The manifest is uploaded after every table file
//! (see `dbtrail_core::baseline`): a directory without one is an unfinished backup.
//!
//! Checksums: before the manifest is written, [`BaselineStore::fill_checksums`] records the
//! CRC-32 of every file it lists (computed while uploading, or read back from a local store),
//! and [`BaselineStore::verify`] checks a file against it before a restore reads it. A
//! file that changed after its baseline was finished (a disk or storage fault, a partial
//! copy) is refused with its name, both checksums and what to do; a restore never reads it.
use crate::config::{Config, SourceConfig, read_secret};
use anyhow::{Context, bail};
use dbtrail_core::baseline::BaselineManifest;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upload part size (and the memory an upload holds at most, times the concurrency).
const PART: usize = 8 * 1024 * 1024;

/// A full baseline's views, triggers, routines and events (JSON; absent in older ones).
pub const OBJECTS_FILE: &str = "objects.json";

/// Where one source's baselines live.
#[derive(Clone)]
pub struct BaselineStore {
    store: Arc<dyn ObjectStore>,
    /// `<source>` under the store's root.
    root: ObjPath,
    /// The configured URL, for messages.
    pub url: String,
    /// The store, when it is a local directory (files can be read in place).
    local: Option<Arc<LocalFileSystem>>,
    /// Checksums of the files uploaded by this process, until their manifest takes them.
    uploaded: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

/// The checksum of `bytes` as manifests record it.
pub fn checksum_text(crc: u32) -> String {
    format!("crc32:{crc:08x}")
}

/// The checksum of the local file `path` (read in 1 MiB pieces).
pub async fn file_checksum(path: &Path) -> anyhow::Result<String> {
    let mut f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(checksum_text(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

impl std::fmt::Debug for BaselineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BaselineStore({})", self.url)
    }
}

impl BaselineStore {
    /// The store of `source` as configured (default: `file://<data_dir>/baselines`).
    pub fn open(cfg: &Config, source: &SourceConfig) -> anyhow::Result<BaselineStore> {
        let url = source
            .baseline_store
            .clone()
            .unwrap_or_else(|| format!("file://{}", cfg.data_dir.join("baselines").display()));
        let mut local = None;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(path) =
            url.strip_prefix("file://")
        {
            std::fs::create_dir_all(path).with_context(|| {
                format!(
                    "source {}: creating the baseline directory {path}",
                    source.name
                )
            })?;
            let fs = LocalFileSystem::new_with_prefix(path)
                .with_context(|| format!("source {}: opening baseline_store {url}", source.name))?
                .with_automatic_cleanup(true);
            let fs = Arc::new(fs);
            local = Some(fs.clone());
            (fs, String::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!(
                    "source {}: baseline_store {url} names no bucket (s3://BUCKET/prefix)",
                    source.name
                );
            }
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(e) = &source.s3_endpoint {
                b = b
                    .with_endpoint(e.trim_end_matches('/'))
                    .with_allow_http(e.starts_with("http://"));
            }
            let region = source
                .s3_region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .unwrap_or_else(|| "us-east-1".into());
            b = b.with_region(region);
            if let Some(k) = &source.s3_access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(p) = &source.s3_secret_access_key_file {
                b = b.with_secret_access_key(read_secret(
                    &source.name,
                    "s3_secret_access_key_file",
                    p,
                )?);
            }
            let s3 = b.build().with_context(|| {
                format!(
                    "source {}: configuring baseline_store {url} (set s3_endpoint, \
                         s3_region, s3_access_key_id and s3_secret_access_key_file, or the \
                         AWS_* environment)",
                    source.name
                )
            })?;
            (Arc::new(s3), prefix.trim_matches('/').to_string())
        } else {
            bail!(
                "source {}: baseline_store {url:?} must be file:///path or s3://bucket/prefix",
                source.name
            );
        };
        let root = if prefix.is_empty() {
            ObjPath::from(source.name.as_str())
        } else {
            ObjPath::from(format!("{prefix}/{}", source.name))
        };
        Ok(BaselineStore {
            store,
            root,
            url,
            local,
            uploaded: Default::default(),
        })
    }

    /// A store for a restore's output URL (`s3://bucket/prefix`), with the source's S3
    /// settings; objects go directly under the prefix.
    pub fn open_output(source: &SourceConfig, url: &str) -> anyhow::Result<BaselineStore> {
        let mut sc = source.clone();
        sc.baseline_store = Some(url.to_string());
        let cfg = Config {
            data_dir: std::path::PathBuf::from("/nonexistent"),
            socket: std::path::PathBuf::new(),
            metrics_addr: String::new(),
            sources: Vec::new(),
        };
        let mut s = BaselineStore::open(&cfg, &sc)?;
        let rest = url.trim_start_matches("s3://");
        let prefix = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
        s.root = ObjPath::from(prefix.trim_matches('/'));
        Ok(s)
    }

    /// Where `file` of baseline `id` lives on disk, when the store is a local directory
    /// (whether or not it exists yet).
    pub fn local_target(&self, id: &str, file: &str) -> Option<std::path::PathBuf> {
        self.local
            .as_ref()?
            .path_to_filesystem(&self.path(id, file))
            .ok()
    }

    /// The file on disk holding `file` of baseline `id`, when the store is a local directory.
    pub fn local_file(&self, id: &str, file: &str) -> Option<std::path::PathBuf> {
        self.local_target(id, file).filter(|p| p.is_file())
    }

    fn path(&self, id: &str, file: &str) -> ObjPath {
        let mut p = self.root.clone();
        if !id.is_empty() {
            p = p.join(id);
        }
        for part in file.split('/') {
            p = p.join(part);
        }
        p
    }

    fn err(&self, action: &str, e: object_store::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "baseline store {}: {action}: {e} (check that the store is reachable, the bucket \
             exists and the credentials allow it)",
            self.url
        )
    }

    /// Uploads the local file `local` as `file` of baseline `id`, in parts (bounded memory).
    pub async fn upload(&self, id: &str, file: &str, local: &Path) -> anyhow::Result<u64> {
        let location = self.path(id, file);
        let what = format!("uploading {location}");
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| self.err(&what, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut f = tokio::fs::File::open(local)
            .await
            .with_context(|| format!("opening {}", local.display()))?;
        let mut buf = vec![0u8; 1024 * 1024];
        let mut total = 0u64;
        let mut h = crc32fast::Hasher::new();
        loop {
            let n = f
                .read(&mut buf)
                .await
                .with_context(|| format!("reading {}", local.display()))?;
            if n == 0 {
                break;
            }
            if let Err(e) = w.wait_for_capacity(2).await {
                return Err(self.err(&what, e));
            }
            w.write(&buf[..n]);
            h.update(&buf[..n]);
            total += n as u64;
        }
        w.finish().await.map_err(|e| self.err(&what, e))?;
        crate::util::lock(&self.uploaded).insert(location.to_string(), checksum_text(h.finalize()));
        Ok(total)
    }

    /// Downloads `file` of baseline `id` into `local`, streaming.
    pub async fn download(&self, id: &str, file: &str, local: &Path) -> anyhow::Result<u64> {
        let location = self.path(id, file);
        let what = format!("downloading {location}");
        let got = self
            .store
            .get(&location)
            .await
            .map_err(|e| self.err(&what, e))?;
        let mut stream = got.into_stream();
        let mut f = tokio::fs::File::create(local)
            .await
            .with_context(|| format!("creating {}", local.display()))?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(&what, e))?;
            f.write_all(&chunk)
                .await
                .with_context(|| format!("writing {}", local.display()))?;
            total += chunk.len() as u64;
        }
        f.flush().await?;
        Ok(total)
    }

    /// The checksum of `file` of baseline `id` as it is in the store now: from its upload by
    /// this process, else read (in place from a local store, else streamed from the store).
    async fn stored_checksum(&self, id: &str, file: &str) -> anyhow::Result<String> {
        let location = self.path(id, file);
        if let Some(c) = crate::util::lock(&self.uploaded).remove(location.as_ref()) {
            return Ok(c);
        }
        if let Some(p) = self.local_file(id, file) {
            return file_checksum(&p).await;
        }
        let what = format!("reading {location} for its checksum");
        let got = self
            .store
            .get(&location)
            .await
            .map_err(|e| self.err(&what, e))?;
        let mut stream = got.into_stream();
        let mut h = crc32fast::Hasher::new();
        while let Some(chunk) = stream.next().await {
            h.update(&chunk.map_err(|e| self.err(&what, e))?);
        }
        Ok(checksum_text(h.finalize()))
    }

    /// Records in `m` the checksum of every file its tables list (before the manifest is
    /// written, so the manifest vouches for the files as they were when it was finished).
    pub async fn fill_checksums(&self, m: &mut BaselineManifest) -> anyhow::Result<()> {
        let files: Vec<String> = m
            .tables
            .iter()
            .flat_map(|t| t.files().into_iter().map(str::to_string))
            .collect();
        for f in files {
            let c = self.stored_checksum(&m.id, &f).await?;
            m.checksums.insert(f, c);
        }
        Ok(())
    }

    /// Checks the local copy `local` of `file` of baseline `m` against the manifest's
    /// checksum (none recorded: manifests before checksums, not checked).
    pub async fn verify(
        &self,
        m: &BaselineManifest,
        file: &str,
        local: &Path,
    ) -> anyhow::Result<()> {
        let Some(expected) = m.checksums.get(file) else {
            return Ok(());
        };
        let actual = file_checksum(local).await?;
        if &actual != expected {
            bail!(
                "baseline {} is damaged: its file {file} ({}) has checksum {actual}, but the \
                 manifest recorded {expected} when the baseline was finished, so the file \
                 changed since (a disk or storage fault, or a partial copy); nothing was \
                 restored from it. Put back an intact copy of the file if you have one, or \
                 restore with --image live (from the live tables, without this baseline), or \
                 take a new backup and restore to a point after it",
                m.id,
                if self.local_file(&m.id, file).as_deref() == Some(local) {
                    local.display().to_string()
                } else {
                    format!("{} in {}", self.path(&m.id, file), self.url)
                }
            );
        }
        Ok(())
    }

    /// Writes the manifest: the step that makes a baseline exist.
    pub async fn put_manifest(&self, m: &BaselineManifest) -> anyhow::Result<()> {
        self.put_json(&m.id, "manifest.json", m).await
    }

    /// Writes `value` as pretty JSON to `name` in baseline `id`'s directory.
    async fn put_json(
        &self,
        id: &str,
        name: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<()> {
        let location = self.path(id, name);
        let body = serde_json::to_vec_pretty(value)?;
        self.store
            .put(&location, PutPayload::from(body))
            .await
            .map_err(|e| self.err(&format!("writing {location}"), e))?;
        Ok(())
    }

    /// Writes a full baseline's views, triggers, routines and events (`objects.json`), before
    /// its manifest.
    pub async fn put_objects(
        &self,
        id: &str,
        objects: &[dbtrail_core::objects::SchemaObject],
    ) -> anyhow::Result<()> {
        self.put_json(id, OBJECTS_FILE, &objects).await
    }

    /// Reads baseline `id`'s objects; `None` when it recorded none (taken before dbtrail
    /// recorded them).
    pub async fn objects(
        &self,
        id: &str,
    ) -> anyhow::Result<Option<Vec<dbtrail_core::objects::SchemaObject>>> {
        let location = self.path(id, OBJECTS_FILE);
        match self.store.get(&location).await {
            Ok(g) => {
                let bytes = g
                    .bytes()
                    .await
                    .map_err(|e| self.err(&format!("reading {location}"), e))?;
                let o = serde_json::from_slice(&bytes).with_context(|| {
                    format!("baseline store {}: {location} is corrupt", self.url)
                })?;
                Ok(Some(o))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(&format!("reading {location}"), e)),
        }
    }

    /// Reads the manifest of baseline `id`; `None` when it has none (unfinished).
    pub async fn manifest(&self, id: &str) -> anyhow::Result<Option<BaselineManifest>> {
        let location = self.path(id, "manifest.json");
        match self.store.get(&location).await {
            Ok(g) => {
                let bytes = g
                    .bytes()
                    .await
                    .map_err(|e| self.err(&format!("reading {location}"), e))?;
                let m = serde_json::from_slice(&bytes).with_context(|| {
                    format!("baseline store {}: {location} is corrupt", self.url)
                })?;
                Ok(Some(m))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(&format!("reading {location}"), e)),
        }
    }

    /// The ids of every baseline directory in the store, finished or not.
    pub async fn ids(&self) -> anyhow::Result<Vec<String>> {
        let list = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| self.err("listing baselines", e))?;
        let mut ids: Vec<String> = list
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Deletes every object of baseline `id`.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let prefix = self.root.clone().join(id);
        let what = format!("deleting {prefix}");
        let mut objects = self.store.list(Some(&prefix));
        // The manifest goes first: a half-deleted baseline must not look complete.
        let mut paths = Vec::new();
        while let Some(meta) = objects.next().await {
            paths.push(meta.map_err(|e| self.err(&what, e))?.location);
        }
        paths.sort_by_key(|p| p.filename() != Some("manifest.json"));
        for p in paths {
            match self.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(&what, e)),
            }
        }
        Ok(())
    }
}
