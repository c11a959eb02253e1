//! The command line: `--help` and man/pop3d.8 list the same options, and bad options are
//! refused with exit status 2 and a message that names the problem.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::maildir::run_bounded;
use support::temp_dir::TempDir;

/// How long any one run of the binary may take: every run here should end at once, and one that
/// starts serving instead must not hang the test suite.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// What one run of pop3d did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs pop3d with `args`, killing it if it has not exited within [`RUN_LIMIT`].
fn pop3d(args: &[&str]) -> Run {
    let run = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(args)
            .env_remove("POP3D_LOG"),
        RUN_LIMIT,
    );
    Run {
        code: run.status.code(),
        stdout: String::from_utf8_lossy(&run.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
    }
}

/// One option as a listing shows it: short name (may be empty), long name, value name (may be
/// empty). Printed as `-l --listen ADDR`, so that a difference reads plainly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OptionEntry {
    short: String,
    long: String,
    value: String,
}

impl std::fmt::Display for OptionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.short.is_empty() {
            write!(f, "-{} ", self.short)?;
        }
        write!(f, "--{}", self.long)?;
        if !self.value.is_empty() {
            write!(f, " {}", self.value)?;
        }
        Ok(())
    }
}

/// The options of a `--help` text, each with the help text that follows it (wrapped lines
/// joined).
///
/// getopts prints an option at an indent of 4 (`-l, --listen ADDR`) or 8 (`--fail-delay SECS`,
/// no short form), then its description after two or more spaces or on the next lines, which are
/// indented further.
fn help_options(help: &str) -> Vec<(OptionEntry, String)> {
    let mut found: Vec<(OptionEntry, String)> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        if line.trim().is_empty() {
            break;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent < 12 && text.starts_with('-') {
            let (head, description) = split_help_head(text);
            found.push((parse_help_head(head), description.trim().to_owned()));
        } else if let Some((_, description)) = found.last_mut() {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str(text);
        } else {
            panic!("--help: text before the first option: {line:?}");
        }
    }
    found
}

/// Splits `-l, --listen ADDR   text...` into the option part and its description. getopts
/// pads to a column, leaving a single space when the option part just fills it, so the option
/// part is its dash-words and at most one value name (capitals, maybe in brackets).
fn split_help_head(text: &str) -> (&str, &str) {
    let mut end = 0;
    let mut seen_value = false;
    for (start, word) in word_spans(text) {
        let is_name = word.starts_with('-');
        let is_value = !seen_value
            && word
                .trim_matches(|c| c == '[' || c == ']')
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '-')
            && word.chars().any(|c| c.is_ascii_uppercase());
        if is_name {
            end = start + word.len();
        } else if is_value {
            seen_value = true;
            end = start + word.len();
        } else {
            break;
        }
    }
    (&text[..end], &text[end..])
}

/// Each whitespace-separated word of `text` with its byte offset.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(' ')
        .scan(0, |offset, word| {
            let start = *offset;
            *offset += word.len() + 1;
            Some((start, word))
        })
        .filter(|(_, w)| !w.is_empty())
}

/// `-l, --listen ADDR` or `--fail-delay SECS` or `-h, --help`.
fn parse_help_head(head: &str) -> OptionEntry {
    let mut entry = OptionEntry {
        short: String::new(),
        long: String::new(),
        value: String::new(),
    };
    for word in head.split_whitespace() {
        let word = word.trim_end_matches(',');
        if let Some(long) = word.strip_prefix("--") {
            entry.long = long.to_owned();
        } else if let Some(short) = word.strip_prefix('-') {
            entry.short = short.to_owned();
        } else {
            entry.value = word.to_owned();
        }
    }
    assert!(!entry.long.is_empty(), "--help: no long name in {head:?}");
    entry
}

