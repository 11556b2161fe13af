//! The three-way planner: from the local folder's state, the tree folder's state and the state both had
//! at the last sync, the steps that make them equal. Pure: no I/O, so every case is a table row in tests.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What a path is on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathKind {
    File,
    Dir,
    Symlink,
}

/// One side's state of a path: its kind and a signature that changes whenever its content or
/// permission bits do (see [`super::sig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub kind: PathKind,
    pub sig: String,
}

/// Both sides' signatures at the last sync of a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub local: String,
    pub tree: String,
}

/// What to do with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Store the local file or symlink into the tree.
    Upload,
    /// Write the tree's file or symlink into the local folder.
    Download,
    MkdirTree,
    MkdirLocal,
    DeleteTree,
    DeleteLocal,
    /// Both sides changed differently: keep the tree's version under the name and the local one
    /// under a conflict name (which the next pass uploads).
    Conflict,
    /// Both sides hold a file nobody synced yet: equal content is recorded, else it is a conflict.
    Compare,
    /// The local file moved here from `from` (same inode, size and mtime): move the tree's file too.
    MoveTree,
    /// The tree's file moved here from `from` (same link and mode): move the local file too.
    MoveLocal,
    /// Both sides already agree: remember it.
    Record,
    /// Gone on both sides: forget it.
    Forget,
}

/// One planned step. `local` and `tree` are the signatures the step expects to find (empty: absent);
/// the executor skips a step whose expectations no longer hold, and the next pass plans again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub rel: String,
    pub action: Action,
    pub local: String,
    pub tree: String,
    /// For a move: where it comes from, and that path's signature the move expects (the tree's for
    /// [`Action::MoveTree`], the local one for [`Action::MoveLocal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<(String, String)>,
}

/// A tree signature that means "being written, not sealed yet": such paths wait for a later pass.
pub const BUSY: &str = "dirty";

/// Plans the steps that bring `local` and `tree` together, given `base`. Creations and updates come
/// parents first; deletions after them, children first.
pub fn plan(
    local: &BTreeMap<String, Side>,
    tree: &BTreeMap<String, Side>,
    base: &BTreeMap<String, Base>,
) -> Vec<Step> {
    let paths: BTreeSet<&String> = local.keys().chain(tree.keys()).chain(base.keys()).collect();
    let mut steps = Vec::new();
    let mut deletes = Vec::new();
    for rel in paths {
        let (l, t, b) = (local.get(rel), tree.get(rel), base.get(rel));
        if t.is_some_and(|t| t.sig == BUSY) {
            continue;
        }
        let Some(action) = decide(l, t, b) else { continue };
        let step = Step {
            rel: rel.clone(),
            action,
            local: l.map(|s| s.sig.clone()).unwrap_or_default(),
            tree: t.map(|s| s.sig.clone()).unwrap_or_default(),
            from: None,
        };
        if matches!(action, Action::DeleteTree | Action::DeleteLocal) {
            deletes.push(step);
        } else {
            steps.push(step);
        }
    }
    deletes.reverse();
    pair_moves(&mut steps, &mut deletes, base);
    steps.extend(deletes);
    steps
}

/// Turns a deletion and a creation of the same file into a move: a local file gone from one path
/// and new at another with the same inode, size and mtime (`mv`, including into another folder), or a
/// tree file gone from one path and new at another with the same content (link or inline bytes) and
/// mode.
fn pair_moves(steps: &mut [Step], deletes: &mut Vec<Step>, base: &BTreeMap<String, Base>) {
    let identity = |sig: &str| {
        let f: Vec<&str> = sig.split(':').collect();
        (f.len() == 6 && f[0] == "f").then(|| format!("{}:{}:{}", f[1], f[2], f[3]))
    };
    let has_content = |sig: &str| super::versions::content_of(sig).is_some();
    let mut used = vec![false; deletes.len()];
    for step in steps.iter_mut() {
        let found = match step.action {
            Action::Upload if step.tree.is_empty() && !base.contains_key(&step.rel) => {
                let Some(id) = identity(&step.local) else { continue };
                deletes.iter().enumerate().position(|(i, d)| {
                    !used[i]
                        && d.action == Action::DeleteTree
                        && base.get(&d.rel).and_then(|b| identity(&b.local)).as_ref() == Some(&id)
                })
            }
            Action::Download
                if step.local.is_empty() && !base.contains_key(&step.rel) && has_content(&step.tree) =>
            {
                deletes.iter().enumerate().position(|(i, d)| {
                    !used[i]
                        && d.action == Action::DeleteLocal
                        && base
                            .get(&d.rel)
                            .is_some_and(|b| b.tree == step.tree && b.local == d.local)
                })
            }
            _ => None,
        };
        let Some(i) = found else { continue };
        used[i] = true;
        let d = &deletes[i];
        (step.action, step.from) = match step.action {
            Action::Upload => (Action::MoveTree, Some((d.rel.clone(), d.tree.clone()))),
            _ => (Action::MoveLocal, Some((d.rel.clone(), d.local.clone()))),
        };
    }
    let mut i = 0;
    deletes.retain(|_| {
        i += 1;
        !used[i - 1]
    });
}

