//! The ShapesWorld prompt grammar and its recursive-descent parser.
//!
//! Input is split into words (runs of ASCII letters, lower-cased) and commas; spaces, tabs and
//! newlines separate words; a single final `.` is allowed; any other character is an error.
//! The parser accepts a few synonyms (`an`, `one`, `to the left of`, `at the`, `centre`,
//! `middle`, an Oxford comma before `and`) that the canonical text never uses. Noun number must
//! agree with the count (`a circle`, `two circles`). A prompt describes 1–3 objects and carries
//! at most 3 layout clauses. Every error names the offending word and shows [`GRAMMAR`].

use crate::error::PromptError;
use crate::palette::{Colour, Shape};

use super::{Body, LayoutClause, Pattern, Phrase, Prompt, Region, Relation, MAX_LAYOUT, MAX_SLOTS};

/// The grammar, compactly (shown by every parse error).
pub const GRAMMAR: &str = "\
ShapesWorld prompt grammar (case-insensitive; 1-3 objects; at most 3 layout clauses):
  prompt   := body { \",\" layout }
  body     := phrase { (\",\" | \"and\" | \", and\") phrase }
            | single relation single [ \"and\" single ]
  phrase   := count [colour] noun      (plural noun after two/three)
  single   := (\"a\" | \"an\" | \"one\") [colour] noun
  layout   := \"the\" [colour] noun (\"on\" | \"in\" | \"at\") \"the\" region
  count    := a | an | one | two | three
  colour   := red | yellow | green | blue | purple
  noun     := circle | square | triangle | shape       (plural: circles | squares | triangles | shapes)
  relation := left of | right of | to the left of | to the right of | above | below
  region   := top left | top | top right | left | center | right | bottom left | bottom | bottom right
examples: \"two red circles and a blue square\"; \"three triangles\"; \"a green triangle above a yellow circle\";
          \"a red circle left of a blue square, the red circle on the top left\"";

/// A word of the input and its byte offset.
#[derive(Debug, Clone)]
struct Tok {
    text: String,
    offset: usize,
}

/// Parses `text` (see the module doc).
pub fn parse(text: &str) -> Result<Prompt, PromptError> {
    let toks = tokenize(text)?;
    let mut p = Parser { text, toks, pos: 0 };
    let prompt = p.prompt()?;
    Ok(prompt)
}

fn tokenize(text: &str) -> Result<Vec<Tok>, PromptError> {
    let mut toks = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut seen_period = false;
    while i < bytes.len() {
        let b = bytes[i];
        if seen_period && !b.is_ascii_whitespace() {
            return Err(err_at(
                text,
                i,
                "text after the final '.'",
                "a '.' may only end the prompt",
            ));
        }
        if b.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            toks.push(Tok {
                text: text[start..i].to_ascii_lowercase(),
                offset: start,
            });
            continue;
        }
        match b {
            b',' => toks.push(Tok {
                text: ",".into(),
                offset: i,
            }),
            b'.' => seen_period = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err_at(
                    text,
                    i,
                    &format!("character {ch:?}"),
                    "only letters, spaces, commas and a final '.' may appear",
                ));
            }
        }
        i += 1;
    }
    Ok(toks)
}

fn err_at(text: &str, offset: usize, found: &str, message: &str) -> PromptError {
    PromptError {
        prompt: text.to_owned(),
        offset,
        found: found.to_owned(),
        message: message.to_owned(),
    }
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(|t| t.text.as_str())
    }

    fn peek2(&self) -> Option<&str> {
        self.toks.get(self.pos + 1).map(|t| t.text.as_str())
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn error(&self, message: &str) -> PromptError {
        match self.toks.get(self.pos) {
            Some(t) => err_at(self.text, t.offset, &format!("{:?}", t.text), message),
            None => err_at(self.text, self.text.len(), "end of prompt", message),
        }
    }

    fn error_at_token(&self, index: usize, message: &str) -> PromptError {
        match self.toks.get(index) {
            Some(t) => err_at(self.text, t.offset, &format!("{:?}", t.text), message),
            None => err_at(self.text, self.text.len(), "end of prompt", message),
        }
    }

    fn expect(&mut self, word: &str, message: &str) -> Result<(), PromptError> {
        if self.peek() == Some(word) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    fn prompt(&mut self) -> Result<Prompt, PromptError> {
        if self.toks.is_empty() {
            return Err(self.error("the prompt is empty"));
        }
        let first_tok = self.pos;
        let first = self.phrase()?;
        let body = if self.peek_relation() {
            if first.count != 1 {
                return Err(self.error_at_token(
                    first_tok,
                    "a spatial relation needs a single object before it (\"a ...\")",
                ));
            }
            let relation = self.relation()?;
            let object = self.single("a single object (\"a ...\") after the relation")?;
            let extra = if self.peek() == Some("and") {
                self.bump();
                Some(self.single("a single third object (\"a ...\") after \"and\"")?)
            } else {
                None
            };
            Body::Relation {
                subject: first.pattern,
                relation,
                object,
                extra,
            }
        } else {
            let mut phrases = vec![first];
            loop {
                match (self.peek(), self.peek2()) {
                    (Some(","), Some("the")) | (None, _) => break,
                    (Some(","), Some("and")) => {
                        self.bump();
                        self.bump();
                    }
                    (Some(","), _) | (Some("and"), _) => self.bump(),
                    _ if self.peek_relation() => {
                        return Err(
                            self.error("a spatial relation must come right after the first object")
                        )
                    }
                    _ => return Err(self.error("expected \",\", \"and\" or the end of the prompt")),
                }
                phrases.push(self.phrase()?);
            }
            Body::List(phrases)
        };
        let mut layout = Vec::new();
        while self.peek() == Some(",") {
            self.bump();
            let clause_tok = self.pos;
            layout.push(self.layout()?);
            if layout.len() > MAX_LAYOUT {
                return Err(self.error_at_token(
                    clause_tok,
                    &format!("at most {MAX_LAYOUT} layout clauses are allowed"),
                ));
            }
        }
        if self.peek().is_some() {
            return Err(
                self.error("expected \", the ...\" (a layout clause) or the end of the prompt")
            );
        }
        let prompt = Prompt { body, layout };
        let n = prompt.slots().len();
        if n > MAX_SLOTS {
            return Err(err_at(
                self.text,
                0,
                &format!("{n} objects"),
                &format!("a prompt describes at most {MAX_SLOTS} objects"),
            ));
        }
        Ok(prompt)
    }

    fn peek_relation(&self) -> bool {
        matches!(
            self.peek(),
            Some("left" | "right" | "above" | "below" | "to")
        )
    }

    fn relation(&mut self) -> Result<Relation, PromptError> {
        let rel = match self.peek() {
            Some("above") => {
                self.bump();
                return Ok(Relation::Above);
            }
            Some("below") => {
                self.bump();
                return Ok(Relation::Below);
            }
            Some("to") => {
                self.bump();
                self.expect("the", "expected \"to the left of\" or \"to the right of\"")?;
                match self.peek() {
                    Some("left") => Relation::LeftOf,
                    Some("right") => Relation::RightOf,
                    _ => return Err(self.error("expected \"left\" or \"right\" after \"to the\"")),
                }
            }
            Some("left") => Relation::LeftOf,
            Some("right") => Relation::RightOf,
            _ => return Err(self.error("expected a relation (left of, right of, above, below)")),
        };
        self.bump();
        self.expect("of", "expected \"of\" after \"left\"/\"right\"")?;
        Ok(rel)
    }

    fn count(&mut self) -> Result<u8, PromptError> {
        let n = match self.peek() {
            Some("a" | "an" | "one") => 1,
            Some("two") => 2,
            Some("three") => 3,
            _ => {
                return Err(self.error(
                    "expected a count word (a, an, one, two, three) to start an object phrase",
                ))
            }
        };
        self.bump();
        Ok(n)
    }

    fn phrase(&mut self) -> Result<Phrase, PromptError> {
        let count = self.count()?;
        let pattern = self.pattern(count >= 2)?;
        Ok(Phrase { count, pattern })
    }

    fn single(&mut self, what: &str) -> Result<Pattern, PromptError> {
        let at = self.pos;
        match self.peek() {
            Some("a" | "an" | "one") => {}
            Some("two" | "three") => {
                return Err(self.error_at_token(
                    at,
                    &format!("expected {what}; relations are between single objects"),
                ))
            }
            _ => return Err(self.error(&format!("expected {what}"))),
        }
        self.bump();
        self.pattern(false)
    }

    /// `[colour] noun`, the noun singular or plural as required.
    fn pattern(&mut self, plural: bool) -> Result<Pattern, PromptError> {
        let colour = self.peek().and_then(Colour::from_word);
        if colour.is_some() {
            self.bump();
        }
        let Some(word) = self.peek() else {
            return Err(self.error("expected a shape noun (circle, square, triangle, shape)"));
        };
        let (shape, is_plural) = match word {
            "circle" => (Some(Shape::Circle), false),
            "square" => (Some(Shape::Square), false),
            "triangle" => (Some(Shape::Triangle), false),
            "shape" => (None, false),
            "circles" => (Some(Shape::Circle), true),
            "squares" => (Some(Shape::Square), true),
            "triangles" => (Some(Shape::Triangle), true),
            "shapes" => (None, true),
            _ => {
                let msg = if colour.is_none() {
                    "expected a colour (red, yellow, green, blue, purple) or a shape noun (circle, square, triangle, shape)"
                } else {
                    "expected a shape noun (circle, square, triangle, shape)"
                };
                return Err(self.error(msg));
            }
        };
        if is_plural != plural {
            return Err(self.error(if plural {
                "a count of two or three needs a plural noun (circles, squares, triangles, shapes)"
            } else {
                "a single object needs a singular noun (circle, square, triangle, shape)"
            }));
        }
        self.bump();
        Ok(Pattern { colour, shape })
    }

    fn layout(&mut self) -> Result<LayoutClause, PromptError> {
        self.expect(
            "the",
            "a layout clause starts with \"the\" (\"the red circle on the top left\")",
        )?;
        let target = self.pattern(false)?;
        match self.peek() {
            Some("on" | "in" | "at") => self.bump(),
            _ => {
                return Err(self.error("expected \"on the\", \"in the\" or \"at the\" and a region"))
            }
        }
        self.expect("the", "expected \"the\" before the region")?;
        let region_err = "expected a region (top left, top, top right, left, center, right, bottom left, bottom, bottom right)";
        let region = match self.peek() {
            Some(v @ ("top" | "bottom")) => {
                let top = v == "top";
                self.bump();
                match self.peek() {
                    Some("left") => {
                        self.bump();
                        if top {
                            Region::TopLeft
                        } else {
                            Region::BottomLeft
                        }
                    }
                    Some("right") => {
                        self.bump();
                        if top {
                            Region::TopRight
                        } else {
                            Region::BottomRight
                        }
                    }
                    _ => {
                        if top {
                            Region::Top
                        } else {
                            Region::Bottom
                        }
                    }
                }
            }
            Some("left") => {
                self.bump();
                Region::Left
            }
            Some("right") => {
                self.bump();
                Region::Right
            }
            Some("center" | "centre" | "middle") => {
                self.bump();
                Region::Center
            }
            _ => return Err(self.error(region_err)),
        };
        Ok(LayoutClause { target, region })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{Band, Category};

    fn p(s: &str) -> Prompt {
        parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn examples_parse_to_the_expected_structure() {
        let a = p("a red circle");
        assert_eq!(a.slots(), vec![Pattern::new(Colour::Red, Shape::Circle)]);
        let b = p("two blue squares");
        assert_eq!(b.slots().len(), 2);
        assert!(b.tags().count && b.tags().colour && !b.tags().spatial);
        let c = p("three triangles");
        assert!(c
            .slots()
            .iter()
            .all(|s| s.colour.is_none() && s.shape == Some(Shape::Triangle)));
        let d = p("a red circle left of a blue square");
        assert_eq!(d.relation(), Some((0, Relation::LeftOf, 1)));
        let e = p("A green triangle ABOVE a yellow circle.");
        assert_eq!(e.relation(), Some((0, Relation::Above, 1)));
        let f = p("a red circle to the right of a blue square and a green shape, the red circle on the top left, the shape in the middle");
        assert_eq!(f.slots().len(), 3);
        assert_eq!(f.layout.len(), 2);
        assert_eq!(f.layout[0].region, Region::TopLeft);
        assert_eq!(
            f.layout[1].region.bands(),
            (Some(Band::Middle), Some(Band::Middle))
        );
        assert_eq!(
            f.tags().list(),
            vec![
                Category::Shape,
                Category::Colour,
                Category::Spatial,
                Category::Layout
            ]
        );
        let g = p("a red circle, a blue square, and a green triangle");
        assert_eq!(g.slots().len(), 3);
        assert_eq!(
            g.to_string(),
            "a red circle, a blue square and a green triangle"
        );
        let h = p("two shapes");
        assert_eq!(h.slots(), vec![Pattern::default(); 2]);
    }

    #[test]
    fn canonical_text_round_trips() {
        for s in [
            "a red circle",
            "two blue squares and a shape",
            "a red circle, a blue square and a green triangle",
            "a purple triangle below a yellow shape and a circle, the circle on the bottom right",
            "a shape right of a red shape, the red shape in the center, the shape on the top, the shape on the left",
        ] {
            let q = p(s);
            assert_eq!(q.to_string(), s);
            assert_eq!(p(&q.to_string()), q);
        }
    }

    fn err(s: &str) -> PromptError {
        parse(s).expect_err(s)
    }

    #[test]
    fn errors_name_the_problem_and_show_the_grammar() {
        let e = err("a orange circle");
        let msg = e.to_string();
        assert!(msg.contains("\"orange\""), "{msg}");
        assert!(
            msg.contains("red | yellow | green | blue | purple"),
            "{msg}"
        );
        assert_eq!(e.offset, 2);
        assert!(err("").message.contains("empty"));
        assert!(err("two red circle").message.contains("plural"));
        assert!(err("a red circles").message.contains("singular"));
        assert!(err("two circles left of a square")
            .message
            .contains("single object"));
        assert!(err("three circles and a square")
            .message
            .contains("at most 3 objects"));
        assert!(err("a circle left a square").message.contains("\"of\""));
        assert!(err("a circle; a square").message.contains("only letters"));
        assert!(err("a circle. a square").message.contains("only end"));
        assert!(err("a circle, the circle on the moon")
            .message
            .contains("region"));
        assert!(err("a circle and a square left of a triangle")
            .message
            .contains("right after"));
        assert!(err("a circle, the circle on the top, the circle on the top, the circle on the top, the circle on the top").message.contains("at most 3 layout"));
        assert!(err("a circle square").message.contains("\",\", \"and\""));
        assert!(err("a circle left of two squares")
            .message
            .contains("single"));
        assert!(err("a ⊕").message.contains("only letters"));
        assert_eq!(err("a red").found, "end of prompt");
    }
}
