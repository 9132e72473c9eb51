//! The images of a restore plan on local disk: each planned table's image file (read in
//! place from a local store, else downloaded) and the cascading parents its rebuild derives
//! from, as the restore engine's inputs. Used by restores (`pitr`) and baselines from the
//! log (`fromlog`).
use crate::source::Source;
use crate::store::BaselineStore;
use anyhow::anyhow;
use dbtrail_core::TableRef;
use dbtrail_replay::plan::Plan;
use dbtrail_replay::restore::{TableInput, cascading_parents};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The engine's settings for a rebuild that writes rows, not dump files (looking back,
/// verification): the source's key bound, one thread per core.
pub fn rows_settings(source: &Source) -> dbtrail_replay::restore::Settings {
    dbtrail_replay::restore::Settings {
        keys_in_memory: source.config.restore_keys_in_memory,
        chunk_bytes: 0,
        statement_bytes: 0,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    }
}

/// The engine's inputs for `plan`: its tables (requested), then the parents their cascades
/// need (not requested); files not in a local store are downloaded under `tmp`.
pub async fn plan_inputs(
    source: &Source,
    plan: &Plan,
    tmp: &Path,
) -> anyhow::Result<Vec<TableInput>> {
    // Image files: read in place from a local store, else downloaded (streamed).
    let store = &source.store;
    let images = source.log.baselines()?;
    let mut inputs = Vec::new();
    for (n, t) in plan.tables.iter().enumerate() {
        let Some((image_id, entry)) = &t.image else {
            anyhow::bail!("internal error: {} has no image after imaging", t.table);
        };
        let image = images
            .iter()
            .find(|b| &b.id == image_id)
            .ok_or_else(|| anyhow!("image {image_id} of {} vanished", t.table))?;
        let files = fetch_files(store, image, entry, tmp, &n.to_string()).await?;
        inputs.push(TableInput {
            table: entry.table.clone(),
            window: t.window,
            backward: t.backward,
            rows: entry.rows,
            create_table: entry.create_table.clone(),
            table_id: t.table_id,
            files,
            requested: true,
        });
    }
    let ancestors = ancestors(source, plan, &inputs, tmp).await?;
    inputs.extend(ancestors);
    Ok(inputs)
}

/// The parents a restore of `inputs` also rebuilds (not written): for every table with a
/// cascading foreign key, its parents that are themselves children of a cascading key,
/// whose derived changes fire its actions (`dbtrail_replay::restore`). Their baselines are
/// fetched when not local. A parent missing from the baseline is fine unless it is such a
/// child (then its cascades cannot be derived).
async fn ancestors(
    source: &Source,
    plan: &Plan,
    inputs: &[TableInput],
    tmp: &Path,
) -> anyhow::Result<Vec<TableInput>> {
    let images = source.log.baselines()?;
    let mut seen: BTreeSet<TableRef> = inputs.iter().map(|t| t.table.clone()).collect();
    // Each table with the image it is rebuilt from: a parent comes from its child's image
    // (same position, same window), so the parent's derived cascades cover the child's.
    let mut queue: Vec<(TableInput, String)> = inputs
        .iter()
        .map(|t| {
            let id = plan
                .tables
                .iter()
                .find(|p| p.table == t.table)
                .and_then(|p| p.image.as_ref().map(|i| i.0.clone()))
                .unwrap_or_else(|| plan.baseline.id.clone());
            (t.clone(), id)
        })
        .collect();
    let mut out = Vec::new();
    while let Some((t, image_id)) = queue.pop() {
        let schema = t.schema()?;
        let image = images
            .iter()
            .find(|b| b.id == image_id)
            .ok_or_else(|| anyhow!("image {image_id} of {} vanished", t.table))?;
        for p in cascading_parents(&schema) {
            if !seen.insert(p.clone()) {
                continue;
            }
            match image.table(&p) {
                Some(pe) => {
                    let files = fetch_files(
                        &source.store,
                        image,
                        pe,
                        tmp,
                        &format!("parent-{}", seen.len()),
                    )
                    .await?;
                    let parent = TableInput {
                        table: p.clone(),
                        window: t.window,
                        backward: false,
                        rows: pe.rows,
                        create_table: pe.create_table.clone(),
                        table_id: source.log.table_id(&p)?,
                        files,
                        requested: false,
                    };
                    queue.push((parent.clone(), image.id.clone()));
                    out.push(parent);
                }
                None => {
                    let latest = match source.log.table_id(&p)? {
                        Some(id) => source.log.schemas(id)?.pop(),
                        None => None,
                    };
                    if latest.is_some_and(|s| !cascading_parents(&s).is_empty()) {
                        anyhow::bail!(
                            "{} references {p} through a cascading foreign key, and {p} is \
                             itself the child of one but is not in {} {}, which {} is rebuilt \
                             from: its cascades cannot be derived; restore {} with {p}, take \
                             a new baseline, or leave {} out",
                            t.table,
                            if image.origin.is_full() {
                                "baseline"
                            } else {
                                "table image"
                            },
                            image.id,
                            t.table,
                            t.table,
                            t.table
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The local paths of a baseline table's files in key order: read in place from a local
/// store, else downloaded (streamed) into `tmp` as `<stem>.<k>.parquet`. Each is checked
/// against the checksum its manifest recorded before anything reads it
/// ([`BaselineStore::verify`]): a damaged file fails the restore, naming it.
async fn fetch_files(
    store: &BaselineStore,
    image: &dbtrail_core::baseline::BaselineManifest,
    entry: &dbtrail_core::baseline::BaselineTable,
    tmp: &Path,
    stem: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (k, file) in entry.files().into_iter().enumerate() {
        let p = match store.local_file(&image.id, file) {
            Some(p) => p,
            None => {
                let p = tmp.join(format!("{stem}.{k}.parquet"));
                store.download(&image.id, file, &p).await?;
                p
            }
        };
        store.verify(image, file, &p).await?;
        out.push(p);
    }
    Ok(out)
}
