//! Include/exclude patterns over item paths.
//!
//! A small glob dialect is all sources need, so it is written here rather than
//! pulling a regex engine into the build: patterns match the path relative to
//! the source with `/` separators; `*` matches within one component, `?` one
//! character, and a whole component `**` matches any number of components
//! (including none). `*/db/**` matches `acme/db/dump.sql`.

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

fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => {
                match_component(first.as_bytes(), name.as_bytes()) && match_parts(rest, tail)
            }
            None => false,
        },
    }
}

fn match_component(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| match_component(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && match_component(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && match_component(rest, &name[1..]),
    }
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
}
