//! Prompt satisfaction over abstract objects: the one-to-one assignment search behind the
//! scorer, the partial-canvas verifier and the ground-truth oracle.
//!
//! An object here is a [`Cand`]: a colour and a shape, each known or *free* (`None`: not yet
//! determined, e.g. the shape of an object cut by the canvas boundary, or any attribute of an
//! object not drawn yet), and its bounding-box centre as an interval per axis (a point for a
//! fully seen object). Constraints are evaluated under a quantifier: [`Quant::Exists`] asks
//! whether *some* completion of the free attributes and some positions in the intervals
//! satisfy them (used to decide "possible"); [`Quant::ForAll`] whether *every* one does (used
//! by the oracle to find clear-cut cases).
//!
//! A level ([`Level`]) says which constraints count: slot shapes; plus slot colours; plus the
//! relation; plus the layout clauses. Slots number at most 3 and candidates are capped by the
//! caller, so plain enumeration of injective assignments is exact and cheap (≤ 12·11·10).
//! When several layout clauses or a relation and a clause constrain the same free object, each
//! is checked on its own (not jointly): under `Exists` this can only answer "satisfiable"
//! more often, which keeps "impossible" verdicts certain.

use crate::palette::{Colour, Shape};
use crate::prompt::{Band, LayoutClause, Pattern, Prompt, Relation};

/// A closed interval of pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn point(v: f64) -> Self {
        Interval { lo: v, hi: v }
    }

    pub fn around(v: f64, tol: f64) -> Self {
        Interval {
            lo: v - tol,
            hi: v + tol,
        }
    }
}

/// An object as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cand {
    pub colour: Option<Colour>,
    pub shape: Option<Shape>,
    pub x: Interval,
    pub y: Interval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quant {
    Exists,
    ForAll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Shape,
    Colour,
    Spatial,
    Layout,
}

/// The constraints of a prompt, flattened.
pub(crate) struct Problem<'a> {
    pub slots: Vec<Pattern>,
    pub relation: Option<(usize, Relation, usize)>,
    pub clauses: &'a [LayoutClause],
    /// Canvas width and height (for layout thirds).
    pub extent: (f64, f64),
}

impl<'a> Problem<'a> {
    pub fn new(prompt: &'a Prompt, width: usize, height: usize) -> Self {
        Problem {
            slots: prompt.slots(),
            relation: prompt.relation(),
            clauses: &prompt.layout,
            extent: (width as f64, height as f64),
        }
    }
}

fn attr_ok<T: PartialEq + Copy>(want: Option<T>, have: Option<T>, q: Quant) -> bool {
    match (want, have) {
        (None, _) => true,
        (Some(w), Some(h)) => w == h,
        (Some(_), None) => q == Quant::Exists,
    }
}

/// `a.v < b.v` over intervals.
fn less(a: Interval, b: Interval, q: Quant) -> bool {
    match q {
        Quant::Exists => a.lo < b.hi,
        Quant::ForAll => a.hi < b.lo,
    }
}

pub(crate) fn relation_ok(rel: Relation, a: &Cand, b: &Cand, q: Quant) -> bool {
    match rel {
        Relation::LeftOf => less(a.x, b.x, q),
        Relation::RightOf => less(b.x, a.x, q),
        Relation::Above => less(a.y, b.y, q),
        Relation::Below => less(b.y, a.y, q),
    }
}

fn band_ok(band: Option<Band>, v: Interval, extent: f64, q: Quant) -> bool {
    let Some(band) = band else { return true };
    let (lo, hi) = band.range();
    let (lo, hi) = (lo * extent, hi * extent);
    match q {
        Quant::Exists => v.lo < hi && v.hi >= lo,
        Quant::ForAll => v.lo >= lo && v.hi < hi,
    }
}

