//! Prompts: the structured form of a ShapesWorld prompt, its canonical text, and what it means.
//!
//! # Meaning (closed world)
//! A prompt lists *all* the objects of the image. Its body expands into 1–3 **slots**, each a
//! [`Pattern`] (an optional colour and an optional shape; `shape`/`shapes` leaves the shape
//! free): `two red circles and a square` is the slots `[red circle, red circle, square]`.
//! A relation body `S rel O [and E]` has slots `[S, O, E]` and requires `rel(slot 0, slot 1)`
//! between the centres of their objects' bounding boxes (`left of`: smaller x, `above`: smaller
//! y; y grows downwards). A layout clause `the P on the R` requires some described object that
//! matches `P` to have its centre in region `R`. Regions are thirds of the canvas: a vertical
//! word (`top`, `bottom`) constrains the row third, a horizontal word (`left`, `right`) the
//! column third, `center` both middle thirds; a one-word region leaves the other axis free.
//!
//! An image is **aligned** with a prompt when it has exactly as many objects as slots and
//! there is a one-to-one assignment of objects to slots under which every slot's pattern,
//! the relation and every layout clause hold. Per-category verdicts
//! ([`crate::score::Verdicts`]) relax this step by step: `count` (as many objects as slots),
//! `shape` (an injective assignment matching shapes), `colour` (matching colours and shapes:
//! attribute binding), `spatial` (plus the relation), `layout` (plus the layout clauses).
//!
//! The grammar is in [`grammar::GRAMMAR`]; [`Prompt::parse`] reads it and `Display` writes the
//! canonical text, which parses back to the same `Prompt`.

pub mod generate;
pub mod grammar;

use std::fmt;
use std::str::FromStr;

use crate::error::PromptError;
use crate::palette::{Colour, Shape};

/// Most objects a prompt can describe.
pub const MAX_SLOTS: usize = 3;
/// Most layout clauses a prompt can carry.
pub const MAX_LAYOUT: usize = 3;

/// What a noun phrase asks of one object: an optional colour and an optional shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pattern {
    /// Required colour, if any.
    pub colour: Option<Colour>,
    /// Required shape, if any (`None` is the noun `shape`).
    pub shape: Option<Shape>,
}

impl Pattern {
    /// A pattern with both attributes.
    pub fn new(colour: Colour, shape: Shape) -> Self {
        Pattern {
            colour: Some(colour),
            shape: Some(shape),
        }
    }

    /// Whether an object of `colour` and `shape` matches.
    pub fn matches(&self, colour: Colour, shape: Shape) -> bool {
        self.colour.is_none_or(|c| c == colour) && self.shape.is_none_or(|s| s == shape)
    }

    pub(crate) fn push_words(&self, plural: bool, out: &mut Vec<&'static str>) {
        if let Some(c) = self.colour {
            out.push(c.word());
        }
        out.push(match (self.shape, plural) {
            (Some(s), false) => s.word(),
            (Some(s), true) => s.plural(),
            (None, false) => "shape",
            (None, true) => "shapes",
        });
    }
}

/// A counted noun phrase: `two red circles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phrase {
    /// How many objects (1–3).
    pub count: u8,
    /// What each of them looks like.
    pub pattern: Pattern,
}

/// A 2D spatial relation between two objects' bounding-box centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// Subject centre x < object centre x.
    LeftOf,
    /// Subject centre x > object centre x.
    RightOf,
    /// Subject centre y < object centre y (y grows downwards).
    Above,
    /// Subject centre y > object centre y.
    Below,
}

impl Relation {
    /// All relations.
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];

    /// The canonical words.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Relation::LeftOf => &["left", "of"],
            Relation::RightOf => &["right", "of"],
            Relation::Above => &["above"],
            Relation::Below => &["below"],
        }
    }

    /// The relation with subject and object swapped.
    pub fn converse(self) -> Relation {
        match self {
            Relation::LeftOf => Relation::RightOf,
            Relation::RightOf => Relation::LeftOf,
            Relation::Above => Relation::Below,
            Relation::Below => Relation::Above,
        }
    }
}

/// A third of the canvas along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Band {
    /// `[0, 1/3)`: top rows or left columns.
    Low,
    /// `[1/3, 2/3)`.
    Middle,
    /// `[2/3, 1]`: bottom rows or right columns.
    High,
}

impl Band {
    /// The band holding the fraction `t` of the axis.
    pub fn of(t: f64) -> Band {
        if t < 1.0 / 3.0 {
            Band::Low
        } else if t < 2.0 / 3.0 {
            Band::Middle
        } else {
            Band::High
        }
    }

