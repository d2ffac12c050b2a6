"""A study's report from what its members stored: curves with CIs across seeds, final eval
scores, paired verdicts against the baseline (Holm-corrected, with Bonferroni's simultaneous
intervals), compute, and what could not be compared. The statistics are
`trainer.statistics`, the ones `/evals/compare` uses."""

from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from service.study_schemas import (
    REPORT_METRICS,
    ArmComparison,
    ArmSummary,
    CurvePoint,
    EvalScore,
    NotCompared,
    StudyMemberOut,
    StudyReport,
    StudyVerdict,
)
from service.study_views import study_out
from store import studies
from store.evals import CONFIDENCE, RESAMPLES, latest_results
from store.models import JobStatus, Study
from trainer.results import EVAL_METRIC_PREFIX, ProblemResult
from trainer.statistics import (
    bonferroni_intervals,
    holm,
    mean_ci,
    paired_bootstrap,
    pooled_over_seeds,
)

CORRECTION = (
    "verdicts: Holm step-down over every (arm, benchmark) comparison in this report, at the "
    "study's alpha; CI: the uncorrected 95 % paired bootstrap interval over problems, seeds "
    "pooled per problem; adjusted CI: Bonferroni's simultaneous interval (each at "
    "1 - alpha/m over the m comparisons, all together at 1 - alpha): one that excludes 0 "
    "implies Holm's verdict, and Holm may also reject where it touches 0"
)
TRUST_REGION = ("clip/ln_frac", "clip/hp_frac")
OUTSIDE_W = "weight/outside_max"

Problems = dict[str, dict[int, list[ProblemResult]]]
"""arm -> seed -> the eval's problems, for one benchmark."""


def build(session: Session, study: Study) -> StudyReport:
    out = study_out(session, study)
    spec = study.spec
    jobs = {j.id: j for j in studies.members(session, study)}
    train = {(m.arm, m.seed): m.job_id for m in out.members if m.role == "train" and m.job_id}
    evals = [m for m in out.members if m.role == "eval"]
    metrics = studies.member_metrics(session, list(train.values()))
    results: dict[str, dict[str, Any]] = {
        m.job_id: latest_results(session, m.job_id)
        for m in evals
        if m.job_id and m.status == JobStatus.SUCCEEDED
    }
    usage = studies.member_usage(session, list(jobs))
    arms = list(spec["arms"])
    comparisons, not_compared = _compare(
        arms, spec["baseline"], spec["alpha"], evals, results, out.members
    )
    return StudyReport(
        study_id=study.id,
        name=study.name,
        status=out.status,
        baseline=spec["baseline"],
        alpha=spec["alpha"],
        correction=CORRECTION,
        warnings=study.warnings,
        arms=[_summary(arm, out.members, metrics, train, usage) for arm in arms],
        curves=_curves(arms, train, metrics),
        evals=_scores(arms, evals, results),
        comparisons=comparisons,
        not_compared=not_compared,
    )


def _curves(
    arms: list[str], train: dict[tuple[str, int], str], metrics: dict[str, dict[int, dict]]
) -> list[CurvePoint]:
    """The trainer's metrics (`REPORT_METRICS`), then the periodic evals' scores."""
    points = []
    for arm in arms:
        runs = [metrics.get(job_id, {}) for (a, _), job_id in train.items() if a == arm]
        steps = sorted({step for run in runs for step in run})
        names = {name for run in runs for row in run.values() for name in row}
        evals = sorted(n for n in names if n.startswith(EVAL_METRIC_PREFIX))
        for name in (*REPORT_METRICS, *evals):
            for step in steps:
                values = [
                    float(run[step][name])
                    for run in runs
                    if step in run and run[step].get(name) is not None
                ]
                if values:
                    stat = mean_ci(values)
                    points.append(CurvePoint(arm=arm, metric=name, step=step, **vars(stat)))
    return points


