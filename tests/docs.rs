//! Issue 33: links that stay true. Every relative link and `#anchor` in
//! README.md, ARCHITECTURE.md and docs/*.md resolves (a file that exists; a
//! heading of that file under GitHub's anchor rules), and every
//! `astaire SUBCOMMAND --flag` the docs show as code (a fenced block or an
//! inline code span) is a subcommand and a flag the built binary's `--help`
//! lists, so the docs and the CLI cannot drift apart. No network, no
//! memcached: the Markdown is read with pulldown-cmark, the binary only asked
//! for its help.

mod common;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Flags the binary takes but does not list in `--help`, each with the
/// subcommand it belongs to: clap's hidden alias of `--cluster-settings`
/// for the original command line. The test proves each is still taken
/// (`astaire SUB FLAG=x --help` exits 0), so this list cannot rot.
const HIDDEN_FLAGS: &[(&str, &str)] = &[("daemon", "--cluster-settings-file")];

fn markdown_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// GitHub's anchor for a heading's text: lowercase; letters, digits, `-`
/// and `_` kept, spaces made `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors a Markdown file's headings give, in order; a repeated one
/// gets `-1`, `-2` … as on GitHub.
fn anchors(markdown: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(markdown, markdown_options()) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let count = seen.entry(base.clone()).or_insert(0);
                out.push(if *count == 0 { base.clone() } else { format!("{base}-{count}") });
                *count += 1;
            }
            _ => {}
        }
    }
    out
}

/// A link or image target in a Markdown file, with its line.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    /// The path part, empty for `#anchor` alone.
    path: String,
    /// The part after `#`, if any.
    anchor: Option<String>,
}

fn line_of(markdown: &str, offset: usize) -> usize {
    markdown[..offset.min(markdown.len())].matches('\n').count() + 1
}

/// The relative links and images of a Markdown file (those with a scheme,
/// `http:`, `mailto:` and the like, are left out).
fn relative_links(markdown: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for (event, range) in Parser::new_ext(markdown, markdown_options()).into_offset_iter() {
        let dest = match event {
            Event::Start(Tag::Link { dest_url, .. }) | Event::Start(Tag::Image { dest_url, .. }) => dest_url,
            _ => continue,
        };
        let has_scheme = dest.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if has_scheme || dest.is_empty() {
            continue;
        }
        let (path, anchor) = match dest.split_once('#') {
            Some((path, anchor)) => (path.to_string(), Some(anchor.to_string())),
            None => (dest.to_string(), None),
        };
        out.push(Link { line: line_of(markdown, range.start), path, anchor });
    }
    out
}

/// An `astaire` command shown as code: its subcommand (None for the
/// original form without one) and the `--flags` it gives.
#[derive(Debug, PartialEq)]
struct Shown {
    line: usize,
    subcommand: Option<String>,
    flags: Vec<String>,
}

/// Whether a word runs the binary: `astaire`, a path to it, or
/// `ExecStart=/usr/bin/astaire`.
fn is_astaire(word: &str) -> bool {
    let program = word.rsplit('=').next().unwrap_or(word);
    program.rsplit('/').next() == Some("astaire")
}

/// The `astaire` commands in one line of shell (or a code span): the word
/// must be in command position (first, after `sudo` or environment
/// assignments, or after `|`, `&&`, `||`, `;`, `$`), so `systemctl reload
/// astaire` and the benchmark tables' `astaire` column are not commands.
/// A command ends at a separator outside `[…]` or at a `#` comment.
fn commands_in_line(text: &str, line: usize) -> Vec<Shown> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let separator = |w: &str| matches!(w, "|" | "&&" | "||" | ";" | "$");
    let mut out = Vec::new();
    let mut at_command = true;
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        if word.starts_with('#') {
            break;
        }
        if separator(word) {
            at_command = true;
            i += 1;
            continue;
        }
        if at_command && (word == "sudo" || (word.contains('=') && !word.starts_with('-') && !is_astaire(word))) {
            i += 1;
            continue;
        }
        if !(at_command && is_astaire(word)) {
            at_command = false;
            i += 1;
            continue;
        }
        // The command: a subcommand if the next word is one, then flags.
        let mut shown = Shown { line, subcommand: None, flags: Vec::new() };
        i += 1;
        if let Some(next) = words.get(i) {
            if next.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && next.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            {
                shown.subcommand = Some(next.to_string());
                i += 1;
            }
        }
        let mut depth = 0usize;
        while let Some(&word) = words.get(i) {
            if word.starts_with('#') || (depth == 0 && separator(word)) {
                break;
            }
            depth += word.matches('[').count();
            let bare = word.trim_start_matches('[').trim_end_matches([']', ',', '.', ';', ')']);
            depth = depth.saturating_sub(word.matches(']').count());
            if let Some(name) = bare.strip_prefix("--") {
                let name = name.split('=').next().unwrap_or(name);
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    shown.flags.push(format!("--{name}"));
                }
            }
            i += 1;
        }
        out.push(shown);
        at_command = false;
    }
    out
}

