//! Tokens of text data: characters, words, or integer ids a file already holds; the
//! vocabulary that maps them to class ids, and the rule that joins them back into text.
//!
//! Words: a token is a maximal run of letters and digits (`char::is_alphanumeric`), or any
//! other single non-space character (so punctuation is a token of its own: "don't!" is
//! `don ' t !`), or a line break; spaces, tabs and carriage returns only separate tokens.
//! Joining puts one space between two tokens except around a line break, before
//! `. , ; : ! ? ' ) ] } -` and after `( [ { ' -`, which restores ordinary English spacing
//! (not necessarily the original's).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::config::str_enum;
use crate::error::{Error, Result};

str_enum!(
    /// The `--tokens` flag: what one step of text is.
    TokenKind("tokens") { Char => "char", Word => "word", Ids => "ids" }
);

/// The unknown-word token of a word vocabulary, always id 0. The word rule splits the
/// string "<unk>" in a text into three tokens, so it never collides with a real word.
pub const UNK: &str = "<unk>";

/// How a text source is tokenised and its vocabulary built; stored in checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tokenizer {
    /// one token per character; the vocabulary is every character of the file
    #[default]
    Char,
    /// the word rule above; the vocabulary is the words of the training split seen at
    /// least `min_count` times, the most frequent first, at most `max_vocab` with `<unk>`
    Word { min_count: usize, max_vocab: Option<usize> },
    /// integers in 0..V separated by commas, spaces or line breaks; V = largest id + 1
    Ids,
}

impl Tokenizer {
    pub fn kind(&self) -> TokenKind {
        match self {
            Tokenizer::Char => TokenKind::Char,
            Tokenizer::Word { .. } => TokenKind::Word,
            Tokenizer::Ids => TokenKind::Ids,
        }
    }

    /// The tokenizer of a kind with default settings (reading text with a given vocabulary
    /// needs only the kind).
    pub fn for_kind(kind: TokenKind) -> Self {
        match kind {
            TokenKind::Char => Tokenizer::Char,
            TokenKind::Word => Tokenizer::Word {
                min_count: 1,
                max_vocab: None,
            },
            TokenKind::Ids => Tokenizer::Ids,
        }
    }

    pub fn is_char(&self) -> bool {
        *self == Tokenizer::Char
    }
}

/// Splits text into word tokens by the rule in the module doc.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut run: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            run.get_or_insert(i);
            continue;
        }
        if let Some(s) = run.take() {
            out.push(&text[s..i]);
        }
        if c == '\n' || !c.is_whitespace() {
            out.push(&text[i..i + c.len_utf8()]);
        }
    }
    if let Some(s) = run {
        out.push(&text[s..]);
    }
    out
}

/// Parses a stream of token ids; `what` names the source in errors.
fn ids(text: &str, vocab: Option<usize>, what: &str, first_line: usize) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = first_line + i;
        for cell in line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|c| !c.is_empty())
        {
            let id: u32 = cell.parse().map_err(|_| {
                Error::data(
                    "encode",
                    format!("{what}: line {n}: {cell:?} is not a token id"),
                    "--tokens ids reads non-negative integers separated by commas, spaces or line breaks",
                )
            })?;
            if let Some(v) = vocab.filter(|&v| id as usize >= v) {
                return Err(Error::data(
                    "encode",
                    format!("{what}: line {n}: token id {id} is outside the model's vocabulary 0..{v}"),
                    "use ids below the vocabulary size the model was trained with",
                ));
            }
            out.push(id);
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Table {
    /// sorted unique characters; id = index
    Chars(Vec<char>, HashMap<char, u32>),
    /// `<unk>` first, then by falling count; id = index
    Words(Vec<String>, HashMap<String, u32>),
    /// V
    Ids(usize),
}

/// The token ↔ id map of a model with token inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    table: Table,
}

