"""inspect looks up the model info of each model call's model (for its live-session usage figures);
for a name its database does not know it instantiates the provider to ask, on the event loop. For a
local `hf/` checkpoint that is a second `from_pretrained` of the model's name (8 s offline, minutes of
Hub retries online) while every sample waits: the evaluate stage registers what the checkpoint's own
config says instead (bench/eval_overhead.py measures the evaluation against plain generate)."""

import json

from harness.evaluate import register_model_info


def test_a_local_checkpoint_is_registered_from_its_config(tmp_path):
    from inspect_ai.model import get_model_info

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    name = f"hf/harness-test-{tmp_path.name}"  # no such model anywhere: unregistered, inspect would try to load it
    register_model_info(name, {"model_path": str(tmp_path), "device": "cpu"})
    info = get_model_info(name)
    assert info is not None and info.context_length == 4096


def test_hosted_models_and_hub_names_keep_inspects_own_info(tmp_path):
    from inspect_ai.model import get_model_info

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    before = get_model_info("openai/gpt-4o")
    register_model_info("openai/gpt-4o", {"model_path": str(tmp_path)})  # not hf/: left to inspect's database
    assert before is not None and get_model_info("openai/gpt-4o") == before and before.context_length != 4096
    # an hf/ model without a local checkpoint (a Hub name, a path that does not exist) is not registered:
    # inspect's own lookup finds nothing (offline, tests/conftest.py)
    register_model_info("hf/harness-test-hub-name", {})
    register_model_info("hf/harness-test-missing", {"model_path": str(tmp_path / "missing")})
    assert get_model_info("hf/harness-test-hub-name") is None and get_model_info("hf/harness-test-missing") is None


def test_an_unreadable_config_registers_no_context_length(tmp_path):
    from inspect_ai.model import get_model_info

    (tmp_path / "config.json").write_text("{not json")
    name = f"hf/harness-test-bad-{tmp_path.name}"
    register_model_info(name, {"model_path": str(tmp_path)})
    info = get_model_info(name)
    assert info is not None and info.context_length is None
