"""`dgpo studies ...`: submit a study (arms x seeds), follow it, cancel it, read its report."""

from pathlib import Path
from typing import Annotated, Any

import typer

from dgpo.commands._api import (
    api_client,
    console,
    exit_invalid,
    minute,
    print_json,
    print_table,
    print_warnings,
)
from dgpo.commands.spec_errors import SpecFileError, read_yaml, with_overrides

app = typer.Typer(help="Compare training recipes: arms x seeds, one report.", no_args_is_help=True)

STUDY_COLUMNS = ("id", "name", "status", "progress", "arms", "created (UTC)")
MEMBER_COLUMNS = ("arm", "seed", "role", "status", "job_id")
VERDICT_COLUMNS = ("arm", "benchmark", "difference", "95% CI", "adjusted CI", "p (Holm)", "verdict")


def load_study(path: Path, assignments: list[str]) -> dict[str, Any]:
    """The study file with its overrides (`base.optim.lr=1e-5` sets the base spec's field,
    `seeds=[1,2,3]` the study's), validated and expanded locally as the API will."""
    from pydantic import ValidationError

    from trainer.spec.jobs import TrainJobRequest
    from trainer.spec.study import ArmInvalid, StudyRequest, expand

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecFileError([f"{path} must hold a mapping (name, base, arms, seeds, ...)"])
    own = [a for a in assignments if not a.startswith("base.")]
    base = [a.removeprefix("base.") for a in assignments if a.startswith("base.")]
    data = with_overrides(data, StudyRequest, own) if own else data
    if base:
        data = {**data, "base": with_overrides(data.get("base") or {}, TrainJobRequest, base)}
    try:
        expand(StudyRequest.model_validate(data), "local")
    except ValidationError as exc:
        raise SpecFileError(
            [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        ) from exc
    except ArmInvalid as exc:
        raise SpecFileError(str(exc).split("; ")) from exc
    return data


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Study YAML")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE overrides: base.optim.lr=1e-5, seeds=[1,2,3]"),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", "-k", help="Retry-safe submission key")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate the study locally, then submit it; prints its id and its jobs."""
    try:
        body = load_study(spec, overrides or [])
    except SpecFileError as exc:
        exit_invalid(spec, "study", exc.lines)
    with api_client() as api:
        study = api.submit_study(body, idempotency_key=idempotency_key)
    if as_json:
        print_json(study)
        return
    console.print(f"{study['id']}  {study['name']}  {study['status']}")
    print_table(_members(study), MEMBER_COLUMNS, keep=("job_id",))
    print_warnings(study["warnings"])


def _members(study: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**m, "job_id": m["job_id"] or "-"} for m in study["members"]]


@app.command("list")
def list_studies(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Newest studies first."""
    with api_client() as api:
        found = api.list_studies()
    if as_json:
        print_json(found)
        return
    rows = [
        {**s, "progress": f"{100 * s['progress']:.0f}%", "arms": ", ".join(s["arms"]),
         "created (UTC)": minute(s["created_at"])}
        for s in found
    ]  # fmt: skip
    print_table(rows, STUDY_COLUMNS, keep=("id",))


@app.command()
def show(study_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Status, progress, incomplete arms and every member job."""
    with api_client() as api:
        study = api.get_study(study_id)
    if as_json:
        print_json(study)
        return
    console.print(
        f"{study['name']}  {study['status']}  {100 * study['progress']:.0f}%  "
        f"baseline={study['baseline']}"
    )
    if study["incomplete_arms"]:
        console.print(f"[yellow]incomplete arms:[/yellow] {', '.join(study['incomplete_arms'])}")
    print_table(_members(study), MEMBER_COLUMNS, keep=("job_id",))


@app.command()
def cancel(study_id: str) -> None:
    """Cancel every unfinished member; no eval is submitted afterwards."""
    with api_client() as api:
        study = api.cancel_study(study_id)
    console.print(f"{study['id']}  {study['status']}")


@app.command()
def report(
    study_id: str,
    plot: Annotated[
        Path | None, typer.Option(help="Write the arms' curves with CI bands to this PNG")
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the report as CSV")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Final eval scores per arm, verdicts against the baseline, compute, and what was not
    compared."""
    with api_client() as api:
        if as_csv:
            console.file.write(api.study_report_csv(study_id))
            return
        found = api.study_report(study_id)
    if as_json:
        print_json(found)
    else:
        print_report(found)
    if plot is not None:
        from dgpo.commands.plot import plot_study

        plot_study(found, plot)
        console.print(f"wrote {plot}")


def _ci(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"


def print_report(found: dict[str, Any]) -> None:
    """The tables a reader wants first: scores, verdicts, compute, gaps."""
    console.print(f"{found['name']}  {found['status']}  baseline={found['baseline']}")
    print_warnings(found["warnings"], to=console)
    scores = [
        {"arm": e["arm"], "benchmark": e["benchmark"], "score": e["score"],
         "mean": f"{e['mean']:.3f}", "95% CI": _ci(e["ci_low"], e["ci_high"]),
         "seeds": len(e["by_seed"])}
        for e in found["evals"]
    ]  # fmt: skip
    print_table(scores, ("arm", "benchmark", "score", "mean", "95% CI", "seeds"), "final evals")
    verdicts = [
        {"arm": c["arm"], "benchmark": c["benchmark"], "difference": f"{c['difference']:+.3f}",
         "95% CI": _ci(c["ci_low"], c["ci_high"]),
         "adjusted CI": _ci(c["ci_low_adjusted"], c["ci_high_adjusted"]),
         "p (Holm)": f"{c['p_adjusted']:.3g}", "verdict": c["verdict"]}
        for c in found["comparisons"]
    ]  # fmt: skip
    print_table(verdicts, VERDICT_COLUMNS, f"vs {found['baseline']} (alpha {found['alpha']})")
    console.print(f"[dim]{found['correction']}[/dim]", soft_wrap=True)
    arms = [
        {**a, "outside TR": "-" if a["outside_trust_region"] is None
         else f"{a['outside_trust_region']:.4f}",
         "W max": "-" if a["weight_max"] is None else f"{a['weight_max']:.3g}",
         "W outside": "-" if a["weight_outside_max"] is None
         else f"{a['weight_outside_max']:.3g}",
         "wall s": f"{a['wall_seconds']:.0f}", "GPU s": f"{a['gpu_seconds']:.0f}"}
        for a in found["arms"]
    ]  # fmt: skip
    columns = ("arm", "outside TR", "W max", "W outside", "wall s", "GPU s", "attempts")
    print_table(arms, columns, "arms")
    for gap in found["not_compared"]:
        where = f" {gap['benchmark']}" if gap["benchmark"] else ""
        console.print(f"[yellow]not compared:[/yellow] {gap['arm']}{where}: {gap['reason']}")