/// The options of the man page's OPTIONS section: each `.It Fl ...` line, with the text of its
/// item (up to the next `.It` or the end of the list).
///
/// An item is written `.It Fl l , Fl -listen Ar ADDR`, or `.It Fl -fail-delay Ar SECS` for an
/// option with no short form; `\-` is accepted for `-`.
fn man_options(page: &str) -> Vec<(OptionEntry, String)> {
    let mut found: Vec<(OptionEntry, String)> = Vec::new();
    let mut in_section = false;
    let mut depth = 0;
    for line in page.lines() {
        if let Some(name) = line.strip_prefix(".Sh ") {
            in_section = name.trim() == "OPTIONS";
            continue;
        }
        if !in_section {
            continue;
        }
        // Only the items of the outermost list are options.
        if line.starts_with(".Bl") {
            depth += 1;
        } else if line.starts_with(".El") {
            depth -= 1;
        }
        if depth == 1 && line.starts_with(".It") {
            let words: Vec<&str> = line.split_whitespace().skip(1).collect();
            assert_eq!(
                words.first(),
                Some(&"Fl"),
                "man/pop3d.8: an OPTIONS item that is not an option: {line:?}"
            );
            found.push((parse_man_item(&words, line), String::new()));
        } else if let Some((_, body)) = found.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    found
}

fn parse_man_item(words: &[&str], line: &str) -> OptionEntry {
    let mut entry = OptionEntry {
        short: String::new(),
        long: String::new(),
        value: String::new(),
    };
    let mut words = words.iter();
    while let Some(&word) = words.next() {
        match word {
            "Fl" => {
                let name = words
                    .next()
                    .unwrap_or_else(|| panic!("Fl without a name: {line:?}"));
                let name = name.replace("\\-", "-");
                match name.strip_prefix('-') {
                    Some(long) => entry.long = long.to_owned(),
                    None => entry.short = name,
                }
            }
            "Ar" => {
                let value = words
                    .next()
                    .unwrap_or_else(|| panic!("Ar without a name: {line:?}"));
                entry.value = (*value).to_owned();
            }
            // An optional value, `Op Ar SCHEME`: getopts shows it as `[SCHEME]`.
            "Op" => {
                assert_eq!(words.next(), Some(&"Ar"), "Op without Ar: {line:?}");
                let value = words
                    .next()
                    .unwrap_or_else(|| panic!("Ar without a name: {line:?}"));
                entry.value = format!("[{value}]");
            }
            "," => {}
            other => panic!("man/pop3d.8: unexpected {other:?} in {line:?}"),
        }
    }
    assert!(
        !entry.long.is_empty(),
        "man/pop3d.8: no long name in {line:?}"
    );
    entry
}

fn help_text() -> String {
    let run = pop3d(&["--help"]);
    assert_eq!(run.code, Some(0), "--help failed: {}", run.stderr);
    run.stdout
}

fn man_page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/pop3d.8");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of one set that are not in the other, for a failure message.
fn difference(a: &BTreeSet<String>, b: &BTreeSet<String>) -> String {
    let lines: Vec<&str> = a.difference(b).map(String::as_str).collect();
    if lines.is_empty() {
        "(none)".into()
    } else {
        lines.join(", ")
    }
}

#[test]
fn help_and_man_page_list_the_same_options() {
    let help: BTreeSet<String> = help_options(&help_text())
        .into_iter()
        .map(|(o, _)| o.to_string())
        .collect();
    let man: BTreeSet<String> = man_options(&man_page())
        .into_iter()
        .map(|(o, _)| o.to_string())
        .collect();
    // A parser that finds nothing in either must not make the two agree.
    for set in [&help, &man] {
        assert!(
            set.contains("-h --help") && set.contains("-l --listen ADDR"),
            "option parsing found too little: {set:?}"
        );
    }
    assert!(
        help == man,
        "--help and man/pop3d.8 disagree.\n  only in --help: {}\n  only in the man page: {}",
        difference(&help, &man),
        difference(&man, &help)
    );
}

#[test]
fn each_option_appears_once_in_the_man_page() {
    let mut seen = BTreeSet::new();
    for (option, _) in man_options(&man_page()) {
        assert!(
            seen.insert(option.long.clone()),
            "man/pop3d.8 describes --{} twice",
            option.long
        );
    }
}

#[test]
fn man_page_gives_the_defaults_that_help_gives() {
    let man = man_options(&man_page());
    let mut checked = 0;
    for (option, help) in help_options(&help_text()) {
        let Some(start) = help.find("[default: ") else {
            continue;
        };
        let rest = &help[start + "[default: ".len()..];
        let default = &rest[..rest.find(']').expect("closing ] of [default: ...]")];
        let (_, body) = man
            .iter()
            .find(|(o, _)| o.long == option.long)
            .unwrap_or_else(|| panic!("man/pop3d.8 does not describe --{}", option.long));
        // The default is written as a word of its own (`Default: 64.`, `.Pa /etc/...`).
        let mentioned = body
            .split_whitespace()
            .any(|word| word.trim_end_matches(['.', ',', ';']) == default);
        assert!(
            mentioned,
            "--help says the default of --{} is {default:?}; its item in man/pop3d.8 does not \
             say so:\n{body}",
            option.long
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} defaults found in --help");
}

#[test]
fn version_prints_the_package_version() {
    let run = pop3d(&["--version"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, format!("pop3d {}\n", env!("CARGO_PKG_VERSION")));
    assert_eq!(run.stderr, "");
}

#[test]
fn unknown_option_is_a_usage_error() {
    let run = pop3d(&["--no-such-option"]);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("no-such-option"),
        "the message should name the option: {:?}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "nothing belongs on stdout");
}

#[test]
fn stray_argument_is_a_usage_error() {
    let run = pop3d(&["-l", "127.0.0.1:0", "serve"]);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("serve"), "{:?}", run.stderr);
}

#[test]
fn zero_max_sessions_is_a_usage_error() {
    // The loopback port 0 keeps a regression that starts serving from taking port 110.
    let run = pop3d(&["-l", "127.0.0.1:0", "--max-sessions", "0"]);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("--max-sessions") && run.stderr.contains("at least 1"),
        "the message should say what is wrong: {:?}",
        run.stderr
    );
}

#[test]
fn non_numeric_timeout_is_a_usage_error() {
    let run = pop3d(&["-l", "127.0.0.1:0", "--timeout", "x"]);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("--timeout") && run.stderr.contains("\"x\""),
        "the message should name the option and the value: {:?}",
        run.stderr
    );
}

#[test]
fn check_with_a_missing_passwd_file_fails_and_names_it() {
    let dir = TempDir::new("options");
    let missing = dir.path().join("no-such-passwd");
    let missing = missing.to_str().expect("temp path is UTF-8");
    let run = pop3d(&["--check", "--passwd", missing]);
    assert_ne!(
        run.code,
        Some(0),
        "--check passed with no passwd file; stdout: {:?}",
        run.stdout
    );
    assert!(
        run.stderr.contains(missing),
        "the message should name the file: {:?}",
        run.stderr
    );
}
