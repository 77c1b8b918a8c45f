"""DPU backends behind one interface: the embedded simulator and the Vitis-AI flows.

``make_backend(cfg, dpu)`` builds the backend a ``backend`` config names by ``_target_``.
"""

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome, make_backend
from ofa_hw.backends.sim import SimBackend

__all__ = ["Backend", "ProfileJob", "ProfileOutcome", "SimBackend", "make_backend"]
