"""pipeline.kaggle.api driven through the real `kaggle` client against the local fake Kaggle."""
from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fake_kaggle import use_credentials, zip_bytes

from pipeline.engine.errors import UserError
from pipeline.kaggle import api as kaggle_api
from pipeline.kaggle import datasets as kaggle_datasets
from pipeline.kaggle import session
from pipeline.kaggle.credentials import credentials
from pipeline.kaggle.status import KernelStatus

REF = "tester/monet-pipeline"


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
    return kaggle_api.push_kernel(kernel_folder(tmp_path), None, 3600)


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
    assert kaggle_api.kernel_status(REF, 1) == (KernelStatus.RUNNING, "")
    assert fake_kaggle.calls.count("GetKernelSessionStatus") == 3
    err = capsys.readouterr().err
    assert "HTTP 500; retrying" in err and "HTTP 429; retrying" in err


def test_retries_give_up_with_a_clear_message(fake_kaggle, tmp_path):
    pushed(fake_kaggle, tmp_path)
    fake_kaggle.fail("GetKernelSessionStatus", 503, 503, 503)
    with pytest.raises(kaggle_api.KaggleUnavailable, match="still failing after 3 tries"):
        kaggle_api.kernel_status(REF, 1)


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
    assert body["sessionTimeoutSeconds"] == 3600  # a hung run is stopped there, not after Kaggle's own limit


def test_a_refusal_keeps_kaggles_own_words(fake_kaggle, tmp_path):
    fake_kaggle.fail("SaveKernel", 400)  # answered as Kaggle does: {"code": 400, "message": "injected 400"}
    with pytest.raises(UserError) as info:
        pushed(fake_kaggle, tmp_path)
    assert str(info.value) == ("push tester/monet-pipeline: Kaggle refused the request (HTTP 400): "
                               "injected 400")
    fake_kaggle.fail("GetKernelSessionStatus", 403)
    with pytest.raises(UserError, match=r"refused access \(HTTP 403: injected 403\): accept the competition "
                                        r"rules at https://www.kaggle.com/competitions/gan-getting-started/rules"):
        kaggle_api.kernel_status("tester/never-pushed", 1)


def test_a_push_with_an_unknown_source_says_so_and_keeps_the_version_kaggle_started(fake_kaggle, tmp_path,
                                                                                     capsys):
    folder = kernel_folder(tmp_path)
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    (folder / "kernel-metadata.json").write_text(json.dumps({**meta, "dataset_sources": ["tester/no-such"]}))
    assert kaggle_api.push_kernel(folder, None, 3600)[1] == 1  # recorded and followed like any other
    assert ("Kaggle does not know these sources and started version 1 without them: dataset: tester/no-such"
            in capsys.readouterr().err)


def test_push_validation_error_with_http_200_is_an_error(fake_kaggle, tmp_path):
    fake_kaggle.push_error = "Notebook not found"
    with pytest.raises(UserError, match="Kaggle refused the kernel: Notebook not found"):
        pushed(fake_kaggle, tmp_path)


def test_status_sequence_and_failure_message(fake_kaggle, tmp_path):
    fake_kaggle.statuses = [("queued", ""), ("running", ""), ("error", "CUDA out of memory")]
    pushed(fake_kaggle, tmp_path)
    seen = [kaggle_api.kernel_status(REF, 1) for _ in range(4)]
    assert seen == [(KernelStatus.QUEUED, ""), (KernelStatus.RUNNING, ""),
                    (KernelStatus.ERROR, "CUDA out of memory"), (KernelStatus.ERROR, "CUDA out of memory")]


