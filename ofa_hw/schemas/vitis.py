"""Schema of the Vitis-AI backends' settings (``backend.vitis``): toolchain, container, boards.

Secrets never live in a config: a key passphrase is read from the environment variable the board
names (``passphrase_env``), so configs, Hydra's saved ``.hydra/config.yaml`` and logs stay clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class BoardConfig:
    """One board reachable over SSH (key authentication only).

    Attributes:
        name: Label in logs and outcomes (``zcu102-a``).
        host: Host name or address.
        port: SSH port.
        user: Login user (``root`` on the Vitis-AI board images; ``vaitrace`` needs root).
        key_file: Private key file (``~`` expanded); ``None`` uses the SSH agent / default keys.
        passphrase_env: Name of the environment variable holding the key's passphrase, if any.
        known_hosts: known_hosts file the board's host key is verified against.
        insecure_no_host_key_check: Skip host-key verification (explicit opt-out; logged as a warning).
        remote_tmp: Directory on the board under which each job gets its own ``mktemp -d`` folder.
        cxx: C++ compiler on the board: turns a VAI_C ELF into ``libdpumodel<name>.so`` and builds the
            shipped N2Cube profiler (N2Cube's API is C++).
        python: Python interpreter on the board (VART runner).
        env: Extra environment variables for the board-side commands (names and values are quoted).
    """

    name: str = MISSING
    host: str = MISSING
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    passphrase_env: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    insecure_no_host_key_check: bool = False
    remote_tmp: str = "/tmp"
    cxx: str = "g++"
    python: str = "python3"
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class VitisConfig:
    """The Vitis-AI flow: export, quantize, compile on the host/container, profile on boards.

    Attributes:
        flow: ``dnndk`` (Caffe → vai_q_caffe → vai_c_caffe → ELF → N2Cube) or ``vart``
            (PyTorch → vai_q_pytorch → vai_c_xir → xmodel → VART under vaitrace).
        toolchain: Version label recorded with every measurement (part of its identity in the store), as
            ``vitis-ai-<major>.<minor>/…``: the version picks vaitrace's command line (VART) and is checked
            against the flow up front (DNNDK: 1.0–1.2; VART: >= 1.4, 1.3's vaitrace has no ``--txt``).
        container: Name of a running Vitis-AI container to ``docker exec`` the tools in; empty = host.
        docker: The docker client executable.
        conda: conda executable inside the container/host; with ``conda_env`` set, tools run under
            ``conda run -n <conda_env>`` (no shell involved). The Vitis-AI images put conda on PATH only
            in ``~/.bashrc``/login scripts, which ``docker exec`` does not read: hence the absolute
            ``/opt/vitis_ai/conda/bin/conda`` by default.
        conda_env: Conda environment of the tools (``vitis-ai-caffe`` / ``vitis-ai-pytorch``); empty = none.
        exec_user: ``docker exec -u`` value: ``auto`` = this host user's ``UID:GID`` (the folders the
            tools create in the mounted workdir then belong to the host user, who writes into them
            afterwards); ``""`` = the container's default user (root in the Vitis-AI images); or an
            explicit ``UID:GID``.
        workdir: Host directory for exports, logs and compiled files; must be mounted at the same path
            in the container. Relative paths are resolved against the workspace.
        arch_json: The DPU's arch file as the container sees it; empty = the path the configured
            toolchain version ships (Vitis-AI 1.0: ``.../dpuv2/{board}/{board}.json``; 1.1 on, also
            for ``vai_c_caffe``: ``.../DPUCZDX8G/{board}/arch.json``); ``{board}`` is the preset's board
            for the board's stock DPU size, else ``<BOARD>_<ARCH>`` (a file the user provides).
        calib_dir: Directory of calibration images (ImageNet samples); empty = synthetic images.
        calib_list: Image list file relative to ``calib_dir`` (``name.jpg label`` lines).
        calib_images: Number of synthetic calibration images when ``calib_dir`` is empty. Latency
            does not depend on the weights' values, so synthetic calibration suffices for profiling.
        calib_iter: ``vai_q_caffe --calib_iter`` / number of calibration batches for vai_q_pytorch.
        bn: ``scale`` (BatchNorm + Scale layers, as the seed) or ``fold`` (into the conv).
        quantize_args: Extra arguments for the quantizer (e.g. ``[--gpu, "0"]``).
        compile_jobs: Export/quantize/compile jobs run in parallel on the host (any value is safe:
            torch.fx tracing is serialised).
        quantize_timeout_s: Time limit of one quantizer call.
        compile_timeout_s: Time limit of one compiler call.
        boards: The board farm (profiling jobs run one per board at a time).
        connect_timeout_s: SSH connection timeout.
        step_timeout_s: Time limit of each board step (upload, build, run, fetch).
        retries: Extra connection attempts after a connection error (with exponential backoff).
        backoff_s: First backoff delay; doubles per attempt.
        warmup: Runs before the measured ones, excluded from the profile.
        lock_timeout_s: How long a job waits for its board's lock before failing.
        lock_dir: Directory of the per-board lock files (shared by every run on this host).
        lock_store: The run's store config (``${store}`` in the shipped backend configs). A store shared
            by hosts (``store=postgres``) locks each board with an advisory lock in its database, so jobs
            on different hosts never drive one board; otherwise (SQLite, ``null``) the flock in ``lock_dir``.
        n2cube_libs: Linker flags of the board-side C++ profiler.
        fine_grained: VART: also compile each network in debug mode and trace it with vaitrace's
            ``--fine_grained`` (per-layer rows, Vitis-AI 1.4–3.0 only; set by ``lut.granularity=node``).
        vaitrace: The vaitrace executable on the board (VART flow, Vitis-AI 1.4–1.x; from 2.0 Python apps
            are traced with ``python3 -m vaitrace_py``).
    """

    flow: str = "dnndk"
    toolchain: str = "vitis-ai-1.0/dnndk-3.1"
    container: str = "vitis"
    docker: str = "docker"
    conda: str = "/opt/vitis_ai/conda/bin/conda"
    conda_env: str = "vitis-ai-caffe"
    exec_user: str = "auto"
    workdir: str = "vitis"
    arch_json: str = ""
    calib_dir: str = ""
    calib_list: str = "calibration.txt"
    calib_images: int = 8
    calib_iter: int = 8
    bn: str = "scale"
    quantize_args: list[str] = field(default_factory=list)
    compile_jobs: int = 2
    quantize_timeout_s: float = 3600.0
    compile_timeout_s: float = 1800.0
    boards: list[BoardConfig] = field(default_factory=list)
    connect_timeout_s: float = 15.0
    step_timeout_s: float = 300.0
    retries: int = 3
    backoff_s: float = 2.0
    warmup: int = 2
    lock_timeout_s: float = 3600.0
    lock_dir: str = "~/.cache/ofa_hw/locks"
    lock_store: dict | None = None
    n2cube_libs: list[str] = field(default_factory=lambda: ["-ln2cube", "-lpthread"])
    vaitrace: str = "vaitrace"
    fine_grained: bool = False