impl Vocab {
    /// The sorted unique characters of `text`.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_chars(chars)
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        Vocab {
            table: Table::Chars(chars, index),
        }
    }

    /// A word vocabulary from token counts: `<unk>`, then every token seen at least
    /// `min_count` times by falling count (ties in string order), cut at `max_vocab` ids.
    pub fn from_words<'a>(
        tokens: impl IntoIterator<Item = &'a str>,
        min_count: usize,
        max_vocab: Option<usize>,
    ) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in tokens {
            *counts.entry(t).or_default() += 1;
        }
        let mut kept: Vec<(&str, usize)> = counts.into_iter().filter(|&(_, c)| c >= min_count).collect();
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        kept.truncate(max_vocab.map_or(usize::MAX, |m| m.saturating_sub(1)));
        let words = std::iter::once(UNK.to_string()).chain(kept.into_iter().map(|(w, _)| w.to_string()));
        Self::from_word_list(words.collect())
    }

    fn from_word_list(words: Vec<String>) -> Self {
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        Vocab {
            table: Table::Words(words, index),
        }
    }

    /// Ids 0..V that stand for themselves.
    pub fn ids(v: usize) -> Self {
        Vocab { table: Table::Ids(v) }
    }

    /// A character vocabulary as stored in a checkpoint: its characters in id order, which
    /// must be strictly increasing (sorted, unique).
    pub fn from_stored(s: &str) -> Option<Self> {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() < 2 || chars.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        Some(Self::from_chars(chars))
    }

    /// A word vocabulary as stored in a checkpoint: `<unk>` then unique, non-empty words.
    pub fn from_stored_words(words: Vec<String>) -> Option<Self> {
        let v = Self::from_word_list(words);
        let Table::Words(w, index) = &v.table else { return None };
        let ok = w.len() >= 2 && w[0] == UNK && index.len() == w.len() && w.iter().all(|s| !s.is_empty());
        ok.then_some(v)
    }

    /// The characters in id order (char vocabularies; the checkpoint's `vocab` value).
    pub fn as_string(&self) -> String {
        match &self.table {
            Table::Chars(c, _) => c.iter().collect(),
            _ => String::new(),
        }
    }

    /// The words in id order (word vocabularies; the checkpoint's `words` value).
    pub fn word_list(&self) -> Option<&[String]> {
        match &self.table {
            Table::Words(w, _) => Some(w),
            _ => None,
        }
    }

    pub fn kind(&self) -> TokenKind {
        match self.table {
            Table::Chars(..) => TokenKind::Char,
            Table::Words(..) => TokenKind::Word,
            Table::Ids(_) => TokenKind::Ids,
        }
    }

    /// V
    pub fn len(&self) -> usize {
        match &self.table {
            Table::Chars(c, _) => c.len(),
            Table::Words(w, _) => w.len(),
            Table::Ids(v) => *v,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What one token is called in messages.
    pub fn unit(&self) -> &'static str {
        match self.table {
            Table::Chars(..) => "character",
            Table::Words(..) => "word",
            Table::Ids(_) => "token",
        }
    }

    /// Token ids of `text`. A word missing from the vocabulary is `<unk>`; a character
    /// missing from a character vocabulary, or an id outside 0..V, is an error naming
    /// `what` (a file, `--prime`) and the line.
    pub fn encode(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        self.encode_at(text, what, 1)
    }

    /// `encode` of text that starts at line `first_line` of its source.
    pub fn encode_at(&self, text: &str, what: &str, first_line: usize) -> Result<Vec<u32>> {
        match &self.table {
            Table::Chars(chars, index) => {
                let mut out = Vec::with_capacity(text.len());
                for (i, l) in text.split('\n').enumerate() {
                    let line = first_line + i;
                    if i > 0 {
                        out.push(char_id(index, chars.len(), '\n', what, line)?);
                    }
                    for c in l.chars() {
                        out.push(char_id(index, chars.len(), c, what, line)?);
                    }
                }
                Ok(out)
            }
            Table::Words(_, index) => Ok(words(text)
                .into_iter()
                .map(|w| index.get(w).copied().unwrap_or(0))
                .collect()),
            Table::Ids(v) => ids(text, Some(*v), what, first_line),
        }
    }

    /// The text of one token.
    pub fn token(&self, id: u32) -> String {
        match &self.table {
            Table::Chars(c, _) => c.get(id as usize).map(char::to_string).unwrap_or_default(),
            Table::Words(w, _) => w.get(id as usize).cloned().unwrap_or_default(),
            Table::Ids(_) => id.to_string(),
        }
    }

    /// The ids joined into text by the vocabulary's rule.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut j = Joiner::new(self, None);
        ids.iter().map(|&i| j.push(i)).collect()
    }
}

