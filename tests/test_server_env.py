"""Servers the harness starts do not inherit settings from the environment.

`llama_cpp.server` reads every one of its settings from the environment (case-insensitively) and
its `__main__` prefers `$HOST`/`$PORT` over `--host`/`--port`; container platforms set `PORT`. With
such variables set, the harness's llama.cpp server still starts where and how the harness said.
"""

import urllib.request

import pytest

from harness.models import embedded_gguf, llama_server
from harness.models._server import free_port, server_env

# what a container platform or a user's shell may hold: each would break or redirect the server
LEAKY = {
    "PORT": "8131", "HOST": "0.0.0.0", "MODEL": "/no/such/model.gguf", "API_KEY": "sk-inherited-key",
    "model_alias": "wrong-alias", "N_CTX": "16", "CHAT_FORMAT": "no-such-format", "CONFIG_FILE": "/no/such/config.json",
    "Verbose": "not-a-bool", "SSL_KEYFILE": "/no/such/key.pem",
}


def test_server_env_drops_every_llama_cpp_setting():
    env = server_env({**LEAKY, "PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "1", "port_number": "1"})
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "1", "port_number": "1"}


@pytest.mark.slow
def test_llama_server_ignores_inherited_settings(tmp_path, monkeypatch):
    from openai import AuthenticationError, OpenAI

    LEAKY["PORT"] = str(free_port())  # a port nothing listens on: the server must not go there
    for k, v in LEAKY.items():
        monkeypatch.setenv(k, v)
    log = tmp_path / "server.log"
    with llama_server(embedded_gguf("smollm2-135m-instruct"), log, model="smollm2", threads=1, startup_timeout=60) as ep:
        assert ep.base_url.startswith("http://127.0.0.1:") and f":{LEAKY['PORT']}/" not in ep.base_url
        client = OpenAI(base_url=ep.base_url, api_key=ep.api_key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["smollm2"]  # its alias, not $model_alias
        r = client.chat.completions.create(model="smollm2", max_tokens=4, temperature=0,
                                           messages=[{"role": "user", "content": "Say hi. " * 20}])
        assert r.choices[0].message.content is not None  # a 160-token prompt: not the n_ctx=16 of $N_CTX
        with pytest.raises(AuthenticationError, match="401"):  # its own random key, not $API_KEY
            OpenAI(base_url=ep.base_url, api_key=LEAKY["API_KEY"], max_retries=0).models.list()
        with pytest.raises(OSError):  # nothing on $PORT
            urllib.request.urlopen(f"http://127.0.0.1:{LEAKY['PORT']}/v1/models", timeout=2)
    assert "sk-inherited-key" not in log.read_text()
