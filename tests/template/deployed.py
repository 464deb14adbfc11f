"""What CloudFormation would deploy: the SAM transform, then conditions resolved.

`transformed(params)` runs the AWS SAM translator (the `samtranslator` package,
the same code as `sam deploy`'s server-side transform) over template.yaml, so
generated resources (roles, managed policies, permissions) are visible.
`Deployment` then evaluates the template's Conditions for a set of parameter
values, drops `!If` branches and `AWS::NoValue`, and renders ARNs as text
(`{Resource}` for a reference to a resource of the stack), so a test can compare
what a statement grants with a plain string.
"""

from __future__ import annotations

import copy
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.template.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "wifi-export",
    "AWS::URLSuffix": "amazonaws.com",
}
_NO_VALUE = object()


def _no_managed_policies() -> dict[str, str]:
    # The translator asks IAM for managed policy ARNs only for SAM policy names.
    raise AssertionError("the template names a SAM managed policy: the role must be explicit")


def transformed(params: dict[str, str]) -> dict[str, Any]:
    """template.yaml through the SAM translator, the way `sam deploy` transforms it."""
    import boto3  # noqa: PLC0415

    # Imported as Any: the package ships no type information.
    parser: Any = importlib.import_module("samtranslator.parser.parser")
    translator_module: Any = importlib.import_module("samtranslator.translator.translator")

    template = load(TEMPLATE)
    # The translator wants S3 locations; `sam build` puts the real ones there.
    resources = template["Resources"]
    resources["ExporterFunction"]["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
    resources["DependenciesLayer"]["Properties"]["ContentUri"] = "s3://artifacts/layer.zip"
    session = boto3.session.Session(region_name=PSEUDO["AWS::Region"])
    translator = translator_module.Translator(None, parser.Parser(), boto_session=session)
    result: dict[str, Any] = translator.translate(
        template, parameter_values=dict(params), get_managed_policy_map=_no_managed_policies
    )
    return result


@dataclass
class Deployment:
    """A transformed template with its conditions evaluated for `overrides`."""

    overrides: dict[str, str] = field(default_factory=dict)
    template: dict[str, Any] = field(init=False)
    params: dict[str, Any] = field(init=False)
    conditions: dict[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        self.template = transformed(self.overrides)
        self.params = {}
        for name, spec in self.template["Parameters"].items():
            raw = str(self.overrides.get(name, spec.get("Default", "")))
            self.params[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
        self.conditions = {}
        for name in self.template.get("Conditions", {}):
            self._condition(name)

    # -- conditions -----------------------------------------------------------

    def _condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self._truth(self.template["Conditions"][name])
        return self.conditions[name]

    def _truth(self, node: Any) -> bool:
        ((key, arg),) = node.items()
        if key == "Fn::Equals":
            return bool(self._value(arg[0]) == self._value(arg[1]))
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::And":
            return all(self._truth(a) for a in arg)
        if key == "Fn::Or":
            return any(self._truth(a) for a in arg)
        if key == "Condition":
            return self._condition(arg)
        raise ValueError(f"condition function {key} not supported")

    def _value(self, node: Any) -> Any:
        if isinstance(node, dict):
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.params[arg] if arg in self.params else PSEUDO[arg]
            if key == "Fn::Select":
                return self._value(arg[1])[int(arg[0])]
            if key == "Fn::Split":
                return str(self._value(arg[1])).split(arg[0])
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self._value(arg[1]))
            raise ValueError(f"value function {key} not supported in a condition")
        if isinstance(node, list):
            return [self._value(v) for v in node]
        return node

    # -- resolution -------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """`node` with !If decided, NoValue dropped and parameter references replaced."""
        out = self._resolve(copy.deepcopy(node))
        return None if out is _NO_VALUE else out

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            values = [self._resolve(v) for v in node]
            return [v for v in values if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::If":
                return self._resolve(arg[1] if self._condition(arg[0]) else arg[2])
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return _NO_VALUE
                if arg in self.params:
                    return self.params[arg]
        items = {k: self._resolve(v) for k, v in node.items()}
        return {k: v for k, v in items.items() if v is not _NO_VALUE}

    def render(self, node: Any) -> Any:
        """An ARN-like value as text: `{Logical}` / `{Logical.Attr}` for resources."""
        node = self.resolve(node)
        return self._render(node)

    def _render(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self._render(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Ref", "Fn::")):
            return {k: self._render(v) for k, v in node.items()}
        ((key, arg),) = node.items()
        return self._render_function(key, arg)

    def _render_function(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return PSEUDO.get(arg, "{" + arg + "}")
        if key == "Fn::GetAtt":
            return "{" + ".".join(arg) + "}"
        if key == "Fn::Join":
            return arg[0].join(str(self._render(v)) for v in arg[1])
        if key == "Fn::Split":
            return str(self._render(arg[1])).split(arg[0])
        if key == "Fn::Sub":
            return self._render_sub(arg)
        raise ValueError(f"cannot render {key}")

    def _render_sub(self, arg: Any) -> str:
        text: str = arg if isinstance(arg, str) else arg[0]
        variables: dict[str, Any] = {} if isinstance(arg, str) else arg[1]

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self._render(variables[name]))
            if name in self.params:
                return str(self.params[name])
            return PSEUDO.get(name, "{" + name + "}")

        return re.sub(r"\$\{([^}]+)\}", one, text)

    # -- the pieces the tests look at ----------------------------------------------

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {
            name: self.resolve(r)
            for name, r in self.template["Resources"].items()
            if r["Type"] == type_ and ("Condition" not in r or self._condition(r["Condition"]))
        }

    def statements_of_role(self, role: str) -> list[dict[str, Any]]:
        """Every statement attached to `role`: inline policies and policy resources."""
        props = self.resolve(self.template["Resources"][role]["Properties"])
        statements = [
            s for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]
        ]
        for kind in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            for policy in self.resources(kind).values():
                p = policy["Properties"]
                roles = p.get("Roles", []) + ([p["RoleName"]] if "RoleName" in p else [])
                if {"Ref": role} in roles:
                    statements += p["PolicyDocument"]["Statement"]
        return statements
