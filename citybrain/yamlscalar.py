"""Scalars of YAML files read node by node (rules and plans keep each field's line for their errors)."""

from __future__ import annotations

from typing import Any

import yaml

_SCALARS = yaml.SafeLoader("")


def construct(node: yaml.Node) -> Any:
    """Return the Python value of a scalar node (safe tags only).

    Every failure is a yaml.YAMLError with the node's position: an unknown tag (`!!value`) and a mistyped
    one (`!!int abc`, which PyYAML lets escape as ValueError) alike."""
    try:
        return _SCALARS.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot read {node.tag} value {node.value!r}: {exc}", node.start_mark) from None
