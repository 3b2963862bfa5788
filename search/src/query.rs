//! The search language users type, parsed with positions so a mistake is reported where it is.
//!
//! ```text
//! deploy friday          both words (any order)
//! "deploy on friday"     the phrase
//! depl*                  a word starting with `depl` (at least 2 characters before `*`)
//! "deploy on fri"*       the phrase, its last word as a prefix
//! deploy -friday         without `friday`
//! deploy OR release      either word (OR binds tighter than the implicit AND)
//! ```
//! Words are analyzed like the indexed text, so punctuation inside a word splits it into a phrase
//! (`e-mail` finds "e mail"), and a word of punctuation only matches nothing and is dropped.

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 512;
/// Most words and phrases in one query.
pub const MAX_TERMS: usize = 16;
/// Shortest prefix before `*`, in characters.
pub const MIN_PREFIX_CHARS: usize = 2;

/// A word or a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub text: String,
    /// Was quoted.
    pub phrase: bool,
    /// Ended with `*`: its last word is a prefix.
    pub prefix: bool,
    /// Character position in the query.
    pub position: usize,
}

/// Atoms of which at least one must match (one atom without `OR`), or an excluded atom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub excluded: bool,
    pub any_of: Vec<Atom>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    pub clauses: Vec<Clause>,
}

/// A query that cannot be parsed, with the character position of the mistake (0-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

fn error(position: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError { position, message: message.into() }
}

/// What the scanner produced, before `OR` is resolved.
enum Item {
    Atom { atom: Atom, excluded: bool },
    Or { position: usize },
}

pub fn parse(query: &str) -> Result<ParsedQuery, SyntaxError> {
    let characters: Vec<char> = query.chars().collect();
    if characters.len() > MAX_QUERY_CHARS {
        return Err(error(MAX_QUERY_CHARS, format!("the query is longer than {MAX_QUERY_CHARS} characters")));
    }
    let items = scan(&characters)?;
    let atoms = items.iter().filter(|item| matches!(item, Item::Atom { .. })).count();
    if atoms > MAX_TERMS {
        let position = items
            .iter()
            .filter_map(|item| match item {
                Item::Atom { atom, .. } => Some(atom.position),
                Item::Or { .. } => None,
            })
            .nth(MAX_TERMS)
            .unwrap_or(0);
        return Err(error(position, format!("the query has more than {MAX_TERMS} words and phrases")));
    }
    let clauses = group(items)?;
    if !clauses.iter().any(|clause| !clause.excluded) {
        return Err(error(0, "the query needs at least one word or phrase to search for"));
    }
    // Every analyzer splits at anything that is not a letter or digit: without one, nothing can match.
    let searchable = |atom: &Atom| atom.text.chars().any(char::is_alphanumeric);
    if !clauses.iter().any(|clause| !clause.excluded && clause.any_of.iter().any(searchable)) {
        return Err(error(0, "the query has no letters or digits to search for"));
    }
    Ok(ParsedQuery { clauses })
}

fn scan(characters: &[char]) -> Result<Vec<Item>, SyntaxError> {
    let mut items = Vec::new();
    let mut at = 0;
    while at < characters.len() {
        if characters[at].is_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        let excluded = characters[at] == '-' && characters.get(at + 1).is_some_and(|next| !next.is_whitespace());
        if excluded {
            at += 1;
        }
        if characters[at] == '"' {
            let Some(length) = characters[at + 1..].iter().position(|character| *character == '"') else {
                return Err(error(at, "this quote is never closed"));
            };
            let text: String = characters[at + 1..at + 1 + length].iter().collect();
            at += length + 2;
            let prefix = characters.get(at) == Some(&'*');
            if prefix {
                at += 1;
            }
            if let Some(next) = characters.get(at).filter(|next| !next.is_whitespace()) {
                return Err(error(at, format!("expected a space after the phrase, found {next:?}")));
            }
            if text.trim().is_empty() {
                return Err(error(start, "empty phrase"));
            }
            items.push(Item::Atom { atom: Atom { text, phrase: true, prefix, position: start }, excluded });
            continue;
        }
        let word_start = at;
        while at < characters.len() && !characters[at].is_whitespace() {
            match characters[at] {
                '"' => return Err(error(at, "a quote inside a word (put a space before a phrase)")),
                '*' if characters.get(at + 1).is_some_and(|next| !next.is_whitespace()) => {
                    return Err(error(at, "`*` is only allowed at the end of a word"));
                }
                _ => at += 1,
            }
        }
        let word: String = characters[word_start..at].iter().collect();
        if word == "OR" && !excluded {
            items.push(Item::Or { position: start });
            continue;
        }
        let (text, prefix) = match word.strip_suffix('*') {
            Some(stem) => (stem.to_owned(), true),
            None => (word, false),
        };
        if prefix && text.chars().filter(|character| character.is_alphanumeric()).count() < MIN_PREFIX_CHARS {
            return Err(error(
                at - 1,
                format!("a prefix needs at least {MIN_PREFIX_CHARS} letters or digits before `*`"),
            ));
        }
        items.push(Item::Atom { atom: Atom { text, phrase: false, prefix, position: start }, excluded });
    }
    Ok(items)
}