def _scores(
    arms: list[str], evals: list[StudyMemberOut], results: dict[str, dict[str, Any]]
) -> list[EvalScore]:
    by_arm: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for member in evals:
        for benchmark, row in results.get(member.job_id or "", {}).items():
            for score, value in row.scores.items():
                by_arm[(member.arm, benchmark, score)][str(member.seed)] = float(value)
    out = []
    for (arm, benchmark, score), by_seed in sorted(
        by_arm.items(), key=lambda kv: (arms.index(kv[0][0]), kv[0][1], kv[0][2])
    ):
        stat = mean_ci(list(by_seed.values()))
        out.append(
            EvalScore(
                arm=arm, benchmark=benchmark, score=score, mean=stat.mean,
                ci_low=stat.ci_low, ci_high=stat.ci_high, by_seed=by_seed,
            )
        )  # fmt: skip
    return out


def _problems(row: Any) -> list[ProblemResult]:
    return [
        ProblemResult(str(p["problem_id"]), int(p["num_samples"]), int(p["num_correct"]))
        for p in row.per_problem.get("problems", [])
        if p.get("num_samples")
    ]


def _why(members: list[StudyMemberOut], arm: str, seed: int) -> str:
    """What kept (arm, seed) out: the first member of it that did not succeed."""
    for m in members:
        if m.arm == arm and m.seed == seed and m.status != JobStatus.SUCCEEDED:
            code = f" ({m.error_code})" if m.error_code else ""
            return f"seed {seed}: {m.role} job {m.job_id or '(not submitted)'} {m.status}{code}"
    return f"seed {seed}: no result for this benchmark"


def _compare(
    arms: list[str],
    baseline: str,
    alpha: float,
    evals: list[StudyMemberOut],
    results: dict[str, dict[str, Any]],
    members: list[StudyMemberOut],
) -> tuple[list[ArmComparison], list[NotCompared]]:
    problems: dict[str, Problems] = defaultdict(lambda: defaultdict(dict))
    for m in evals:
        for benchmark, row in results.get(m.job_id or "", {}).items():
            problems[benchmark][m.arm][m.seed] = _problems(row)
    seeds = sorted({m.seed for m in members}, key=[m.seed for m in members].index)
    made, skipped = [], []
    for arm in arms:
        if arm == baseline:
            continue
        if not problems:
            reasons = "; ".join(_why(members, a, s) for a in (baseline, arm) for s in seeds)
            skipped.append(
                NotCompared(arm=arm, benchmark=None, reason=f"no eval results: {reasons}")
            )
            continue
        for benchmark, by_arm in sorted(problems.items()):
            paired = [
                s for s in seeds if s in by_arm.get(arm, {}) and s in by_arm.get(baseline, {})
            ]
            missing = [s for s in seeds if s not in paired]
            if missing:
                reasons = "; ".join(
                    _why(members, a, s) for s in missing for a in (baseline, arm)
                    if s not in by_arm.get(a, {})
                )  # fmt: skip
                what = "not compared" if not paired else f"compared without seeds {missing}"
                skipped.append(
                    NotCompared(arm=arm, benchmark=benchmark, reason=f"{what}: {reasons}")
                )
            if not paired:
                continue
            base = pooled_over_seeds([by_arm[baseline][s] for s in paired])
            mine = pooled_over_seeds([by_arm[arm][s] for s in paired])
            try:
                c = paired_bootstrap(
                    base, mine, benchmark=benchmark, num_resamples=RESAMPLES, confidence=CONFIDENCE
                )
            except ValueError as exc:  # no problem every paired seed of both arms answered
                skipped.append(NotCompared(arm=arm, benchmark=benchmark, reason=str(exc)))
                continue
            made.append((arm, paired, c, (base, mine)))
    adjusted, rejected = holm([c.p_value or 0.0 for _, _, c, _ in made], alpha)
    intervals = bonferroni_intervals([pair for *_, pair in made], alpha, num_resamples=RESAMPLES)
    comparisons = [
        ArmComparison(
            arm=arm, benchmark=c.benchmark, seeds=paired, num_problems=c.num_problems,
            baseline_accuracy=c.accuracy_a, accuracy=c.accuracy_b, difference=c.difference,
            ci_low=c.ci_low, ci_high=c.ci_high, ci_low_adjusted=low, ci_high_adjusted=high,
            confidence_adjusted=1.0 - alpha / len(made), p_value=c.p_value or 0.0,
            p_adjusted=p, verdict=_verdict(c.difference, reject),
        )
        for (arm, paired, c, _), p, reject, (low, high) in zip(
            made, adjusted, rejected, intervals, strict=True
        )
    ]  # fmt: skip
    return comparisons, skipped


