"""The SSM document generator: committed files are current, embeddings round-trip, unsafe inputs are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gatewatch.aws import ssm_documents as gen
from gatewatch.aws.template_schema import REPO_ROOT, load_template


def test_committed_documents_and_template_blocks_are_what_the_generator_makes():
    stale = gen.stale_files()
    assert stale == [], f"stale generated files {stale}: run `make generate` and commit"


def test_template_inlines_exactly_the_committed_documents():
    resources = load_template()["Resources"]
    for logical_id, key in (("OnboxDocument", "onbox"), ("RemediationDocument", "remediation")):
        committed = json.loads((REPO_ROOT / gen.SSM_DIR / gen.DOCUMENTS[key]).read_text())
        assert resources[logical_id]["Properties"]["Content"] == committed
        assert resources[logical_id]["Properties"]["DocumentType"] == "Command"
        assert committed["schemaVersion"] == "2.2"
        assert len(json.dumps(committed).encode()) <= gen.DOCUMENT_MAX_BYTES


def run_document_script(document: dict, params: str, tmp_path) -> subprocess.CompletedProcess:
    lines = [gen_line.replace("{{ Params }}", params) for gen_line in document["mainSteps"][0]["inputs"]["runCommand"]]
    script = tmp_path / "doc.sh"
    script.write_text("\n".join(lines) + "\n")
    return subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})


@pytest.mark.parametrize("embed", ["text", "gzip"])
def test_both_embeddings_recreate_the_script_byte_for_byte(tmp_path, embed):
    placeholder = tmp_path / "checks.py"
    placeholder.write_text('import sys, json\nprint(json.dumps({"argv": sys.argv[1:], "note": "it\'s $HOME `x`"}))\n')
    document = gen.onbox_document(placeholder.read_text(), embed=embed)
    out = run_document_script(document, "b64:e30=", tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"argv": ["b64:e30="], "note": "it's $HOME `x`"}
    assert list(tmp_path.glob("gatewatch-checks.*")) == []  # the temp copy is removed


def test_auto_embedding_keeps_small_scripts_readable_and_compresses_big_ones():
    small = gen.onbox_document("print('hi')\n")
    assert "print('hi')" in small["mainSteps"][0]["inputs"]["runCommand"]
    big_script = "\n".join(f"x_{i} = {i!r}  # {'padding ' * 8}" for i in range(3000))
    big = gen.onbox_document(big_script)
    assert not any(line.startswith("x_1 =") for line in big["mainSteps"][0]["inputs"]["runCommand"])
    assert len(gen.render(big).encode()) <= gen.DOCUMENT_MAX_BYTES


@pytest.mark.parametrize("script,reason", [
    (f"print(1)\n{gen.HEREDOC}\nprint(2)\n", "heredoc"),
    ("print('{{ Params }}')\n", "parameter syntax"),
])
def test_text_that_would_escape_its_heredoc_or_be_rewritten_by_ssm_is_compressed_or_refused(script, reason):
    with pytest.raises(gen.GenerationError):
        gen.onbox_document(script, embed="text")
    lines = gen.onbox_document(script)["mainSteps"][0]["inputs"]["runCommand"]
    assert sum(1 for line in lines if line == gen.HEREDOC) == 1
    assert not any("{{" in line for line in lines if "Params" not in line), reason


def test_write_and_check_on_a_copy_of_the_repository(tmp_path):
    (tmp_path / "infra").mkdir()
    shutil.copy(REPO_ROOT / "infra" / "template.yaml", tmp_path / "infra" / "template.yaml")
    script = tmp_path / "checks.py"
    script.write_text("print('placeholder')\n")
    args = ["--root", str(tmp_path), "--script", str(script)]
    assert gen.main(["--check", *args]) == 1
    assert gen.main(["--write", *args]) == 0
    assert gen.main(["--check", *args]) == 0
    content = load_template(tmp_path / "infra" / "template.yaml")["Resources"]["OnboxDocument"]["Properties"]["Content"]
    assert "print('placeholder')" in content["mainSteps"][0]["inputs"]["runCommand"]
    assert json.loads((tmp_path / "infra" / "ssm" / "gatewatch-onbox.json").read_text()) == content
    assert gen.main(["--write", "--root", str(tmp_path), "--script", str(tmp_path / "missing.py")]) == 2


def test_remediation_document_offers_only_the_catalogued_actions():
    from gatewatch.remediation.catalogue import CATALOGUE, MANAGERS

    doc = gen.remediation_document()
    assert doc["parameters"]["Action"]["allowedValues"] == ["restart_backend", "start_proxy", "reload_proxy"]
    assert set(doc["parameters"]["Action"]["allowedValues"]) == set(CATALOGUE.actions)
    assert doc["parameters"]["ServiceManager"]["allowedValues"] == list(MANAGERS)


PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python3")


@pytest.mark.skipif(not PY38.exists(), reason="needs a python 3.8 interpreter (hosts may have no newer one)")
def test_the_committed_onbox_document_unpacks_and_runs_under_python_3_8(tmp_path):
    """The document uses the host's python3, which may be 3.8: unpacking and the checks both run there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(PY38)
    document = json.loads((REPO_ROOT / gen.SSM_DIR / gen.DOCUMENTS["onbox"]).read_text())
    lines = [line.replace("{{ Params }}", "b64:e30=") for line in document["mainSteps"][0]["inputs"]["runCommand"]]
    script = tmp_path / "doc.sh"
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=60,
                         env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR": str(tmp_path)})
    report = json.loads(out.stdout)
    assert report["meta"]["python"].startswith("3.8."), out.stderr
    assert report["schema"] == 1 and len(out.stdout) < 24_000


def test_a_host_without_python3_gets_a_clear_message(tmp_path):
    document = json.loads((REPO_ROOT / gen.SSM_DIR / gen.DOCUMENTS["onbox"]).read_text())
    lines = [line.replace("{{ Params }}", "b64:e30=") for line in document["mainSteps"][0]["inputs"]["runCommand"]]
    script = tmp_path / "doc.sh"
    script.write_text("\n".join(lines) + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=30,
                         env={"PATH": str(empty), "TMPDIR": str(tmp_path)})
    assert out.returncode == 127 and "python3 is not installed on this host" in out.stderr