def test_unknown_kernel_is_refused_with_the_rules_and_slug_hint(fake_kaggle):
    with pytest.raises(UserError, match=r"HTTP 403.*competitions/gan-getting-started/rules.*kernel slug"):
        kaggle_api.kernel_status("tester/never-pushed", 1)


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
    files = kaggle_api.kernel_output(REF, 1, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in files) == [
        "images.zip", "monet-pipeline.log", "run/loss.png"]
    assert (tmp_path / "out" / "images.zip").read_bytes() == b"zip bytes"
    assert "epoch 1" in (tmp_path / "out" / "monet-pipeline.log").read_text()


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil-kaggle-output.txt", "a/../../evil.txt"])
def test_kernel_output_refuses_names_outside_the_folder(fake_kaggle, tmp_path, name):
    pushed(fake_kaggle, tmp_path)
    fake_kaggle.output_files = {name: b"x"}
    with pytest.raises(UserError, match="refusing the file name"):
        kaggle_api.kernel_output(REF, 1, tmp_path / "deep" / "out")
    assert not (tmp_path / "deep" / "evil.txt").exists() and not Path("/tmp/evil-kaggle-output.txt").exists()


def test_submit_code_is_recorded(fake_kaggle, tmp_path):
    fake_kaggle.statuses, fake_kaggle.output_files = [("complete", "")], {"images.zip": b"zip bytes"}
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
    path = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    assert f"Kaggle refused the credentials in {path} (HTTP 401: Unauthenticated)" in message
    assert "Generate New Token" in message
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
    assert message.startswith("no Kaggle credentials: create a token (kaggle.com -> Settings -> API -> "
                              "Generate New Token), save it as ~/.kaggle/access_token and run `chmod 600 "
                              "~/.kaggle/access_token` (or set KAGGLE_API_TOKEN)")
    assert "~/.kaggle/kaggle.json" in message and "KAGGLE_USERNAME and KAGGLE_KEY" in message
    assert "\n" not in message


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
    version = kaggle_api.push_kernel(folder, None, 600)[1]
    fake_kaggle.cut_log_stream = [1]  # the first stream drops after one entry
    read = kaggle_api.kernel_log(REF, version)
    events = read()
    assert next(events)["data"] == "first\n"  # while the notebook waits for 'go': live
    with pytest.raises(kaggle_api.KaggleUnavailable, match="stream was cut"):
        next(events)
    assert kaggle_api.kernel_status(REF, 1)[0] in (KernelStatus.QUEUED, KernelStatus.RUNNING)
    events = read()  # Kaggle replays the log from its start
    assert next(events) == {"stream_name": "stdout", "time": pytest.approx(0, abs=60), "data": "first\n"}
    (fake_kaggle.latest_run(REF).working / "go").touch()
    assert [e["data"] for e in events] == ["second\n"]
    fake_kaggle.wait_for_runs()
    assert kaggle_api.kernel_status(REF, 1) == (KernelStatus.COMPLETE, "")
    # ended: the whole log
    assert [e["data"] for e in kaggle_api.kernel_log(REF)()] == ["first\n", "second\n"]


def test_the_log_of_an_ended_kernel_is_read_whole(fake_kaggle, tmp_path):
    pushed(fake_kaggle, tmp_path)
    fake_kaggle.log_lines("a", "b")
    assert [e["data"] for e in kaggle_api.kernel_log(REF, 1)()] == ["a\n", "b\n"]


def test_an_access_token_comes_before_kaggle_json_as_in_the_client(fake_kaggle, tmp_path, monkeypatch):
    other_key = "o" + "1" * 31
    (Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json").write_text(
        json.dumps({"username": "someone-else", "key": other_key}))
    token = "KGAT_" + "7" * 32
    fake_kaggle.tokens[token] = "tester"
    monkeypatch.setenv("KAGGLE_API_TOKEN", token)
    assert kaggle_api.account() == kaggle_api.Account("tester", "KAGGLE_API_TOKEN")
    assert pushed(fake_kaggle, tmp_path)[0] == REF  # sent with the token: kaggle.json's key is not tester's
    fake_kaggle.statuses = [("error", f"a log that echoes {token} and {other_key}")]
    assert kaggle_api.kernel_status(REF, 1)[1] == "a log that echoes *** and ***"


