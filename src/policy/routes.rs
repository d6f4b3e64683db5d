//! Review routes in the policy set (`[[route]]` tables, kept in `routes.toml`): which
//! reviewer groups must approve a draft, chosen by what its check found and its channel.
//! The first route that matches applies; when none does, the default (one reviewer, two for
//! an escalated draft). Routes are part of the policy set: validated at load with file and
//! line, and part of `policy_version`. Described for compliance officers in
//! docs/policies.md "Review routes".

use serde::Deserialize;
use toml::Spanned;

use super::config::SourceFile;
use super::report::{CheckReport, PolicyFileError, Verdict};
use crate::domain::inbound::Channel;
use crate::domain::routing::{Need, Plan, Step};

/// One `[[route]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteDef {
    pub name: Spanned<String>,
    /// The verdicts it applies to (`pass`, `escalate`); empty: both.
    #[serde(default)]
    pub verdict: Vec<Spanned<String>>,
    /// It applies when a finding has one of these categories.
    #[serde(default)]
    pub categories: Vec<Spanned<String>>,
    /// … or (when both are given, and) one of these rule ids.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// The channels of the message answered; empty: every channel.
    #[serde(default)]
    pub channels: Vec<Spanned<String>>,
    #[serde(default)]
    pub step: Vec<Spanned<StepDef>>,
}

/// One `[[route.step]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepDef {
    /// The reviewer group; absent: every reviewer.
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    /// `"any"`, `"all"` or a number …
    #[serde(default)]
    pub approvals: Option<Need>,
    /// … or the number as `n = K`.
    #[serde(default)]
    pub n: Option<Spanned<i64>>,
}

/// A route, validated.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    verdicts: Vec<Verdict>,
    categories: Vec<String>,
    rules: Vec<String>,
    channels: Vec<Channel>,
    steps: Vec<Step>,
}

impl Route {
    fn matches(&self, report: &CheckReport, channel: Channel) -> bool {
        (self.verdicts.is_empty() || self.verdicts.contains(&report.verdict))
            && (self.channels.is_empty() || self.channels.contains(&channel))
            && (self.categories.is_empty()
                || report
                    .findings
                    .iter()
                    .any(|f| self.categories.contains(&f.category)))
            && (self.rules.is_empty()
                || report.findings.iter().any(|f| self.rules.contains(&f.rule)))
    }

    /// The route's steps, as a draft's plan starts.
    pub fn plan(&self) -> Plan {
        Plan {
            route: self.name.clone(),
            steps: self.steps.clone(),
        }
    }
}

/// The routes of a policy set, in order.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// The plan of the first route matching a draft whose check gave `report`, answering a
    /// message on `channel`; the default plan when none matches.
    pub fn plan_for(&self, report: &CheckReport, channel: Channel) -> Plan {
        self.routes
            .iter()
            .find(|r| r.matches(report, channel))
            .map_or_else(|| Plan::default_for(report.verdict), Route::plan)
    }

    pub fn all(&self) -> &[Route] {
        &self.routes
    }
}

