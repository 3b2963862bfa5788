//! Text analyzers: how message text becomes terms, the same way when indexing and when querying.
//!
//! Every analyzer has its own text field in the index (`text_{name}`), and every app's messages go to the
//! field of the analyzer chosen for that app (recorded in the index, see [`crate::payload`]), so BM25
//! statistics stay per language and changing an app's analyzer is an explicit rebuild.

use std::fmt;
use std::str::CharIndices;

use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

/// Tokens longer than this many bytes (base64 blobs, URLs glued together) are not indexed.
const MAX_TOKEN_BYTES: usize = 60;

/// The analyzers an app can choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Analyzer {
    /// Words split at anything that is not a letter or digit (any script), lowercased, accents folded
    /// (`Café` matches `cafe`); no stemming. Right for mixed-language chat and every language that separates
    /// words with spaces.
    Default,
    /// For Chinese, Japanese, Korean and Thai, which do not separate words: runs of those scripts become
    /// overlapping character bigrams (`東京都` → `東京` `京都`), everything else is split like `default`.
    Cjk,
    Arabic,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Greek,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Tamil,
    Turkish,
}

impl Analyzer {
    pub const ALL: [Analyzer; 20] = [
        Analyzer::Default,
        Analyzer::Cjk,
        Analyzer::Arabic,
        Analyzer::Danish,
        Analyzer::Dutch,
        Analyzer::English,
        Analyzer::Finnish,
        Analyzer::French,
        Analyzer::German,
        Analyzer::Greek,
        Analyzer::Hungarian,
        Analyzer::Italian,
        Analyzer::Norwegian,
        Analyzer::Portuguese,
        Analyzer::Romanian,
        Analyzer::Russian,
        Analyzer::Spanish,
        Analyzer::Swedish,
        Analyzer::Tamil,
        Analyzer::Turkish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Default => "default",
            Analyzer::Cjk => "cjk",
            Analyzer::Arabic => "arabic",
            Analyzer::Danish => "danish",
            Analyzer::Dutch => "dutch",
            Analyzer::English => "english",
            Analyzer::Finnish => "finnish",
            Analyzer::French => "french",
            Analyzer::German => "german",
            Analyzer::Greek => "greek",
            Analyzer::Hungarian => "hungarian",
            Analyzer::Italian => "italian",
            Analyzer::Norwegian => "norwegian",
            Analyzer::Portuguese => "portuguese",
            Analyzer::Romanian => "romanian",
            Analyzer::Russian => "russian",
            Analyzer::Spanish => "spanish",
            Analyzer::Swedish => "swedish",
            Analyzer::Tamil => "tamil",
            Analyzer::Turkish => "turkish",
        }
    }

    /// The name the analyzer is registered under in the index's tokenizer manager.
    pub fn tokenizer_name(self) -> String {
        format!("chatsdk_{}", self.name())
    }

    /// The index field holding this analyzer's terms.
    pub fn field_name(self) -> String {
        format!("text_{}", self.name())
    }

    fn stemming(self) -> Option<Language> {
        Some(match self {
            Analyzer::Default | Analyzer::Cjk => return None,
            Analyzer::Arabic => Language::Arabic,
            Analyzer::Danish => Language::Danish,
            Analyzer::Dutch => Language::Dutch,
            Analyzer::English => Language::English,
            Analyzer::Finnish => Language::Finnish,
            Analyzer::French => Language::French,
            Analyzer::German => Language::German,
            Analyzer::Greek => Language::Greek,
            Analyzer::Hungarian => Language::Hungarian,
            Analyzer::Italian => Language::Italian,
            Analyzer::Norwegian => Language::Norwegian,
            Analyzer::Portuguese => Language::Portuguese,
            Analyzer::Romanian => Language::Romanian,
            Analyzer::Russian => Language::Russian,
            Analyzer::Spanish => Language::Spanish,
            Analyzer::Swedish => Language::Swedish,
            Analyzer::Tamil => Language::Tamil,
            Analyzer::Turkish => Language::Turkish,
        })
    }

    /// A fresh analyzer (they are cheap to build and carry per-use state).
    pub fn text_analyzer(self) -> TextAnalyzer {
        match (self, self.stemming()) {
            (Analyzer::Cjk, _) => TextAnalyzer::builder(CjkTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .build(),
            (_, Some(language)) => TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .filter(Stemmer::new(language))
                .filter(AsciiFoldingFilter)
                .build(),
            (_, None) => TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .build(),
        }
    }

    /// The terms `text` becomes, in order.
    pub fn terms(self, text: &str) -> Vec<String> {
        let mut analyzer = self.text_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(stream.token().text.clone());
        }
        terms
    }
}

