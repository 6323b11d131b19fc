//! No import circles between the files of `src/` (issue 33).
//!
//! The graph is one of files: every `.rs` file the crates' module trees
//! reach from `src/lib.rs`, `src/main.rs` and `src/bin/*.rs`, test code
//! aside (a `#[cfg(test)]` item or module, and the files such a module
//! declares, are not read). A file points at another when it names it:
//! `crate::a::b` and `astaire::a::b` paths, `super::` and `self::` paths,
//! and paths that start with one of the file's own child modules, in
//! `use` items, code, types and macro arguments alike. A path goes to the
//! deepest module it names (`crate::view::View` is `src/view/mod.rs`;
//! a re-export there is an arrow of its own). One kind of arrow is left out:
//! a file's paths to the rooms that contain it (`super::Options` in
//! `src/resync/source.rs`, reaching `src/resync/mod.rs`). A room's
//! `mod.rs` is its door, declaring and wiring its files, and its files
//! may use what it defines; every other arrow counts, a door's arrows into
//! its own files too.
//!
//! The same holds between the top-level rooms (`src/view/`, `src/resync/`,
//! `src/addr.rs`, …; `src/main.rs` with `src/cli/` is the room `main.rs`).
//! `cargo test --test circles -- --nocapture` also prints the files and
//! the rooms by floor, leaves first: the rooms' is `ARCHITECTURE.md`'s order.

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Arrows between files: from → to → the first path that made the arrow
/// (`file:line path`), for the message.
type Arrows = BTreeMap<String, BTreeMap<String, String>>;

/// The circles of `arrows`: each strongly connected set of two files or
/// more, as one loop through all its arrows' shortest way back to its first
/// file (in name order), that file first. Sorted; empty when there are none.
fn circles(arrows: &Arrows) -> Vec<Vec<String>> {
    let (graph, _) = graph_of(arrows);
    let mut found: Vec<Vec<String>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|set| set.len() > 1 || set.iter().any(|&n| graph.contains_edge(n, n)))
        .map(|set| {
            let members: BTreeSet<NodeIndex> = set.iter().copied().collect();
            let start = *set.iter().min_by_key(|&&n| &graph[n]).expect("a set is never empty");
            shortest_loop(&graph, &members, start).into_iter().map(|n| graph[n].clone()).collect()
        })
        .collect();
    found.sort();
    found
}

/// The files of `arrows` by floor, leaves first: a file's floor is one
/// above the highest file it points at (floor 1 points at none); in name
/// order on a floor. `Err` names a file on a circle.
fn dependency_order(arrows: &Arrows) -> Result<Vec<(usize, String)>, String> {
    let (graph, _) = graph_of(arrows);
    let order = toposort(&graph, None).map_err(|c| graph[c.node_id()].clone())?;
    let mut floor: BTreeMap<NodeIndex, usize> = BTreeMap::new();
    // toposort puts a file before those it points at: walk it backwards.
    for &n in order.iter().rev() {
        let above = graph.neighbors(n).map(|m| floor[&m]).max().unwrap_or(0);
        floor.insert(n, above + 1);
    }
    let mut out: Vec<(usize, String)> = floor.into_iter().map(|(n, f)| (f, graph[n].clone())).collect();
    out.sort();
    Ok(out)
}

fn graph_of(arrows: &Arrows) -> (DiGraph<String, ()>, BTreeMap<String, NodeIndex>) {
    let mut graph = DiGraph::new();
    let mut index = BTreeMap::new();
    let names: BTreeSet<&String> =
        arrows.iter().flat_map(|(from, to)| std::iter::once(from).chain(to.keys())).collect();
    // Added in reverse name order: toposort and the searches then meet ties in name order.
    for name in names.into_iter().rev() {
        index.insert(name.clone(), graph.add_node(name.clone()));
    }
    for (from, to) in arrows {
        for target in to.keys() {
            graph.add_edge(index[from], index[target], ());
        }
    }
    (graph, index)
}

