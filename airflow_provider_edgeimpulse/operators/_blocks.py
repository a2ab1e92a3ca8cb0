"""Find a learn or DSP block of the project's impulse by id or by name, before any job is started."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_edgeimpulse import validation as _params

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

# impulse key -> (the operator parameters that choose a block, what a block is called in messages)
_KINDS = {
    "learnBlocks": ("learn_block", "learn_block_id", "learn block"),
    "dspBlocks": ("dsp_block", "dsp_block_id", "DSP block"),
}


def _describe(block: dict[str, Any]) -> str:
    label = block.get("name") or block.get("title") or "?"
    return f"{label!r} (id {block.get('id')}, type {block.get('type')!r})"


def resolve_block(hook: EdgeImpulseHook, key: str, name: Any, block_id: Any) -> dict[str, Any]:
    """
    The block of ``impulse[key]`` chosen by ``name`` or ``block_id`` (exactly one of them).

    A name matches the block's ``name`` first and its ``title`` second, so both the name shown in
    Studio's impulse design and the block's title work; an unknown or ambiguous one is an error that
    lists the blocks the impulse has.
    """
    name_param, id_param, what = _KINDS[key]
    wanted_name = _params.optional_str(name_param, name)
    wanted_id = _params.optional_int(id_param, block_id, minimum=0)
    if (wanted_name is None) == (wanted_id is None):
        raise ValueError(
            f"Give exactly one of {name_param} (its name) or {id_param} (its id); got {name!r} and {block_id!r}"
        )
    impulse = hook.get_impulse()
    if impulse is None:
        raise ValueError(f"Edge Impulse project {hook.project_id} has no impulse yet; create one first")
    blocks = [b for b in impulse.get(key) or [] if isinstance(b, dict)]
    known = "; ".join(_describe(b) for b in blocks) or "none"
    if wanted_id is not None:
        match = [b for b in blocks if b.get("id") == wanted_id]
        if not match:
            raise ValueError(f"{id_param}={wanted_id}: the impulse has no {what} with that id. Known: {known}")
        return match[0]
    match = [b for b in blocks if b.get("name") == wanted_name] or [b for b in blocks if b.get("title") == wanted_name]
    if not match:
        names = ", ".join(repr(b.get("name")) for b in blocks if b.get("name")) or "none"
        raise ValueError(f"{name_param}={wanted_name!r}: the impulse has no {what} of that name. Known names: {names}")
    if len(match) > 1:
        raise ValueError(f"{name_param}={wanted_name!r} names {len(match)} {what}s ({known}); use {id_param}")
    return match[0]
