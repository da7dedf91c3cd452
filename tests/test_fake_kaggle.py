"""The fake Kaggle's own rules (tests/fake_kaggle.py), proven with the official client: requests held to the
SDK's messages, refused pushes that leave no version, stale answers after a push, paging, reserved GPU time,
checked code submissions, cancelling, titles made slugs and the 1 MB notebook limit."""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from fake_kaggle import sdk_message, sdk_methods, serving, unknown_fields
from kagglesdk.kernels.types.kernels_api_service import (
    ApiGetKernelSessionStatusRequest,
    ApiListKernelSessionOutputRequest,
    ApiListKernelSessionOutputResponse,
    ApiSaveKernelRequest,
    ApiSaveKernelResponse,
)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus
from requests.exceptions import HTTPError

OWNER, SLUG = "tester", "fake-test"
REF = f"{OWNER}/{SLUG}"
COMPETITION = "gan-getting-started"
QUEUED, RUNNING, COMPLETE = KernelWorkerStatus.QUEUED, KernelWorkerStatus.RUNNING, KernelWorkerStatus.COMPLETE


@pytest.fixture
def fake(tmp_path, monkeypatch):
    with serving(tmp_path, monkeypatch) as fake:
        yield fake


@pytest.fixture
def api(fake):
    """The official client, signed in to the fake with the kaggle.json that serving() wrote."""
    with contextlib.redirect_stdout(io.StringIO()):  # its import-time sign-in chatter
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
    # KaggleApi reads these when it is first imported; this test's environment came later
    api.config_dir = os.environ["KAGGLE_CONFIG_DIR"]
    api.config = os.path.join(api.config_dir, "kaggle.json")
    api.args = ["--local"]
    api.authenticate()
    return api