/// The arrows between top-level rooms: a file's room is its first folder
/// or file under `src/` (`src/resync/fetch.rs` is `resync`), and the
/// command's `src/main.rs` and `src/cli/` are one room, `main.rs`.
fn rooms(arrows: &Arrows) -> Arrows {
    let room = |file: &str| -> String {
        let inside = file.strip_prefix("src/").unwrap_or(file);
        match inside.split_once('/') {
            Some(("cli", _)) => "main.rs".to_owned(),
            Some(("bin", _)) => inside.to_owned(),
            Some((dir, _)) => dir.to_owned(),
            None => inside.trim_end_matches(".rs").replace("main", "main.rs"),
        }
    };
    let mut out = Arrows::new();
    for (from, to) in arrows {
        let entry = out.entry(room(from)).or_default();
        for (target, why) in to {
            if room(target) != room(from) {
                entry.entry(room(target)).or_insert_with(|| why.clone());
            }
        }
    }
    out
}

/// The shortest way from `start` back to itself inside `members`, `start`
/// first (breadth first, so a two-file circle prints as two files).
fn shortest_loop(graph: &DiGraph<String, ()>, members: &BTreeSet<NodeIndex>, start: NodeIndex) -> Vec<NodeIndex> {
    let mut came_from: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(at).filter(|n| members.contains(n)).collect();
        next.sort_by_key(|&n| &graph[n]);
        for n in next {
            if n == start {
                let mut path = vec![at];
                while let Some(&before) = came_from.get(path.last().expect("not empty")) {
                    path.push(before);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(n) {
                e.insert(at);
                queue.push_back(n);
            }
        }
    }
    vec![start]
}

/// A module: which crate (`lib` or a binary's root file) and its path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Module {
    krate: String,
    path: Vec<String>,
}

/// The module trees of every crate under `src`: module → its file.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut roots = vec![("lib".to_owned(), src.join("lib.rs")), ("main".to_owned(), src.join("main.rs"))];
    let mut bins: Vec<PathBuf> = std::fs::read_dir(src.join("bin"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "rs")).collect()
        })
        .unwrap_or_default();
    bins.sort();
    roots.extend(bins.into_iter().map(|p| (p.display().to_string(), p)));
    let mut out = BTreeMap::new();
    for (krate, root) in roots {
        let mut todo = vec![(Vec::new(), root)];
        while let Some((path, file)) = todo.pop() {
            let ast = parse(&file);
            let dir = match file.file_name().and_then(|n| n.to_str()) {
                Some("mod.rs" | "lib.rs" | "main.rs") => file.parent().expect("in src").to_owned(),
                _ if path.is_empty() => file.parent().expect("in src").to_owned(),
                _ => file.with_extension(""),
            };
            declared_files(&ast.items, &path, &dir, &mut |m, f| todo.push((m, f)), &mut |m| {
                out.insert(Module { krate: krate.clone(), path: m }, file.clone());
            });
            out.insert(Module { krate: krate.clone(), path }, file);
        }
    }
    out
}

/// Calls `file` for each non-test `mod x;` in `items` (its module path and
/// file) and `inline` for each non-test `mod x { … }`, recursively.
fn declared_files(
    items: &[syn::Item],
    path: &[String],
    dir: &Path,
    file: &mut dyn FnMut(Vec<String>, PathBuf),
    inline: &mut dyn FnMut(Vec<String>),
) {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if is_test(&m.attrs) {
            continue;
        }
        let mut sub = path.to_vec();
        sub.push(m.ident.to_string());
        match &m.content {
            Some((_, items)) => {
                inline(sub.clone());
                declared_files(items, &sub, &dir.join(m.ident.to_string()), file, inline);
            }
            None => {
                let flat = dir.join(format!("{}.rs", m.ident));
                let nested = dir.join(m.ident.to_string()).join("mod.rs");
                file(sub, if flat.exists() { flat } else { nested });
            }
        }
    }
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// `#[cfg(test)]`, or a `cfg` that needs `test` (`all(test, …)`).
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let text = a.meta.require_list().map(|l| l.tokens.to_string()).unwrap_or_default();
            text.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "test") && !text.contains("not")
        }
    })
}