impl fmt::Display for Analyzer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Analyzer {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Analyzer::ALL.into_iter().find(|analyzer| analyzer.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Analyzer::ALL.iter().map(|analyzer| analyzer.name()).collect();
            format!("unknown analyzer {name:?} (one of: {})", names.join(", "))
        })
    }
}

/// A word as indexed for an app: `{app}/{word}`. Terms are per app, so an app's term statistics (BM25) and prefix
/// expansions never involve another app's text. Words never contain `/` (analyzers split at it) and app ids
/// cannot, so the scoping is unambiguous.
pub fn app_term(app: &str, word: &str) -> String {
    format!("{app}/{word}")
}

/// Ends the app id at the start of an analyzed field's value (ids cannot contain it).
const APP_SEPARATOR: char = '\u{1f}';

/// The value of an analyzed field: the app, then the text. The field's tokenizer ([`AppScoped`]) reads the app
/// and scopes every term by it, inside Tantivy's indexing threads.
pub fn app_scoped_value(app: &str, text: &str) -> String {
    format!("{app}{APP_SEPARATOR}{text}")
}

/// An analyzer whose input starts with `{app}\u{1f}`: the text after it is analyzed as usual and every term
/// becomes [`app_term`]`(app, term)`; offsets point into the whole value.
#[derive(Clone)]
pub struct AppScoped {
    inner: TextAnalyzer,
}

impl fmt::Debug for AppScoped {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("AppScoped")
    }
}

pub struct AppScopedStream<'a> {
    inner: tantivy::tokenizer::BoxTokenStream<'a>,
    /// `{app}/`.
    prefix: String,
    /// Bytes before the text (the app and the separator).
    header: usize,
    token: Token,
}

impl fmt::Debug for AppScopedStream<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("AppScopedStream").field("prefix", &self.prefix).finish()
    }
}

impl Tokenizer for AppScoped {
    type TokenStream<'a> = AppScopedStream<'a>;

    fn token_stream<'a>(&'a mut self, value: &'a str) -> AppScopedStream<'a> {
        let (app, text, header) = match value.split_once(APP_SEPARATOR) {
            Some((app, text)) => (app, text, app.len() + APP_SEPARATOR.len_utf8()),
            // Not written by the writer (no app): terms scoped by the empty app, which no search asks for.
            None => ("", value, 0),
        };
        AppScopedStream {
            inner: self.inner.token_stream(text),
            prefix: app_term(app, ""),
            header,
            token: Token::default(),
        }
    }
}

impl TokenStream for AppScopedStream<'_> {
    fn advance(&mut self) -> bool {
        if !self.inner.advance() {
            return false;
        }
        let analyzed = self.inner.token();
        self.token.text.clear();
        self.token.text.push_str(&self.prefix);
        self.token.text.push_str(&analyzed.text);
        self.token.offset_from = analyzed.offset_from + self.header;
        self.token.offset_to = analyzed.offset_to + self.header;
        self.token.position = analyzed.position;
        self.token.position_length = analyzed.position_length;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// Scripts written without spaces between words.
fn is_unspaced_script(character: char) -> bool {
    matches!(character as u32,
        0x0E00..=0x0EFF // Thai, Lao
        | 0x1000..=0x109F // Myanmar
        | 0x1100..=0x11FF // Hangul Jamo
        | 0x1780..=0x17FF // Khmer
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3130..=0x318F // Hangul compatibility Jamo
        | 0x31F0..=0x31FF // Katakana extensions
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x20000..=0x2FA1F // CJK extensions B–F, compatibility supplement
    )
}

/// Words of spaced scripts as [`SimpleTokenizer`] splits them; runs of unspaced scripts as overlapping
/// bigrams (a run of one character is one token). Positions count tokens, so a bigram phrase matches
/// exactly the run it came from.
#[derive(Debug, Clone, Default)]
pub struct CjkTokenizer {
    token: Token,
}

#[derive(Debug)]
pub struct CjkTokenStream<'a> {
    text: &'a str,
    characters: std::iter::Peekable<CharIndices<'a>>,
    /// Inside an unspaced run: the start of the previous character, to pair it with the next one.
    previous: Option<usize>,
    token: &'a mut Token,
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream<'a> {
        self.token.reset();
        CjkTokenStream { text, characters: text.char_indices().peekable(), previous: None, token: &mut self.token }
    }
}

