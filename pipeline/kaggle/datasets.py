"""Datasets on Kaggle: listing one's files, uploading files as a private dataset (a new one, then versions),
and knowing when Kaggle has a new version ready (it processes the files after answering).

A run trained on your own GPU and the FID weights reach a notebook this way (datasets/upload.py), since with
internet off a notebook sees only what is attached to it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ..engine.errors import UserError
from .credentials import Credentials
from .session import RETRY, Retry, call, http_error, pages, scrub, signed_in
from .status import DatasetStatus


def dataset_files(ref: str, retry: Retry | None = None) -> list[str] | None:
    """The file names of dataset `ref` (owner/slug), or None where this user cannot see it (Kaggle answers
    403 or 404 for a dataset that does not exist and for someone else's private one)."""
    retry, creds, api = signed_in(retry or RETRY)

    def page(token: str) -> Any:
        try:
            return api.dataset_list_files(ref, token, 100)
        except requests.exceptions.HTTPError as exc:
            if http_error(exc)[0] in (403, 404):
                return None
            raise

    names: list[str] = []
    for listing in pages(f"list the files of dataset {ref}", page, creds, retry):
        if listing is None:
            return None
        if listing.error_message:
            raise UserError(scrub(f"list the files of dataset {ref}: {listing.error_message}", creds))
        names += [f.name for f in listing.dataset_files or []]
    return names


DATASET_METADATA = "dataset-metadata.json"  # the client reads a dataset's id, title and license from it


@dataclass(frozen=True)
class DatasetState:
    """Where one of your datasets stands on Kaggle."""

    status: DatasetStatus  # of its latest version's files
    version: int  # the latest version's number


def dataset_state(ref: str, retry: Retry | None = None) -> DatasetState | None:
    """The status and latest version of dataset `ref` (owner/slug); None where this user cannot see it."""
    retry, creds, api = signed_in(retry or RETRY)
    return _dataset_state(api, ref, creds, retry)


def _dataset_state(api: Any, ref: str, creds: Credentials, retry: Retry) -> DatasetState | None:
    def read() -> dict | None:
        try:  # GetDatasetStatus, then GetDataset for the version
            return json.loads(api.dataset_status(ref, format="json"))
        except requests.exceptions.HTTPError as exc:
            if http_error(exc)[0] in (403, 404):  # not there, or someone else's private dataset
                return None
            raise

    found = call(f"read the status of dataset {ref}", read, creds, retry)
    if found is None:
        return None
    status = DatasetStatus.from_kaggle(found.get("status") or DatasetStatus.NOT_YET_PERSISTED.value)
    return DatasetState(status, int(found.get("current_version_number") or 0))


def upload_dataset(folder: Path, notes: str, retry: Retry | None = None) -> tuple[int, str]:
    """Put the files of `folder` on Kaggle as a private dataset: a new one, or a new version (with `notes`)
    where the dataset its dataset-metadata.json names (id, title, license) exists. Returns (the version before
    this upload, 0 for a new dataset; the dataset's URL): Kaggle goes on processing the files after answering,
    so the caller waits for a later version to be ready (dataset_state).

    Only the folder's top-level files travel (a sub-folder would go as an archive the notebook would have to
    unpack). The client uploads each file with its own retries; the request that creates the dataset or
    version is not repeated here after an answer (it could make two)."""
    retry, creds, api = signed_in(retry or RETRY)
    ref = json.loads((Path(folder) / DATASET_METADATA).read_text())["id"]
    before = _dataset_state(api, ref, creds, retry)
    if before is None:
        action = f"create dataset {ref}"
        create = functools.partial(api.dataset_create_new, str(folder), public=False, quiet=False)
    else:
        action = f"add a version to dataset {ref}"
        create = functools.partial(api.dataset_create_version, str(folder), notes, quiet=False)
    resp = call(action, create, creds, retry, idempotent=False)
    if (resp.status or "").lower() != "ok":
        said = resp.error or resp.status or "no reason given"
        raise UserError(scrub(f"{action}: Kaggle refused it: {said}", creds))
    return (before.version if before else 0), resp.url or f"https://www.kaggle.com/datasets/{ref}"