/// The action for one path.
fn decide(l: Option<&Side>, t: Option<&Side>, b: Option<&Base>) -> Option<Action> {
    use Action::*;
    let create_tree = |s: &Side| {
        if s.kind == PathKind::Dir {
            MkdirTree
        } else {
            Upload
        }
    };
    let create_local = |s: &Side| {
        if s.kind == PathKind::Dir {
            MkdirLocal
        } else {
            Download
        }
    };
    let both = |l: &Side, t: &Side| match (l.kind, t.kind) {
        (PathKind::Dir, PathKind::Dir) => Record,
        (PathKind::File, PathKind::File) => Compare,
        (PathKind::Symlink, PathKind::Symlink)
            if l.sig.strip_prefix("l:") == t.sig.strip_prefix("symlink:") =>
        {
            Record
        }
        _ => Conflict,
    };
    let Some(b) = b else {
        return match (l, t) {
            (Some(l), None) => Some(create_tree(l)),
            (None, Some(t)) => Some(create_local(t)),
            (Some(l), Some(t)) => Some(both(l, t)),
            (None, None) => None,
        };
    };
    let lsig = l.map_or("", |s| s.sig.as_str());
    let tsig = t.map_or("", |s| s.sig.as_str());
    let (lc, tc) = (
        !super::sig::same(&b.local, lsig),
        !super::sig::same(&b.tree, tsig),
    );
    Some(match (lc, tc, l, t) {
        (false, false, _, _) => return None,
        // Only the local side changed.
        (true, false, None, Some(_)) => DeleteTree,
        (true, false, Some(l), None) => create_tree(l),
        (true, false, Some(l), Some(t)) if l.kind != t.kind => Conflict,
        (true, false, Some(l), Some(_)) if l.kind == PathKind::Dir => MkdirTree, // its mode
        (true, false, Some(_), Some(_)) => Upload,
        // Only the tree changed.
        (false, true, Some(_), None) => DeleteLocal,
        (false, true, None, Some(t)) => create_local(t),
        (false, true, Some(l), Some(t)) if l.kind != t.kind => Conflict,
        (false, true, Some(_), Some(t)) if t.kind == PathKind::Dir => MkdirLocal, // its mode
        (false, true, Some(_), Some(_)) => Download,
        // Both changed: a deletion loses to an edit; two edits are compared.
        (_, _, None, None) => Forget,
        (_, _, None, Some(t)) => create_local(t),
        (_, _, Some(l), None) => create_tree(l),
        (_, _, Some(l), Some(t)) => both(l, t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn file(sig: &str) -> Option<Side> {
        Some(Side {
            kind: PathKind::File,
            sig: sig.into(),
        })
    }
    fn dir() -> Option<Side> {
        Some(Side {
            kind: PathKind::Dir,
            sig: "d".into(),
        })
    }
    fn tdir() -> Option<Side> {
        Some(Side {
            kind: PathKind::Dir,
            sig: "dir".into(),
        })
    }
    fn link(kind_prefix: &str, target: &str) -> Option<Side> {
        Some(Side {
            kind: PathKind::Symlink,
            sig: format!("{kind_prefix}{target}"),
        })
    }
    fn base(l: &str, t: &str) -> Option<Base> {
        Some(Base {
            local: l.into(),
            tree: t.into(),
        })
    }

    #[test]
    fn table_of_local_tree_and_base_states() {
        // (local, tree, base) -> action
        type Row = (Option<Side>, Option<Side>, Option<Base>, Option<Action>);
        let rows: Vec<Row> = vec![
            // Never synced.
            (file("L1"), None, None, Some(Upload)),
            (dir(), None, None, Some(MkdirTree)),
            (None, file("T1"), None, Some(Download)),
            (None, tdir(), None, Some(MkdirLocal)),
            (file("L1"), file("T1"), None, Some(Compare)),
            (dir(), tdir(), None, Some(Record)),
            (dir(), file("T1"), None, Some(Conflict)),
            (link("l:", "x"), link("symlink:", "x"), None, Some(Record)),
            (link("l:", "x"), link("symlink:", "y"), None, Some(Conflict)),
            // Synced and unchanged.
            (file("L1"), file("T1"), base("L1", "T1"), None),
            (dir(), tdir(), base("d", "dir"), None),
            // One side changed.
            (file("L2"), file("T1"), base("L1", "T1"), Some(Upload)),
            (file("L1"), file("T2"), base("L1", "T1"), Some(Download)),
            (None, file("T1"), base("L1", "T1"), Some(DeleteTree)),
            (file("L1"), None, base("L1", "T1"), Some(DeleteLocal)),
            (None, tdir(), base("d", "dir"), Some(DeleteTree)),
            (dir(), None, base("d", "dir"), Some(DeleteLocal)),
            (file("L2"), None, base("L1", ""), Some(Upload)),
            (dir(), None, base("", ""), Some(MkdirTree)),
            (None, file("T2"), base("", "T1"), Some(Download)),
            (None, tdir(), base("L1", ""), Some(MkdirLocal)),
            (dir(), tdir(), base("d", "x"), Some(MkdirLocal)),
            (dir(), tdir(), base("x", "dir"), Some(MkdirTree)),
            // Signatures recorded by an earlier version still match.
            (
                file("f:3:100:7:9:644"),
                file("T1 644"),
                base("f:3:100", "T1"),
                None,
            ),
            (
                file("f:3:100:7:9:644"),
                file("T1 600"),
                base("f:3:100", "T1 644"),
                Some(Download),
            ),
            (dir(), file("T1"), base("L1", "T1"), Some(Conflict)),
            (file("L1"), tdir(), base("L1", "T1"), Some(Conflict)),
            // Both changed.
            (file("L2"), file("T2"), base("L1", "T1"), Some(Compare)),
            (None, None, base("L1", "T1"), Some(Forget)),
            (None, file("T2"), base("L1", "T1"), Some(Download)),
            (file("L2"), None, base("L1", "T1"), Some(Upload)),
            (dir(), file("T2"), base("L1", "T1"), Some(Conflict)),
            // Being written in the tree: wait.
            (file("L2"), file(BUSY), base("L1", "T1"), None),
        ];
        for (i, (l, t, b, want)) in rows.into_iter().enumerate() {
            let mut lm = BTreeMap::new();
            let mut tm = BTreeMap::new();
            let mut bm = BTreeMap::new();
            if let Some(l) = l.clone() {
                lm.insert("p".to_string(), l);
            }
            if let Some(t) = t.clone() {
                tm.insert("p".to_string(), t);
            }
            if let Some(b) = b {
                bm.insert("p".to_string(), b);
            }
            let steps = plan(&lm, &tm, &bm);
            assert_eq!(steps.first().map(|s| s.action), want, "row {i}: {l:?} {t:?}");
            if let Some(s) = steps.first() {
                assert_eq!(s.local, l.map(|x| x.sig).unwrap_or_default(), "row {i}");
                assert_eq!(s.tree, t.map(|x| x.sig).unwrap_or_default(), "row {i}");
            }
        }
    }

    #[test]
    fn order_is_parents_first_and_deletions_children_first_last() {
        let mut local = BTreeMap::new();
        let mut tree = BTreeMap::new();
        let mut base = BTreeMap::new();
        for p in ["new", "new/a", "new/a/f"] {
            local.insert(
                p.to_string(),
                if p.ends_with('f') { file("L") } else { dir() }.unwrap(),
            );
        }
        for p in ["old", "old/x", "old/x/g"] {
            let (l, t) = if p.ends_with('g') {
                ("L", "T")
            } else {
                ("d", "dir")
            };
            tree.insert(
                p.to_string(),
                if p.ends_with('g') { file(t) } else { tdir() }.unwrap(),
            );
            base.insert(p.to_string(), base_of(l, t));
        }
        let order: Vec<(String, Action)> = plan(&local, &tree, &base)
            .into_iter()
            .map(|s| (s.rel, s.action))
            .collect();
        assert_eq!(
            order,
            vec![
                ("new".into(), MkdirTree),
                ("new/a".into(), MkdirTree),
                ("new/a/f".into(), Upload),
                ("old/x/g".into(), DeleteTree),
                ("old/x".into(), DeleteTree),
                ("old".into(), DeleteTree),
            ]
        );
    }

    #[test]
    fn a_deletion_and_a_creation_of_one_file_pair_into_a_move() {
        let mut local = BTreeMap::new();
        let mut tree = BTreeMap::new();
        let mut base = BTreeMap::new();
        // Locally, old.txt became new.txt (same inode, size, mtime; the rename changed the ctime).
        base.insert("old.txt".to_string(), base_of("f:5:100:42:1:644", "L1 644"));
        tree.insert("old.txt".to_string(), file("L1 644").unwrap());
        local.insert("new.txt".to_string(), file("f:5:100:42:2:644").unwrap());
        // In the tree, t1 became t2 (same link and mode); locally t1 is as synced.
        base.insert("t1".to_string(), base_of("f:3:7:9:1:600", "noisefs://x#k 600"));
        local.insert("t1".to_string(), file("f:3:7:9:1:600").unwrap());
        tree.insert("t2".to_string(), file("noisefs://x#k 600").unwrap());
        // Another inode is not a move.
        base.insert("gone".to_string(), base_of("f:5:100:43:1:644", "L3 644"));
        tree.insert("gone".to_string(), file("L3 644").unwrap());
        local.insert("other".to_string(), file("f:5:100:44:1:644").unwrap());
        let steps = plan(&local, &tree, &base);
        type Row<'a> = (&'a str, Action, Option<(String, String)>);
        let got: Vec<Row> = steps
            .iter()
            .map(|s| (s.rel.as_str(), s.action, s.from.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("new.txt", MoveTree, Some(("old.txt".into(), "L1 644".into()))),
                ("other", Upload, None),
                ("t2", MoveLocal, Some(("t1".into(), "f:3:7:9:1:600".into()))),
                ("gone", DeleteTree, None),
            ]
        );
    }

    fn base_of(l: &str, t: &str) -> Base {
        Base {
            local: l.into(),
            tree: t.into(),
        }
    }
}