/// A group name: what `POST /api/v1/groups` accepts too.
pub fn valid_group_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Validates the `[[route]]` tables of `defs` (file index, tables), given the set's rule
/// ids and categories. Errors name file and line.
pub(crate) fn compile(
    sources: &[SourceFile],
    defs: Vec<(usize, Vec<Spanned<RouteDef>>)>,
    rule_ids: &[&str],
    categories: &[&str],
) -> Result<Routes, Vec<PolicyFileError>> {
    let mut errors = Vec::new();
    let mut routes = Vec::new();
    let mut route_file: Option<usize> = None;
    for (fi, tables) in defs {
        let src = &sources[fi];
        for table in tables {
            let at = table.span().start;
            let def = table.into_inner();
            let name = def.name.get_ref().trim().to_string();
            let mut err = |byte: usize, message: String| {
                errors.push(src.error(Some(byte), None, format!("route {name:?}: {message}")));
            };
            match route_file {
                Some(first) if first != fi => {
                    err(
                        at,
                        format!(
                            "routes are kept in one file, so their order is clear; {} has \
                             routes already",
                            sources[first].rel
                        ),
                    );
                    continue;
                }
                _ => route_file = Some(fi),
            }
            if name.is_empty() || name == crate::domain::routing::DEFAULT_ROUTE {
                err(
                    def.name.span().start,
                    "a route needs a name, other than \"default\" (the route taken when none \
                     matches)"
                        .into(),
                );
            }
            if routes.iter().any(|r: &Route| r.name == name) {
                err(def.name.span().start, "two routes have this name".into());
            }
            let mut verdicts = Vec::new();
            for v in &def.verdict {
                match v.get_ref().as_str() {
                    "pass" => verdicts.push(Verdict::Pass),
                    "escalate" => verdicts.push(Verdict::Escalate),
                    "block" => err(
                        v.span().start,
                        "a blocked draft is never reviewed: verdict is \"pass\" or \"escalate\""
                            .into(),
                    ),
                    other => err(
                        v.span().start,
                        format!("unknown verdict {other:?} (\"pass\" or \"escalate\")"),
                    ),
                }
            }
            for c in &def.categories {
                if !categories.contains(&c.get_ref().as_str()) {
                    err(
                        c.span().start,
                        format!("no rule of the set has the category {:?}", c.get_ref()),
                    );
                }
            }
            for r in &def.rules {
                if !rule_ids.contains(&r.get_ref().as_str()) {
                    err(
                        r.span().start,
                        format!("no rule has the id {:?}", r.get_ref()),
                    );
                }
            }
            let mut channels = Vec::new();
            for c in &def.channels {
                match c.get_ref().parse::<Channel>() {
                    Ok(ch) => channels.push(ch),
                    Err(_) => err(
                        c.span().start,
                        format!("unknown channel {:?} (x, mastodon or log)", c.get_ref()),
                    ),
                }
            }
            if def.step.is_empty() {
                err(at, "a route needs at least one [[route.step]]".into());
            }
            let mut steps = Vec::new();
            for s in def.step {
                let step_at = s.span().start;
                let s = s.into_inner();
                let approvals = match (s.approvals, &s.n) {
                    (Some(need), None) => need,
                    (None, Some(n)) if (1..=100).contains(n.get_ref()) => {
                        Need::AtLeast(*n.get_ref() as u32)
                    }
                    (None, Some(n)) => {
                        err(n.span().start, "n must be a number from 1 to 100".into());
                        continue;
                    }
                    _ => {
                        err(
                            step_at,
                            "a step needs approvals = \"any\", \"all\" or a number (or n = K), \
                             once"
                                .into(),
                        );
                        continue;
                    }
                };
                if let Some(g) = &s.group {
                    if !valid_group_name(g.get_ref()) {
                        err(
                            g.span().start,
                            format!(
                                "group {:?}: a group name is 1 to 64 lower-case letters, \
                                 digits, '-' or '_'",
                                g.get_ref()
                            ),
                        );
                    }
                }
                steps.push(Step {
                    group: s.group.map(Spanned::into_inner),
                    approvals,
                    required: None,
                });
            }
            // spec/checks.md: an escalated draft needs two different approvers. `all`
            // counts as one here: its group may have one member.
            let least: u32 = steps
                .iter()
                .map(|s| match s.approvals {
                    Need::AtLeast(k) => k,
                    Need::Any | Need::All => 1,
                })
                .sum();
            let takes_escalated = verdicts.is_empty() || verdicts.contains(&Verdict::Escalate);
            if takes_escalated && !steps.is_empty() && least < 2 {
                err(
                    at,
                    "it can take escalated drafts, which need at least two approvers in all: \
                     add a step, ask for 2 approvals, or limit it to verdict = [\"pass\"]"
                        .into(),
                );
            }
            routes.push(Route {
                name,
                verdicts,
                categories: def
                    .categories
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                rules: def.rules.into_iter().map(Spanned::into_inner).collect(),
                channels,
                steps,
            });
        }
    }
    if errors.is_empty() {
        Ok(Routes { routes })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::inbound::Channel;
    use crate::domain::routing::Need;
    use crate::policy::PolicySet;

    const RULES: &str = r#"
[[rule]]
id = "advice.invest"
kind = "terms"
category = "financial_advice"
severity = "escalate"
message = "Investment advice"
terms = ["invest"]
"#;

    fn set(routes: &str) -> Result<PolicySet, String> {
        PolicySet::from_files(vec![
            ("rules.toml".into(), RULES.into()),
            ("routes.toml".into(), routes.into()),
        ])
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_first_matching_route_applies_else_the_default() {
        let s = set(r#"
[[route]]
name = "mastodon-advice"
rules = ["advice.invest"]
channels = ["mastodon"]
[[route.step]]
group = "legal"
n = 2

[[route]]
name = "advice"
categories = ["financial_advice"]
verdict = ["escalate"]
[[route.step]]
group = "compliance"
approvals = "any"
[[route.step]]
approvals = "any"
"#)
        .unwrap();
        let advice = s.check("You should invest now");
        let m = s.routes().plan_for(&advice, Channel::Mastodon);
        assert_eq!(m.route, "mastodon-advice");
        assert_eq!(m.steps[0].approvals, Need::AtLeast(2));
        let x = s.routes().plan_for(&advice, Channel::X);
        assert_eq!(x.route, "advice");
        assert_eq!(x.steps[1].group, None, "a step without group: any reviewer");
        let plain = s.routes().plan_for(&s.check("Thanks!"), Channel::X);
        assert_eq!(plain.route, "default");
        assert_eq!(plain.approvals_needed(), 1);
    }

    #[test]
    fn mistakes_name_file_and_line() {
        for (routes, line, says) in [
            ("[[route]]\nname = \"a\"\n", 1, "at least one [[route.step]]"),
            (
                "[[route]]\nname = \"a\"\nverdict = [\"block\"]\n[[route.step]]\nn = 2\n",
                3,
                "never reviewed",
            ),
            (
                "[[route]]\nname = \"a\"\nrules = [\"nope\"]\n[[route.step]]\nn = 2\n",
                3,
                "no rule has the id",
            ),
            (
                "[[route]]\nname = \"a\"\nchannels = [\"fax\"]\n[[route.step]]\nn = 2\n",
                3,
                "unknown channel",
            ),
            (
                "[[route]]\nname = \"a\"\n[[route.step]]\ngroup = \"Legal\"\nn = 2\n",
                4,
                "lower-case",
            ),
            (
                "[[route]]\nname = \"a\"\n[[route.step]]\nn = 0\n",
                4,
                "from 1 to 100",
            ),
            (
                "[[route]]\nname = \"default\"\n[[route.step]]\nn = 2\n",
                2,
                "other than \"default\"",
            ),
            (
                "[[route]]\nname = \"a\"\n[[route.step]]\nn = 2\n[[route]]\nname = \"a\"\n[[route.step]]\nn = 2\n",
                6,
                "two routes have this name",
            ),
        ] {
            let e = set(routes).unwrap_err();
            assert!(e.contains(&format!("routes.toml:{line}")), "{routes:?}: {e}");
            assert!(e.contains(says), "{routes:?}: {e}");
        }
    }
}
