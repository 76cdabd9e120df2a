"""Whose code may run: trust comes from the operator of a process, never from a pipeline file.

A pipeline may name code: `model.id: mypkg.nets:Net`, `data.decoder: mypkg.decode:parse`, a
`module:function` transformation. The file is stored and read by every trainer and evaluator, so it
cannot vouch for itself: such a reference is imported only where the operator of that process trusts
it, with `--trust-code` (any module) or the system config's `trusted_modules` (these modules and
their submodules; also `MODYN_TRUSTED_MODULES`, comma separated).

>>> CodeTrust(modules=("mypkg",)).allows("mypkg.nets"), CodeTrust(modules=("mypkg",)).allows("os")
(True, False)
>>> NOBODY.allows("mypkg")
False
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from modyn_stream.exceptions import ModynStreamError

HOW_TO_TRUST = "the operator allows it with --trust-code or trusted_modules in the system config"


class UntrustedCodeError(ModynStreamError):
    """A pipeline names code that the operator of this process does not trust (or that cannot be imported)."""


@dataclass(frozen=True)
class CodeTrust:
    everything: bool = False  # --trust-code
    modules: tuple[str, ...] = ()  # trusted_modules

    def allows(self, module: str) -> bool:
        return self.everything or any(module == m or module.startswith(f"{m}.") for m in self.modules)

    def refusal(self, reference: str, what: str) -> str | None:
        """Why `reference` (module:attribute) may not be imported here, or None if it may."""
        module = reference.partition(":")[0]
        if self.allows(module):
            return None
        return f"{what} {reference!r} imports code from module {module!r}, which this process does not trust: " + (
            HOW_TO_TRUST
        )

    def load(self, reference: str, what: str) -> Callable:
        """The object `module:attribute` names, imported only if trusted."""
        refusal = self.refusal(reference, what)
        if refusal:
            raise UntrustedCodeError(refusal)
        module, _, attribute = reference.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise UntrustedCodeError(f"{what} {reference!r}: cannot import: {exc}") from None


NOBODY = CodeTrust()
