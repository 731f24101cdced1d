"""A tenant's settings are validated by pydantic models; this turns their errors into one line per bad
field that names the tenant, the field, the value and the fix (the field's description)."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import ErrorDetails


class TenantSettingError(ValueError):
    pass


def setting_problems(errors: list[ErrorDetails], model: type[BaseModel], tenant_id: str | None, kind: str) -> str:
    """`errors` of validating `model`; `kind` says which settings ("monitoring", "source"); without a tenant id
    each line starts at the field."""
    subject = f"tenant {tenant_id}: " if tenant_id else ""
    problems = []
    for error in errors:
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            known = ", ".join(other for other, info in model.model_fields.items() if not info.exclude)
            problems.append(f"{subject}unknown {kind} setting {name!r} (fix: one of {known})")
            continue
        field = model.model_fields.get(name)
        if field is None:
            problems.append(f"{subject}{kind} settings: {error['msg']}")
            continue
        fix = f" (fix: {field.description})" if field.description else ""
        if error["type"] == "missing" or error["input"] is None:
            problems.append(f"{subject}{kind} setting {name} is required{fix}")
        else:
            problems.append(f"{subject}{kind} setting {name}={error['input']!r}: {error['msg']}{fix}")
    return "; ".join(problems)
