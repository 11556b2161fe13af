//! The command line: every command, option and help text of `noisefs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// NoiseFS: a privacy-preserving filesystem in which every stored block is noise.
///
/// Files become fixed-size blocks, encrypted and XORed with randomizer blocks shared with other files;
/// a `noisefs://` link (with its key) is all it takes to get them back.
#[derive(Debug, Parser)]
#[command(name = "noisefs", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Examples:\n  noisefs put ~/Documents/report.pdf\n  noisefs get 'noisefs://bafk…#key' -o report.pdf\n  noisefs repo stats",
    after_long_help = long_help()
)]
pub struct Cli {
    /// Repository folder [default: $NOISEFS_HOME, else $XDG_DATA_HOME/noisefs, else ~/.local/share/noisefs]
    #[arg(long, global = true, env = "NOISEFS_HOME", value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors: no progress bars or notes
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When another command holds the repository (one run while no daemon or mount owns it), wait
    /// up to this long for it (30s, 5m) instead of failing at once
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::fmt::parse_duration)]
    pub retry_lock: Option<std::time::Duration>,
    #[command(subcommand)]
    pub command: Command,
}

/// What `noisefs --help` adds below the options: examples, environment, configuration, exit codes.
fn long_help() -> String {
    format!(
        "Examples:
  noisefs put ~/Documents/report.pdf
  noisefs get 'noisefs://bafk…#key' -o report.pdf
  noisefs repo stats

Environment:
  NOISEFS_HOME      the repository folder (as --repo)
  XDG_DATA_HOME     the standard repository is $XDG_DATA_HOME/noisefs (else ~/.local/share/noisefs)
  NOISEFS_PASSWORD  the password for --password and password links (else it is asked for)
  RUST_LOG          log filter (e.g. noisefs=debug); overrides -v and -q
  NO_COLOR          no colour in log lines (none either when standard error is not a terminal)

Configuration: config.toml in the repository (edit it, then restart the daemon or mount):
  cache_mib = 64              the block cache, in MiB
  writeback_delay_ms = 2000   how long a written file waits before it is sealed
  [store]                     timeout_ms, retries, backoff_ms, breaker_failures, breaker_open_ms
  [sync]                      max_delete_percent = 50 (a pass deleting more waits for --confirm)
  [receive]                   max_size = \"1TiB\" (the most a received share may declare)
  [network]                   enabled (noisefs net on|off), listen, bootstrap, mdns, dht,
                              max_connections, serve_bytes_per_sec, fetch_timeout_ms,
                              keep_fetched_days = 7 (gc keeps unneeded fetched blocks)
  block_size and tuple_size are fixed at init.

{}

Manual pages: noisefs man --dir DIR; shell completions: noisefs completions SHELL",
        super::exit::TABLE
    )
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository (the standard location is otherwise created with defaults on first use)
    #[command(after_help = "Example:\n  noisefs init --block-size 256K")]
    Init {
        /// Block size: a power of two from 4K to 1M
        #[arg(long, default_value = "128K")]
        block_size: crate::block::BlockSize,
    },
    /// Store files or folders and print one link per argument
    #[command(
        after_help = "Examples:\n  noisefs put photo.jpg notes/\n  noisefs put --json big.iso\n  tar c src | noisefs put - --name src.tar\n  NOISEFS_PASSWORD=secret noisefs put --password diary.txt"
    )]
    Put {
        /// Files or folders (folders are stored recursively; symlinks inside them are kept as symlinks);
        /// `-` reads standard input
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The name recorded for standard input (`-`)
        #[arg(long, default_value = "stdin")]
        name: String,
        /// Protect the link with a password (read from NOISEFS_PASSWORD, else asked for)
        #[arg(long)]
        password: bool,
        /// Do not pin what is stored (`gc` may then remove it)
        #[arg(long)]
        no_pin: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Retrieve a file or folder from its link
    #[command(
        after_help = "Examples:\n  noisefs get 'noisefs://bafk…#key'\n  noisefs get 'noisefs://bafk…#key' -o ~/restored --force"
    )]
    Get {
        /// The link (or `-`, `file:PATH`, `env:NAME`: read from standard input, a file or a variable)
        link: String,
        /// Where to write it: a new path, an existing folder to write into, or `-` for standard
        /// output [default: its stored name in the current folder]
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Replace an existing file at the target (a folder is never replaced)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        password: PasswordFlag,
    },
    /// Write a file's content to standard output
    #[command(
        after_help = "Examples:\n  noisefs cat 'noisefs://bafk…#key' | less\n  noisefs cat --offset 1048576 --length 4096 'noisefs://bafk…#key' | xxd"
    )]
    Cat {
        /// The link of a file (or `-`, `file:PATH`, `env:NAME`)
        link: String,
        /// Start at this byte (only the blocks that hold the range are fetched)
        #[arg(long, value_name = "BYTES")]
        offset: Option<u64>,
        /// Write at most this many bytes
        #[arg(long, value_name = "BYTES")]
        length: Option<u64>,
        #[command(flatten)]
        password: PasswordFlag,
    },
    /// List a folder's entries (or describe a file)
    #[command(after_help = "Example:\n  noisefs ls 'noisefs://bafk…#key'")]
    Ls {
        /// The link (or `-`, `file:PATH`, `env:NAME`: read from standard input, a file or a variable)
        link: String,
        #[command(flatten)]
        password: PasswordFlag,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show what a link points at: kind, size, blocks, times
    #[command(after_help = "Example:\n  noisefs stat --json 'noisefs://bafk…#key'")]
    Stat {
        /// The link (or `-`, `file:PATH`, `env:NAME`: read from standard input, a file or a variable)
        link: String,
        #[command(flatten)]
        password: PasswordFlag,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Keep a link's blocks through `gc`, or list what is pinned (`pin ls`)
    #[command(
        after_help = "Examples:\n  noisefs pin 'noisefs://bafk…#key'\n  noisefs pin ls --json",
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Pin {
        #[command(subcommand)]
        list: Option<PinCommand>,
        /// The link (or `-`, `file:PATH`, `env:NAME`: read from standard input, a file or a variable)
        #[arg(required = true)]
        link: Option<String>,
        #[command(flatten)]
        password: PasswordFlag,
    },
    /// Stop keeping a link's blocks (`gc` removes what nothing else needs)
    #[command(after_help = "Example:\n  noisefs unpin 'noisefs://bafk…#key' && noisefs gc")]
    Unpin {
        /// The link (or `-`, `file:PATH`, `env:NAME`: read from standard input, a file or a variable)
        link: String,
    },
    /// Remove blocks that no pinned link needs
    #[command(after_help = "Example:\n  noisefs gc --dry-run")]
    Gc {
        /// Only report what would be removed
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Repository statistics and checks
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Work with the tree: the mutable folder hierarchy the mount shows
    #[command(subcommand)]
    Tree(TreeCommand),
    /// Keep local folders in two-way sync with tree folders
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Snapshot a tree file or folder and print a link others can receive
    #[command(
        after_help = "Examples:\n  noisefs share /photos/2026\n  NOISEFS_PASSWORD=secret noisefs share --password /notes.txt"
    )]
    Share {
        /// The tree path
        path: String,
        /// Protect the link with a password (read from NOISEFS_PASSWORD, else asked for)
        #[arg(long)]
        password: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Add a shared file or folder into the tree
    #[command(
        after_help = "Examples:\n  noisefs receive 'noisefs://bafk…#key'\n  noisefs receive --now 'noisefs://bafk…#key' /inbox/"
    )]
    Receive {
        /// The link (or `-`, `file:PATH`, `env:NAME`: read from standard input, a file or a variable)
        link: String,
        /// Where in the tree: an existing folder (the shared name is kept) or a new path [default: /]
        path: Option<String>,
        /// Read every block now instead of on first use
        #[arg(long)]
        now: bool,
        /// Refuse the share if its files declare more than this in all (e.g. 10GiB) [default: `[receive]
        /// max_size` in config.toml]
        #[arg(long, value_name = "SIZE", value_parser = crate::fmt::parse_size)]
        max_size: Option<u64>,
        #[command(flatten)]
        password: PasswordFlag,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Search the tree by name, content, type, size, date and tags
    #[command(
        after_help = "Query syntax (tantivy): every word is required; OR, -word (not), \"a phrase\", word*, and\nfields name:, content:, tag:, type:, ext:, path:, folder:, size:[1000 TO 5000].\n\nExamples:\n  noisefs search quarterly report\n  noisefs search --type image --modified-after 2026-01-01 --sort modified\n  noisefs search 'budget OR forecast' --path /work --tag urgent --json\n  noisefs search --name '*.pdf' --min-size 1M\n  noisefs search --reindex"
    )]
    Search {
        /// The query; none lists everything the filters let through
        query: Vec<String>,
        /// Names matching a pattern (`*.pdf`, `report-202?`), or containing this text; case-insensitive
        #[arg(long, value_name = "PATTERN")]
        name: Option<String>,
        /// Only inside this tree folder
        #[arg(long, value_name = "TREE PATH")]
        path: Option<String>,
        /// A media type (`text/markdown`) or its family (`image`, `text`, `video`); `inode/directory` for folders
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// A file extension (`pdf`)
        #[arg(long)]
        ext: Option<String>,
        /// Only entries with this tag (repeat for several)
        #[arg(long)]
        tag: Vec<String>,
        /// At least this size (`10K`, `1.5MiB`)
        #[arg(long, value_name = "SIZE", value_parser = crate::fmt::parse_size)]
        min_size: Option<u64>,
        /// At most this size
        #[arg(long, value_name = "SIZE", value_parser = crate::fmt::parse_size)]
        max_size: Option<u64>,
        /// Modified at or after (`2026-01-31`, `2026-01-31T08:00` UTC, or an age: `7d`, `12h`)
        #[arg(long, value_name = "DATE", value_parser = parse_date_now)]
        modified_after: Option<i64>,
        /// Modified before
        #[arg(long, value_name = "DATE", value_parser = parse_date_now)]
        modified_before: Option<i64>,
        /// Order of the hits
        #[arg(long, value_enum, default_value_t)]
        sort: crate::search::Sort,
        /// Hits to show
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Hits to skip (for the next page)
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Rebuild the index from the tree first
        #[arg(long)]
        reindex: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Tag tree files and folders (find them with `search --tag` or `tag:`)
    #[command(subcommand)]
    Tag(TagCommand),
    /// Show the daemon, the operation queue, sync sessions and store health
    #[command(after_help = "Example:\n  noisefs status --json")]
    Status {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Mount the tree as a folder (FUSE); the mount process owns the repository and serves the other commands
    #[command(
        after_help = "Examples:\n  noisefs mount ~/NoiseFS\n  noisefs mount --read-only --root /photos ~/Photos\n  sudo noisefs mount -o allow_other /srv/noisefs\n  noisefs mount --root 'noisefs://bafk…#key' ~/Shared\n  noisefs unmount ~/NoiseFS"
    )]
    Mount {
        /// An empty folder to mount on
        dir: PathBuf,
        /// Refuse every change
        #[arg(long)]
        read_only: bool,
        /// Show this tree folder as the root, or a `noisefs://` link (read-only; `-`, `file:PATH` or
        /// `env:NAME` read the link from there, so its key stays out of the process list)
        #[arg(long, value_name = "TREE PATH OR LINK")]
        root: Option<String>,
        /// Stay in the foreground (logs on standard error) instead of returning once mounted
        #[arg(long)]
        foreground: bool,
        /// Mount options, comma-separated: allow_other (every user; the kernel still checks modes),
        /// allow_root, uid=N, gid=N and umask=OOO (the owner and mode bits shown for every entry),
        /// suid, threads=N
        #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
        options: Vec<String>,
    },
    /// Unmount a mounted NoiseFS folder and wait until its process has stored its state
    #[command(after_help = "Example:\n  noisefs unmount ~/NoiseFS")]
    Unmount {
        /// The mounted folder
        dir: PathBuf,
    },
    /// Run as the repository's owner: seals written files, runs sync sessions and serves the other
    /// commands over a Unix socket in the repository (in the foreground, or with --detach in the
    /// background)
    #[command(
        after_help = "Examples:\n  noisefs daemon --detach\n  noisefs status\n  noisefs daemon stop\n\nAs a systemd user service: see docs/daemon.md."
    )]
    Daemon {
        /// Start in the background (its log goes to daemon.log in the repository) and return once it
        /// serves commands
        #[arg(long)]
        detach: bool,
        #[command(subcommand)]
        action: Option<DaemonCommand>,
    },
    /// Turn the network on or off, or show it (off in a new repository)
    #[command(subcommand)]
    Net(NetCommand),
    /// This node's peer id and the full addresses it listens on (give one to another node's
    /// `net on --peer` or `swarm connect`)
    #[command(after_help = "Example:\n  noisefs id --json")]
    Id {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The connected peers: address, agent, round trip, blocks and bytes exchanged
    #[command(after_help = "Example:\n  noisefs peers --json")]
    Peers {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Connect to or disconnect from a peer
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Search the announcements received (or, with --peers, list peers found by mDNS and the DHT)
    #[command(
        after_help = "Examples:\n  noisefs discover --topic 'media/**' --tags scifi\n  noisefs discover dune --since 24h --json\n  noisefs discover --peers"
    )]
    Discover {
        /// Words the title must contain
        words: Vec<String>,
        /// List peers found on the local network (mDNS, when on) and in the DHT's routing table instead
        #[arg(long, conflicts_with_all = ["topic", "tags", "category", "since", "publisher"])]
        peers: bool,
        /// Topic pattern (media/books, media/*, media/**); repeat for several
        #[arg(long)]
        topic: Vec<String>,
        /// Tags, comma-separated: announcements with more of them rank first
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// video, audio, document, image, software, data or other
        #[arg(long)]
        category: Option<crate::announce::Category>,
        /// Only announcements made within this long (24h, 7d)
        #[arg(long, value_parser = crate::fmt::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only this publisher's (a key as `noisefs publishers` prints it)
        #[arg(long)]
        publisher: Option<String>,
        /// Only content at least this large (e.g. 10M)
        #[arg(long, value_name = "SIZE", value_parser = crate::fmt::parse_size)]
        min_size: Option<u64>,
        /// Only content at most this large
        #[arg(long, value_name = "SIZE", value_parser = crate::fmt::parse_size)]
        max_size: Option<u64>,
        /// Most results shown
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Announce a link (or a tree path, shared first) under a topic for subscribers to find
    #[command(
        after_help = "Examples:\n  noisefs announce 'noisefs://bafk…#key' --topic media/books --tags scifi,classic --title Dune\n  noisefs announce /papers/thesis.pdf --topic docs/papers --ttl 30d\n  noisefs announce --private 'noisefs://bafk…#key' --topic media/video --as alias2"
    )]
    Announce {
        /// A `noisefs://` link, or a path in the tree (shared now)
        target: String,
        /// The topic (levels separated by `/`, e.g. media/books)
        #[arg(long)]
        topic: String,
        /// Tags, comma-separated (sent hashed in a filter: only who knows a tag can test for it)
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// The title shown [default: the file or folder's name]
        #[arg(long)]
        title: Option<String>,
        /// How long subscribers keep it (1m to 30d)
        #[arg(long, default_value = "7d", value_parser = crate::fmt::parse_duration)]
        ttl: std::time::Duration,
        /// Leave the key out: only the root block is announced, the key is given out of band
        #[arg(long)]
        private: bool,
        /// The publisher pseudonym to sign as (its key is made on first use)
        #[arg(long = "as", value_name = "NAME", default_value = crate::announce::keys::DEFAULT)]
        publisher: String,
        /// The category [default: from the media type]
        #[arg(long)]
        category: Option<crate::announce::Category>,
        /// How long to wait for a peer that follows the topic
        #[arg(long, default_value = "10s", value_parser = crate::fmt::parse_duration)]
        wait: std::time::Duration,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Follow a topic pattern: its announcements are kept, live and by catching up from peers
    #[command(
        after_help = "Examples:\n  noisefs subscribe 'media/**'\n  noisefs subscribe --list\n  noisefs subscribe --follow --json"
    )]
    Subscribe {
        /// A topic or pattern: media/books, media/* (one level), media/** (any depth)
        #[arg(required_unless_present_any = ["list", "follow"])]
        pattern: Option<String>,
        /// List the subscriptions
        #[arg(long, conflicts_with = "follow")]
        list: bool,
        /// Print announcements as they arrive, until interrupted (one per line, or JSON lines)
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop following a topic pattern (what was received stays until it expires)
    #[command(after_help = "Example:\n  noisefs unsubscribe 'media/**'")]
    Unsubscribe { pattern: String },
    /// Publishers whose announcements were received, and trusting or blocking one
    #[command(after_help = "Examples:\n  noisefs publishers\n  noisefs publishers --block np…")]
    Publishers {
        /// Mark this publisher trusted
        #[arg(long, value_name = "KEY", conflicts_with = "block")]
        trust: Option<String>,
        /// Block this publisher: its announcements are removed and refused from now on
        #[arg(long, value_name = "KEY")]
        block: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The peers the DHT names as holders of a link's root block
    #[command(after_help = "Example:\n  noisefs providers 'noisefs://bafk…#key'")]
    Providers {
        /// The `noisefs://` link, or its root block id (`-`, `file:PATH`, `env:NAME` read it from there)
        link: String,
        /// How long to search
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::fmt::parse_duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print a shell completion script
    #[command(after_help = "Example:\n  noisefs completions bash > /etc/bash_completion.d/noisefs")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write manual pages: noisefs(1) to standard output, or one page per command into a folder
    #[command(
        after_help = "Examples:\n  noisefs man | man -l -\n  noisefs man --dir ~/.local/share/man/man1"
    )]
    Man {
        /// Write noisefs.1, noisefs-put.1, noisefs-tree-ls.1, ... into this folder (created if missing)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Turn the network on: the daemon or mount (and a command that misses a block while none runs)
    /// starts a libp2p node that fetches missing blocks from peers and serves the blocks held here
    #[command(
        after_help = "Examples:\n  noisefs net on --peer /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…\n  noisefs net on --public\n  noisefs net on --listen /ip4/127.0.0.1/tcp/0 --dht server"
    )]
    On {
        /// Also connect to the public IPFS bootstrap peers (this announces the node to the world)
        #[arg(long)]
        public: bool,
        /// A peer to connect to at start, a multiaddr ending in /p2p/<peer id> (repeatable; adds
        /// to those configured)
        #[arg(long, value_name = "MULTIADDR")]
        peer: Vec<String>,
        /// Listen here instead (repeatable; default /ip4/0.0.0.0/tcp/4001 and udp/4001/quic-v1)
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Answer DHT queries: auto (once publicly reachable), server or client
        #[arg(long, value_name = "MODE", value_parser = ["auto", "server", "client"])]
        dht: Option<String>,
        /// Find peers on the local network by multicast DNS
        #[arg(long)]
        mdns: bool,
    },
    /// Turn the network off (the configured peers and addresses are kept for the next `net on`)
    Off,
    /// Whether the network is on, and the running node's id, addresses and peers
    Status {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Connect to a peer and keep the connection (a multiaddr ending in /p2p/<peer id>)
    #[command(after_help = "Example:\n  noisefs swarm connect /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…")]
    Connect {
        /// The peer's multiaddr
        addr: String,
    },
    /// Close the connections to a peer (its id, or a multiaddr ending in /p2p/<peer id>)
    Disconnect {
        /// The peer
        peer: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Stop the running daemon and wait until it has stored its state (a mount is ended with
    /// `noisefs unmount`)
    #[command(after_help = "Example:\n  noisefs daemon stop")]
    Stop,
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// Add tags to a tree file or folder
    #[command(after_help = "Example:\n  noisefs tag add /docs/report.pdf work 2026")]
    Add {
        /// The tree path
        path: String,
        /// The tags (no commas)
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Remove tags from a tree file or folder
    #[command(after_help = "Example:\n  noisefs tag rm /docs/report.pdf 2026")]
    Rm {
        /// The tree path
        path: String,
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// List the tags of a tree file or folder
    #[command(after_help = "Example:\n  noisefs tag ls /docs/report.pdf")]
    Ls {
        /// The tree path
        path: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// A date option relative to now.
fn parse_date_now(s: &str) -> Result<i64, String> {
    crate::fmt::parse_date(s, crate::clock::now_ms() / 1000)
}

#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// List the pinned links: root, name, size, when
    #[command(after_help = "Example:\n  noisefs pin ls")]
    Ls {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Where the bytes go (blocks by kind, the tree's small files), kept content, overhead, block reuse
    #[command(after_help = "Example:\n  noisefs repo stats --json")]
    Stats {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Rehash every block and report corrupt or missing ones (exit status 1 if any)
    #[command(after_help = "Example:\n  noisefs repo verify")]
    Verify {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum TreeCommand {
    /// List a tree folder (or describe a file)
    #[command(after_help = "Example:\n  noisefs tree ls /docs")]
    Ls {
        /// The tree path
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a tree folder
    #[command(after_help = "Example:\n  noisefs tree mkdir -p /docs/2026")]
    Mkdir {
        /// The tree path
        path: String,
        /// Create missing parents too, and accept an existing folder
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove a tree file, symlink or (empty, or with -r any) folder
    #[command(after_help = "Example:\n  noisefs tree rm -r /old")]
    Rm {
        /// The tree path
        path: String,
        /// Remove folders and everything below them
        #[arg(short, long)]
        recursive: bool,
    },
    /// Move or rename within the tree (into a folder if the target is one)
    #[command(after_help = "Example:\n  noisefs tree mv /docs/a.txt /archive/")]
    Mv {
        /// The tree path to move
        from: String,
        /// The new path, or an existing folder to move into
        to: String,
    },
    /// Store a local file or folder into the tree
    #[command(after_help = "Example:\n  noisefs tree import ~/Pictures /photos")]
    Import {
        /// The local file or folder
        local: PathBuf,
        /// The tree path: an existing folder (the local name is kept) or a new path
        #[arg(default_value = "/")]
        path: String,
    },
    /// Write a tree file or folder to a local path
    #[command(after_help = "Example:\n  noisefs tree export /photos ~/restored-photos")]
    Export {
        /// The tree path
        path: String,
        /// The local path to create, or an existing folder to export into
        local: PathBuf,
        /// Replace an existing file at the target (a folder is never replaced)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Start syncing a local folder with a tree folder (created if missing)
    #[command(after_help = "Example:\n  noisefs sync add ~/Documents /documents")]
    Add {
        /// The local folder
        local: PathBuf,
        /// The tree folder
        path: String,
    },
    /// List sync sessions
    #[command(after_help = "Example:\n  noisefs sync list --json")]
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show sessions in detail: state, last sync, errors, skipped paths, queued steps
    #[command(after_help = "Example:\n  noisefs sync status 1")]
    Status {
        /// Only this session
        id: Option<u64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop syncing a session until resumed
    Pause {
        /// The session
        id: u64,
    },
    /// Resume a paused session; with --confirm, also apply the deletions a held session waits for
    #[command(after_help = "Examples:\n  noisefs sync resume 1\n  noisefs sync resume --confirm 1")]
    Resume {
        /// The session
        id: u64,
        /// Apply the deletions the session holds (see `noisefs sync status`)
        #[arg(long)]
        confirm: bool,
    },
    /// Remove a session (both folders are left as they are)
    Remove {
        /// The session
        id: u64,
    },
    /// List the versions of a file that sync replaced or deleted (kept `[sync] keep_versions_days`)
    #[command(
        after_help = "Examples:\n  noisefs sync versions ~/Documents/report.txt\n  noisefs sync versions /documents/report.txt --json"
    )]
    Versions {
        /// The file: a path in a synced folder, or its tree path
        path: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Put back a version of a file that sync replaced or deleted: the newest, or the newest at or
    /// before --at (what the file holds now is kept as a version in turn)
    #[command(
        after_help = "Examples:\n  noisefs sync restore ~/Documents/report.txt\n  noisefs sync restore ~/Documents/report.txt --at '2026-12-01 09:30:00.250'"
    )]
    Restore {
        /// The file: a path in a synced folder, or its tree path
        path: String,
        /// A time as `sync versions` prints it (UTC), a date, or an age such as 2h or 3d
        #[arg(long)]
        at: Option<String>,
    },
    /// Sync now: with --once, every session (or one) until both sides agree, then exit; without,
    /// keep watching and syncing in the foreground until interrupted
    #[command(after_help = "Examples:\n  noisefs sync run --once\n  noisefs sync run --once 2")]
    Run {
        /// Only this session
        id: Option<u64>,
        /// Sync once and exit
        #[arg(long)]
        once: bool,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Machine-readable JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PasswordFlag {
    /// The link needs a password (read from NOISEFS_PASSWORD, else asked for)
    #[arg(long)]
    pub password: bool,
}
