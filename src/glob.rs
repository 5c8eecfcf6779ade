//! Include/exclude patterns over item paths.
//!
//! A small glob dialect is all sources need, so it is written here rather than
//! pulling a regex engine into the build: patterns match the path relative to
//! the source with `/` separators; `*` matches within one component, `?` one
//! character, and a whole component `**` matches any number of components
//! (including none). `*/db/**` matches `acme/db/dump.sql`. Matching takes at
//! most the product of the pattern's and the path's lengths, whatever the
//! names (they come from the source tree and the repository).

/// A parsed pattern: its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<String>,
}

impl Pattern {
    /// Parse a pattern; the error says why it is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        if text.starts_with('/') {
            return Err(format!(
                "{text:?}: patterns are relative to the source, drop the leading '/'"
            ));
        }
        let parts: Vec<String> = text
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        if parts.iter().any(|p| p.contains("**") && p != "**") {
            return Err(format!("{text:?}: '**' must be a whole path component"));
        }
        Ok(Pattern {
            text: text.to_string(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Does the path (components relative to the source) match?
    pub fn matches(&self, path: &[&str]) -> bool {
        match_parts(&self.parts, path)
    }

    /// Could a file below the directory `dir` match? Lets the walk skip whole
    /// subtrees (the voice source need not stat 40 000 e-mails).
    pub fn may_match_below(&self, dir: &[&str]) -> bool {
        match_prefix(&self.parts, dir)
    }
}

fn match_prefix(pattern: &[String], dir: &[&str]) -> bool {
    match (pattern.split_first(), dir.split_first()) {
        (None, _) => false,
        (Some((first, _)), _) if first == "**" => true,
        (Some(_), None) => true,
        (Some((first, rest)), Some((name, tail))) => {
            match_component(first.as_bytes(), name.as_bytes()) && match_prefix(rest, tail)
        }
    }
}

/// Should the walk enter the directory `dir`? Only when some include pattern
/// may match below it (or there is no include list). Excludes are applied per
/// file, so an exclude never hides a directory that an include needs.
pub fn enter(include: &[Pattern], dir: &[&str]) -> bool {
    include.is_empty() || include.iter().any(|p| p.may_match_below(dir))
}

/// `**` components against path components, and [`match_component`] within
/// one: each a wildcard match with a single backtrack point (the last `**`
/// or `*` seen), so the work is at most the product of the lengths. A
/// recursive match that tries every split after every wildcard takes longer
/// than anyone waits for a name of 200 `a`s against `*a*a*a*a*a*a*a*a*a*a*b`
/// (or a deep path against many `**`), and names come from the source tree
/// and the repository, which are not trusted.
fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    wildcard_match(
        pattern,
        path,
        |part| part == "**",
        |part, name| match_component(part.as_bytes(), name.as_bytes()),
    )
}

fn match_component(pattern: &[u8], name: &[u8]) -> bool {
    wildcard_match(pattern, name, |&c| c == b'*', |&c, &b| c == b'?' || c == b)
}

/// Does `text` match `pattern`, where an element for which `any` holds
/// matches any run of elements (none included) and every other element
/// matches one element for which `one` holds? The classic greedy match:
/// when the elements after the last wildcard fail, that wildcard takes one
/// more element and they are tried again; earlier wildcards never need to
/// (the last one can absorb whatever they would have).
fn wildcard_match<P, T>(
    pattern: &[P],
    text: &[T],
    any: impl Fn(&P) -> bool,
    one: impl Fn(&P, &T) -> bool,
) -> bool {
    let (mut p, mut t) = (0, 0);
    // The pattern index after the last wildcard, and the text index it resumes at.
    let mut resume: Option<(usize, usize)> = None;
    while let Some(item) = text.get(t) {
        match pattern.get(p) {
            Some(el) if any(el) => {
                p += 1;
                resume = Some((p, t));
            }
            Some(el) if one(el, item) => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((after, from)) => {
                    p = after;
                    t = from + 1;
                    resume = Some((after, t));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(any)
}

/// Should the item at `path` be backed up, given include and exclude lists?
/// No include list means everything is included; exclude wins.
pub fn selected(include: &[Pattern], exclude: &[Pattern], path: &[&str]) -> bool {
    (include.is_empty() || include.iter().any(|p| p.matches(path)))
        && !exclude.iter().any(|p| p.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        Pattern::parse(pattern).unwrap().matches(&parts)
    }

    #[test]
    fn components_and_double_star() {
        assert!(m("*/db/**", "acme/db/dump.sql"));
        assert!(m("*/db/**", "acme/db/a/b/c.sql"));
        assert!(!m("*/db/**", "acme/chats/x.json"));
        assert!(!m("*/db/**", "db/dump.sql"));
        assert!(m("**/*.eml", "t1/emails/x.eml"));
        assert!(m("**/*.eml", "x.eml"));
        assert!(m("t?/*.json", "t1/a.json"));
        assert!(!m("t?/*.json", "t12/a.json"));
        assert!(!m("*.json", "a/b.json"));
    }

    #[test]
    fn directories_that_cannot_hold_a_match_are_skipped() {
        let db = Pattern::parse("*/db/**").unwrap();
        assert!(db.may_match_below(&[]));
        assert!(db.may_match_below(&["acme"]));
        assert!(db.may_match_below(&["acme", "db"]));
        assert!(db.may_match_below(&["acme", "db", "old"]));
        assert!(!db.may_match_below(&["acme", "voice"]));
        let eml = Pattern::parse("t?/emails/*.eml").unwrap();
        assert!(eml.may_match_below(&["t1", "emails"]));
        assert!(!eml.may_match_below(&["t1", "emails", "sub"]));
        assert!(enter(&[], &["anything"]));
        assert!(!enter(&[db], &["acme", "chats"]));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("/abs/**").is_err());
        assert!(Pattern::parse("a**b").is_err());
    }

    #[test]
    fn exclude_wins_over_include() {
        let inc = vec![Pattern::parse("**").unwrap()];
        let exc = vec![Pattern::parse("**/*.tmp").unwrap()];
        assert!(selected(&inc, &exc, &["a", "b.txt"]));
        assert!(!selected(&inc, &exc, &["a", "b.tmp"]));
        assert!(selected(&[], &[], &["anything"]));
    }

    /// The recursive definitions the matcher replaced (exponential on
    /// adversarial input): the reference for small inputs.
    fn reference_parts(pattern: &[&str], path: &[&str]) -> bool {
        match pattern.split_first() {
            None => path.is_empty(),
            Some((&"**", rest)) => {
                (0..=path.len()).any(|skip| reference_parts(rest, &path[skip..]))
            }
            Some((first, rest)) => match path.split_first() {
                Some((name, tail)) => {
                    reference_component(first.as_bytes(), name.as_bytes())
                        && reference_parts(rest, tail)
                }
                None => false,
            },
        }
    }

    fn reference_component(pattern: &[u8], name: &[u8]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => {
                (0..=name.len()).any(|skip| reference_component(rest, &name[skip..]))
            }
            Some((b'?', rest)) => !name.is_empty() && reference_component(rest, &name[1..]),
            Some((c, rest)) => name.first() == Some(c) && reference_component(rest, &name[1..]),
        }
    }

    /// Every word over `alphabet` up to `max` long.
    fn words<T: Clone>(alphabet: &[T], max: usize) -> Vec<Vec<T>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max {
            let next: Vec<Vec<T>> = last
                .iter()
                .flat_map(|w| {
                    alphabet.iter().map(move |c| {
                        let mut w = w.clone();
                        w.push(c.clone());
                        w
                    })
                })
                .collect();
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    #[test]
    fn the_matcher_agrees_with_the_recursive_definition() {
        for pattern in words(b"ab*?", 5) {
            for name in words(b"ab", 6) {
                assert_eq!(
                    match_component(&pattern, &name),
                    reference_component(&pattern, &name),
                    "{:?} against {:?}",
                    String::from_utf8_lossy(&pattern),
                    String::from_utf8_lossy(&name)
                );
            }
        }
        for pattern in words(&["a", "b", "*", "**", "?b"], 4) {
            let owned: Vec<String> = pattern.iter().map(|p| p.to_string()).collect();
            for path in words(&["a", "b", "ab"], 5) {
                assert_eq!(
                    match_parts(&owned, &path),
                    reference_parts(&pattern, &path),
                    "{pattern:?} against {path:?}"
                );
            }
        }
    }

    /// Review of issue 12: wildcards against long names and deep paths
    /// (names come from the source tree and the repository) finish; the
    /// recursive matcher tried every split after every wildcard and did not.
    #[test]
    fn many_wildcards_against_long_names_and_deep_paths_finish() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let name = "a".repeat(200);
            let deep = vec!["a"; 200];
            let stars = Pattern::parse("*a*a*a*a*a*a*a*a*a*a*b").unwrap();
            let all_a = Pattern::parse("*a*a*a*a*a*a*a*a*a*a*a").unwrap();
            let doubles = Pattern::parse("**/a/**/a/**/a/**/a/**/a/**/a/**/b").unwrap();
            let _ = tx.send((
                stars.matches(&[&name]),
                all_a.matches(&[&name]),
                doubles.matches(&deep),
            ));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(300))
            .expect("the matches finish");
        assert_eq!(got, (false, true, false));
    }
}
