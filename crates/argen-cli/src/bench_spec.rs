//! The rows of `argen bench`: which method runs with which parameters.
//!
//! Every row is an `argen generate` configuration (a [`GenerateArgs`] with the command's
//! defaults and a few fields changed), so a row's numbers can be reproduced one image at a time
//! with the `argen generate` flags of [`Spec::flags`].
//!
//! Families (the names `--methods` accepts) and their rows, full run / `--quick`:
//!
//! | family    | rows                                                                 |
//! |-----------|----------------------------------------------------------------------|
//! | `vanilla` | one target pass per token (always runs: the speed-up baseline)       |
//! | `sd`      | Exact speculative decoding, chain γ=4 and EAGLE-2 tree (59, 4, 10); `sd auto` |
//! | `coupled` | Coupled criterion, tree; `coupled auto`                              |
//! | `lantern` | δ ∈ {0.05, 0.1, 0.2, 0.3, 0.4} at k=1000; k ∈ {10, 100} at δ=0.2 / δ ∈ {0.1, 0.2, 0.4} |
//! | `vvs`     | uniform intervals 2, 3, 4 and dynamic (s=0.65) / interval 2 and dynamic |
//! | `sjd`     | speculative Jacobi, window 16, random init                           |
//! | `gsd`     | grouped speculative decoding, tree                                   |
//! | `bon`     | Best-of-N, N = 4 and 8                                               |
//! | `gridar`  | GridAR, N = 4 and 8; N = 4 without reformulation / N = 4 and 8        |
//!
//! `--inner` repeats the `bon` and `gridar` rows for each listed candidate method (named
//! `bon N=4 inner=sd`, `gridar N=4 inner=…`; vanilla candidates keep the names above); the
//! candidate method takes the flags of its own row family (tree drafts, exact criterion,
//! LANTERN δ = 0.2 at k = 1000, VVS uniform interval 2, Jacobi window 16).
//!
//! `sd auto` / `coupled auto` (cost-aware chains of up to γ=4, `--draft auto`) run when the
//! base arguments carry a cost profile with a drafter curve: `argen bench` hands them the
//! profile its predictions use (the model directory's `cost-profile.json` when it was measured
//! under the run's conditions, else one calibrated at the start of the run).
//!
//! LANTERN's k is capped at vocabulary − 1 (ShapesWorld's codebook is far smaller than
//! LlamaGen's 16384, so k=1000 means "every other code").

use clap::Parser;

use crate::args::{CriterionArg, DraftArg, GenerateArgs, Method, VvsScheduleArg};

/// Method families, in table order.
pub const FAMILIES: [&str; 9] = [
    "vanilla", "sd", "coupled", "lantern", "vvs", "sjd", "gsd", "bon", "gridar",
];

/// One row of the benchmark.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Row name, unique (e.g. `lantern δ=0.2`).
    pub name: String,
    /// Family (one of [`FAMILIES`]).
    pub family: &'static str,
    /// The `argen generate` configuration.
    pub args: GenerateArgs,
    /// The swept value of a trade-off curve (LANTERN δ or k, VVS interval; 0 = dynamic).
    pub sweep: Option<f64>,
}

impl Spec {
    /// The candidate method of a `bon` or `gridar` row.
    pub fn inner(&self) -> Option<Method> {
        matches!(self.args.method, Method::Bon | Method::Gridar)
            .then(|| self.args.inner.unwrap_or(Method::Vanilla))
    }

    /// The `argen generate` flags that reproduce this row for one image (model, prompt and
    /// seed are added by the caller).
    pub fn flags(&self) -> String {
        let a = &self.args;
        let mut f = format!("--method {}", a.method.name());
        match self.inner() {
            Some(inner) => {
                f += &format!(" --n {}", a.n);
                if inner != Method::Vanilla {
                    f += &format!(" --inner {}", inner.name());
                    f += &method_flags(inner, a);
                }
                if a.method == Method::Gridar && a.no_reformulate {
                    f += " --no-reformulate";
                }
            }
            None => f += &method_flags(a.method, a),
        }
        f += &format!(" --cfg {} --temperature {}", a.cfg, a.temperature);
        f
    }
}

/// The flags of single-image method `m`'s parameters in `a`.
fn method_flags(m: Method, a: &GenerateArgs) -> String {
    let mut f = String::new();
    let crit = match a.criterion {
        CriterionArg::Exact => "exact",
        CriterionArg::Coupled => "coupled",
    };
    let draft = match a.draft {
        DraftArg::Chain => format!(" --draft chain --gamma {}", a.gamma),
        DraftArg::Tree => " --draft tree".to_string(),
        DraftArg::Auto => format!(" --draft auto --gamma {}", a.gamma),
        DraftArg::AutoTree => " --draft auto-tree".to_string(),
    };
    {
        match m {
            Method::Vanilla | Method::Bon | Method::Gridar => {}
            Method::Sd => f += &format!(" --criterion {crit}{draft}"),
            Method::Lantern => {
                f += &format!("{draft} --delta {} --lantern-k {}", a.delta, a.lantern_k)
            }
            Method::Gsd => f += &draft,
            Method::Vvs => match a.vvs_schedule {
                VvsScheduleArg::Uniform => {
                    f += &format!(
                        " --criterion {crit}{draft} --vvs-schedule uniform --vvs-interval {}",
                        a.vvs_interval
                    )
                }
                VvsScheduleArg::Dynamic => {
                    f += &format!(
                        " --criterion {crit}{draft} --vvs-schedule dynamic --vvs-threshold {}",
                        a.vvs_threshold
                    )
                }
            },
            Method::Sjd => f += &format!(" --criterion {crit} --window {}", a.window),
        }
    }
    f
}

