//! The passwd files a `--passwd` template names, and what makes them unusable: checked by
//! `--check`, and at start (a missing, unreadable or malformed file refuses the start rather
//! than every login after it).
//!
//! With `%d` there is one file per domain: the template's first path component with `%d` is
//! matched against the entries of its directory (`/etc/vmail/%d/passwd` finds
//! `/etc/vmail/example.org/passwd`), and every file found is checked.

use pop3d::auth::passwd_file::PasswdFile;
use std::path::PathBuf;

/// The files `template` names: itself without `%d`, each domain's existing file with it.
/// Fails when a `%d` template matches no file at all.
pub fn files(template: &str) -> Result<Vec<PathBuf>, String> {
    if !has_escape(template, 'd') {
        return Ok(vec![PathBuf::from(unescape(template))]);
    }
    let Some((dir, prefix, suffix, rest)) = split_at_domain(template) else {
        return Err(format!(
            "--passwd {template}: %d must be in one path component, once"
        ));
    };
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| format!("--passwd {template}: cannot list {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let domain = name.strip_prefix(&prefix)?.strip_suffix(&suffix)?;
            if domain.is_empty() || domain.starts_with('.') {
                return None;
            }
            let mut path = dir.join(&name);
            if !rest.is_empty() {
                path.push(unescape(&rest.replace("%d", domain)));
            }
            Some(path).filter(|p| p.is_file())
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!(
            "--passwd {template}: no domain's file found in {}",
            dir.display()
        ));
    }
    Ok(found)
}

/// Splits a `%d` template into the directory to list, the text around `%d` in its
/// component, and the rest of the path (which may use `%d` again); `None` when the component
/// holds `%d` twice or another escape.
fn split_at_domain(template: &str) -> Option<(PathBuf, String, String, String)> {
    let components: Vec<&str> = template.split('/').collect();
    let at = components.iter().position(|c| has_escape(c, 'd'))?;
    let component = components[at];
    let (prefix, suffix) = component.split_once("%d")?;
    if suffix.contains('%') || prefix.contains('%') {
        return None;
    }
    let dir = match components[..at].join("/") {
        d if d.is_empty() && template.starts_with('/') => "/".to_owned(),
        d if d.is_empty() => ".".to_owned(),
        d => unescape(&d),
    };
    Some((
        PathBuf::from(dir),
        prefix.to_owned(),
        suffix.to_owned(),
        components[at + 1..].join("/"),
    ))
}

/// Whether `template` uses the escape `%c` (not counting `%%`).
pub fn has_escape(template: &str, c: char) -> bool {
    escapes(template).contains(&c)
}

/// The escapes a template uses, in order: `%h/x/%%/%u` gives `['h', 'u']`.
pub fn escapes(template: &str) -> Vec<char> {
    let mut found = Vec::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') | None => {}
                Some(e) => found.push(e),
            }
        }
    }
    found
}

/// A template without escapes as the path it names (`%%` is `%`).
fn unescape(text: &str) -> String {
    text.replace("%%", "%")
}

/// Reads each of `files` through, as a login will: the first problem of each, named by file
/// and line. Returns the number of accounts in each file that has no problem.
pub fn check(files: &[PathBuf]) -> (Vec<(PathBuf, usize)>, Vec<String>) {
    let mut counts = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let escaped = file.to_string_lossy().replace('%', "%%");
        let checked = PasswdFile::new(&escaped)
            .map_err(|e| e.to_string())
            .and_then(|p| p.check());
        match checked {
            Ok(n) => counts.push((file.clone(), n)),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    (counts, problems)
}

/// The accounts of a passwd file with no home directory: `(line, user)`.
pub fn homeless(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|(i, line)| {
            let mut fields = line.splitn(8, ':');
            let user = fields.next()?;
            fields.next()?; // no password field: a malformed line, which check() reports
            let home = fields.nth(3).unwrap_or("");
            home.is_empty().then(|| (i + 1, user.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_skip_double_percent() {
        assert_eq!(escapes("%h/x/%%u/%n"), vec!['h', 'n']);
        assert!(!has_escape("/a/%%d", 'd'));
    }

    #[test]
    fn the_domain_component_is_found() {
        let (dir, prefix, suffix, rest) = split_at_domain("/etc/vmail/%d/passwd").unwrap();
        assert_eq!(dir, PathBuf::from("/etc/vmail"));
        assert_eq!((prefix.as_str(), suffix.as_str()), ("", ""));
        assert_eq!(rest, "passwd");
        let (dir, prefix, suffix, rest) = split_at_domain("/etc/passwd.%d").unwrap();
        assert_eq!(dir, PathBuf::from("/etc"));
        assert_eq!((prefix.as_str(), suffix.as_str()), ("passwd.", ""));
        assert_eq!(rest, "");
        assert!(split_at_domain("/etc/%d.%d/passwd").is_none());
    }

    #[test]
    fn accounts_without_home_are_named_with_their_line() {
        let text = "# c\na:{PLAIN}x:1:1::/home/a\n\nb:{PLAIN}y\nc:{PLAIN}z:1:1:gecos::sh\n";
        assert_eq!(homeless(text), vec![(4, "b".into()), (5, "c".into())]);
    }
}