    /// The band as `[lo, hi)` fractions of the axis (`High` is closed at 1 and beyond).
    pub fn range(self) -> (f64, f64) {
        match self {
            Band::Low => (f64::NEG_INFINITY, 1.0 / 3.0),
            Band::Middle => (1.0 / 3.0, 2.0 / 3.0),
            Band::High => (2.0 / 3.0, f64::INFINITY),
        }
    }
}

/// A region named by a layout clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// Top third and left third.
    TopLeft,
    /// Top third (any column).
    Top,
    /// Top third and right third.
    TopRight,
    /// Left third (any row).
    Left,
    /// Middle third of both axes.
    Center,
    /// Right third (any row).
    Right,
    /// Bottom third and left third.
    BottomLeft,
    /// Bottom third (any column).
    Bottom,
    /// Bottom third and right third.
    BottomRight,
}

impl Region {
    /// All regions.
    pub const ALL: [Region; 9] = [
        Region::TopLeft,
        Region::Top,
        Region::TopRight,
        Region::Left,
        Region::Center,
        Region::Right,
        Region::BottomLeft,
        Region::Bottom,
        Region::BottomRight,
    ];

    /// The `(row, column)` bands the region constrains (`None`: that axis is free).
    pub fn bands(self) -> (Option<Band>, Option<Band>) {
        use Band::*;
        match self {
            Region::TopLeft => (Some(Low), Some(Low)),
            Region::Top => (Some(Low), None),
            Region::TopRight => (Some(Low), Some(High)),
            Region::Left => (None, Some(Low)),
            Region::Center => (Some(Middle), Some(Middle)),
            Region::Right => (None, Some(High)),
            Region::BottomLeft => (Some(High), Some(Low)),
            Region::Bottom => (Some(High), None),
            Region::BottomRight => (Some(High), Some(High)),
        }
    }

    /// The region naming exactly these bands, if the grammar has one.
    pub fn from_bands(row: Option<Band>, col: Option<Band>) -> Option<Region> {
        Region::ALL.into_iter().find(|r| r.bands() == (row, col))
    }

    /// The canonical words, with their preposition: `["on", "the", "top", "left"]`.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Region::TopLeft => &["on", "the", "top", "left"],
            Region::Top => &["on", "the", "top"],
            Region::TopRight => &["on", "the", "top", "right"],
            Region::Left => &["on", "the", "left"],
            Region::Center => &["in", "the", "center"],
            Region::Right => &["on", "the", "right"],
            Region::BottomLeft => &["on", "the", "bottom", "left"],
            Region::Bottom => &["on", "the", "bottom"],
            Region::BottomRight => &["on", "the", "bottom", "right"],
        }
    }
}

/// A layout clause: `the red circle on the top left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayoutClause {
    /// Which object (an object of the body matching it).
    pub target: Pattern,
    /// Where its centre lies.
    pub region: Region,
}

/// The body of a prompt: what objects there are, and possibly one relation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// A list of counted phrases: `two red circles and a blue square`.
    List(Vec<Phrase>),
    /// Two single objects in a relation, plus an optional third object:
    /// `a red circle left of a blue square and a green triangle`.
    Relation {
        /// The first object (slot 0).
        subject: Pattern,
        /// How the subject sits relative to the object.
        relation: Relation,
        /// The second object (slot 1).
        object: Pattern,
        /// A third object (slot 2), unrelated.
        extra: Option<Pattern>,
    },
}

/// A parsed ShapesWorld prompt. See the module doc for its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prompt {
    /// The objects (and relation).
    pub body: Body,
    /// Layout clauses appended by GridAR's reformulator (0–3).
    pub layout: Vec<LayoutClause>,
}

/// The evaluation categories of T2I-CompBench that ShapesWorld covers, plus layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// The number of objects.
    Count,
    /// Object shapes.
    Shape,
    /// Colour binding (each colour on the right shape).
    Colour,
    /// The 2D spatial relation.
    Spatial,
    /// The layout clauses.
    Layout,
}