#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    g: GenerateArgs,
}

/// `argen generate`'s defaults, with guidance and temperature set.
pub fn base_args(cfg: f32, temperature: f32, threads: usize) -> Result<GenerateArgs, String> {
    let mut g = Defaults::try_parse_from(["argen"])
        .map_err(|e| e.to_string())?
        .g;
    g.cfg = cfg;
    g.temperature = temperature;
    g.threads = threads;
    g.quiet = true;
    Ok(g)
}

fn with(base: &GenerateArgs, f: impl FnOnce(&mut GenerateArgs)) -> GenerateArgs {
    let mut a = base.clone();
    f(&mut a);
    a
}

/// The rows to run: every family, or those named in `methods` (vanilla always), full or quick;
/// the `bon` and `gridar` rows once per candidate method of `inner` (default vanilla).
pub fn specs(
    quick: bool,
    methods: &[String],
    inner: &[Method],
    base: &GenerateArgs,
) -> Result<Vec<Spec>, String> {
    if let Some(m) = inner
        .iter()
        .find(|m| matches!(m, Method::Bon | Method::Gridar))
    {
        return Err(format!(
            "--inner {}: the candidates of bon and gridar are single-image methods (hint: --inner \
             vanilla, sd, lantern, gsd, vvs or sjd)",
            m.name()
        ));
    }
    let inner = if inner.is_empty() {
        &[Method::Vanilla][..]
    } else {
        inner
    };
    for m in methods {
        if !FAMILIES.contains(&m.as_str()) {
            return Err(format!(
                "--methods: unknown method family {m:?}; choose from {}",
                FAMILIES.join(", ")
            ));
        }
    }
    let wanted = |f: &str| f == "vanilla" || methods.is_empty() || methods.iter().any(|m| m == f);
    let mut out = Vec::new();
    let mut push = |name: String, family: &'static str, args: GenerateArgs, sweep: Option<f64>| {
        if wanted(family) {
            out.push(Spec {
                name,
                family,
                args,
                sweep,
            });
        }
    };
    push(
        "vanilla".into(),
        "vanilla",
        with(base, |a| a.method = Method::Vanilla),
        None,
    );
    push(
        "exact chain γ=4".into(),
        "sd",
        with(base, |a| {
            a.method = Method::Sd;
            a.draft = DraftArg::Chain;
        }),
        None,
    );
    push(
        "exact tree".into(),
        "sd",
        with(base, |a| a.method = Method::Sd),
        None,
    );
    push(
        "coupled tree".into(),
        "coupled",
        with(base, |a| {
            a.method = Method::Sd;
            a.criterion = CriterionArg::Coupled;
        }),
        None,
    );
    // Cost-aware drafting needs the drafter's curve (a model without a drafter has no sd rows).
    if base
        .cost_profile
        .as_ref()
        .is_some_and(|p| p.drafter.is_some())
    {
        for (name, family, criterion) in [
            ("sd auto", "sd", CriterionArg::Exact),
            ("coupled auto", "coupled", CriterionArg::Coupled),
        ] {
            push(
                name.into(),
                family,
                with(base, |a| {
                    a.method = Method::Sd;
                    a.draft = DraftArg::Auto;
                    a.criterion = criterion;
                }),
                None,
            );
        }
    }
    let deltas: &[f32] = if quick {
        &[0.1, 0.2, 0.4]
    } else {
        &[0.05, 0.1, 0.2, 0.3, 0.4]
    };
    for &d in deltas {
        push(
            format!("lantern δ={d}"),
            "lantern",
            with(base, |a| {
                a.method = Method::Lantern;
                a.delta = d;
                a.lantern_k = 1000;
            }),
            Some(d as f64),
        );
    }
    if !quick {
        for k in [10usize, 100] {
            push(
                format!("lantern δ=0.2 k={k}"),
                "lantern",
                with(base, |a| {
                    a.method = Method::Lantern;
                    a.delta = 0.2;
                    a.lantern_k = k;
                }),
                Some(k as f64),
            );
        }
    }
    let intervals: &[u32] = if quick { &[2] } else { &[2, 3, 4] };
    for &i in intervals {
        push(
            format!("vvs uniform {i}"),
            "vvs",
            with(base, |a| {
                a.method = Method::Vvs;
                a.vvs_schedule = VvsScheduleArg::Uniform;
                a.vvs_interval = i;
            }),
            Some(i as f64),
        );
    }
    push(
        "vvs dynamic".into(),
        "vvs",
        with(base, |a| {
            a.method = Method::Vvs;
            a.vvs_schedule = VvsScheduleArg::Dynamic;
        }),
        Some(0.0),
    );
    push(
        "jacobi (sjd)".into(),
        "sjd",
        with(base, |a| a.method = Method::Sjd),
        None,
    );
    push(
        "gsd tree".into(),
        "gsd",
        with(base, |a| a.method = Method::Gsd),
        None,
    );
    for &m in inner {
        if wanted("gridar") && !crate::generate::restartable(m, base) {
            return Err(format!(
                "--inner {}: GridAR rows need restartable candidates and {} candidates are not \
                 (hint: --methods bon for Best-of-N over {} only)",
                m.name(),
                m.name(),
                m.name()
            ));
        }
        // The candidate method with the flags of its own row family.
        let cand = |a: &mut GenerateArgs| {
            a.inner = (m != Method::Vanilla).then_some(m);
            a.delta = 0.2;
            a.lantern_k = 1000;
        };
        let suffix = if m == Method::Vanilla {
            String::new()
        } else {
            format!(" inner={}", m.name())
        };
        for n in [4u32, 8] {
            let name = if m == Method::Vanilla {
                format!("best-of-{n}")
            } else {
                format!("bon N={n}{suffix}")
            };
            push(
                name,
                "bon",
                with(base, |a| {
                    a.method = Method::Bon;
                    a.n = n;
                    cand(a);
                }),
                Some(n as f64),
            );
        }
        for n in [4u32, 8] {
            push(
                format!("gridar N={n}{suffix}"),
                "gridar",
                with(base, |a| {
                    a.method = Method::Gridar;
                    a.n = n;
                    cand(a);
                }),
                Some(n as f64),
            );
        }
        if !quick {
            // Ablation: pruning and anchors alone, the prompt kept.
            push(
                format!("gridar N=4 no reform{suffix}"),
                "gridar",
                with(base, |a| {
                    a.method = Method::Gridar;
                    a.n = 4;
                    a.no_reformulate = true;
                    cand(a);
                }),
                Some(4.0),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_rows_and_names_are_unique() {
        let base = base_args(4.0, 1.0, 1).unwrap();
        for quick in [false, true] {
            let s = specs(quick, &[], &[], &base).unwrap();
            for f in FAMILIES {
                assert!(s.iter().any(|r| r.family == f), "{f} missing");
            }
            let mut names: Vec<_> = s.iter().map(|r| r.name.clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), s.len());
        }
        let full = specs(false, &[], &[], &base).unwrap();
        assert_eq!(full.iter().filter(|r| r.family == "lantern").count(), 7);
        assert_eq!(full.iter().filter(|r| r.family == "vvs").count(), 4);
    }

    #[test]
    fn auto_rows_run_with_a_profile() {
        use argen_core::cost::{CostCurve, CostProfile};
        let mut base = base_args(4.0, 1.0, 1).unwrap();
        let curve = CostCurve::new(&[(2, 1000)]).unwrap();
        base.cost_profile = Some(Box::new(CostProfile {
            target: curve,
            drafter: Some(curve),
        }));
        let s = specs(true, &["sd".into(), "coupled".into()], &[], &base).unwrap();
        let names: Vec<_> = s.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vanilla",
                "exact chain γ=4",
                "exact tree",
                "coupled tree",
                "sd auto",
                "coupled auto"
            ]
        );
        let auto = &s[4];
        assert!(auto
            .flags()
            .contains("--criterion exact --draft auto --gamma 4"));
        assert!(s[5].flags().contains("--criterion coupled --draft auto"));
    }

    #[test]
    fn methods_filter_keeps_vanilla_and_rejects_unknown_names() {
        let base = base_args(4.0, 1.0, 1).unwrap();
        let s = specs(false, &["gridar".into()], &[], &base).unwrap();
        let fams: Vec<_> = s.iter().map(|r| r.family).collect();
        assert_eq!(fams, ["vanilla", "gridar", "gridar", "gridar"]);
        let e = specs(true, &["medusa".into()], &[], &base).unwrap_err();
        assert!(e.contains("medusa") && e.contains("lantern"), "{e}");
    }

    #[test]
    fn flags_name_the_swept_parameters() {
        let base = base_args(4.0, 1.0, 1).unwrap();
        let s = specs(false, &[], &[], &base).unwrap();
        let f = |n: &str| s.iter().find(|r| r.name == n).unwrap().flags();
        assert!(f("lantern δ=0.2 k=10").contains("--delta 0.2 --lantern-k 10"));
        assert!(f("vvs uniform 3").contains("--vvs-interval 3"));
        assert!(f("exact chain γ=4").contains("--draft chain --gamma 4"));
        assert!(
            !s.iter().any(|r| r.name.contains("auto")),
            "no profile, no auto rows"
        );
        assert!(f("gridar N=8").contains("--method gridar --n 8"));
        assert!(!f("gridar N=8").contains("--no-reformulate"));
        assert!(
            f("gridar N=4 no reform").ends_with("--n 4 --no-reformulate --cfg 4 --temperature 1")
        );
    }
}
