//! Files and folders in and out of a repository: [`put`] seals content into tuples and descriptor trees,
//! [`get`] opens links and streams content back, [`walk`] visits everything a link needs (for `gc`).

mod get;
mod put;
mod walk;

pub use get::{
    geometry, get_to, open, read_blocks, read_range, read_to, EntryWalk, Opened, MAX_FOLDER_DEPTH,
};
pub use put::{inline_data_max, FileInfo, PutResult, Sealer, Skipped};
pub use walk::{mark, Marks};

use std::sync::Arc;

/// Receives a count of bytes done; progress bars implement it.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A progress sink that ignores everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

/// Blocks sealed or opened at once: enough to keep both cores and the disk busy.
pub(crate) const PARALLEL_BLOCKS: usize = 8;
/// Tuples sealed between two commits of the state.
pub(crate) const COMMIT_EVERY: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockSize;
    use crate::descriptor::{Link, Meta};
    use crate::repo::{Config, Repo};
    use crate::store::LocalStore;

    fn repo(dir: &std::path::Path) -> Arc<Repo> {
        let cfg = Config {
            block_size: BlockSize::new(4096).unwrap(),
            ..Config::default()
        };
        Arc::new(Repo::init(&dir.join("repo"), cfg).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_folders_and_passwords_round_trip_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = counted.clone();
        let session = Sealer::new(
            repo.clone(),
            Arc::new(move |n| {
                c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }),
        );

        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let src = dir.path().join("f.txt");
        std::fs::write(&src, &data).unwrap();
        let res = session.put_path(&repo.hold().await, &src).await.unwrap();
        assert_eq!((res.size, res.files, res.dir), (100_000, 1, false));
        assert_eq!(counted.load(std::sync::atomic::Ordering::Relaxed), 100_000);
        let link: Link = res.link.parse().unwrap();
        let opened = open(repo.store(), &link, None).await.unwrap();
        assert_eq!(opened.name(), "f.txt");
        assert!(matches!(&opened.meta, Meta::File { media_type, .. } if media_type == "text/plain"));
        let out = dir.path().join("out");
        get_to(repo.store(), &opened, &out, false, &no_progress())
            .await
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert!(get_to(repo.store(), &opened, &out, false, &no_progress())
            .await
            .is_err());

        // Folders hold small files inline, files of a few blocks as inline tuples, larger ones by link.
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        let files = [("d/small", 100usize), ("d/mid", 10_000), ("d/sub/big", 100_000)];
        for (name, len) in files {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let res = session
            .put_path(&repo.hold().await, &dir.path().join("d"))
            .await
            .unwrap();
        assert_eq!((res.files, res.dir, res.size), (3, true, 110_100));
        let dlink: Link = res.link.parse().unwrap();
        let opened = open(repo.store(), &dlink, None).await.unwrap();
        let entries = opened.entries().await.unwrap();
        let by_name = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert!(by_name("small").data.is_some());
        assert_eq!(by_name("mid").tuples.as_ref().map(Vec::len), Some(3));
        assert!(by_name("sub").link().is_some());
        let sink = Box::new(std::io::sink());
        assert!(read_to(repo.store(), &opened, sink, "x".into(), &no_progress())
            .await
            .is_err());

        // The walk finds every block the folder needs: with everything else deleted it still comes back.
        let mut marks = Marks::default();
        mark(repo.store(), &dlink, &mut marks).await.unwrap();
        let mut removed = Vec::new();
        for id in repo.stack().list().await.unwrap() {
            if !marks.refs.contains_key(&id) {
                repo.stack().delete(&id).await.unwrap();
                removed.push(id);
            }
        }
        // As gc does: forget the removed blocks so they are no longer chosen as randomizers.
        repo.state().reconcile(&removed, &marks.refs).unwrap();
        repo.reset_pool();
        let out = dir.path().join("d-out");
        get_to(repo.store(), &opened, &out, false, &no_progress())
            .await
            .unwrap();
        for (name, len) in files {
            let got = std::fs::read(out.join(name.trim_start_matches("d/"))).unwrap();
            assert_eq!(got.len(), len, "{name}");
            assert!(
                got.iter().enumerate().all(|(i, b)| *b == (i * 7 % 256) as u8),
                "{name}"
            );
        }

        // Password wrapping (of a file put again, since the first one's blocks were just deleted).
        let res = session.put_path(&repo.hold().await, &src).await.unwrap();
        let link: Link = res.link.parse().unwrap();
        let wrapped = session
            .wrap_with_password(&repo.hold().await, &link, "pw")
            .await
            .unwrap();
        assert!(open(repo.store(), &wrapped, None).await.is_err());
        assert!(open(repo.store(), &wrapped, Some("nope")).await.is_err());
        let opened = open(repo.store(), &wrapped, Some("pw")).await.unwrap();
        assert_eq!(opened.root, link.root);
        assert!(session
            .wrap_with_password(&repo.hold().await, &wrapped, "pw")
            .await
            .is_err());
        // A password wrapper opened with its key directly is not a file or folder.
        let mut marks = Marks::default();
        mark(repo.store(), &wrapped, &mut marks).await.unwrap();
        assert_eq!(marks.refs.len(), 1);

        // Storing a special file is refused.
        assert!(session
            .put_path(&repo.hold().await, std::path::Path::new("/dev/null"))
            .await
            .is_err());
    }
}
