"""The base of every error that means "the user's input is wrong" (not a bug of ours).

The CLI prints such errors in one line and exits with status 2 instead of a traceback. Stage modules
derive their own error types from it (e.g. a stale LUT, an infeasible budget, a malformed profile).
Where a config value is turned into an object, :func:`config_field` turns the constructor's
``ValueError``/``KeyError`` into a :class:`UserError` naming the field, so library code can keep raising
plain exceptions while the CLI still reports the cause in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """Bad input: a config value, a file, an arch or a budget that cannot work. Says what and where."""


class FailedWorkError(UserError):
    """The task ran but its requested result is missing (e.g. the deployed network failed to compile).

    Exits non-zero like any :class:`UserError`, so scripts and sweeps see the failure.
    """


@contextmanager
def config_field(field: str) -> Iterator[None]:
    """Re-raise ``ValueError``/``KeyError`` raised while reading ``field`` as a :class:`UserError`.

    Example:
        ``with config_field("dpu"): dpu = DPUConfig.from_dict(...)`` turns
        ``DPUConfig.freq_mhz: must be > 0`` into ``dpu: DPUConfig.freq_mhz: must be > 0``.
    """
    try:
        yield
    except UserError:
        raise
    except (ValueError, KeyError) as exc:  # not TypeError: that is a bug of ours, keep its traceback
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise UserError(f"{field}: {text}") from exc


class MissingExtraError(UserError, ImportError):
    """An optional feature whose packages (a setup.cfg extra) are not installed; says how to add them."""


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming ``pip install 'ofa_hw[<extra>]'`` unless ``module`` imports.

    Args:
        module: The module the feature imports (e.g. ``onnxruntime``).
        extra: The setup.cfg extra that installs it (e.g. ``onnx``).
        feature: What the user asked for, for the message (e.g. "reading ONNX networks").
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{feature} needs the '{module}' package, an optional dependency: pip install 'ofa_hw[{extra}]'"
        )