/// Whether `cand`, assigned to `slot`, can be the object of `clause`.
fn clause_ok(
    clause: &LayoutClause,
    slot: &Pattern,
    cand: &Cand,
    extent: (f64, f64),
    q: Quant,
) -> bool {
    // Free attributes are bound by the slot first.
    let colour = cand.colour.or(slot.colour);
    let shape = cand.shape.or(slot.shape);
    let (row, col) = clause.region.bands();
    attr_ok(clause.target.colour, colour, q)
        && attr_ok(clause.target.shape, shape, q)
        && band_ok(row, cand.y, extent.1, q)
        && band_ok(col, cand.x, extent.0, q)
}

fn slot_ok(slot: &Pattern, cand: &Cand, level: Level, q: Quant) -> bool {
    attr_ok(slot.shape, cand.shape, q)
        && (level < Level::Colour || attr_ok(slot.colour, cand.colour, q))
}

/// Whether an injective assignment of slots to candidates satisfies `level` (every candidate
/// used as well when `bijective`).
pub(crate) fn satisfiable(
    p: &Problem<'_>,
    cands: &[Cand],
    level: Level,
    q: Quant,
    bijective: bool,
) -> bool {
    if p.slots.len() > cands.len() || (bijective && p.slots.len() != cands.len()) {
        return false;
    }
    let mut assign = Vec::with_capacity(p.slots.len());
    let mut used = vec![false; cands.len()];
    search(p, cands, level, q, &mut assign, &mut used)
}

fn search(
    p: &Problem<'_>,
    cands: &[Cand],
    level: Level,
    q: Quant,
    assign: &mut Vec<usize>,
    used: &mut [bool],
) -> bool {
    let k = assign.len();
    if k == p.slots.len() {
        return complete_ok(p, cands, level, q, assign);
    }
    for c in 0..cands.len() {
        if used[c] || !slot_ok(&p.slots[k], &cands[c], level, q) {
            continue;
        }
        used[c] = true;
        assign.push(c);
        let ok = search(p, cands, level, q, assign, used);
        assign.pop();
        used[c] = false;
        if ok {
            return true;
        }
    }
    false
}

fn complete_ok(p: &Problem<'_>, cands: &[Cand], level: Level, q: Quant, assign: &[usize]) -> bool {
    if level >= Level::Spatial {
        if let Some((a, rel, b)) = p.relation {
            if !relation_ok(rel, &cands[assign[a]], &cands[assign[b]], q) {
                return false;
            }
        }
    }
    if level >= Level::Layout {
        for clause in p.clauses {
            let found = assign
                .iter()
                .enumerate()
                .any(|(k, &c)| clause_ok(clause, &p.slots[k], &cands[c], p.extent, q));
            if !found {
                return false;
            }
        }
    }
    true
}

/// Best fraction of atomic constraints satisfied over all partial injective assignments (the
/// soft score): per slot one atom for being assigned plus one per named attribute, the
/// relation, each layout clause, and the object count. 1 exactly when aligned.
pub(crate) fn soft_score(p: &Problem<'_>, cands: &[Cand]) -> f64 {
    let atoms_per_slot: usize = p
        .slots
        .iter()
        .map(|s| 1 + s.colour.is_some() as usize + s.shape.is_some() as usize)
        .sum();
    let total = atoms_per_slot + p.relation.is_some() as usize + p.clauses.len() + 1;
    let count_ok = (cands.len() == p.slots.len()) as usize;
    let mut assign: Vec<Option<usize>> = Vec::with_capacity(p.slots.len());
    let mut used = vec![false; cands.len()];
    let best = soft_search(p, cands, &mut assign, &mut used);
    (best + count_ok) as f64 / total as f64
}

fn soft_search(
    p: &Problem<'_>,
    cands: &[Cand],
    assign: &mut Vec<Option<usize>>,
    used: &mut [bool],
) -> usize {
    let k = assign.len();
    if k == p.slots.len() {
        return soft_count(p, cands, assign);
    }
    assign.push(None);
    let mut best = soft_search(p, cands, assign, used);
    assign.pop();
    for c in 0..cands.len() {
        if used[c] {
            continue;
        }
        used[c] = true;
        assign.push(Some(c));
        best = best.max(soft_search(p, cands, assign, used));
        assign.pop();
        used[c] = false;
    }
    best
}

