"""Load CloudFormation YAML: the short-form tags (!Ref, !Sub, ...) become the long form.

PyYAML rejects unknown tags, and cfn-lint's loader returns its own node classes;
the tests want plain dicts, so `!Ref X` loads as {"Ref": "X"} and `!Sub s` as
{"Fn::Sub": "s"}, exactly what CloudFormation itself sees.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# Imported as Any: the dev set has no PyYAML stubs, and this works with or without them.
yaml: Any = importlib.import_module("yaml")

# Tag -> long-form key. !Ref and !Condition are not "Fn::" functions.
_FUNCTIONS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Length",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "ToJsonString",
            "Transform",
        )
    },
}


# SafeLoader plus the CloudFormation intrinsic-function tags.
CfnLoader: Any = type("CfnLoader", (yaml.SafeLoader,), {})


def _construct(loader: Any, tag_suffix: str, node: Any) -> dict[str, Any]:
    key = _FUNCTIONS.get(tag_suffix)
    if key is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        # `!GetAtt Res.Attr` is the short form of ["Res", "Attr"].
        if key == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct)


def load(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=CfnLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CloudFormation template")
    return data
