"""Operating modes and emergency response levels (应急响应级别), and who may switch them (platform floor).

The modes component keeps each area's mode; plans propose and confirm level changes; both speak this
vocabulary. Levels run lowest first: IV 一般, III 较大, II 重大, I 特别重大.
"""

from __future__ import annotations

from typing import Any

from citybrain.context import Context
from citybrain.errors import Forbidden, ValidationError

MODES: tuple[str, ...] = ("normal", "watch", "emergency", "recovery")
LEVELS: tuple[str, ...] = ("IV", "III", "II", "I")  # lowest first: IV 一般, III 较大, II 重大, I 特别重大
LEVEL_ALIASES: dict[str, str] = {"4": "IV", "3": "III", "2": "II", "1": "I", "Ⅳ": "IV", "Ⅲ": "III", "Ⅱ": "II",
                                 "Ⅰ": "I", "iv": "IV", "iii": "III", "ii": "II", "i": "I"}
ROLES: tuple[str, ...] = ("command_centre", "city_operator", "admin", "system")


def normal_level(level: Any) -> str | None:
    """Return a level as IV/III/II/I (accepting 1–4 and Roman numerals); None when absent."""
    if level is None or level == "":
        return None
    text = str(level).strip()
    text = LEVEL_ALIASES.get(text, LEVEL_ALIASES.get(text.lower(), text.upper()))
    if text not in LEVELS:
        raise ValidationError(f"level: {level!r} is not one of IV, III, II, I", field="level")
    return text


def require_role(ctx: Context, command: str, roles: tuple[str, ...] = ROLES) -> str:
    """Raise Forbidden unless the actor's role (the part before the first colon) may run the command."""
    role = ctx.actor.split(":", 1)[0]
    if role not in roles:
        raise Forbidden(f"{command} needs role {', '.join(r for r in roles if r != 'system')}; "
                        f"{ctx.actor!r} is {role!r}", field="actor")
    return role