fn soft_count(p: &Problem<'_>, cands: &[Cand], assign: &[Option<usize>]) -> usize {
    let q = Quant::Exists;
    let mut n = 0;
    for (slot, a) in p.slots.iter().zip(assign) {
        if let Some(c) = a {
            let cand = &cands[*c];
            n += 1;
            n += (slot.colour.is_some() && attr_ok(slot.colour, cand.colour, q)) as usize;
            n += (slot.shape.is_some() && attr_ok(slot.shape, cand.shape, q)) as usize;
        }
    }
    if let Some((a, rel, b)) = p.relation {
        if let (Some(ca), Some(cb)) = (assign[a], assign[b]) {
            n += relation_ok(rel, &cands[ca], &cands[cb], q) as usize;
        }
    }
    for clause in p.clauses {
        let found = assign.iter().enumerate().any(|(k, a)| {
            a.is_some_and(|c| clause_ok(clause, &p.slots[k], &cands[c], p.extent, q))
        });
        n += found as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(c: Colour, s: Shape, x: f64, y: f64) -> Cand {
        Cand {
            colour: Some(c),
            shape: Some(s),
            x: Interval::point(x),
            y: Interval::point(y),
        }
    }

    #[test]
    fn binding_needs_one_to_one_assignment() {
        let p = Prompt::parse("a red circle and a blue square").unwrap();
        let pr = Problem::new(&p, 64, 64);
        let good = [
            cand(Colour::Blue, Shape::Square, 10.0, 10.0),
            cand(Colour::Red, Shape::Circle, 40.0, 40.0),
        ];
        let swapped = [
            cand(Colour::Red, Shape::Square, 10.0, 10.0),
            cand(Colour::Blue, Shape::Circle, 40.0, 40.0),
        ];
        assert!(satisfiable(&pr, &good, Level::Layout, Quant::Exists, true));
        assert!(satisfiable(
            &pr,
            &swapped,
            Level::Shape,
            Quant::Exists,
            true
        ));
        assert!(!satisfiable(
            &pr,
            &swapped,
            Level::Colour,
            Quant::Exists,
            true
        ));
        assert_eq!(soft_score(&pr, &good), 1.0);
        assert!(soft_score(&pr, &swapped) < 1.0);
    }

    #[test]
    fn relations_and_quantifiers() {
        let p = Prompt::parse("a red circle left of a blue square").unwrap();
        let pr = Problem::new(&p, 64, 64);
        let mut c = vec![
            cand(Colour::Red, Shape::Circle, 10.0, 10.0),
            cand(Colour::Blue, Shape::Square, 40.0, 40.0),
        ];
        assert!(satisfiable(&pr, &c, Level::Spatial, Quant::ForAll, true));
        c[0].x = Interval { lo: 35.0, hi: 45.0 };
        assert!(satisfiable(&pr, &c, Level::Spatial, Quant::Exists, true));
        assert!(!satisfiable(&pr, &c, Level::Spatial, Quant::ForAll, true));
        c[0].x = Interval::point(50.0);
        assert!(!satisfiable(&pr, &c, Level::Spatial, Quant::Exists, true));
        assert!(satisfiable(&pr, &c, Level::Colour, Quant::Exists, true));
    }

    #[test]
    fn free_attributes_are_bound_by_slots_for_layout() {
        let p = Prompt::parse("a red circle, the red circle on the top left").unwrap();
        let pr = Problem::new(&p, 64, 64);
        let free = Cand {
            colour: Some(Colour::Red),
            shape: None,
            x: Interval::point(5.0),
            y: Interval { lo: 10.0, hi: 30.0 },
        };
        assert!(satisfiable(
            &pr,
            std::slice::from_ref(&free),
            Level::Layout,
            Quant::Exists,
            true
        ));
        assert!(!satisfiable(
            &pr,
            std::slice::from_ref(&free),
            Level::Layout,
            Quant::ForAll,
            true
        ));
        let far = Cand {
            y: Interval { lo: 30.0, hi: 40.0 },
            ..free
        };
        assert!(!satisfiable(
            &pr,
            &[far],
            Level::Layout,
            Quant::Exists,
            true
        ));
    }
}
