"""A spec names places only where the operator allows (issue 17, findings 1, 3 and 4).

Against the real API and Postgres: each refused spec is a 422 naming its field, and
nothing is stored or queued for it.
"""

import base64
import io
import os
import zipfile
from collections.abc import Iterator

import pytest

from config.settings import get_settings
from tests.conftest import bearer
from tests.service.helpers import eval_body, train_body

HOME = os.environ["DGPO_HOME"]
OUTPUT_DIR = ("body", "checkpoint", "output_dir")


def _zip_data_uri() -> str:
    """The finding-1 chain: a whole run directory inside the spec, as a `data:` zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("step-00000001/manifest.json", "{}")
        archive.writestr("step-00000001/trainer_state.pt", b"planted")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"zip://::data:application/zip;base64,{encoded}"


@pytest.fixture
def operator_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set `DGPO_*` operator settings for one test (read at request time)."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def _submit(client, tokens, body):  # type: ignore[no-untyped-def]
    return client.post("/jobs", json=body, headers=bearer(tokens["submit"]))


def _refused_field(response) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    return [tuple(entry["loc"]) for entry in response.json()["detail"]]


def _jobs(client, tokens) -> int:  # type: ignore[no-untyped-def]
    return len(client.get("/jobs", headers=bearer(tokens["read"])).json()["items"])


@pytest.mark.parametrize(
    "output_dir",
    [
        "/",
        "../../../../etc",
        "/etc/cron.d",
        f"{HOME}/jobs/00000000-0000-0000-0000-000000000000",  # another job's directory
        "runs/../../other-job",
        "~root",
        pytest.param(_zip_data_uri(), id="zip-data-uri"),
        "ftp://127.0.0.1:2121/out",
        "http://169.254.169.254/latest",
        "file:///etc/cron.d",
        "memory://anything",
    ],
)
def test_output_dir_outside_the_jobs_own_directory_is_422(client, tokens, output_dir) -> None:  # type: ignore[no-untyped-def]
    body = train_body(checkpoint={"output_dir": output_dir})
    assert _refused_field(_submit(client, tokens, body)) == [OUTPUT_DIR]
    assert _jobs(client, tokens) == 0


def test_relative_sub_path_is_accepted_and_resolved_inside_the_job_directory(
    client, tokens
) -> None:  # type: ignore[no-untyped-def]
    from workers.supervisor import job_output_dir

    r = _submit(client, tokens, train_body(checkpoint={"output_dir": "sweep/lr-1e-6"}))
    assert r.status_code == 201, r.text
    job = r.json()
    from trainer.spec import TrainSpec

    resolved = job_output_dir(job["id"], TrainSpec.model_validate(job["spec"]))
    assert resolved == f"{HOME}/jobs/{job['id']}/sweep/lr-1e-6"


def test_uri_under_an_operator_prefix_is_accepted_and_gets_the_job_id(
    client, tokens, operator_settings
) -> None:  # type: ignore[no-untyped-def]
    from trainer.spec import TrainSpec
    from workers.supervisor import job_output_dir

    operator_settings.setenv("DGPO_STORAGE_PREFIXES", '["memory://dgpo-bucket/runs"]')
    r = _submit(
        client, tokens, train_body(checkpoint={"output_dir": "memory://dgpo-bucket/runs/a"})
    )
    assert r.status_code == 201, r.text
    job = r.json()
    resolved = job_output_dir(job["id"], TrainSpec.model_validate(job["spec"]))
    assert resolved == f"memory://dgpo-bucket/runs/a/{job['id']}"
    for escape in ("memory://dgpo-bucket/runs/../x", "memory://dgpo-bucket/runsX", "s3://b/x"):
        body = train_body(checkpoint={"output_dir": escape})
        assert _refused_field(_submit(client, tokens, body)) == [OUTPUT_DIR], escape


@pytest.mark.parametrize(
    ("section", "value", "loc"),
    [
        ("model", {"path": "/etc"}, ("body", "model", "path")),
        ("model", {"path": "../../root/.cache"}, ("body", "model", "path")),
        ("model", {"path": f"{HOME}/models/../jobs/x"}, ("body", "model", "path")),
        ("dataset", {"path": "/root/.aws/credentials.jsonl"}, ("body", "dataset", "path")),
        ("dataset", {"path": "secrets.jsonl"}, ("body", "dataset", "path")),
        ("dataset", {"path": "a/b/c"}, ("body", "dataset", "path")),
        (
            "algorithm",
            {"reference_model": "/etc/passwd"},
            ("body", "algorithm", "reference_model"),
        ),
    ],
)
def test_model_and_data_paths_outside_the_data_roots_are_422(
    client, tokens, section, value, loc
) -> None:  # type: ignore[no-untyped-def]
    assert _refused_field(_submit(client, tokens, train_body(**{section: value}))) == [loc]


def test_hub_ids_and_paths_under_the_data_roots_are_accepted(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = train_body(
        model={"path": "Qwen/Qwen2.5-Math-1.5B"},
        dataset={"path": f"{HOME}/datasets/dapo/train.parquet"},
        algorithm={"reference_model": f"{HOME}/models/ref"},
    )
    assert _submit(client, tokens, body).status_code == 201
    eval_bad = eval_body(model={"path": "/etc"})
    assert _refused_field(_submit(client, tokens, eval_bad)) == [("body", "model", "path")]


def test_custom_eval_sets_outside_the_data_roots_are_422_naming_the_entry(client, tokens) -> None:  # type: ignore[no-untyped-def]
    inside = {"name": "mine", "path": f"{HOME}/datasets/mine.jsonl"}
    outside = {"name": "stolen", "path": "/root/.ssh/keys.jsonl"}
    relative = {"name": "relative", "path": "mine.jsonl"}
    body = eval_body(benchmarks=["gsm8k_mini", inside, outside, relative])
    paths = [("body", "benchmarks", str(i), "path") for i in (2, 3)]
    assert _refused_field(_submit(client, tokens, body)) == paths
    assert _submit(client, tokens, eval_body(benchmarks=[inside])).status_code == 201
    train = train_body(eval={"every_steps": 1, "benchmarks": [outside]})
    periodic = [("body", "eval", "benchmarks", "0", "path")]
    assert _refused_field(_submit(client, tokens, train)) == periodic
    schedule = {
        "name": "sets",
        "cron": "0 3 * * *",
        "eval": {"benchmarks": [outside]},
        "target": {"model_path": "org/model"},
    }
    r = client.post("/schedules", json=schedule, headers=bearer(tokens["submit"]))
    assert _refused_field(r) == [("body", "eval", "benchmarks", "0", "path")]


def test_schedule_target_outside_the_data_roots_is_422(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = {
        "name": "n",
        "cron": "0 3 * * *",
        "eval": {"benchmarks": ["amc23"]},
        "target": {"model_path": "/etc"},
    }
    r = client.post("/schedules", json=body, headers=bearer(tokens["submit"]))
    assert _refused_field(r) == [("body", "target", "model_path")]


def test_the_worker_refuses_a_symlink_out_of_a_data_root_and_a_hub_id_naming_a_local_dir(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The submit check reads text; the worker's reads the file system it will open."""
    from config.spec_policy import SpecRefused, check_on_worker
    from trainer.spec import TrainSpec

    link = get_settings().data_roots[0] / f"escape-{tmp_path.name}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/etc")
    base = {k: v for k, v in train_body().items() if k != "kind"}
    with pytest.raises(SpecRefused, match=r"model\.path: resolves outside"):
        check_on_worker(
            TrainSpec.model_validate({**base, "model": {"path": str(link)}}), get_settings()
        )
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecRefused, match="names a local path"):
        check_on_worker(
            TrainSpec.model_validate({**base, "model": {"path": "org/name"}}), get_settings()
        )