def _verdict(difference: float, rejected: bool) -> StudyVerdict:
    if not rejected:
        return "no detectable difference"
    return "better" if difference > 0 else "worse"


def _summary(
    arm: str,
    members: list[StudyMemberOut],
    metrics: dict[str, dict[int, dict[str, Any]]],
    train: dict[tuple[str, int], str],
    usage: dict[str, tuple[int, float, float]],
) -> ArmSummary:
    mine = [m for m in members if m.arm == arm]
    done = [m for m in mine if m.status == JobStatus.SUCCEEDED]
    used = [usage[m.job_id] for m in mine if m.job_id in usage]
    per_seed, w_max, w_outside = [], [], []
    for (a, _), job_id in train.items():
        steps = list(metrics.get(job_id, {}).values()) if a == arm else []
        outside = [
            sum(float(s[k]) for k in TRUST_REGION)
            for s in steps
            if all(k in s for k in TRUST_REGION)
        ]
        if outside:
            per_seed.append(sum(outside) / len(outside))
        w_max += [float(s["weight/max"]) for s in steps if "weight/max" in s]
        w_outside += [float(s[OUTSIDE_W]) for s in steps if OUTSIDE_W in s]
    return ArmSummary(
        arm=arm,
        seeds_trained=[m.seed for m in done if m.role == "train"],
        seeds_evaluated=[m.seed for m in done if m.role == "eval"],
        attempts=sum(u[0] for u in used),
        wall_seconds=sum(u[1] for u in used),
        gpu_seconds=sum(u[2] for u in used),
        outside_trust_region=sum(per_seed) / len(per_seed) if per_seed else None,
        weight_max=max(w_max) if w_max else None,
        weight_outside_max=max(w_outside) if w_outside else None,
    )


CSV_COLUMNS = ("section", "arm", "name", "step", "value", "ci_low", "ci_high", "n", "p_value",
               "p_adjusted", "verdict", "ci_low_adjusted", "ci_high_adjusted")  # fmt: skip


def csv_rows(report: StudyReport) -> list[list[Any]]:
    """The report as one long table (`CSV_COLUMNS`): section, arm, what (metric, score or
    benchmark), step, mean/difference, CI, n, p-values, verdict, adjusted CI; blank where
    a section has no such thing."""
    rows: list[list[Any]] = [list(CSV_COLUMNS)]
    for p in report.curves:
        rows.append(_row("curve", p.arm, p.metric, p.mean, step=p.step, ci_low=p.ci_low,
                         ci_high=p.ci_high, n=p.n))  # fmt: skip
    for e in report.evals:
        rows.append(_row("eval", e.arm, f"{e.benchmark}/{e.score}", e.mean, ci_low=e.ci_low,
                         ci_high=e.ci_high, n=len(e.by_seed)))  # fmt: skip
    for c in report.comparisons:
        rows.append(_row("comparison", c.arm, c.benchmark, c.difference, ci_low=c.ci_low,
                         ci_high=c.ci_high, n=c.num_problems, p_value=c.p_value,
                         p_adjusted=c.p_adjusted, verdict=c.verdict,
                         ci_low_adjusted=c.ci_low_adjusted,
                         ci_high_adjusted=c.ci_high_adjusted))  # fmt: skip
    for a in report.arms:
        rows.append(_row("compute", a.arm, "wall_seconds", a.wall_seconds, n=a.attempts))
        rows.append(_row("compute", a.arm, "gpu_seconds", a.gpu_seconds, n=a.attempts))
        rows.append(_row("trust_region", a.arm, "outside_frac", a.outside_trust_region))
    for n in report.not_compared:
        rows.append(_row("not_compared", n.arm, n.benchmark or "", verdict=n.reason))
    return rows


def _row(section: str, arm: str, name: str, value: Any = "", **cells: Any) -> list[Any]:
    named = {"section": section, "arm": arm, "name": name, "value": value, **cells}
    return [named.get(column, "") for column in CSV_COLUMNS]
