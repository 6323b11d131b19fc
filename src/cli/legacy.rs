//! The original Astaire's command lines, rewritten into today's: the
//! positional `astaire HOST:PORT CLUSTER_SETTINGS` runs `resync`, and the
//! original daemon's options without a subcommand run `daemon`.

/// Today's subcommands (and `help`), as clap knows them.
fn commands() -> Vec<String> {
    let cli = <super::args::Cli as clap::CommandFactory>::command();
    cli.get_subcommands().map(|c| c.get_name().to_owned()).chain(["help".to_owned()]).collect()
}
/// The original daemon's options: any of them without a subcommand means `daemon`.
const DAEMON_OPTIONS: [&str; 3] = ["--cluster-settings-file", "--pidfile", "--daemon"];
/// Options that may come before the positional pair and take a value.
const GLOBAL_WITH_VALUE: [&str; 2] = ["--log-level", "--log-file"];

/// `args` as today's command line (`args[0]` is the program).
pub fn normalise_args(mut args: Vec<String>) -> Vec<String> {
    let commands = commands();
    let has_subcommand = args.iter().skip(1).any(|a| commands.contains(a));
    let is_daemon_option = |a: &String| DAEMON_OPTIONS.iter().any(|o| a == o || a.starts_with(&format!("{o}=")));
    if !has_subcommand && args.iter().skip(1).any(is_daemon_option) {
        args.insert(1, "daemon".into());
        return args;
    }
    let mut positional = Vec::new();
    let mut i = 1;
    while let Some(a) = args.get(i) {
        if GLOBAL_WITH_VALUE.contains(&a.as_str()) {
            i += 2; // its value is not a positional
            continue;
        }
        if commands.contains(a) {
            return args;
        }
        if !a.starts_with('-') {
            positional.push(i);
        }
        i += 1;
    }
    if let [l, f] = positional[..] {
        let file = args.remove(f);
        let local = args.remove(l);
        args.splice(1..1, ["resync".into(), "--local-name".into(), local, "--cluster-settings".into(), file]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::normalise_args;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_subcommand_is_left_alone() {
        for c in super::commands() {
            assert_eq!(normalise_args(args(&["astaire", &c, "a", "b"])), args(&["astaire", &c, "a", "b"]), "{c}");
        }
        assert!(super::commands().contains(&"migrate-memcached-config".to_owned()));
    }

    #[test]
    fn positional_form_becomes_resync() {
        assert_eq!(
            normalise_args(args(&["astaire", "10.0.0.4:11211", "/etc/cs"])),
            args(&["astaire", "resync", "--local-name", "10.0.0.4:11211", "--cluster-settings", "/etc/cs"])
        );
        assert_eq!(
            normalise_args(args(&["astaire", "--log-level", "5", "resync", "--full"])),
            args(&["astaire", "--log-level", "5", "resync", "--full"])
        );
    }

    /// The log directory is the option's value, not a third positional.
    #[test]
    fn global_options_keep_their_values() {
        assert_eq!(
            normalise_args(args(&["astaire", "--log-file", "/var/log/astaire", "10.0.0.4:11211", "/etc/cs"])),
            args(&[
                "astaire",
                "resync",
                "--local-name",
                "10.0.0.4:11211",
                "--cluster-settings",
                "/etc/cs",
                "--log-file",
                "/var/log/astaire"
            ])
        );
        assert_eq!(
            normalise_args(args(&["astaire", "--log-file=/l", "--log-level", "3", "h:1", "/cs"]))[..5],
            args(&["astaire", "resync", "--local-name", "h:1", "--cluster-settings"])[..]
        );
    }

    #[test]
    fn original_daemon_options_become_daemon() {
        assert_eq!(
            normalise_args(args(&["astaire", "--cluster-settings-file=/etc/cs", "--daemon"])),
            args(&["astaire", "daemon", "--cluster-settings-file=/etc/cs", "--daemon"])
        );
    }
}