impl CjkTokenStream<'_> {
    fn emit(&mut self, from: usize, to: usize) -> bool {
        self.token.position = self.token.position.wrapping_add(1);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        true
    }
}

impl TokenStream for CjkTokenStream<'_> {
    fn advance(&mut self) -> bool {
        // Continue an unspaced run: pair the previous character with the next one of the run.
        if let Some(previous) = self.previous.take()
            && let Some(&(start, character)) = self.characters.peek()
            && is_unspaced_script(character)
        {
            self.characters.next();
            self.previous = Some(start);
            return self.emit(previous, start + character.len_utf8());
        }
        while let Some((start, character)) = self.characters.next() {
            if is_unspaced_script(character) {
                let end = start + character.len_utf8();
                match self.characters.peek() {
                    Some(&(next_start, next)) if is_unspaced_script(next) => {
                        self.characters.next();
                        self.previous = Some(next_start);
                        return self.emit(start, next_start + next.len_utf8());
                    }
                    _ => return self.emit(start, end),
                }
            }
            if character.is_alphanumeric() {
                let mut end = start + character.len_utf8();
                while let Some(&(next_start, next)) = self.characters.peek() {
                    if !next.is_alphanumeric() || is_unspaced_script(next) {
                        break;
                    }
                    self.characters.next();
                    end = next_start + next.len_utf8();
                }
                return self.emit(start, end);
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Registers every analyzer (app-scoped, as the analyzed fields need) with an index, which must happen before
/// writing.
pub fn register_all(index: &tantivy::Index) {
    for analyzer in Analyzer::ALL {
        index.tokenizers().register(&analyzer.tokenizer_name(), AppScoped { inner: analyzer.text_analyzer() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_splits_any_script_and_folds_accents() {
        assert_eq!(Analyzer::Default.terms("Café, naïve—Привет мир! x2"), ["cafe", "naive", "привет", "мир", "x2"]);
    }

    #[test]
    fn cjk_runs_become_bigrams_and_other_words_stay_whole() {
        assert_eq!(Analyzer::Cjk.terms("東京都 Tokyo 駅"), ["東京", "京都", "tokyo", "駅"]);
        assert_eq!(Analyzer::Cjk.terms("ab東京"), ["ab", "東京"]);
        assert_eq!(Analyzer::Cjk.terms("한국어"), ["한국", "국어"]);
    }

    #[test]
    fn cjk_bigram_positions_are_consecutive() {
        let mut analyzer = Analyzer::Cjk.text_analyzer();
        let mut stream = analyzer.token_stream("x 東京都");
        let mut positions = Vec::new();
        while stream.advance() {
            positions.push(stream.token().position);
        }
        assert_eq!(positions, [0, 1, 2]);
    }

    #[test]
    fn stemming_analyzers_stem() {
        assert_eq!(Analyzer::English.terms("running runs"), ["run", "run"]);
        assert_eq!(Analyzer::Default.terms("running runs"), ["running", "runs"]);
    }

    #[test]
    fn app_scoped_values_scope_every_term_and_keep_positions_and_offsets() {
        let mut scoped = AppScoped { inner: Analyzer::Default.text_analyzer() };
        let value = app_scoped_value("acme", "Hi, Ann");
        let mut stream = scoped.token_stream(&value);
        let mut seen = Vec::new();
        while stream.advance() {
            let token = stream.token();
            seen.push((token.text.clone(), token.position, value[token.offset_from..token.offset_to].to_owned()));
        }
        let expected = [("acme/hi".to_owned(), 0, "Hi".to_owned()), ("acme/ann".to_owned(), 1, "Ann".to_owned())];
        assert_eq!(seen, expected);
    }

    #[test]
    fn names_round_trip() {
        for analyzer in Analyzer::ALL {
            assert_eq!(analyzer.name().parse::<Analyzer>(), Ok(analyzer));
        }
        assert!("klingon".parse::<Analyzer>().is_err());
    }
}