fn char_id(index: &HashMap<char, u32>, v: usize, c: char, what: &str, line: usize) -> Result<u32> {
    index.get(&c).copied().ok_or_else(|| {
        Error::data(
            "encode",
            format!("{what}: line {line}: character {c:?} is not in the model's vocabulary of {v} characters"),
            "use text written with the training corpus's characters, or train on this text",
        )
    })
}

/// Parses a file of token ids (`--tokens ids`) with no vocabulary yet: V is found from it.
pub fn parse_ids(text: &str, what: &str) -> Result<Vec<u32>> {
    ids(text, None, what, 1)
}

const NO_SPACE_BEFORE: &str = ".,;:!?')]}-";
const NO_SPACE_AFTER: &str = "([{'-";

/// Turns a stream of ids into text piece by piece (for sampling, which prints each token as
/// it is drawn): characters are concatenated, ids separated by spaces, words joined by the
/// rule in the module doc.
pub struct Joiner<'a> {
    vocab: &'a Vocab,
    /// the previous token (words) or whether there was one (ids)
    prev: Option<String>,
}

impl<'a> Joiner<'a> {
    /// `prev`: the text already written before the first pushed token (a prime), or None.
    pub fn new(vocab: &'a Vocab, prev: Option<&str>) -> Self {
        // a prime ending in a space needs no separator; otherwise its last word decides
        let prev = prev.filter(|p| !p.is_empty()).map(|p| match words(p).last() {
            Some(w) if vocab.kind() == TokenKind::Word && !p.ends_with(char::is_whitespace) => w.to_string(),
            _ => " ".to_string(),
        });
        Joiner { vocab, prev }
    }

    /// The separator and text of the next token.
    pub fn push(&mut self, id: u32) -> String {
        let tok = self.vocab.token(id);
        let sep = match (self.vocab.kind(), &self.prev) {
            (TokenKind::Char, _) | (_, None) => "",
            (TokenKind::Ids, Some(_)) => " ",
            (TokenKind::Word, Some(p)) => {
                let glued = |t: &str, set: &str| t.chars().count() == 1 && t.chars().all(|c| set.contains(c));
                let none = tok == "\n"
                    || p == "\n"
                    || p.ends_with(char::is_whitespace)
                    || glued(&tok, NO_SPACE_BEFORE)
                    || glued(p, NO_SPACE_AFTER);
                if none {
                    ""
                } else {
                    " "
                }
            }
        };
        let out = format!("{sep}{tok}");
        self.prev = Some(tok);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_rule() {
        assert_eq!(
            words("Don't stop,\tROMEO!\r\n  (twice) 42x"),
            ["Don", "'", "t", "stop", ",", "ROMEO", "!", "\n", "(", "twice", ")", "42x"]
        );
        assert_eq!(words("a<unk>b"), ["a", "<", "unk", ">", "b"]);
        assert!(words(" \t\r ").is_empty());
    }

    #[test]
    fn word_vocabulary_and_join() {
        let text = "the cat. the dog, the cat!\n";
        let v = Vocab::from_words(words(text), 2, None);
        assert_eq!(v.word_list().unwrap(), ["<unk>", "the", "cat"]);
        assert_eq!(v.encode("the bird", "t").unwrap(), [1, 0]);
        let all = Vocab::from_words(words(text), 1, Some(4));
        assert_eq!(all.len(), 4);
        let v = Vocab::from_words(words(text), 1, None);
        let ids = v.encode(text, "t").unwrap();
        assert_eq!(v.decode(&ids), text);
        let v = Vocab::from_words(words("( it's done ) - yes"), 1, None);
        assert_eq!(
            v.decode(&v.encode("( it's done ) - yes", "t").unwrap()),
            "(it's done)-yes"
        );
    }

    #[test]
    fn ids_and_chars() {
        let v = Vocab::ids(5);
        assert_eq!(v.encode("1, 2\n3 4", "f").unwrap(), [1, 2, 3, 4]);
        assert!(v.encode("5", "f").unwrap_err().to_string().contains("outside"));
        assert!(v.encode("x", "f").unwrap_err().to_string().contains("not a token id"));
        assert_eq!(v.decode(&[1, 2]), "1 2");
        let c = Vocab::from_text("ab\n");
        assert_eq!(c.decode(&c.encode("ab\nba", "f").unwrap()), "ab\nba");
        assert!(Vocab::from_stored_words(vec!["a".into(), "b".into()]).is_none());
        assert!(Vocab::from_stored_words(vec![UNK.into(), "b".into(), "b".into()]).is_none());
    }
}