/// Every path a file's non-test code names, with the module it is named
/// in and its line.
struct Paths {
    module: Vec<String>,
    found: Vec<(Vec<String>, Vec<String>, usize)>,
}

impl Paths {
    fn add(&mut self, segments: Vec<String>, line: usize) {
        self.found.push((self.module.clone(), segments, line));
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                self.add(prefix.iter().cloned().chain([n.ident.to_string()]).collect(), line(n.ident.span()))
            }
            syn::UseTree::Rename(r) => {
                self.add(prefix.iter().cloned().chain([r.ident.to_string()]).collect(), line(r.ident.span()))
            }
            syn::UseTree::Glob(g) => self.add(prefix.clone(), line(g.star_token.spans[0])),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }
}

fn line(span: proc_macro2::Span) -> usize {
    span.start().line
}

macro_rules! skip_tests {
    ($($visit:ident: $ty:ty,)*) => {$(
        fn $visit(&mut self, item: &'ast $ty) {
            if !is_test(&item.attrs) {
                syn::visit::$visit(self, item);
            }
        }
    )*};
}

impl<'ast> Visit<'ast> for Paths {
    skip_tests! {
        visit_item_fn: syn::ItemFn,
        visit_item_impl: syn::ItemImpl,
        visit_item_const: syn::ItemConst,
        visit_item_static: syn::ItemStatic,
        visit_item_struct: syn::ItemStruct,
        visit_item_enum: syn::ItemEnum,
        visit_item_trait: syn::ItemTrait,
        visit_item_type: syn::ItemType,
        visit_item_macro: syn::ItemMacro,
        visit_impl_item_fn: syn::ImplItemFn,
        visit_expr_block: syn::ExprBlock,
        visit_local: syn::Local,
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test(&m.attrs) {
            return;
        }
        if let Some((_, items)) = &m.content {
            self.module.push(m.ident.to_string());
            items.iter().for_each(|i| self.visit_item(i));
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_test(&u.attrs) {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            self.add(p.segments.iter().map(|s| s.ident.to_string()).collect(), line(p.segments[0].ident.span()));
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {
        // Doc links and derives name nothing the code uses.
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Macro arguments are tokens: find `crate::a::b`-shaped runs in them.
        let mut stack = vec![m.tokens.clone()];
        while let Some(tokens) = stack.pop() {
            let tokens: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
            let mut i = 0;
            while i < tokens.len() {
                match &tokens[i] {
                    proc_macro2::TokenTree::Group(g) => stack.push(g.stream()),
                    proc_macro2::TokenTree::Ident(id)
                        if ["crate", "super", "self", "astaire"].contains(&id.to_string().as_str()) =>
                    {
                        let mut segments = vec![id.to_string()];
                        let mut j = i + 1;
                        while let (
                            Some(proc_macro2::TokenTree::Punct(a)),
                            Some(proc_macro2::TokenTree::Punct(b)),
                            Some(proc_macro2::TokenTree::Ident(next)),
                        ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                        {
                            if a.as_char() != ':' || b.as_char() != ':' {
                                break;
                            }
                            segments.push(next.to_string());
                            j += 3;
                        }
                        if segments.len() > 1 {
                            self.add(segments, line(id.span()));
                        }
                        i = j - 1;
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// The arrows between the files of the crates under `root/src`, paths
/// relative to `root`.
fn arrows_of(root: &Path) -> Arrows {
    let modules = modules(&root.join("src"));
    let name = |f: &Path| f.strip_prefix(root).unwrap_or(f).display().to_string();
    let mut arrows = Arrows::new();
    let files: BTreeMap<&PathBuf, &Module> =
        modules.iter().filter(|(m, f)| modules_file_root(m, f, &modules)).map(|(m, f)| (f, m)).collect();
    for (file, home) in files {
        let mut paths = Paths { module: home.path.clone(), found: Vec::new() };
        paths.visit_file(&parse(file));
        arrows.entry(name(file)).or_default();
        for (at, segments, line) in paths.found {
            let Some((krate, absolute)) = absolute(&home.krate, &at, &segments, &modules) else { continue };
            // The deepest module the path names.
            let Some(target) = (0..=absolute.len())
                .rev()
                .find_map(|n| modules.get(&Module { krate: krate.clone(), path: absolute[..n].to_vec() }))
            else {
                continue;
            };
            let target_module = &modules.iter().find(|(_, f)| *f == target).expect("a file of the tree").0;
            let contains = krate == home.krate
                && home.path.starts_with(&target_module.path)
                && target_module.path.len() < home.path.len();
            if target == file || contains {
                continue;
            }
            arrows
                .entry(name(file))
                .or_default()
                .entry(name(target))
                .or_insert_with(|| format!("{}:{line} {}", name(file), segments.join("::")));
        }
    }
    arrows
}

/// Whether module `m` is the one whose file `f` is (not an inline module in it).
fn modules_file_root(m: &Module, f: &Path, modules: &BTreeMap<Module, PathBuf>) -> bool {
    m.path.is_empty()
        || modules
            .get(&Module { krate: m.krate.clone(), path: m.path[..m.path.len() - 1].to_vec() })
            .is_none_or(|parent| parent != f)
}

/// The crate and absolute module path `segments` names from module `at` of
/// `krate`; `None` for another crate's paths, a local name, or a path of
/// one segment that is not a `use` of a module.
fn absolute(
    krate: &str,
    at: &[String],
    segments: &[String],
    modules: &BTreeMap<Module, PathBuf>,
) -> Option<(String, Vec<String>)> {
    let first = segments.first()?;
    let (krate, mut base, rest) = match first.as_str() {
        "crate" => (krate.to_owned(), Vec::new(), &segments[1..]),
        "astaire" if krate != "lib" => ("lib".to_owned(), Vec::new(), &segments[1..]),
        "self" => (krate.to_owned(), at.to_vec(), &segments[1..]),
        "super" => {
            let supers = segments.iter().take_while(|s| *s == "super").count();
            (krate.to_owned(), at[..at.len().checked_sub(supers)?].to_vec(), &segments[supers..])
        }
        child if segments.len() > 1 => {
            let mut path = at.to_vec();
            path.push(child.to_owned());
            modules.get(&Module { krate: krate.to_owned(), path })?;
            (krate.to_owned(), at.to_vec(), segments)
        }
        _ => return None,
    };
    base.extend(rest.iter().cloned());
    Some((krate, base))
}

fn say(arrows: &Arrows, found: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (n, circle) in found.iter().enumerate() {
        out += &format!("circle {}: {}\n", n + 1, circle.join(" -> "));
        for (i, from) in circle.iter().enumerate() {
            let to = &circle[(i + 1) % circle.len()];
            out += &format!("  {from} -> {to}: {}\n", arrows[from][to]);
        }
    }
    out
}

#[test]
fn the_files_of_src_import_each_other_in_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let arrows = arrows_of(root);
    assert!(
        arrows.len() > 50 && arrows.contains_key("src/resync/source.rs"),
        "the module tree was not read: {arrows:?}"
    );
    let found = circles(&arrows);
    assert!(found.is_empty(), "import circles between the files of src/:\n{}", say(&arrows, &found));
    let order = dependency_order(&arrows).expect("no circle");
    println!("the files of src/ by floor, leaves first:");
    order.iter().for_each(|(floor, file)| println!("{floor:3} {file}"));
}

#[test]
fn the_rooms_of_src_import_each_other_in_no_circle() {
    let arrows = rooms(&arrows_of(Path::new(env!("CARGO_MANIFEST_DIR"))));
    assert!(arrows.contains_key("main.rs") && arrows.contains_key("view") && !arrows.contains_key("cli"), "{arrows:?}");
    let found = circles(&arrows);
    assert!(found.is_empty(), "import circles between the rooms of src/:\n{}", say(&arrows, &found));
    println!("the rooms of src/ by floor, leaves first (ARCHITECTURE.md's order):");
    for (floor, room) in dependency_order(&arrows).expect("no circle") {
        println!("{floor:3} {room}");
    }
}

/// `ARCHITECTURE.md`'s rooms table ("| floor | `room` | for |" rows under
/// "## Rooms, leaves first"), in its order.
fn rooms_table(text: &str) -> Vec<(usize, String)> {
    let section = text.split("## Rooms, leaves first").nth(1).unwrap_or("");
    let section = section.split("\n## ").next().unwrap_or("");
    section
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let floor = cells.next()?.parse().ok()?;
            Some((floor, cells.next()?.trim_matches('`').to_owned()))
        })
        .collect()
}

#[test]
fn architecture_lists_every_room_on_its_floor_leaves_first() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let computed: Vec<(usize, String)> = dependency_order(&rooms(&arrows_of(root)))
        .expect("no circle")
        .into_iter()
        .filter(|(_, room)| room != "lib")
        .collect();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let table = rooms_table(&text);
    assert_eq!(table, computed, "ARCHITECTURE.md's rooms table (left) against the code's floors (right)");
}

#[cfg(test)]
mod search {
    use super::*;

    fn arrows(pairs: &[(&str, &str)]) -> Arrows {
        let mut out = Arrows::new();
        for (from, to) in pairs {
            out.entry(from.to_string()).or_default().insert(to.to_string(), format!("{from} names {to}"));
            out.entry(to.to_string()).or_default();
        }
        out
    }

    fn names(found: &[&[&str]]) -> Vec<Vec<String>> {
        found.iter().map(|c| c.iter().map(|s| s.to_string()).collect()).collect()
    }

    #[test]
    fn a_line_of_arrows_is_no_circle_and_sorts_leaves_first() {
        let a = arrows(&[("main", "view"), ("view", "ring"), ("main", "ring"), ("plan", "view")]);
        assert!(circles(&a).is_empty());
        let floors = [(1, "ring"), (2, "view"), (3, "main"), (3, "plan")].map(|(f, n)| (f, n.to_owned()));
        assert_eq!(dependency_order(&a).unwrap(), floors);
    }

    #[test]
    fn two_files_that_name_each_other_are_a_circle() {
        let a = arrows(&[("placement", "view"), ("view", "placement"), ("view", "ring")]);
        assert_eq!(circles(&a), names(&[&["placement", "view"]]));
        assert!(dependency_order(&a).is_err());
    }

    #[test]
    fn a_long_circle_is_given_by_its_shortest_loop_and_two_circles_apart() {
        let a = arrows(&[
            ("fetch", "inject"),
            ("inject", "source"),
            ("source", "fetch"),
            ("source", "inject"),
            ("x", "y"),
            ("y", "x"),
            ("x", "fetch"),
        ]);
        assert_eq!(circles(&a), names(&[&["fetch", "inject", "source"], &["x", "y"]]));
    }

    #[test]
    fn rooms_are_the_first_folder_or_file_under_src_and_the_command_is_one() {
        let a = arrows(&[
            ("src/resync/fetch.rs", "src/resync/context.rs"),
            ("src/resync/fetch.rs", "src/view/mod.rs"),
            ("src/cli/args.rs", "src/resync/mod.rs"),
            ("src/main.rs", "src/cli/args.rs"),
            ("src/view/mod.rs", "src/addr.rs"),
        ]);
        let to = |r: &Arrows, from: &str| r[from].keys().cloned().collect::<Vec<_>>();
        let r = rooms(&a);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["addr", "main.rs", "resync", "view"]);
        assert_eq!(to(&r, "resync"), ["view"]);
        assert_eq!(to(&r, "main.rs"), ["resync"]);
        assert_eq!(to(&r, "view"), ["addr"]);
        // Two files of one room each pointing into the other's room: no
        // circle of files, a circle of rooms.
        let a = arrows(&[("src/a/x.rs", "src/b/y.rs"), ("src/b/z.rs", "src/a/w.rs")]);
        assert!(circles(&a).is_empty());
        assert_eq!(circles(&rooms(&a)), names(&[&["a", "b"]]));
    }

    #[test]
    fn the_rooms_table_is_read_in_its_order_and_only_under_its_heading() {
        let text = "# A\n| 1 | `x` | no |\n## Rooms, leaves first\n\ntext\n\n| floor | room | for |\n|---|---|---|\n\
                    | 1 | `addr` | a |\n| 2 | `view` | b |\n\n## Parts\n| 3 | `y` | no |\n";
        assert_eq!(rooms_table(text), [(1, "addr".to_owned()), (2, "view".to_owned())]);
    }

    #[test]
    fn a_file_that_names_itself_is_a_circle() {
        assert_eq!(circles(&arrows(&[("a", "a")])), names(&[&["a"]]));
    }

    #[test]
    fn paths_resolve_to_the_deepest_module_and_skip_the_rooms_that_contain_them() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("room")).unwrap();
        std::fs::create_dir_all(src.join("other")).unwrap();
        let write = |p: &str, text: &str| std::fs::write(src.join(p), text).unwrap();
        write("lib.rs", "pub mod room;\npub mod other;\n#[cfg(test)]\nmod tests;\n");
        write("main.rs", "fn main() { astaire::room::a::go(); }\n");
        write("tests.rs", "use crate::room::b::B;\n");
        write("room/mod.rs", "pub mod a;\npub mod b;\npub struct Door;\nfn f() -> a::A { todo!() }\n");
        write("room/a.rs", "use super::Door;\npub struct A(super::b::B);\n");
        write("room/b.rs", "pub struct B;\nfn g() { tracing::info!(\"{}\", crate::other::NAME); }\n#[cfg(test)]\nmod tests { use crate::room::a::A; }\n");
        write("other/mod.rs", "pub const NAME: &str = \"\";\n");
        let a = arrows_of(dir.path());
        let to = |from: &str| a[from].keys().cloned().collect::<Vec<_>>();
        assert_eq!(to("src/room/mod.rs"), ["src/room/a.rs"]);
        assert_eq!(to("src/room/a.rs"), ["src/room/b.rs"], "super::Door reaches its own door: no arrow");
        assert_eq!(to("src/room/b.rs"), ["src/other/mod.rs"], "a macro's path counts, test code does not");
        assert_eq!(to("src/main.rs"), ["src/room/a.rs"]);
        assert!(!a.contains_key("src/tests.rs"), "a #[cfg(test)] file is not read");
        assert!(circles(&a).is_empty());
        write("other/mod.rs", "pub const NAME: &str = \"\";\nuse crate::room::Door;\n");
        write(
            "room/mod.rs",
            "pub mod a;\npub mod b;\npub struct Door;\nfn f() -> a::A { todo!() }\nfn h() { crate::other::NAME; }\n",
        );
        let a = arrows_of(dir.path());
        assert_eq!(circles(&a), names(&[&["src/other/mod.rs", "src/room/mod.rs"]]));
        assert!(
            say(&a, &circles(&a)).contains("src/other/mod.rs -> src/room/mod.rs: src/other/mod.rs:2 crate::room::Door")
        );
    }
}
