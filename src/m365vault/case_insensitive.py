"""String enums matched without regard to case, for vocabularies of every layer (v3 input names
and values arrive in any case)."""

from __future__ import annotations

from enum import StrEnum


class CaseInsensitiveEnum(StrEnum):
    """A string enum whose lookup ignores case: "vex", "VEX" and "Vex" all mean Vex."""

    @classmethod
    def _missing_(cls, value: object) -> CaseInsensitiveEnum | None:
        if isinstance(value, str):
            folded = value.casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
            aliases: dict[str, str] = getattr(cls, "_aliases", {})
            if folded in aliases:
                return cls(aliases[folded])
        return None

    def __str__(self) -> str:
        return str(self.value)
