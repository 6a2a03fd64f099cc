"""The cost model and the template agree on what is billed (benchmarks/cost_model.py)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from benchmarks import cost_model as cm


@pytest.fixture(scope="module")
def template():
    return cm.load_template()


def test_the_model_knows_everything_the_template_and_code_bill(template):
    s = cm.read_settings(template)  # raises ModelError on an unknown resource type or metric
    assert s.memory_mb == template["Resources"]["ProbeFunction"]["Properties"]["MemorySize"]
    assert s.alarms == sorted(k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert s.minutes_between_rounds == 1 and s.per_target_policy == "none"


def test_an_unknown_resource_type_fails(template):
    t = copy.deepcopy(template)
    t["Resources"]["Extra"] = {"Type": "AWS::EC2::NatGateway", "Properties": {}}
    with pytest.raises(cm.ModelError, match="AWS::EC2::NatGateway"):
        cm.read_settings(t)


def test_an_unknown_metric_in_the_code_fails(tmp_path, monkeypatch, template):
    (tmp_path / "new.py").write_text('metrics.add_metric(name="ProbesPerShard", unit="Count", value=1)\n')
    monkeypatch.setattr(cm, "CODE_DIRS", (*cm.CODE_DIRS, tmp_path))
    with pytest.raises(cm.ModelError, match="ProbesPerShard"):
        cm.read_settings(template)


def test_the_code_scan_sees_the_probe_functions_metrics():
    assert {"TargetsDown", "OpenIncidents", "ProbeSuccess", "Latency", "CertificatesCritical"} <= cm.emitted_metrics()


def test_alarms_dashboard_pitr_and_policy_move_the_bill(template):
    measured = cm.load_measured()

    def fixed_and_per_target(t, policy=None):
        f = cm.fleets(cm.read_settings(t), measured, [100], 200.0, 16, policy)["100"]
        return f["fixed_month_usd"], f["per_target_month_usd"]

    base_fixed, base_per = fixed_and_per_target(template)
    t = copy.deepcopy(template)
    t["Resources"]["AnotherAlarm"] = copy.deepcopy(t["Resources"]["TargetsDownAlarm"])
    assert fixed_and_per_target(t)[0] == pytest.approx(base_fixed + 0.10, abs=1e-3)
    t["Parameters"]["CreateDashboard"]["Default"] = "true"
    assert fixed_and_per_target(t)[0] == pytest.approx(base_fixed + 3.10, abs=1e-3)
    if "StatusPage" in t["Parameters"]:  # a scheduled function and its bucket: fixed cost, never free
        t["Parameters"]["StatusPage"]["Default"] = "true"
        assert fixed_and_per_target(t)[0] > base_fixed + 3.10
    t["Parameters"]["PointInTimeRecovery"]["Default"] = "true"
    assert fixed_and_per_target(t)[1] > base_per
    all_metrics = fixed_and_per_target(template, "all")[1]
    assert base_per + 0.60 < all_metrics < base_per + 0.63  # two metrics, and their EMF documents in the logs


def test_json_output_has_every_fleet():
    out = subprocess.run([sys.executable, "benchmarks/cost_model.py", "--json"], capture_output=True, text=True,
                         check=True).stdout
    fleets = json.loads(out)["fleets"]
    assert list(fleets) == ["1", "10", "100", "1000", "10000"]
    for f in fleets.values():
        assert {"per_target_month_usd", "fixed_month_usd", "lines"} <= set(f) and f["lines"]
        assert sum(x["usd"] for x in f["lines"]) == pytest.approx(f["total_month_usd"], abs=0.05)
