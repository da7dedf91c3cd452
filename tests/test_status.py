"""Every status the official client can answer reads as one of ours, by kagglesdk's own names: a status
Kaggle adds, or one misspelt here, fails this test instead of a submit waiting on a string forever."""
from __future__ import annotations

import pytest
from kagglesdk.competitions.types.submission_status import SubmissionStatus as SdkSubmissionStatus
from kagglesdk.datasets.types.dataset_enums import DatabundleVersionStatus
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

from pipeline.kaggle.status import DatasetStatus, KernelStatus, SubmissionStatus


@pytest.mark.parametrize(("ours", "sdk"), [(KernelStatus, KernelWorkerStatus),
                                           (SubmissionStatus, SdkSubmissionStatus),
                                           (DatasetStatus, DatabundleVersionStatus)])
def test_each_of_kagglesdk_statuses_reads_as_ours_of_the_same_name(ours, sdk):
    for member in sdk:
        assert ours.from_kaggle(member).name == member.name
        assert ours.from_kaggle(member.name.lower()) is ours.from_kaggle(member)  # the client's text of it