def kernel(tmp_path: Path, slug: str = SLUG, title: str = "Fake test", source: str = "print(1)",
           **meta: object) -> str:
    """A kernel folder (kernel-metadata.json and a one-cell notebook) as `kaggle kernels push` reads it."""
    folder = tmp_path / "kernels" / secrets.token_hex(4)
    folder.mkdir(parents=True)
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{OWNER}/{slug}", "title": title, "code_file": "k.ipynb", "language": "python",
        "kernel_type": "notebook", "is_private": True, "enable_gpu": False, "enable_internet": False,
        "competition_sources": [COMPETITION], **meta}))
    (folder / "k.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [],
                   "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return str(folder)


def post(fake, method: str, body: object) -> requests.Response:
    """A raw API call, body as given: what a client with a typo in its request would send."""
    return requests.post(f"http://localhost/api/v1/{method}", json=body, auth=(fake.username, fake.key),
                         timeout=30)


def call(api, method: str, request: object):
    """An SDK call with a request built here (fields the client would fill in its own way)."""
    with api.build_kaggle_client() as client:
        return getattr(client.kernels.kernels_api_client, method)(request)


# ---------------------------------------------------------------------------- held to the SDK
@pytest.mark.parametrize("method, body, wrong, right", [
    ("competitions.CompetitionApiService/CreateCodeSubmission",
     {"competitionName": COMPETITION, "kernelOwner": OWNER, "kernelSlug": SLUG, "fileName": "images.zip"},
     "kernelVersio", "kernelVersion"),
    # kernel-metadata.json's name, not the request's
    ("kernels.KernelsApiService/SaveKernel", {"slug": REF, "newTitle": "Fake test", "text": "{}"},
     "competitionSources", "competitionDataSources"),
    ("kernels.KernelsApiService/GetKernelSessionStatus", {"userName": OWNER, "kernelSlug": SLUG},
     "version", "versionLabel"),
], ids=["CreateCodeSubmission", "SaveKernel", "GetKernelSessionStatus"])
def test_a_request_field_the_sdk_lacks_is_a_400(fake, method, body, wrong, right):
    value = {"kernelVersio": 1, "competitionSources": [COMPETITION], "version": "v1"}[wrong]
    answer = post(fake, method, {**body, wrong: value})
    assert answer.status_code == 400
    assert answer.json()["code"] == 400 and f"Unknown name '{wrong}'" in answer.json()["message"]
    assert fake.push_attempts == [] and fake.submissions == []  # refused before anything was done
    spelled_right = post(fake, method, {**body, right: value})
    assert "Unknown name" not in spelled_right.text


def test_a_value_of_the_wrong_type_is_a_400(fake):
    answer = post(fake, "competitions.CompetitionApiService/CreateCodeSubmission",
                  {"competitionName": COMPETITION, "kernelOwner": OWNER, "kernelSlug": SLUG,
                   "kernelVersion": "1"})
    assert answer.status_code == 400 and "kernel_version must be of type int" in answer.json()["message"]


def test_the_method_map_and_the_answers_are_the_sdks(fake, api, tmp_path):
    assert sdk_methods()[("kernels.KernelsApiService", "SaveKernel")] == (ApiSaveKernelRequest,
                                                                         ApiSaveKernelResponse)
    with pytest.raises(AttributeError, match="Unknown field"):  # an answer field the SDK lacks: not built
        sdk_message(ApiSaveKernelResponse, version_numbr=1)
    assert unknown_fields(ApiListKernelSessionOutputResponse,  # nested messages are checked too
                          {"files": [{"fileName": "a.png"}, {"fileNme": "b.png"}]}) == ["files[1].fileNme"]
    fake.statuses = [("queued", ""), ("error", "CUDA out of memory")]
    api.kernels_push(kernel(tmp_path))
    status = "kernels.KernelsApiService/GetKernelSessionStatus"
    # statuses travel as the SDK's enum names; QUEUED is the enum's default, which the SDK leaves out
    assert post(fake, status, {"userName": OWNER, "kernelSlug": SLUG}).json() == {}
    assert post(fake, status, {"userName": OWNER, "kernelSlug": SLUG}).json() == {
        "status": "ERROR", "failureMessage": "CUDA out of memory"}
    quota = post(fake, "kernels.KernelsApiService/GetAcceleratorQuotaStatistics", {}).json()
    assert quota["gpuQuota"]["totalTimeAllowed"] == "108000s"  # 30 h whole, not the SDK writer's 6 h
    assert api.quota_view().gpu_quota.total_time_allowed == timedelta(hours=30)


# ---------------------------------------------------------------------------- pushes
REFUSALS = {  # name: (the fake's setting, the kernel's metadata, what the answer says)
    "push error": ({"push_error": "Notebook not found"}, {}, lambda r: r.error == "Notebook not found"),
    "session cap": ({"refuse_pushes": 1}, {}, lambda r: "Maximum batch GPU session count" in r.error),
    "title over 50": ({}, {"title": "T" * 51}, lambda r: "at most 50 characters" in r.error),
}


@pytest.mark.parametrize("meta, said", [
    ({"competition_sources": ["titanic"]}, lambda r: r.invalid_competition_sources == ["titanic"]),
    ({"dataset_sources": [f"{OWNER}/no-such-data"]},
     lambda r: r.invalid_dataset_sources == [f"{OWNER}/no-such-data"]),
    ({"kernel_sources": [f"{OWNER}/never-pushed"]},
     lambda r: r.invalid_kernel_sources == [f"{OWNER}/never-pushed"]),
])
def test_an_unknown_source_is_listed_and_the_version_runs_without_it(fake, api, tmp_path, meta, said):
    answer = api.kernels_push(kernel(tmp_path, **meta))
    assert said(answer) and answer.version_number == 1
    [body] = fake.pushes
    assert not set(body.get("competitionDataSources", [])) & {"titanic"}
    assert not body.get("datasetDataSources") and not body.get("kernelDataSources")


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_refused_push_leaves_no_version(fake, api, tmp_path, refusal):
    settings, meta, said = REFUSALS[refusal]
    for name, value in settings.items():
        setattr(fake, name, value)
    answer = api.kernels_push(kernel(tmp_path, **meta))
    assert said(answer) and not answer.version_number
    assert fake.pushes == [] and len(fake.push_attempts) == 1 and fake.versions(REF) == 0
    with pytest.raises(ValueError, match="Permission 'kernels.get' was denied"):
        api.kernels_status(REF)
    fake.push_error = ""
    assert api.kernels_push(kernel(tmp_path)).version_number == 1  # the first version is the next push's


def test_a_notebook_over_1_mb_is_refused_with_kaggles_text(fake, api, tmp_path):
    with pytest.raises(HTTPError, match="^The kernel source must be less than 1 megabytes$") as refused:
        api.kernels_push(kernel(tmp_path, source="#" + "x" * 1_000_000))
    assert refused.value.response.status_code == 400 and fake.versions(REF) == 0
    assert api.kernels_push(kernel(tmp_path, source="#" + "x" * 990_000)).version_number == 1


def test_a_new_kernel_is_named_after_its_title(fake, api, tmp_path):
    answer = api.kernels_push(kernel(tmp_path, slug="some-other-id", title="My Great Notebook!"))
    assert answer.ref == f"/code/{OWNER}/my-great-notebook" and answer.version_number == 1
    assert fake.versions(f"{OWNER}/some-other-id") == 0
    assert api.kernels_status(f"{OWNER}/my-great-notebook/1").status == RUNNING
    fifty = "A title of exactly fifty characters, which is fine"
    assert len(fifty) == 50 and api.kernels_push(kernel(tmp_path, title=fifty)).ref == (
        f"/code/{OWNER}/a-title-of-exactly-fifty-characters-which-is-fine")


# ---------------------------------------------------------------------------- sessions
def test_calls_without_a_version_answer_the_previous_one_right_after_a_push(fake, api, tmp_path):
    fake.stale_polls, fake.outputs_by_version = 2, {1: {"images.zip": b"one"}, 2: {"images.zip": b"two"}}
    folder = kernel(tmp_path)
    api.kernels_push(folder)
    assert [api.kernels_status(REF).status for _ in range(2)] == [RUNNING, COMPLETE]  # no earlier version
    api.kernels_push(folder)

    def output(kernel_ref: str) -> bytes:
        dest = tmp_path / "out" / secrets.token_hex(4)
        api.kernels_output(kernel_ref, str(dest))
        return (dest / "images.zip").read_bytes()

    assert output(f"{REF}/2") == b"two"  # asked by version: never stale
    assert [output(REF) for _ in range(fake.stale_polls + 1)] == [b"one"] * fake.stale_polls + [b"two"]
    assert [api.kernels_status(REF).status for _ in range(fake.stale_polls + 1)] == (
        [COMPLETE] * fake.stale_polls + [RUNNING])  # version 1's end, then version 2's first answer
    assert api.kernels_status(f"{REF}/2").status == COMPLETE
    assert api.kernels_status(f"{REF}/1").status == COMPLETE


@pytest.mark.parametrize("label", ["2", "v3", "latest"])
def test_a_version_label_other_than_v_n_of_a_version_is_a_404(fake, api, tmp_path, label):
    folder = kernel(tmp_path)
    api.kernels_push(folder)
    api.kernels_push(folder)
    for method, request_type in (("get_kernel_session_status", ApiGetKernelSessionStatusRequest),
                                 ("list_kernel_session_output", ApiListKernelSessionOutputRequest)):
        request = sdk_message(request_type, user_name=OWNER, kernel_slug=SLUG, version_label=label)
        with pytest.raises(HTTPError) as refused:
            call(api, method, request)
        assert refused.value.response.status_code == 404


def test_the_output_listing_pages(fake, api, tmp_path):
    fake.output_files = {f"run/sample-{i}.png": bytes([i]) for i in range(5)}
    api.kernels_push(kernel(tmp_path))
    first = call(api, "list_kernel_session_output", sdk_message(ApiListKernelSessionOutputRequest,
                                                                user_name=OWNER, kernel_slug=SLUG,
                                                                version_label="v1", page_size=2))
    assert [f.file_name for f in first.files] == ["run/sample-0.png", "run/sample-1.png"]
    assert first.next_page_token
    files, _ = api.kernels_output(f"{REF}/1", str(tmp_path / "out"), page_size=2)  # follows the tokens
    assert sorted(Path(p).relative_to(tmp_path / "out").as_posix() for p in files if p.endswith(".png")) == [
        f"run/sample-{i}.png" for i in range(5)]
    assert fake.calls.count("ListKernelSessionOutput") == 1 + 3


def test_running_gpu_sessions_reserve_their_timeout_or_the_session_limit(fake, api, tmp_path):
    api.kernels_push(kernel(tmp_path, slug="one-hour", title="One hour", enable_gpu=True), timeout="3600")
    api.kernels_push(kernel(tmp_path, slug="no-timeout", title="No timeout", enable_gpu=True))
    api.kernels_push(kernel(tmp_path, slug="on-the-cpu", title="On the CPU"), timeout="600")
    gpu = api.quota_view().gpu_quota
    assert gpu.time_used == timedelta(hours=10) and gpu.total_time_allowed == timedelta(hours=30)
    assert gpu.time_reserved == timedelta(hours=1 + 12)
    for _ in range(2):  # running, then complete: it holds nothing any more
        api.kernels_status(f"{OWNER}/one-hour/1")
    assert api.quota_view().gpu_quota.time_reserved == timedelta(hours=12)


def test_a_cancelled_version_is_cancel_requested_then_acknowledged(fake, api, tmp_path):
    api.kernels_push(kernel(tmp_path, enable_gpu=True))
    fake.cancel(REF, 1)
    statuses = [api.kernels_status(f"{REF}/1").status for _ in range(3)]
    assert statuses == [KernelWorkerStatus.CANCEL_REQUESTED] + [KernelWorkerStatus.CANCEL_ACKNOWLEDGED] * 2
    assert api.quota_view().gpu_quota.time_reserved == timedelta(0)
    with pytest.raises(ValueError, match="not running"):
        fake.cancel(REF, 1)


# ---------------------------------------------------------------------------- code submissions
def submit(api, version: int, file_name: str = "images.zip", kernel_ref: str = REF):
    return api.competition_submit_code(file_name, "a test", COMPETITION, kernel_ref, version, quiet=True)


def test_a_code_submission_of_a_running_version_is_refused(fake, api, tmp_path):
    fake.output_files = {"images.zip": b"zip"}
    api.kernels_push(kernel(tmp_path))
    assert api.kernels_status(f"{REF}/1").status == RUNNING
    with pytest.raises(HTTPError, match="version 1 of tester/fake-test has not completed") as refused:
        submit(api, 1)
    assert refused.value.response.status_code == 400 and fake.submissions == []
    assert api.kernels_status(f"{REF}/1").status == COMPLETE
    assert "successfully" in submit(api, 1).message and len(fake.submissions) == 1


@pytest.mark.parametrize("problem, said", [
    ("no such version", "kernel tester/fake-test has no version 2"),
    ("not an output", "other.zip is not an output file of version 1"),
    ("internet on", "internet access disabled"),
    ("daily limit", r"used its daily Submission allowance \(1\) today"),
])
def test_a_code_submission_is_checked_as_kaggle_checks_it(fake, api, tmp_path, problem, said):
    fake.statuses, fake.output_files = [("complete", "")], {"images.zip": b"zip", "other.txt": b""}
    api.kernels_push(kernel(tmp_path, enable_internet=problem == "internet on"))
    if problem == "daily limit":
        fake.submissions_per_day = 1
        submit(api, 1)
    with pytest.raises(HTTPError, match=said) as refused:
        submit(api, 2 if problem == "no such version" else 1, "other.zip" if problem == "not an output" else
               "images.zip")
    assert refused.value.response.status_code == 400
    assert len(fake.submissions) == (problem == "daily limit")