def test_a_multi_node_job_needs_storage_the_operator_declared_shared(
    client, tokens, operator_settings
) -> None:  # type: ignore[no-untyped-def]
    body = train_body(resources={"gpus": 2, "nodes": 2})
    r = _submit(client, tokens, body)
    assert _refused_field(r) == [("body", "resources", "nodes")]
    assert "DGPO_STORAGE_SHARED=true" in r.text
    operator_settings.setenv("DGPO_STORAGE_SHARED", "true")
    get_settings.cache_clear()
    r = _submit(client, tokens, body)
    assert r.status_code == 201, r.text
    uri = train_body(resources={"gpus": 2, "nodes": 2}, checkpoint={"output_dir": "s3://b/x"})
    assert ("body", "checkpoint", "output_dir") in _refused_field(_submit(client, tokens, uri))
    evals = eval_body(resources={"gpus": 2, "nodes": 2})
    assert _refused_field(_submit(client, tokens, evals)) == [("body", "resources", "nodes")]


@pytest.mark.parametrize("resources", [{"gpus": 3, "nodes": 2}, {"gpus": 0, "nodes": 2}])
def test_nodes_that_do_not_divide_the_gpus_are_422(client, tokens, resources) -> None:  # type: ignore[no-untyped-def]
    r = _submit(client, tokens, train_body(resources=resources))
    assert r.status_code == 422 and "resources.nodes" in r.text, r.text
    assert _jobs(client, tokens) == 0
