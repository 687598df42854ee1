//! The prompt tokenizer shared by the Python trainer and the Rust runtime.
//!
//! The t2i GPT is conditioned on prompt-word features through `cap_proj` (design §6). Here a
//! prompt becomes exactly [`MAX_WORDS`] word ids: the canonical words of the prompt
//! ([`Prompt::words`], a comma being a word), each mapped to its index in [`VOCAB`], then
//! padded on the right with [`PAD`] (= 0). Because the canonical text is used, synonyms
//! (`an`, `to the left of`, `centre`, ...) never reach the model. 36 is the length of the
//! longest canonical prompt the grammar admits (a relation with a third object, 12 words, plus
//! three 8-word layout clauses), so every parsed prompt fits. Changing [`VOCAB`] or
//! [`MAX_WORDS`] is a new encoding version ([`ENCODING_VERSION`]).

use crate::error::{Error, Result};
use crate::prompt::Prompt;

/// Version of the encoding (vocabulary + length); exported with the data set.
pub const ENCODING_VERSION: u32 = 1;

/// Number of ids per prompt.
pub const MAX_WORDS: usize = 36;

/// Id of the padding word.
pub const PAD: u32 = 0;

/// The vocabulary: the id of a word is its index.
pub const VOCAB: [&str; 30] = [
    "<pad>",
    ",",
    "a",
    "two",
    "three",
    "red",
    "yellow",
    "green",
    "blue",
    "purple",
    "circle",
    "circles",
    "square",
    "squares",
    "triangle",
    "triangles",
    "shape",
    "shapes",
    "and",
    "left",
    "right",
    "of",
    "above",
    "below",
    "the",
    "on",
    "in",
    "top",
    "bottom",
    "center",
];

/// The id of a canonical word.
pub fn word_id(word: &str) -> Option<u32> {
    VOCAB.iter().position(|w| *w == word).map(|i| i as u32)
}

/// Encodes a prompt as [`MAX_WORDS`] ids (canonical words, right-padded with [`PAD`]).
pub fn encode(prompt: &Prompt) -> [u32; MAX_WORDS] {
    let mut ids = [PAD; MAX_WORDS];
    for (slot, w) in ids.iter_mut().zip(prompt.words()) {
        // Every canonical word is in VOCAB (checked by a test over all word sources).
        *slot = word_id(w).unwrap_or(PAD);
    }
    ids
}

/// Decodes ids back into a prompt (ids after the first [`PAD`] must all be [`PAD`]).
pub fn decode(ids: &[u32]) -> Result<Prompt> {
    let mut words = Vec::new();
    let mut ended = false;
    for (i, &id) in ids.iter().enumerate() {
        if id == PAD {
            ended = true;
            continue;
        }
        if ended {
            return Err(Error::Argument {
                param: "ids",
                reason: format!("id {id} at position {i} follows padding"),
            });
        }
        let w = VOCAB.get(id as usize).ok_or_else(|| Error::Argument {
            param: "ids",
            reason: format!(
                "id {id} at position {i} is not in the {}-word vocabulary",
                VOCAB.len()
            ),
        })?;
        words.push(*w);
    }
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 && *w != "," {
            text.push(' ');
        }
        text.push_str(w);
    }
    Ok(Prompt::parse(&text)?)
}

/// The vocabulary file: one word per line, line `i` (from 0) holding the word of id `i`.
pub fn vocab_file() -> String {
    let mut s = String::new();
    for w in VOCAB {
        s.push_str(w);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::{Colour, Shape};
    use crate::prompt::{Body, LayoutClause, Pattern, Region, Relation};

    #[test]
    fn every_canonical_word_is_in_the_vocabulary() {
        for c in Colour::ALL {
            assert!(word_id(c.word()).is_some());
        }
        for s in Shape::ALL {
            assert!(word_id(s.word()).is_some() && word_id(s.plural()).is_some());
        }
        for r in Relation::ALL {
            assert!(r.words().iter().all(|w| word_id(w).is_some()));
        }
        for r in Region::ALL {
            assert!(r.words().iter().all(|w| word_id(w).is_some()));
        }
        for w in [",", "a", "two", "three", "and", "the", "shape", "shapes"] {
            assert!(word_id(w).is_some(), "{w}");
        }
        let mut sorted = VOCAB.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), VOCAB.len());
    }

    #[test]
    fn the_longest_prompt_fills_max_words_exactly() {
        let pat = Pattern::new(Colour::Purple, Shape::Triangle);
        let clause = LayoutClause {
            target: pat,
            region: Region::BottomRight,
        };
        let p = Prompt {
            body: Body::Relation {
                subject: pat,
                relation: Relation::RightOf,
                object: pat,
                extra: Some(pat),
            },
            layout: vec![clause; 3],
        };
        assert_eq!(p.words().len(), MAX_WORDS);
        let ids = encode(&p);
        assert!(ids.iter().all(|&i| i != PAD));
        assert_eq!(decode(&ids).unwrap(), p);
    }

    #[test]
    fn encode_decode_round_trip_and_bad_ids() {
        let p = Prompt::parse("two red circles and a square, the square on the left").unwrap();
        let ids = encode(&p);
        assert_eq!(&ids[..4], &[3, 5, 11, 18]);
        assert_eq!(decode(&ids).unwrap(), p);
        assert!(decode(&[2, 99]).unwrap_err().to_string().contains("99"));
        assert!(decode(&[2, 0, 10])
            .unwrap_err()
            .to_string()
            .contains("padding"));
        assert!(decode(&[2, 2]).is_err());
    }
}
