"""The documentation cannot rot: what the pages (docs/, README.md) name exists in the real code.

- every page of docs/ is in mkdocs.yml's nav (a page left out is unreachable on the site), and every
  relative link of the pages and the README reaches a file (and heading) that exists;
- every `harness run ...` command in a code block composes with the real Hydra config (the same compose
  `harness run` does; values are type-checked by the schema), and every config key a page names in
  `code` exists in a composed config;
- every `harness <command> --flag` a page names is a flag of that command's real parser;
- the generated reference (docs/scripts/gen_reference.py) covers every key, flag and schema field;
- every `--help` ends with its page's link, and that link's address is mkdocs.yml's site_url;
- the tutorials' bash blocks each carry a marker: `<!-- docs-test: run -->` blocks run here (cheap
  ones: `harness init`, a gate over small lm-eval outputs), the others say why they are not run.

`mkdocs build --strict` itself (broken links, nav, the API pages) runs in CI (.ci/run, `make docs-build`).
Everything here is quick: Hydra compose in-process (well under a second each), no model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from harness.cli import USAGE, compose, experiments
from harness.cli._args import DOCS_URL, PAGES, docs_link

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "scripts"))
import gen_reference  # noqa: E402

HARNESS = str(Path(sys.executable).with_name("harness"))
# the config's sections: a dotted name in `code` that starts with one of these is a config key
SECTIONS = ("data", "generate", "finetune", "eval", "report", "regress", "models", "graders")
TOP_KEYS = {"experiment", "results_dir", "cache_dir", "cache"}
# Hydra's flags that take a value (the rest of `harness run`'s argv is overrides)
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-dir", "-cd", "--config-path", "-cp",
               "--info", "-i", "-sc", "--shell-completion"}
# words in a documented command that stand for something the reader fills in: the command is not composed
PLACEHOLDERS = re.compile(r"\.\.\.|RUN_|NAME\b|<|\$|\[--|DIR\b")


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "scripts" not in p.parts)


def doc_texts() -> list[tuple[str, str]]:
    """(name, text) of every hand-written page and the README."""
    return [(str(p.relative_to(REPO)), p.read_text(encoding="utf-8")) for p in pages()] + [("README.md", (REPO / "README.md").read_text())]


def code_blocks(text: str) -> list[tuple[str, str, str, int]]:
    """(language, body, the line before the fence, line number) of each fenced block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(\w*)", lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append((m.group(1), "\n".join(lines[i + 1:j]), lines[i - 1] if i else "", i + 1))
            i = j
        i += 1
    return out


