"""pipeline.kaggle.api driven through the real `kaggle` client against the local fake Kaggle."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from fake_kaggle import serving, use_credentials, zip_bytes

from pipeline.engine.errors import UserError
from pipeline.kaggle import api as kaggle_api

REF = "tester/monet-pipeline"


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    with serving(tmp_path, monkeypatch) as fake:
        yield fake


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(kaggle_api, "RETRY", kaggle_api.Retry(tries=3, delay_s=0.0))


def kernel_folder(tmp_path: Path, owner: str = "tester") -> Path:
    folder = tmp_path / "kernel"
    folder.mkdir(exist_ok=True)
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{owner}/monet-pipeline", "title": "Monet pipeline", "code_file": "monet-pipeline.ipynb",
        "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": True,
        "enable_internet": False, "competition_sources": ["gan-getting-started"], "dataset_sources": []}))
    (folder / "monet-pipeline.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "source": ["print(1)\n", "print(2)"], "metadata": {}, "outputs": [],
                    "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return folder


def pushed(fake, tmp_path) -> tuple[str, int, str]:
    return kaggle_api.push_kernel(kernel_folder(tmp_path))


def test_download_competition_writes_the_archive_kaggle_serves(fake_kaggle, tmp_path, jpegs):
    jpegs(tmp_path / "c" / "monet_jpg", 2)
    jpegs(tmp_path / "c" / "photo_jpg", 3)
    fake_kaggle.competition_zip = zip_bytes(tmp_path / "c")
    path = kaggle_api.download_competition("gan-getting-started", tmp_path / "dl")
    assert path == tmp_path / "dl" / "gan-getting-started.zip"
    assert path.read_bytes() == fake_kaggle.competition_zip
    assert sorted(zipfile.ZipFile(path).namelist())[:1] == ["monet_jpg/img0000.jpg"]
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [path.name]  # no temp folder or partial left


def test_transient_errors_are_retried(fake_kaggle, tmp_path, capsys):
    fake_kaggle.competition_zip = zip_bytes(kernel_folder(tmp_path))
    fake_kaggle.fail("DownloadDataFiles", 500)
    fake_kaggle.fail("GetKernelSessionStatus", 0, 429)  # a dropped connection, then rate limited
    kaggle_api.download_competition("gan-getting-started", tmp_path / "dl")
    assert fake_kaggle.calls.count("DownloadDataFiles") == 2
    pushed(fake_kaggle, tmp_path)
    assert kaggle_api.kernel_status(REF) == ("running", "")
    assert fake_kaggle.calls.count("GetKernelSessionStatus") == 3
    err = capsys.readouterr().err
    assert "HTTP 500; retrying" in err and "HTTP 429; retrying" in err


def test_retries_give_up_with_a_clear_message(fake_kaggle, tmp_path):
    pushed(fake_kaggle, tmp_path)
    fake_kaggle.fail("GetKernelSessionStatus", 503, 503, 503)
    with pytest.raises(kaggle_api.KaggleUnavailable, match="still failing after 3 tries"):
        kaggle_api.kernel_status(REF)


def test_a_push_or_submission_that_may_have_happened_is_not_repeated(fake_kaggle, tmp_path):
    fake_kaggle.fail("SaveKernel", 500)
    with pytest.raises(UserError, match="may or may not have been done"):
        pushed(fake_kaggle, tmp_path)
    assert fake_kaggle.calls.count("SaveKernel") == 1
    fake_kaggle.fail("CreateCodeSubmission", 0)
    with pytest.raises(UserError, match="may or may not"):  # a dropped connection after sending: not resent
        kaggle_api.submit_code("gan-getting-started", REF, 1, "images.zip", "m")
    assert fake_kaggle.calls.count("CreateCodeSubmission") == 1
    assert fake_kaggle.submissions == []


def test_push_returns_ref_version_url_and_kaggle_receives_the_kernel(fake_kaggle, tmp_path):
    assert pushed(fake_kaggle, tmp_path) == (REF, 1, "http://localhost/code/tester/monet-pipeline")
    body = fake_kaggle.pushes[0]
    assert body["slug"] == REF and body["kernelType"] == "notebook" and body["language"] == "python"
    assert body["enableGpu"] is True and body["enableInternet"] is False and body["isPrivate"] is True
    assert body["competitionDataSources"] == ["gan-getting-started"]
    assert json.loads(body["text"])["cells"][0]["source"] == "print(1)\nprint(2)"


def test_push_validation_error_with_http_200_is_an_error(fake_kaggle, tmp_path):
    fake_kaggle.push_error = "Notebook not found"
    with pytest.raises(UserError, match="Kaggle refused the kernel: Notebook not found"):
        pushed(fake_kaggle, tmp_path)


def test_status_sequence_and_failure_message(fake_kaggle, tmp_path):
    fake_kaggle.statuses = [("queued", ""), ("running", ""), ("error", "CUDA out of memory")]
    pushed(fake_kaggle, tmp_path)
    seen = [kaggle_api.kernel_status(REF) for _ in range(4)]
    assert seen == [("queued", ""), ("running", ""), ("error", "CUDA out of memory"),
                    ("error", "CUDA out of memory")]


def test_unknown_kernel_is_refused_with_the_rules_and_slug_hint(fake_kaggle):
    with pytest.raises(UserError, match=r"HTTP 403.*competitions/gan-getting-started/rules.*kernel slug"):
        kaggle_api.kernel_status("tester/never-pushed")


def test_competition_rules_not_accepted(fake_kaggle, tmp_path):
    fake_kaggle.rules_accepted = False
    with pytest.raises(UserError, match="accept the competition rules at https://www.kaggle.com/competitions/"
                                        "gan-getting-started/rules"):
        kaggle_api.download_competition("gan-getting-started", tmp_path)


def test_kernel_output_downloads_files_and_log(fake_kaggle, tmp_path):
    pushed(fake_kaggle, tmp_path)
    fake_kaggle.output_files = {"images.zip": b"zip bytes", "run/loss.png": b"png"}
    fake_kaggle.log_lines("epoch 1", "done")
    fake_kaggle.fail("files", 500)  # the signed URL hiccups once: retried, never saved as the file
    files = kaggle_api.kernel_output(REF, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in files) == [
        "images.zip", "monet-pipeline.log", "run/loss.png"]
    assert (tmp_path / "out" / "images.zip").read_bytes() == b"zip bytes"
    assert "epoch 1" in (tmp_path / "out" / "monet-pipeline.log").read_text()


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil-kaggle-output.txt", "a/../../evil.txt"])
def test_kernel_output_refuses_names_outside_the_folder(fake_kaggle, tmp_path, name):
    pushed(fake_kaggle, tmp_path)
    fake_kaggle.output_files = {name: b"x"}
    with pytest.raises(UserError, match="refusing the file name"):
        kaggle_api.kernel_output(REF, tmp_path / "deep" / "out")
    assert not (tmp_path / "deep" / "evil.txt").exists() and not Path("/tmp/evil-kaggle-output.txt").exists()


def test_submit_code_is_recorded(fake_kaggle, tmp_path):
    pushed(fake_kaggle, tmp_path)
    answer = kaggle_api.submit_code("gan-getting-started", REF, 1, "images.zip", "demo 1234abcd")
    assert "successfully" in answer
    assert fake_kaggle.submissions == [{"competitionName": "gan-getting-started", "kernelOwner": "tester",
                                        "kernelSlug": "monet-pipeline", "kernelVersion": 1,
                                        "fileName": "images.zip", "submissionDescription": "demo 1234abcd"}]


def test_wrong_key_is_refused_with_the_credentials_message_without_the_key(fake_kaggle, tmp_path, monkeypatch,
                                                                           capsys):
    wrong = "wrong" + fake_kaggle.key
    use_credentials(fake_kaggle, tmp_path / "home", monkeypatch, key=wrong)
    with pytest.raises(UserError) as info:
        kaggle_api.download_competition("gan-getting-started", tmp_path / "dl")
    message = str(info.value)
    assert "HTTP 401" in message and "kaggle.json" in message and "KAGGLE_USERNAME/KAGGLE_KEY" in message
    out = capsys.readouterr()
    for text in (message, out.out, out.err):
        assert wrong not in text and fake_kaggle.key not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_credentials_say_where_to_put_them(tmp_path, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UserError) as info:
        kaggle_api.username()
    message = str(info.value)
    assert "~/.kaggle/kaggle.json" in message and "chmod 600" in message
    assert "KAGGLE_USERNAME and KAGGLE_KEY" in message and "\n" not in message


def test_credentials_from_environment_variables(fake_kaggle, tmp_path, monkeypatch):
    (Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", fake_kaggle.username)
    monkeypatch.setenv("KAGGLE_KEY", fake_kaggle.key)
    assert kaggle_api.username() == "tester"
    assert pushed(fake_kaggle, tmp_path)[1] == 1


def test_kaggle_json_readable_by_others_gives_a_warning(fake_kaggle, capsys):
    path = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    kaggle_api.username()
    assert "chmod 600" not in capsys.readouterr().err
    path.chmod(0o644)
    assert kaggle_api.username() == "tester"
    err = capsys.readouterr().err
    assert f"warning: {path} can be read by other users (mode 644); run: chmod 600 {path}" in err
    assert fake_kaggle.key not in err


@pytest.mark.slow
def test_the_log_of_a_running_kernel_is_streamed_and_a_cut_is_said(fake_kaggle, tmp_path):
    (tmp_path / "competition").mkdir()
    fake_kaggle.execute_with(tmp_path / "competition")
    folder = kernel_folder(tmp_path)
    nb = json.loads((folder / "monet-pipeline.ipynb").read_text())
    nb["cells"][0]["id"] = "cell-0"
    nb["cells"][0]["source"] = ["import os, time\n", "print('first', flush=True)\n",
                                "while not os.path.exists('go'):\n", "    time.sleep(0.05)\n",
                                "print('second')"]
    (folder / "monet-pipeline.ipynb").write_text(json.dumps(nb))
    version = kaggle_api.push_kernel(folder)[1]
    fake_kaggle.cut_log_stream = [1]  # the first stream drops after one entry
    read = kaggle_api.kernel_log(REF, version)
    events = read()
    assert next(events)["data"] == "first\n"  # while the notebook waits for 'go': live
    with pytest.raises(kaggle_api.KaggleUnavailable, match="stream was cut"):
        next(events)
    assert kaggle_api.kernel_status(REF)[0] in ("queued", "running")
    events = read()  # Kaggle replays the log from its start
    assert next(events) == {"stream_name": "stdout", "time": pytest.approx(0, abs=60), "data": "first\n"}
    (fake_kaggle.latest_run(REF).working / "go").touch()
    assert [e["data"] for e in events] == ["second\n"]
    fake_kaggle.wait_for_runs()
    assert kaggle_api.kernel_status(REF) == ("complete", "")
    # ended: the whole log
    assert [e["data"] for e in kaggle_api.kernel_log(REF)()] == ["first\n", "second\n"]


def test_kernel_log_is_none_where_the_client_cannot_stream(fake_kaggle, tmp_path, monkeypatch):
    from kaggle.api.kaggle_api_extended import KaggleApi

    pushed(fake_kaggle, tmp_path)
    fake_kaggle.log_lines("a", "b")
    assert [e["data"] for e in kaggle_api.kernel_log(REF, 1)()] == ["a\n", "b\n"]
    monkeypatch.delattr(KaggleApi, "kernels_logs_stream")
    assert kaggle_api.kernel_log(REF, 1) is None
