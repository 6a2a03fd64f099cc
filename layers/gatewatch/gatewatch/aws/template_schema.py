"""Read infra/template.yaml so tests build their moto resources from the deployed definitions, never a copy.

CloudFormation's short tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) are kept as ``{"Fn::X": value}`` /
``{"Ref": value}`` mappings, the same shape as a JSON template, so callers can inspect them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[4]
TEMPLATE_PATH = REPO_ROOT / "infra" / "template.yaml"

_TAGS = ("And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "If", "ImportValue", "Join", "Not", "Or",
         "Select", "Split", "Sub", "Transform", "ToJsonString", "Length", "Condition")


class _CfnLoader(yaml.SafeLoader):
    """A safe loader that understands CloudFormation's tags instead of failing on them."""


def _construct(fn_name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if fn_name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {fn_name: value}

    return construct


_CfnLoader.add_constructor("!Ref", _construct("Ref"))
_CfnLoader.add_constructor("!GetAtt", _construct("Fn::GetAtt"))
for _tag in _TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _construct("Condition" if _tag == "Condition" else f"Fn::{_tag}"))


def load_template(path: str | Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506  # nosec B506 - _CfnLoader is a SafeLoader with CFN tags


def resource(template: dict[str, Any], logical_id: str, type_: str | None = None) -> dict[str, Any]:
    try:
        res = template["Resources"][logical_id]
    except KeyError:
        raise KeyError(f"the template has no resource {logical_id}") from None
    if type_ and res.get("Type") != type_:
        raise ValueError(f"{logical_id} is a {res.get('Type')}, not a {type_}")
    return res


def table_create_kwargs(template: dict[str, Any], table_name: str, logical_id: str = "GatewatchTable") -> dict:
    """``dynamodb.create_table`` arguments from the template's table (keys, attributes, GSIs, billing)."""
    props = resource(template, logical_id, "AWS::DynamoDB::Table")["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        kwargs["SSESpecification"] = {"Enabled": True}
    return kwargs


def table_ttl_attribute(template: dict[str, Any], logical_id: str = "GatewatchTable") -> str | None:
    spec = resource(template, logical_id, "AWS::DynamoDB::Table")["Properties"].get("TimeToLiveSpecification")
    return spec["AttributeName"] if spec and spec.get("Enabled") else None


def create_table_from_template(client: Any, template: dict[str, Any], table_name: str) -> str:
    """Create the table as the template defines it (and its TTL); returns the name. For tests and local set-up."""
    client.create_table(**table_create_kwargs(template, table_name))
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ttl = table_ttl_attribute(template)
    if ttl:
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )
    return table_name