def shell_commands(body: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    body = body.replace("\\\n", " ")
    out = []
    for line in body.splitlines():
        try:
            toks = shlex.split(line, comments=True)
        except ValueError:
            continue
        if toks:
            out.append(toks)
    return out


def inline_code(text: str) -> list[str]:
    """The `code` spans of a page's prose (outside fenced blocks)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


@lru_cache(maxsize=None)
def known_keys() -> frozenset[str]:
    """Every dotted key of the config as composed for each experiment and each grader option."""
    keys: set[str] = set()
    for name in [*experiments(), None]:
        keys |= gen_reference.config_keys(compose([f"experiment={name}"] if name else []))
    for g in (REPO / "conf" / "grader").glob("*.yaml"):
        keys |= gen_reference.config_keys(compose([f"+grader@graders.x={g.stem}"]))
    return frozenset(keys)


def key_exists(key: str) -> bool:
    """A dotted key (aliases of models/graders in any spelling) is in a composed config."""
    parts = key.split(".")
    if parts[0] in ("models", "graders") and len(parts) > 1:
        parts[1] = gen_reference.ALIASED[parts[0]]
    for n in range(len(parts), 0, -1):  # under a free-form dict (args, a student's finetune): its prefix
        head = ".".join(parts[:n])
        if head in known_keys():
            return n == len(parts) or head.endswith((".args", ".finetune"))
    return False


# ------------------------------------------------------------------ the site's structure


def nav_files() -> list[str]:
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    out = []

    def walk(x):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, list):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)

    walk(nav)
    return out


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = nav_files()
    missing = [str(p.relative_to(DOCS)) for p in pages() if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"pages not in mkdocs.yml nav (one line each under nav:): {missing}"
    absent = [n for n in nav if not (DOCS / n).is_file() and n not in gen_reference.PAGES]
    assert not absent, f"nav entries with no page: {absent}"


def slug(heading: str) -> str:
    """Python-Markdown's toc slugify (mkdocs' default): the id of a heading."""
    import unicodedata

    s = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    s = re.sub(r"[^\w\s-]", "", s).strip().lower()
    return re.sub(r"[-\s]+", "-", s)


@lru_cache(maxsize=None)
def anchors(target: Path) -> frozenset[str]:
    rel = str(target.relative_to(DOCS)) if target.is_relative_to(DOCS) else ""
    text = gen_reference.PAGES[rel]() if rel in gen_reference.PAGES else target.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return frozenset(slug(h) for h in re.findall(r"^#+ (.+?)\s*$", text, re.M))


def broken_links(name: str, text: str) -> list[str]:
    src = REPO / name
    bad = []
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"^[a-z]+:", target) or target.startswith("#") and not target[1:]:
            continue
        path, _, anchor = target.partition("#")
        dest = (src.parent / path).resolve() if path else src.resolve()
        generated = dest.is_relative_to(DOCS) and str(dest.relative_to(DOCS)) in gen_reference.PAGES
        if not (dest.exists() or generated):
            bad.append(f"{name}: link to {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{name}: link to {target}: no heading '#{anchor}' in {path or name}")
    return bad


def test_every_relative_link_reaches_a_page_and_heading():
    bad = [b for name, text in doc_texts() for b in broken_links(name, text)]
    assert not bad, "\n".join(bad)


def test_the_readme_is_short_and_keeps_its_two_commands_and_picture():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    (pic,) = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert (REPO / pic).stat().st_size > 10_000


# ------------------------------------------------------------------ what the pages name exists


def documented_run_commands() -> list[tuple[str, list[str]]]:
    out = []
    for name, text in doc_texts():
        for lang, body, _, line in code_blocks(text):
            if lang not in ("bash", "sh", "yaml", ""):
                continue
            for toks in shell_commands(body):
                if "harness" in toks:
                    toks = toks[toks.index("harness"):]
                    if len(toks) > 1 and toks[1] == "run":
                        out.append((f"{name}:{line}", toks[2:]))
    return out


def overrides_of(args: list[str]) -> list[str] | None:
    """The overrides of a documented `harness run` argv (a sweep's first value), or None when the command
    has a placeholder or a config dir of the reader's own."""
    if any(PLACEHOLDERS.search(a) for a in args) or any(a in ("--config-dir", "-cd") for a in args):
        return None
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in VALUE_FLAGS:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        if a.startswith(("|", "&&", ";")):
            break
        if a.startswith("[") and a.endswith("]"):  # an optional argument in a usage line: [key=value]
            a = a[1:-1]
        key, eq, value = a.partition("=")
        if eq and not value.startswith(("[", "{")) and "," in value and "(" not in value:
            value = value.split(",")[0]  # a sweep (-m): each value is composed by `harness run` itself
        out.append(f"{key}={value}" if eq else a)
        i += 1
    return ["cache=false" if a == "--no-cache" else a for a in out]


@pytest.mark.parametrize("where,args", documented_run_commands(), ids=lambda x: x if isinstance(x, str) else None)
def test_every_documented_harness_run_composes(where, args):
    """The real compose of `harness run`: an unknown key, group option or wrong type fails here."""
    overrides = overrides_of(args)
    if overrides is None:
        return  # a placeholder the reader fills in, or their own config dir: nothing to compose
    try:
        compose(overrides)
    except Exception as e:  # Hydra's own error says which override
        pytest.fail(f"{where}: harness run {' '.join(args)}\n  does not compose: {type(e).__name__}: {e}")


def named_keys() -> list[tuple[str, str]]:
    """(page, key) for every config key a page names in `code`: `a.b.c`, `a.b=v`, `+a.b=v`, `~a.b`."""
    out = []
    for name, text in doc_texts():
        spans = inline_code(text)
        for lang, body, _, _ in code_blocks(text):
            if lang in ("bash", "sh", ""):
                spans += [t for toks in shell_commands(body) if "harness" in toks for t in toks]
        for span in spans:
            for tok in span.split():
                tok = tok.lstrip("+~").strip(",;:()")
                key = tok.split("=", 1)[0]
                if "@" in key or "/" in key or not re.fullmatch(r"[a-z_]+(\.[\w<>-]+)+", key):
                    continue
                if key.split(".")[0] in SECTIONS:
                    out.append((name, key))
    return sorted(set(out))


@lru_cache(maxsize=None)
def result_fields() -> frozenset[str]:
    """The fields of summary.json / regress.json (`data.notes` is a summary field, not a config key)."""
    out = set()
    for name in ("summary", "regress"):
        for path, *_ in gen_reference.schema_fields(json.loads((DOCS / f"{name}.schema.json").read_text())):
            parts = path.replace("[]", "").split(".")
            out |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
    return frozenset(out)


def named_in_config_or_results(key: str) -> bool:
    if re.search(r"\.(md|html|json|jsonl|yaml|csv|py)$", key):  # a file name (report.md), not a key
        return True
    if "<" in key.split(".")[-1]:  # `regress.<key>`: a placeholder under a real prefix
        return key_exists(key.rsplit(".", 1)[0])
    return key_exists(key) or key in result_fields() or any(f.startswith(key + ".") for f in result_fields())


def test_every_config_key_the_docs_name_exists():
    bad = [f"{page}: `{key}`" for page, key in named_keys() if not named_in_config_or_results(key)]
    assert not bad, "config keys named in the docs that no composed config has:\n  " + "\n  ".join(bad)


def named_flags() -> list[tuple[str, str, str]]:
    """(page, command, flag) for every `harness <command> ... --flag` in code blocks and `code` spans."""
    out = []
    for name, text in doc_texts():
        cmds = [toks for lang, body, _, _ in code_blocks(text) if lang in ("bash", "sh", "yaml", "")
                for toks in shell_commands(body)]
        for span in inline_code(text):
            try:
                cmds.append(shlex.split(span))
            except ValueError:
                pass
        for toks in cmds:
            if "harness" not in toks:
                continue
            toks = toks[toks.index("harness"):]
            cmd = toks[1] if len(toks) > 1 and not toks[1].startswith("-") else "harness"
            for t in toks[1:]:
                if t.startswith("-") and not PLACEHOLDERS.search(t) and t not in ("-", "--"):
                    out.append((name, cmd, t.split("=")[0]))
    return sorted(set(out))


def test_every_cli_flag_the_docs_name_exists():
    flags = gen_reference.cli_flags()
    bad = [f"{page}: harness {cmd} {flag}" for page, cmd, flag in named_flags()
           if flag not in flags.get(cmd, set()) and not (cmd == "harness" and flag in flags["harness"])]
    assert not bad, "flags named in the docs that the parser does not have:\n  " + "\n  ".join(bad)


# ------------------------------------------------------------------ the generated reference


def test_the_config_reference_lists_every_key_of_every_experiment():
    page = gen_reference.config_page()
    listed = set(re.findall(r"^\| `([^`]+)` \|", page, re.M)) | set(re.findall(r"^## `([^`]+)`$", page, re.M))
    missing = sorted(k for k in known_keys() if k not in listed and k.split(".")[0] not in TOP_KEYS | {"x"} or
                     (k in TOP_KEYS and k not in listed))
    assert not missing, f"keys missing from reference/config.md: {missing}"
    for group in (REPO / "conf").iterdir():
        if group.is_dir() and group.name != "hydra":
            for f in group.glob("*.yaml"):
                assert f"`{group.name}={f.stem}`" in page


def test_the_cli_reference_lists_every_command_and_flag():
    page = gen_reference.cli_page()
    for cmd, flags in gen_reference.cli_flags().items():
        if cmd != "harness":
            assert f"## harness {cmd}" in page
            for f in flags - {"-h", "--help"}:
                assert re.search(rf"`[^`]*{re.escape(f)}\b", page), f"harness {cmd} {f} not in reference/cli.md"


@pytest.mark.parametrize("name", ["summary", "regress"])
def test_the_json_references_list_every_field(name):
    schema = json.loads((DOCS / f"{name}.schema.json").read_text())
    page = gen_reference.schema_page(name)
    for field in schema["properties"]:
        assert f"| `{field}` |" in page


# ------------------------------------------------------------------ help links


def test_every_help_ends_with_its_page_on_the_site():
    site = yaml.safe_load((REPO / "mkdocs.yml").read_text())["site_url"]
    assert site == DOCS_URL
    cli = gen_reference.cli_page()
    for cmd, page in PAGES.items():
        anchor = page.partition("#")[2]
        assert not anchor or f"## {anchor.replace('-', ' ')}" in cli, f"{page}: no such section in reference/cli.md"
    assert USAGE.rstrip().endswith(docs_link("harness"))
    for cmd, parser in gen_reference.parsers().items():
        if cmd != "run":
            assert parser.format_help().rstrip().endswith(docs_link(cmd.split()[0])), cmd
    footer = yaml.safe_load((REPO / "conf/hydra/help/harness.yaml").read_text())["footer"]
    assert footer.rstrip().endswith(docs_link("run"))


# ------------------------------------------------------------------ the tutorials' commands

MARK = re.compile(r"^<!-- docs-test: (run(?: fixture=(?P<fixture>[\w-]+))?|not run: (?P<reason>.+\S)) -->$")


def tutorial_blocks() -> list[tuple[str, str, re.Match | None]]:
    out = []
    for p in [*(DOCS / "tutorials").glob("*.md"), DOCS / "getting-started.md", *(DOCS / "getting-started").glob("*.md")]:
        for lang, body, before, line in code_blocks(p.read_text()):
            if lang in ("bash", "sh"):
                out.append((f"{p.relative_to(REPO)}:{line}", body, MARK.match(before.strip())))
    return out


def test_every_tutorial_command_block_is_run_or_says_why_not():
    unmarked = [where for where, _, m in tutorial_blocks() if m is None]
    assert not unmarked, ("bash blocks without `<!-- docs-test: run -->` or `<!-- docs-test: not run: REASON -->` "
                          f"on the line above: {unmarked}")
    # the run blocks stay cheap (this is the quick tier): no `harness run` that does work, unless it is refused
    heavy = [where for where, body, m in tutorial_blocks() if m is not None and m.group(1).startswith("run")
             for toks in shell_commands(body) if toks[:2] == ["harness", "run"] and "||" not in body
             and not {"--cfg", "--help", "--info"} & set(toks)]
    assert not heavy, f"blocks marked run that run the pipeline (mark them `not run: REASON`): {heavy}"


def lm_eval_outputs(root: Path) -> None:
    """Two lm-evaluation-harness `--log_samples` outputs (its file layout and record fields), the same 200
    answers in both: what `lm_eval ... --output_path lm/v1` and `lm/v2` leave. A stand-in for a model run,
    which the quick tier cannot afford; tests/test_foreign.py gates the output of a real `lm_eval`."""
    for version in ("v1", "v2"):
        d = root / "lm" / version / f"org__model-{version}"
        d.mkdir(parents=True)
        stamp = "2026-12-06T10-00-00.000001"
        (d / f"results_{stamp}.json").write_text(json.dumps({"model_name": f"org/model-{version}", "config": {}}))
        recs = [{"doc_id": i, "doc": {"q": f"question {i}"}, "doc_hash": f"h{i}", "target": str(i), "filter": "none",
                 "filtered_resps": [str(i if i % 5 else i + 1)], "metrics": ["exact_match"], "exact_match": float(i % 5 != 0)}
                for i in range(200)]
        (d / f"samples_my_task_{stamp}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


RUN_BLOCKS = [(w, b, m) for w, b, m in tutorial_blocks() if m is not None and m.group(1).startswith("run")]


@pytest.mark.parametrize("where,body,mark", RUN_BLOCKS, ids=[w for w, _, _ in RUN_BLOCKS])
def test_the_tutorial_commands_marked_run_run(where, body, mark, tmp_path):
    """The block as a reader would paste it, in an empty directory, with `harness` on PATH."""
    if mark.group("fixture") == "lm-eval":
        lm_eval_outputs(tmp_path)
    env = {**os.environ, "PATH": str(Path(HARNESS).parent) + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, f"{where}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr


def test_the_exit_code_page_lists_the_codes_the_cli_states():
    """reference/exit-codes.md is hand-written: its table must hold exactly the codes `harness --help` names."""
    stated = {int(c) for c in re.findall(r"\b([0-9]) (?:success|usage|internal|regression|inconclusive)",
                                         USAGE.split("Exit codes:")[1])}
    page = (DOCS / "reference" / "exit-codes.md").read_text()
    listed = {int(c) for c in re.findall(r"^\| `([0-9])` \|", page, re.M)}
    assert stated == listed == {0, 1, 2, 3, 4}