impl Category {
    /// All categories, from the weakest check to the strongest.
    pub const ALL: [Category; 5] = [
        Category::Count,
        Category::Shape,
        Category::Colour,
        Category::Spatial,
        Category::Layout,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Count => "count",
            Category::Shape => "shape",
            Category::Colour => "colour",
            Category::Spatial => "spatial",
            Category::Layout => "layout",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which categories a prompt exercises (tags for evaluation sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tags {
    /// Some phrase has a count of two or three.
    pub count: bool,
    /// Some phrase names a shape.
    pub shape: bool,
    /// Some phrase names a colour.
    pub colour: bool,
    /// The body has a relation.
    pub spatial: bool,
    /// There are layout clauses.
    pub layout: bool,
}

impl Tags {
    /// Whether `category` is tagged.
    pub fn has(&self, category: Category) -> bool {
        match category {
            Category::Count => self.count,
            Category::Shape => self.shape,
            Category::Colour => self.colour,
            Category::Spatial => self.spatial,
            Category::Layout => self.layout,
        }
    }

    /// The tagged categories, in [`Category::ALL`] order.
    pub fn list(&self) -> Vec<Category> {
        Category::ALL.into_iter().filter(|c| self.has(*c)).collect()
    }
}

impl Prompt {
    /// Parses a prompt; the error shows the grammar. See [`grammar`].
    pub fn parse(text: &str) -> Result<Prompt, PromptError> {
        grammar::parse(text)
    }

    /// The slots (one pattern per described object), in order; see the module doc.
    pub fn slots(&self) -> Vec<Pattern> {
        match &self.body {
            Body::List(phrases) => phrases
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.pattern, p.count as usize))
                .collect(),
            Body::Relation {
                subject,
                object,
                extra,
                ..
            } => {
                let mut v = vec![*subject, *object];
                v.extend(extra.iter().copied());
                v
            }
        }
    }

    /// The relation as `(subject slot, relation, object slot)`, if any.
    pub fn relation(&self) -> Option<(usize, Relation, usize)> {
        match &self.body {
            Body::Relation { relation, .. } => Some((0, *relation, 1)),
            Body::List(_) => None,
        }
    }

    /// The categories this prompt exercises.
    pub fn tags(&self) -> Tags {
        let slots = self.slots();
        let count = match &self.body {
            Body::List(ps) => ps.iter().any(|p| p.count >= 2),
            Body::Relation { .. } => false,
        };
        Tags {
            count,
            shape: slots.iter().any(|p| p.shape.is_some()),
            colour: slots.iter().any(|p| p.colour.is_some()),
            spatial: self.relation().is_some(),
            layout: !self.layout.is_empty(),
        }
    }

    /// The same body with `layout` as its layout clauses (at most [`MAX_LAYOUT`] are kept):
    /// GridAR's reformulation.
    pub fn with_layout(&self, layout: &[LayoutClause]) -> Prompt {
        Prompt {
            body: self.body.clone(),
            layout: layout.iter().take(MAX_LAYOUT).copied().collect(),
        }
    }

    /// The canonical words (a comma is a word of its own).
    pub fn words(&self) -> Vec<&'static str> {
        let mut w = Vec::with_capacity(crate::vocab::MAX_WORDS);
        match &self.body {
            Body::List(phrases) => {
                for (i, p) in phrases.iter().enumerate() {
                    if i > 0 {
                        w.push(if i + 1 == phrases.len() { "and" } else { "," });
                    }
                    w.push(match p.count {
                        1 => "a",
                        2 => "two",
                        _ => "three",
                    });
                    p.pattern.push_words(p.count >= 2, &mut w);
                }
            }
            Body::Relation {
                subject,
                relation,
                object,
                extra,
            } => {
                w.push("a");
                subject.push_words(false, &mut w);
                w.extend_from_slice(relation.words());
                w.push("a");
                object.push_words(false, &mut w);
                if let Some(e) = extra {
                    w.push("and");
                    w.push("a");
                    e.push_words(false, &mut w);
                }
            }
        }
        for c in &self.layout {
            w.push(",");
            w.push("the");
            c.target.push_words(false, &mut w);
            w.extend_from_slice(c.region.words());
        }
        w
    }
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.words().iter().enumerate() {
            if i > 0 && *word != "," {
                f.write_str(" ")?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}

impl FromStr for Prompt {
    type Err = PromptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Prompt::parse(s)
    }
}

/// Writes `clauses` as layout-clause text: `the red circle on the top left, the blue square on
/// the right` (what [`crate::score::infer_layout`] returns).
pub fn layout_text(clauses: &[LayoutClause]) -> String {
    let mut s = String::new();
    for (i, c) in clauses.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str("the");
        let mut w = Vec::new();
        c.target.push_words(false, &mut w);
        w.extend_from_slice(c.region.words());
        for word in w {
            s.push(' ');
            s.push_str(word);
        }
    }
    s
}
