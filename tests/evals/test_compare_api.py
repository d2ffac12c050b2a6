"""`GET /evals/compare` on stored results: differences with a paired bootstrap CI."""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, bearer
from tests.evals.helpers import add_results, counts, make_job


def compare(client, token, **params):  # type: ignore[no-untyped-def]
    return client.get("/evals/compare", params=params, headers=bearer(token))


@pytest.fixture
def two_runs(session):  # type: ignore[no-untyped-def]
    """a answers nothing; b answers 20 of the same 40 problems (plus one a never saw)."""
    a, b = make_job(session), make_job(session)
    add_results(session, a.id, "math500", counts([0] * 40))
    add_results(session, b.id, "math500", [*counts([4] * 20 + [0] * 20), ("extra", 4, 4)])
    add_results(session, a.id, "gsm8k", counts([2] * 10))
    add_results(session, b.id, "gsm8k", counts([2] * 10))
    return a.id, b.id


def test_compare_gives_difference_and_ci_over_problems_shared_by_id(client, tokens, two_runs):
    a, b = two_runs
    r = compare(client, tokens["read"], a=a, b=b)
    assert r.status_code == 200, r.text
    body = r.json()
    by_name = {c["benchmark"]: c for c in body["benchmarks"]}
    math = by_name["math500"]
    assert math["num_problems"] == 40  # "extra" is only in b
    assert (math["accuracy_a"], math["accuracy_b"], math["difference"]) == (0.0, 0.5, 0.5)
    # Half the paired differences are 1, half 0: the 95% CI is about 0.5 +- 1.96*sqrt(.25/40).
    assert 0.0 < math["ci_low"] < 0.5 < math["ci_high"] < 1.0
    assert 0.2 < math["ci_high"] - math["ci_low"] < 0.4
    assert math["confidence"] == 0.95 and math["verdict"] == "improvement"
    gsm = by_name["gsm8k"]
    assert (gsm["difference"], gsm["ci_low"], gsm["ci_high"]) == (0.0, 0.0, 0.0)
    assert gsm["verdict"] == "pass"
    assert body["verdict"] == "improvement"


def test_compare_swapped_is_a_regression_and_threshold_can_veto_it(client, tokens, two_runs):
    a, b = two_runs
    swapped = compare(client, tokens["read"], a=b, b=a, benchmark="math500").json()
    assert [c["benchmark"] for c in swapped["benchmarks"]] == ["math500"]
    assert swapped["benchmarks"][0]["difference"] == -0.5 and swapped["verdict"] == "regression"
    vetoed = compare(client, tokens["read"], a=b, b=a, benchmark="math500", threshold=0.6)
    assert vetoed.json()["verdict"] == "pass"


def test_a_change_on_one_problem_is_not_significant(client, tokens, session):
    a, b = make_job(session), make_job(session)
    add_results(session, a.id, "aime24", counts([2] * 30))
    add_results(session, b.id, "aime24", counts([3] + [2] * 29))
    body = compare(client, tokens["read"], a=a.id, b=b.id).json()
    (c,) = body["benchmarks"]
    assert c["difference"] == pytest.approx(0.25 / 30)
    assert c["ci_low"] <= 0.0 and body["verdict"] == "pass"


def test_unknown_job_is_404(client, tokens, two_runs):
    a, _ = two_runs
    r = compare(client, tokens["read"], a=a, b="no-such-job")
    assert r.status_code == 404 and "no-such-job" in r.json()["detail"]


def test_no_shared_benchmark_or_problem_or_results_is_422(client, tokens, session):
    a, b, c, empty = (make_job(session) for _ in range(4))
    add_results(session, a.id, "math500", counts([1, 2]))
    add_results(session, b.id, "gsm8k", counts([1, 2]))
    add_results(session, c.id, "math500", counts([1, 2], prefix="q"))
    cases = {
        (a.id, b.id): "share no benchmark",
        (a.id, c.id): "share no problem ids",
        (a.id, empty.id): "has no eval results",
    }
    for (x, y), message in cases.items():
        r = compare(client, tokens["read"], a=x, b=y)
        assert r.status_code == 422 and message in r.json()["detail"][0]["msg"], r.text


def test_train_job_compares_at_its_latest_periodic_eval(client, tokens, session):
    train, ev = make_job(session, kind="train"), make_job(session)
    add_results(session, train.id, "amc23", counts([0, 0]), step=10)
    add_results(session, train.id, "amc23", counts([4, 4]), step=20)
    add_results(session, ev.id, "amc23", counts([4, 4]))
    (c,) = compare(client, tokens["read"], a=train.id, b=ev.id).json()["benchmarks"]
    assert (c["step_a"], c["step_b"], c["difference"]) == (20, None, 0.0)


def test_compare_requires_a_token(client, two_runs):
    a, b = two_runs
    assert client.get("/evals/compare", params={"a": a, "b": b}).status_code == 401


def test_app_and_compare_module_stay_torch_free():
    """The route imports trainer.evaluation.compare lazily; neither import pulls in torch."""
    code = (
        "import sys, service.app; assert 'trainer.evaluation.compare' not in sys.modules; "
        "import trainer.evaluation.compare; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_trainer_store_and_route_share_one_comparison_model(client, tokens, two_runs, session):
    """The trainer's statistic, the store's rows and the route's response are one model."""
    from service.api.routes.evals import CompareOut
    from store.evals import compare_jobs
    from trainer.results import BenchmarkComparison, Comparison, ProblemResult
    from trainer.statistics import paired_bootstrap

    assert CompareOut.model_fields["benchmarks"].annotation == list[BenchmarkComparison]
    assert issubclass(BenchmarkComparison, Comparison)
    problems = [ProblemResult("p", 4, 2)]
    assert type(paired_bootstrap(problems, problems)) is Comparison
    rows, _ = compare_jobs(session, *two_runs)
    body = compare(client, tokens["read"], a=two_runs[0], b=two_runs[1]).json()
    assert [BenchmarkComparison.model_validate(r).model_dump() for r in rows] == body["benchmarks"]
