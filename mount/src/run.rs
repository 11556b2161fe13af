//! A mount's life: open the repository, start the engine and the control socket, mount, serve until
//! SIGINT/SIGTERM or an unmount, then unmount and leave the queued work persisted.

use std::path::PathBuf;

use anyhow::{bail, Context};
use fuser::{Config, MountOption, SessionACL};
use noisefs::descriptor::Link;
use noisefs::engine::Engine;
use noisefs::node::Node;
use noisefs::{share, tree};

use crate::announce::AnnounceDirs;
use crate::fs::{NoiseFs, Show};
use crate::search::SearchDirs;
use crate::virt::{Router, ANNOUNCE, SEARCH};

/// What to mount and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository folder.
    pub repo: PathBuf,
    pub mountpoint: PathBuf,
    pub read_only: bool,
    /// A tree folder to show as the root, or a `noisefs://` link to show (read-only).
    pub root: Option<String>,
    /// FUSE worker threads.
    pub threads: usize,
    /// Who besides the mounting user may use the mount.
    pub access: Access,
    /// Owner and mode bits shown in place of the stored ones.
    pub show: Show,
    /// Honour setuid and setgid bits when running programs from the mount (`-o suid`; root only).
    pub suid: bool,
}

/// Who may use a mount (the kernel checks modes either way: `default_permissions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Access {
    /// The user who mounted it (FUSE's default).
    #[default]
    Owner,
    /// That user and root (`allow_root`).
    Root,
    /// Every user (`allow_other`; for a user other than root, /etc/fuse.conf must say
    /// `user_allow_other`).
    Other,
}

impl Options {
    /// The options for mounting `repo` on `mountpoint` read-write, with everything else as default.
    pub fn new(repo: PathBuf, mountpoint: PathBuf) -> Options {
        Options {
            repo,
            mountpoint,
            read_only: false,
            root: None,
            threads: 4,
            access: Access::Owner,
            show: Show::default(),
            suid: false,
        }
    }

    /// Applies one mount option of an `-o` list (`ro`, `allow_other`, `uid=1000`, ...). Options that
    /// mount(8) and fstab pass and that need nothing from us are accepted and ignored.
    pub fn apply(&mut self, o: &str) -> Result<(), String> {
        let id = |k: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{k}={v}: expected a numeric id"))
        };
        match o.split_once('=') {
            None if o == "ro" => self.read_only = true,
            None if o == "rw" => self.read_only = false,
            None if o == "allow_other" => self.access = Access::Other,
            None if o == "allow_root" => self.access = Access::Root,
            None if o == "suid" => self.suid = true,
            None if o == "nosuid" => self.suid = false,
            Some(("root", v)) => self.root = Some(v.to_string()),
            Some(("threads", v)) => {
                self.threads = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("threads={v}: expected a number from 1 to 64"))?
            }
            Some(("uid", v)) => self.show.uid = Some(id("uid", v)?),
            Some(("gid", v)) => self.show.gid = Some(id("gid", v)?),
            Some(("umask", v)) => {
                self.show.umask = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| format!("umask={v}: expected octal permission bits such as 022"))?,
                )
            }
            // The mount is always nodev: device nodes in it are metadata.
            None if [
                "defaults",
                "auto",
                "noauto",
                "user",
                "users",
                "nouser",
                "nofail",
                "_netdev",
                "exec",
                "noexec",
                "nodev",
                "atime",
                "noatime",
                "relatime",
                "async",
                "default_permissions",
            ]
            .contains(&o) => {}
            None if o == "dev" => {
                return Err(
                    "dev: device nodes in a NoiseFS mount are metadata; the mount is always nodev".into(),
                )
            }
            _ => return Err(format!("unknown mount option {o:?}")),
        }
        Ok(())
    }
}