/// Every `astaire` command a Markdown file shows as code: in fenced or
/// indented blocks (lines joined at a trailing `\`) and in inline code.
fn shown_commands(markdown: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (event, range) in Parser::new_ext(markdown, markdown_options()).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                // The block's first line is the one after its fence.
                let first = line_of(markdown, range.start) + usize::from(matches!(kind, CodeBlockKind::Fenced(_)));
                block = Some((first, String::new()));
            }
            Event::Text(text) => {
                if let Some((_, body)) = block.as_mut() {
                    body.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((first, body)) = block.take() {
                    let mut joined = String::new();
                    let mut start = first;
                    for (n, text) in body.lines().enumerate() {
                        if joined.is_empty() {
                            start = first + n;
                        }
                        match text.trim_end().strip_suffix('\\') {
                            Some(head) => {
                                joined.push_str(head);
                                joined.push(' ');
                            }
                            None => {
                                joined.push_str(text);
                                out.extend(commands_in_line(&joined, start));
                                joined.clear();
                            }
                        }
                    }
                    out.extend(commands_in_line(&joined, start));
                }
            }
            Event::Code(text) if block.is_none() => out.extend(commands_in_line(&text, line_of(markdown, range.start))),
            _ => {}
        }
    }
    out
}

/// The long flags a `--help` text lists (`--name` as a whole word).
fn help_flags(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in help.match_indices("--") {
        if at > 0 && help[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = help[at + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        if !name.is_empty() {
            out.insert(format!("--{name}"));
        }
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, ARCHITECTURE.md and docs/*.md, relative to the repository.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    let mut guides: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| Path::new("docs").join(p.file_name().expect("file name")))
        .collect();
    guides.sort();
    files.extend(guides);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What is wrong with one file's links, given every doc's anchors.
fn broken_links(file: &Path, markdown: &str, anchors_of: &mut dyn FnMut(&Path) -> Option<Vec<String>>) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    for link in relative_links(markdown) {
        let target = if link.path.is_empty() {
            file.to_path_buf()
        } else if let Some(from_root) = link.path.strip_prefix('/') {
            PathBuf::from(from_root)
        } else {
            normalise(&dir.join(&link.path))
        };
        let shown = format!(
            "{}:{}: ({}{})",
            file.display(),
            link.line,
            link.path,
            link.anchor.as_ref().map(|a| format!("#{a}")).unwrap_or_default()
        );
        if !repo().join(&target).exists() {
            broken.push(format!("{shown}: {} does not exist", target.display()));
            continue;
        }
        let Some(anchor) = link.anchor else { continue };
        if target.extension().is_none_or(|e| e != "md") {
            continue;
        }
        match anchors_of(&target) {
            Some(list) if list.contains(&anchor) => {}
            _ => broken.push(format!("{shown}: {} has no heading with the anchor #{anchor}", target.display())),
        }
    }
    broken
}

/// `a/../b` → `b`, `./a` → `a` (the path need not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut cache: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut anchors_of = |path: &Path| -> Option<Vec<String>> {
        if let Some(list) = cache.get(path) {
            return Some(list.clone());
        }
        let text = std::fs::read_to_string(repo().join(path)).ok()?;
        let list = anchors(&text);
        cache.insert(path.to_path_buf(), list.clone());
        Some(list)
    };
    let (mut broken, mut checked) = (Vec::new(), 0);
    for file in doc_files() {
        let text = read(&file);
        checked += relative_links(&text).len();
        broken.extend(broken_links(&file, &text, &mut anchors_of));
    }
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
    // The README alone links each guide: far fewer would mean the parser
    // no longer sees the links.
    assert!(checked >= 50, "only {checked} relative links found in the docs");
}

#[test]
fn every_astaire_command_and_flag_the_docs_show_is_in_its_help() {
    // A subcommand is what the binary takes: `astaire SUB --help` exits 0
    // (whatever its help looks like); its flags are the ones that help lists.
    let mut helps: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut help = |sub: &str| helps.entry(sub.to_string()).or_insert_with(|| help_of(sub)).clone();
    let mut hidden: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (sub, flag) in HIDDEN_FLAGS {
        let out = common::astaire(&[sub, &format!("{flag}=x"), "--help"]);
        assert!(
            out.status.success(),
            "the hidden flag astaire {sub} {flag} is no longer taken: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        hidden.entry(sub).or_default().insert(flag.to_string());
    }
    // The original form without a subcommand runs `resync` or `daemon`
    // (src/cli/legacy.rs): its flags are theirs.
    let mut legacy = BTreeSet::new();
    for sub in ["", "resync", "daemon"] {
        legacy.extend(help(sub).unwrap_or_else(|| panic!("astaire {sub} --help failed")));
        legacy.extend(hidden.get(sub).cloned().unwrap_or_default());
    }

    let (mut wrong, mut flags_checked) = (Vec::new(), 0);
    for file in doc_files() {
        for shown in shown_commands(&read(&file)) {
            let at = format!("{}:{}", file.display(), shown.line);
            let known = match &shown.subcommand {
                Some(sub) => match help(sub) {
                    Some(mut flags) => {
                        flags.extend(hidden.get(sub.as_str()).cloned().unwrap_or_default());
                        flags
                    }
                    None => {
                        wrong.push(format!("{at}: `astaire {sub}` is not a subcommand (`astaire {sub} --help` fails)"));
                        continue;
                    }
                },
                None => legacy.clone(),
            };
            for flag in &shown.flags {
                flags_checked += 1;
                if !known.contains(flag) {
                    let sub = shown.subcommand.as_deref().unwrap_or("");
                    wrong.push(format!("{at}: `astaire {sub} {flag}`: {flag} is not in `astaire {sub} --help`"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} commands or flags the docs show that the binary does not have:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(flags_checked >= 30, "only {flags_checked} flags found in the docs' code");
}

/// The long flags `astaire SUB --help` lists (`astaire --help` for an
/// empty SUB), or None when the binary refuses: SUB is no subcommand.
fn help_of(sub: &str) -> Option<BTreeSet<String>> {
    let args: Vec<&str> = if sub.is_empty() { vec!["--help"] } else { vec![sub, "--help"] };
    let out = common::astaire(&args);
    out.status.success().then(|| help_flags(&String::from_utf8_lossy(&out.stdout)))
}

#[cfg(test)]
mod parsing {
    use super::*;

    #[test]
    fn slugs_follow_githubs_rules() {
        assert_eq!(slug("Exit codes"), "exit-codes");
        assert_eq!(
            slug("Alarms: through Clearwater's alarm agent, or INFORMs to snmp_ip"),
            "alarms-through-clearwaters-alarm-agent-or-informs-to-snmp_ip"
        );
        assert_eq!(slug("ketama, rendezvous and jump: proven"), "ketama-rendezvous-and-jump-proven");
        assert_eq!(slug("Resizing 3 → 4, step by step"), "resizing-3--4-step-by-step");
        assert_eq!(slug("  two  spaces"), "--two--spaces");
        assert_eq!(slug("Größe"), "größe");
    }

    #[test]
    fn anchors_take_code_in_headings_and_number_repeats() {
        let md = "# Top\n\n## The `--placement` flag\n\ntext\n\n## Speed\n\n### Speed\n\nSpeed\n-----\n";
        assert_eq!(anchors(md), ["top", "the---placement-flag", "speed", "speed-1", "speed-2"]);
    }

    #[test]
    fn relative_links_leave_out_urls_and_keep_anchors_and_images() {
        let md = "See [a](docs/a.md#x-y), [b](#local), [c](https://example.org/#z),\n[m](mailto:x@y), ![p](docs/p.svg) and [d](../d/).\n";
        let links = relative_links(md);
        assert_eq!(
            links,
            [
                Link { line: 1, path: "docs/a.md".into(), anchor: Some("x-y".into()) },
                Link { line: 1, path: String::new(), anchor: Some("local".into()) },
                Link { line: 2, path: "docs/p.svg".into(), anchor: None },
                Link { line: 2, path: "../d/".into(), anchor: None },
            ]
        );
    }

    #[test]
    fn broken_files_and_anchors_are_named() {
        let mut anchors_of = |p: &Path| (p == Path::new("docs/clearwater.md")).then(|| vec!["logs".to_string()]);
        let md = "[ok](clearwater.md#logs) [gone](clearwater.md#nope) [self](#nowhere) [none](nothing-here.md)\n";
        let broken = broken_links(Path::new("docs/operations.md"), md, &mut anchors_of);
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].contains("#nope"), "{broken:?}");
        assert!(broken[1].contains("#nowhere"), "{broken:?}");
        assert!(broken[2].contains("docs/nothing-here.md does not exist"), "{broken:?}");
    }

    #[test]
    fn commands_are_found_in_command_position_only() {
        let found = commands_in_line("sudo astaire wait-sync --timeout 3600 && systemctl reload astaire", 7);
        assert_eq!(found, [Shown { line: 7, subcommand: Some("wait-sync".into()), flags: vec!["--timeout".into()] }]);
        assert!(commands_in_line("1000000 keys × 100 B (3→4)   astaire --cpu-limit 5   11.75", 1).is_empty());
        assert!(commands_in_line("sudo service astaire wait-sync", 1).is_empty());
        let unit = commands_in_line("ExecStart=/usr/bin/astaire daemon --bandwidth-limit 50000000", 1);
        assert_eq!(unit[0].subcommand.as_deref(), Some("daemon"));
        assert_eq!(unit[0].flags, ["--bandwidth-limit"]);
    }

    #[test]
    fn flags_inside_brackets_alternatives_and_comments() {
        let found =
            commands_in_line("astaire migrate-memcached-config [FILE] [--in-place | --output FILE] # not --this", 1);
        assert_eq!(found[0].flags, ["--in-place", "--output"]);
        let legacy = commands_in_line("astaire --local-name=… --cluster-settings-file=… --daemon", 1);
        assert_eq!(legacy[0].subcommand, None);
        assert_eq!(legacy[0].flags, ["--local-name", "--cluster-settings-file", "--daemon"]);
        let piped = commands_in_line("astaire plan --json | jq . --not-astaires", 1);
        assert_eq!(piped[0].flags, ["--json"]);
        assert!(commands_in_line("astaire <command> --help", 1)[0].subcommand.is_none());
    }

    #[test]
    fn code_blocks_join_continued_lines_and_inline_code_counts() {
        let md = "Run `astaire status --json`.\n\n```sh\n$ astaire resync \\\n    --local-name 10.0.0.4:11211\nastaire plan --every-node\n```\n";
        let found = shown_commands(md);
        assert_eq!(
            found,
            [
                Shown { line: 1, subcommand: Some("status".into()), flags: vec!["--json".into()] },
                Shown { line: 4, subcommand: Some("resync".into()), flags: vec!["--local-name".into()] },
                Shown { line: 6, subcommand: Some("plan".into()), flags: vec!["--every-node".into()] },
            ]
        );
    }

    #[test]
    fn help_texts_give_whole_flags() {
        let flags = help_flags("      --cpu-limit <PERCENT>  x (see --full; not a--b)\n  -h, --help\n");
        assert_eq!(flags, ["--cpu-limit", "--full", "--help"].map(String::from).into());
    }
}
