"""The OpenAI fine-tune's job events reach the progress display in the order they happened.

OpenAI lists events newest first, and a short job writes several in the same second; against the
stand-in (tests/openai_standin.py, a real HTTP server) the printed order must be the job's order,
across pages of the events list.
"""

import time

import pytest

import harness.finetune._openai as ft_openai
from harness.finetune._openai import train_openai
from tests.openai_standin import StandIn
from tests.test_openai import KEY, ft_cfg, write_train

ORDER = ["Created fine-tuning job", "Validating training file", "moving job to queued state", "Fine-tuning job started",
         "Step 1/6", "Step 6/6", "New fine-tuned model created", "The job has successfully completed"]


@pytest.mark.parametrize("page", [100, 2])  # 2: every poll reads several pages of the events list
def test_job_events_print_in_time_order(tmp_path, monkeypatch, page):
    import openai

    monkeypatch.setattr(ft_openai, "EVENTS_PAGE", page)
    standin = StandIn(api_key=KEY, step_seconds=0.05)
    with standin.serve() as url:
        client = openai.OpenAI(base_url=url, api_key=KEY)
        out: list[str] = []

        def progress(msg: str) -> None:
            out.append(msg)
            if "created job" in msg:
                time.sleep(0.5)  # the whole job happens before the first poll: one batch of same-second events

        train_openai(client, "gpt-4o-mini-2024-07-18", write_train(tmp_path / "t.jsonl"), ft_cfg(), tmp_path / "job.json", {},
                     progress=progress)
    events = [m for m in out if " info: " in m]
    assert len(events) == len(ORDER), events  # each event once
    assert [next(i for i, e in enumerate(events) if want in e) for want in ORDER] == list(range(len(ORDER))), events
    # the stand-in wrote them newest first, several within one second: the bug this guards against
    (job,) = standin.jobs.values()
    assert len({e["created_at"] for e in job.events}) < len(job.events)
