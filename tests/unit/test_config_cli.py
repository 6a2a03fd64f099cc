"""`gatewatch config schema` and `gatewatch config init`: the editor schema and the starter file."""

import json
from pathlib import Path

import pytest
import yaml

from gatewatch.cli import main
from gatewatch.cli.config_cmd import schema_document
from gatewatch.config import load_config
from gatewatch.probe.demo import DemoSite

ROOT = Path(__file__).parents[2]


def test_schema_comes_from_the_models_and_the_committed_copy_is_fresh(capsys):
    assert main(["config", "schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == schema_document()
    assert doc["required"] == ["targets"]
    remediation = doc["$defs"]["Remediation"]["properties"]["mode"]
    assert remediation["enum"] == ["off", "suggest", "auto"]
    committed = json.loads((ROOT / "docs" / "targets.schema.json").read_text())
    assert committed == doc, "docs/targets.schema.json is stale: run `make generate`"


def test_examples_point_editors_at_the_schema():
    first = (ROOT / "examples" / "targets.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../docs/targets.schema.json"


def test_init_probes_once_and_writes_a_file_that_loads(tmp_path, capsys):
    out = tmp_path / "targets.yaml"
    with DemoSite() as site:
        base = f"http://127.0.0.1:{site.port}"
        assert main(["config", "init", f"{base}/api/v1/orders", f"{base}/api/v1/checkout", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=targets.schema.json\n")
    config = load_config(out)
    orders, checkout = config.targets
    assert orders.name == "127-0-0-1-api-v1-orders"
    assert orders.expect.status == [200]  # the status it answered
    assert orders.health.url == f"{base}/health"  # /health answered 200
    assert checkout.expect.status is None  # a 502 is not written down as accepted
    assert "answered 502" in text and "through Cloudflare (AMS)" in text
    raw = yaml.safe_load(text)
    assert all(t["remediation"]["mode"] == "suggest" for t in raw["targets"])
    err = capsys.readouterr().err
    assert "Cloudflare in front" in err


def test_init_without_health_or_answer_comments_what_it_could_not_tell(tmp_path):
    out = tmp_path / "t.yaml"
    assert main(["config", "init", "http://127.0.0.1:9/", "-o", str(out), "--timeout", "1"]) == 0
    text = out.read_text()
    assert "no answer (" in text and "# health:" in text
    assert load_config(out).targets[0].health is None


def test_init_keeps_an_existing_file_and_refuses_missing_directories(tmp_path, capsys):
    out = tmp_path / "t.yaml"
    out.write_text("mine\n")
    assert main(["config", "init", "--no-probe", "https://example.com/", "-o", str(out)]) == 2
    assert out.read_text() == "mine\n"
    assert "--force" in capsys.readouterr().err
    assert main(["config", "init", "--no-probe", "https://example.com/", "-o", str(out), "--force"]) == 0
    assert load_config(out).targets[0].name == "example-com"
    assert main(["config", "init", "--no-probe", "https://example.com/", "-o", str(tmp_path / "no/t.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_init_rejects_a_bad_url(capsys):
    assert main(["config", "init", "--no-probe", "ftp://example.com/", "-o", "-"]) == 2
    assert "http:// or https://" in capsys.readouterr().err


@pytest.mark.parametrize("url, name", [("https://API.Example.com/v1/", "api-example-com-v1"),
                                       ("http://[::1]:8080/", "1")])
def test_target_names_are_valid(url, name):
    from gatewatch.config.starter import target_name

    assert target_name(url, set()) == name


def test_an_editor_using_the_schema_agrees_with_the_loader(tmp_path):
    """What the loader accepts, the schema accepts (no false red squiggles), and a few classic mistakes are
    flagged by both."""
    import jsonschema

    from gatewatch.config.yaml12 import parse

    schema = schema_document()
    validator = jsonschema.Draft202012Validator(schema)
    for path in [ROOT / "examples" / "targets.yaml"]:
        data, _ = parse(path.read_text())
        assert not list(validator.iter_errors(data)), path
    out = tmp_path / "t.yaml"
    assert main(["config", "init", "--no-probe", "https://example.com/", "https://api.example.com/health",
                 "-o", str(out)]) == 0
    assert not list(validator.iter_errors(parse(out.read_text())[0]))
    fixtures = ROOT / "tests" / "fixtures" / "config"
    for name in ("invalid-port.yaml", "invalid-unknown-key.yaml", "invalid-mode.yaml", "invalid-boolean.yaml"):
        assert list(validator.iter_errors(parse((fixtures / name).read_text())[0])), name