/// Mounts and serves until unmounted. `ready` is told once the mount is up (or why it failed), so a
/// backgrounded helper can report to the shell that started it.
pub fn run(opts: Options, ready: &mut dyn FnMut(Result<(), String>)) -> anyhow::Result<()> {
    let result = prepare(&opts);
    let (rt, node, shown, read_only) = match result {
        Ok(v) => v,
        Err(e) => {
            ready(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    let engine = node.engine().clone();
    let root = shown.ino;
    // A mounted link has no /.search: the index covers the user's own tree, not the link.
    let search = match engine.search() {
        Ok(_) if shown.scratch.is_some() => None,
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "search index unavailable: /.search stays empty");
            None
        }
    };
    let mut virt = Router::default();
    if let Some(s) = search {
        let prefix = engine.tree().path_of(root).unwrap_or_else(|_| "/".into());
        virt = virt.with(SEARCH, Box::new(SearchDirs::new(s, rt.handle().clone(), prefix)));
    }
    // A mounted link has no /.announce either: subscriptions are the repository's.
    if shown.scratch.is_none() {
        match engine.announcements() {
            Ok(a) => {
                let store = engine.repo().store().clone();
                virt = virt.with(
                    ANNOUNCE,
                    Box::new(AnnounceDirs::new(a, store, rt.handle().clone())),
                );
            }
            Err(e) => tracing::warn!(error = %e, "announcements unavailable: /.announce stays empty"),
        }
    }
    let fs = NoiseFs::new(
        engine.tree().clone(),
        rt.handle().clone(),
        root,
        read_only,
        virt,
        opts.show,
    );
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("noisefs:{}", opts.repo.display())),
        MountOption::Subtype("noisefs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    if !opts.suid {
        config.mount_options.push(MountOption::NoSuid);
    }
    config.acl = match opts.access {
        Access::Owner => SessionACL::Owner,
        Access::Root => SessionACL::RootAndOwner,
        Access::Other => SessionACL::All,
    };
    config.n_threads = Some(opts.threads.max(1));
    // One /dev/fuse descriptor per worker thread: no thundering herd on a shared one.
    config.clone_fd = true;
    let mut session = match fuser::Session::new(fs, &opts.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            let hint = if opts.access != Access::Owner && !is_root() {
                "allow_other and allow_root need `user_allow_other` in /etc/fuse.conf; or is it already mounted, or busy?"
            } else {
                "is it already mounted, or busy?"
            };
            let msg = format!("cannot mount on {}: {e} ({hint})", opts.mountpoint.display());
            ready(Err(msg.clone()));
            bail!(msg);
        }
    };
    let mut unmounter = session.unmount_callable();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let fuse = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let r = session.run();
            let _ = done_tx.send(());
            r
        })
        .context("cannot start the FUSE session thread")?;
    tracing::info!(mountpoint = %opts.mountpoint.display(), read_only, "mounted");
    ready(Ok(()));

    let served = rt.block_on(async {
        let stop = async move {
            let signal = match noisefs::node::shutdown_signal() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch for signals");
                    let _ = done_rx.await;
                    return;
                }
            };
            tokio::select! {
                () = signal => tracing::info!("signal received: unmounting"),
                _ = done_rx => tracing::info!("unmounted by the kernel"),
            }
        };
        node.run(stop).await
    });
    if let Err(e) = unmounter.unmount() {
        tracing::debug!(error = %e, "unmount after the session ended");
    }
    match fuse.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the FUSE session ended with an error"),
        Err(_) => tracing::warn!("the FUSE session thread panicked"),
    }
    if let Some(name) = &shown.scratch {
        // The link leaves the tree as it was (and a crash's leftovers go at the next open).
        if let Err(e) = engine.tree().remove_all(tree::SCRATCH, name) {
            tracing::warn!(error = %e, "could not remove the mounted link from the scratch folder");
        }
    }
    served?;
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The tree folder a mount shows.
struct Shown {
    ino: u64,
    /// For a mounted link: its folder's name in the tree's scratch folder, removed at unmount.
    scratch: Option<String>,
}

type Prepared = (tokio::runtime::Runtime, Node, Shown, bool);

/// Checks the mount point, opens the repository and finds the root to show.
fn prepare(opts: &Options) -> anyhow::Result<Prepared> {
    let meta = std::fs::metadata(&opts.mountpoint).with_context(|| {
        format!(
            "mount point {} does not exist; create it first",
            opts.mountpoint.display()
        )
    })?;
    if !meta.is_dir() {
        bail!("mount point {} is not a folder", opts.mountpoint.display());
    }
    let mut entries = std::fs::read_dir(&opts.mountpoint).with_context(|| {
        format!(
            "cannot read mount point {} (is it a stale mount? try `noisefs unmount`)",
            opts.mountpoint.display()
        )
    })?;
    if entries.next().is_some() {
        bail!(
            "mount point {} is not empty; mount on an empty folder",
            opts.mountpoint.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (node, shown) = rt.block_on(async {
        let node = Node::open(&opts.repo)?.mounted_on(&opts.mountpoint);
        let shown = find_root(node.engine(), opts.root.as_deref()).await?;
        anyhow::Ok((node, shown))
    })?;
    let read_only = opts.read_only || shown.scratch.is_some();
    Ok((rt, node, shown, read_only))
}

/// The tree folder to show as the root: the whole tree, a tree folder, or a link received into the
/// tree's scratch folder (read-only, in no folder of the user's tree, gone at unmount).
async fn find_root(engine: &Engine, root: Option<&str>) -> anyhow::Result<Shown> {
    let t = engine.tree();
    let Some(root) = root else {
        return Ok(Shown {
            ino: tree::ROOT,
            scratch: None,
        });
    };
    if !root.starts_with(noisefs::descriptor::SCHEME) {
        let ino = t
            .resolve(root)
            .with_context(|| format!("no tree folder {root} to mount"))?;
        if t.getattr(ino)?.kind != tree::Kind::Dir {
            bail!("{root} is not a folder; mount a folder");
        }
        return Ok(Shown { ino, scratch: None });
    }
    let link: Link = root.parse()?;
    let password = std::env::var("NOISEFS_PASSWORD").ok();
    let opened = noisefs::transfer::open(engine.repo().store(), &link, password.as_deref())
        .await
        .context("cannot open the link")?;
    let is_dir = matches!(opened.meta, noisefs::descriptor::Meta::Dir { .. });
    let me = t.getattr(tree::ROOT)?;
    let hold = engine.repo().hold().await;
    let label = format!("the link {}", link.root);
    let (ino, name) = if is_dir {
        // The folder itself is the root shown.
        let name = format!("link-{}", link.root);
        share::receive_into(
            engine,
            &hold,
            opened,
            tree::SCRATCH,
            &name,
            &label,
            &Default::default(),
        )
        .await
        .context("cannot receive the link")?;
        (t.lookup(tree::SCRATCH, &name)?.ino, name)
    } else {
        // A file is shown in a folder of its own.
        let (holder, name) = t.mkdir_scratch("link", 0o755, me.uid, me.gid)?;
        let file = match opened.name() {
            "" => link.root.to_string(),
            n => n.to_string(),
        };
        if let Err(e) =
            share::receive_into(engine, &hold, opened, holder, &file, &label, &Default::default()).await
        {
            let _ = t.remove_all(tree::SCRATCH, &name);
            return Err(e).context("cannot receive the link");
        }
        (holder, name)
    };
    Ok(Shown {
        ino,
        scratch: Some(name),
    })
}