/// Resolves `OR`: it joins the atoms on both sides into one clause; it cannot start or end the query, follow
/// another `OR`, or touch an excluded atom.
fn group(items: Vec<Item>) -> Result<Vec<Clause>, SyntaxError> {
    let mut clauses: Vec<Clause> = Vec::new();
    let mut pending_or: Option<usize> = None;
    for item in items {
        match item {
            Item::Or { position } => {
                if pending_or.is_some() {
                    return Err(error(position, "OR follows another OR"));
                }
                match clauses.last() {
                    None => return Err(error(position, "OR needs a word or phrase before it")),
                    Some(clause) if clause.excluded => {
                        return Err(error(position, "an excluded word cannot be part of an OR"));
                    }
                    Some(_) => pending_or = Some(position),
                }
            }
            Item::Atom { atom, excluded } => match (pending_or.take(), clauses.last_mut()) {
                (Some(position), _) if excluded => {
                    return Err(error(position, "an excluded word cannot be part of an OR"));
                }
                (Some(_), Some(clause)) => clause.any_of.push(atom),
                _ => clauses.push(Clause { excluded, any_of: vec![atom] }),
            },
        }
    }
    if let Some(position) = pending_or {
        return Err(error(position, "OR needs a word or phrase after it"));
    }
    Ok(clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(text: &str, phrase: bool, prefix: bool, position: usize) -> Atom {
        Atom { text: text.to_owned(), phrase, prefix, position }
    }

    fn position_of(query: &str) -> Option<usize> {
        parse(query).err().map(|error| error.position)
    }

    #[test]
    fn words_phrases_prefixes_exclusions_and_or() {
        let parsed = parse(r#"deploy "on friday" rel* -staging a OR "b c"*"#).ok();
        let expected = ParsedQuery {
            clauses: vec![
                Clause { excluded: false, any_of: vec![atom("deploy", false, false, 0)] },
                Clause { excluded: false, any_of: vec![atom("on friday", true, false, 7)] },
                Clause { excluded: false, any_of: vec![atom("rel", false, true, 19)] },
                Clause { excluded: true, any_of: vec![atom("staging", false, false, 24)] },
                Clause { excluded: false, any_of: vec![atom("a", false, false, 33), atom("b c", true, true, 38)] },
            ],
        };
        assert_eq!(parsed, Some(expected));
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        assert_eq!(position_of(r#"hello "world"#), Some(6));
        assert_eq!(position_of(r#"say "hi"there"#), Some(8));
        assert_eq!(position_of("a*b"), Some(1));
        assert_eq!(position_of("ab c*"), Some(4));
        assert_eq!(position_of(r#"ab"c"#), Some(2));
        assert_eq!(position_of("OR hello"), Some(0));
        assert_eq!(position_of("hello OR"), Some(6));
        assert_eq!(position_of("a OR OR b"), Some(5));
        assert_eq!(position_of("a OR -b"), Some(2));
        assert_eq!(position_of(r#"x "" y"#), Some(2));
        assert_eq!(position_of("-only -excluded"), Some(0));
    }

    #[test]
    fn limits_are_enforced() {
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert_eq!(position_of(&long), Some(MAX_QUERY_CHARS));
        let many = (0..=MAX_TERMS).map(|index| format!("w{index}")).collect::<Vec<_>>().join(" ");
        assert!(parse(&many).is_err());
        let enough = (0..MAX_TERMS).map(|index| format!("w{index}")).collect::<Vec<_>>().join(" ");
        assert!(parse(&enough).is_ok());
    }

    #[test]
    fn punctuation_only_is_refused() {
        assert_eq!(position_of("?! ..."), Some(0));
        assert_eq!(position_of("hello ?!"), None);
    }

    #[test]
    fn a_lone_dash_and_lowercase_or_are_plain_text() {
        let parsed = parse("well - or yes").ok().map(|query| query.clauses.len());
        assert_eq!(parsed, Some(4));
    }
}