def test_a_token_file_signs_in_and_a_refused_token_is_one_line_without_it(fake_kaggle, monkeypatch, capsys):
    (Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json").unlink()
    token_file = Path(os.environ["HOME"]) / ".kaggle" / "access_token"
    token_file.parent.mkdir()
    token_file.write_text("KGAT_file_token_0123456789abcdef\n")
    token_file.chmod(0o600)
    fake_kaggle.tokens["KGAT_file_token_0123456789abcdef"] = "tester"
    assert kaggle_api.account() == kaggle_api.Account("tester", "~/.kaggle/access_token")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_expired_0123456789abcdef")  # the client tries it first
    with pytest.raises(UserError) as info:
        kaggle_api.username()
    assert str(info.value).startswith("sign in to Kaggle: Kaggle refused the credentials in KAGGLE_API_TOKEN "
                                      "(HTTP 401: Unauthenticated): check them, or create a new token")
    out = capsys.readouterr()
    assert "KGAT_expired" not in str(info.value) + out.out + out.err


def test_kaggle_auth_login_counts_as_credentials_and_its_secrets_are_scrubbed(tmp_path, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "credentials.json").write_text(json.dumps(
        {"refresh_token": "r" * 24, "access_token": "a" * 24, "username": "tester"}))
    creds = credentials()
    assert creds.found == "~/.kaggle/credentials.json" and set(creds.secrets) == {"r" * 24, "a" * 24}
    assert session.scrub(f"token {'a' * 24}", creds) == "token ***"


def test_gpu_quota_counts_what_running_sessions_hold(fake_kaggle, tmp_path):
    fake_kaggle.quota = (10.0, 30.0, "2026-12-06T00:00:00Z")
    quota = kaggle_api.gpu_quota()
    assert (quota.used_h, quota.reserved_h, quota.total_h, quota.left_h) == (10.0, 0.0, 30.0, 20.0)
    assert quota.refresh == datetime(2026, 12, 6, tzinfo=timezone.utc)
    pushed(fake_kaggle, tmp_path)  # running, with a session timeout of one hour: Kaggle holds that hour
    quota = kaggle_api.gpu_quota()
    # shown as Kaggle's own CLI shows it (total - used), what running sessions hold beside it; a new session
    # gets only what they do not hold
    assert (quota.used_h, quota.reserved_h, quota.left_h, quota.free_h) == (10.0, 1.0, 20.0, 19.0)
    assert quota.describe() == ("GPU quota: 20.0 h left of 30 h (1.0 h held by running sessions), refreshes "
                                "within the hour")
    assert kaggle_api.Quota(20.0, 4.5, 30.0, None).free_h == 5.5
    assert kaggle_api.Quota(25.0, 9.0, 30.0, None).free_h == 0.0  # never below nothing


def test_submissions_left_tells_a_used_day_from_a_competition_not_joined(fake_kaggle):
    fake_kaggle.submissions_per_day = 2
    limits = kaggle_api.submissions_left("gan-getting-started")
    assert (limits.left, limits.made_today, limits.per_day, limits.entered) == (2, 0, 2, True)
    until_reset = limits.resets - datetime.now(timezone.utc)
    assert limits.resets.hour == 0 and timedelta(0) < until_reset <= timedelta(days=1)
    fake_kaggle.submissions += [{}, {}]
    limits = kaggle_api.submissions_left("gan-getting-started")
    assert (limits.left, limits.made_today, limits.entered) == (0, 2, True)
    fake_kaggle.rules_accepted = False
    assert kaggle_api.submissions_left("gan-getting-started").entered is False


def test_the_competitions_folders_and_a_datasets_files(fake_kaggle):
    assert kaggle_api.competition_folders("gan-getting-started") == fake_kaggle.data_folders
    fake_kaggle.dataset_files["tester/fid-weights"] = ["pt_inception-2015-12-05-6726825d.pth"]
    assert kaggle_datasets.dataset_files("tester/fid-weights") == ["pt_inception-2015-12-05-6726825d.pth"]
    assert kaggle_datasets.dataset_files("someone/private-weights") is None
