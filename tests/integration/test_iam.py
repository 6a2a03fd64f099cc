"""The template's roles, expanded by the SAM translator, grant exactly what the code calls, scoped to this stack.

Sufficiency is proven by running the end-to-end tests under moto's IAM enforcement (test_aws_pipeline.py); this
file checks what moto cannot: no grant without a code path, resources scoped to the stack's region and account.
"""

from __future__ import annotations

import pytest

from tests.integration.iam import (
    ROLE_CODE_PATHS,
    declared_actions,
    expanded_template,
    granted_actions,
    role_statements,
)

OWNERS = sorted(ROLE_CODE_PATHS)
# APIs without resource-level permissions: "*" is the only valid Resource (AWS service authorization reference).
STAR_ONLY_SIDS = {"ReadCommandResults", "LogDelivery", "FindTaggedHost"}


def test_every_function_and_the_state_machine_has_a_declared_role():
    resources = expanded_template()["Resources"]
    roles = {k[: -len("Role")] for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"}
    assert roles == set(OWNERS)


@pytest.mark.parametrize("owner", OWNERS)
def test_role_grants_exactly_what_its_code_paths_call(owner):
    granted, declared = granted_actions(owner), declared_actions(owner)
    assert not granted - declared, f"{owner} grants actions no code path uses: {sorted(granted - declared)}"
    assert not declared - granted, f"{owner} lacks actions its code calls: {sorted(declared - granted)}"


@pytest.mark.parametrize("owner", OWNERS)
def test_resources_are_scoped(owner):
    for statement in role_statements(owner):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement.get("Sid") in STAR_ONLY_SIDS:
            continue
        assert "*" not in resources, f"{owner}: statement {statement.get('Sid')} grants on every resource"
        for resource in resources:
            text = str(resource)
            assert "*:*" not in text, f"{owner}: {text} is not scoped to the stack's region and account"


def test_send_command_is_scoped_to_our_documents_and_tagged_instances_in_this_region_and_account():
    statements = [s for s in role_statements("DiagnoseStateMachine") if s["Action"] == "ssm:SendCommand"]
    resources = [r for s in statements for r in s["Resource"]]
    assert resources and all(":us-east-1:123456789012:" in r for r in resources), resources
    tagged = [s for s in statements if "Condition" in s]
    assert tagged and all("instance" in r for s in tagged for r in s["Resource"])
    assert all(r.endswith(("document/<OnboxDocument>", "document/<RemediationDocument>"))
               for s in statements if "Condition" not in s for r in s["Resource"])


def test_no_table_access_for_roles_that_never_touch_it():
    for owner in ("FactsFunction", "ReprobeFunction", "DiagnoseStateMachine"):
        assert not {a for a in granted_actions(owner) if a.startswith("dynamodb:")}, owner
