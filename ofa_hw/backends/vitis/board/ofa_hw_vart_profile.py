"""ofa_hw board-side runner for VART (Vitis-AI >= 1.3), run under ``vaitrace --txt --fine_grained``.

    python3 ofa_hw_vart_profile.py NET.xmodel RUNS WARMUP

Runs the xmodel's single DPU subgraph WARMUP + RUNS times and prints ``#ofa_hw e2e_us <i> <us>`` for
the RUNS measured ones, then ``#ofa_hw done``. vaitrace prints its per-subgraph DPU summary after the
program exits. Shipped with ofa_hw; only the board's own ``xir``/``vart`` modules are imported.
"""

import sys
import time

import numpy as np
import vart
import xir


def main(argv):
    if len(argv) != 4 or not argv[2].isdigit() or not argv[3].isdigit() or int(argv[2]) < 1:
        sys.stderr.write("usage: %s NET.xmodel RUNS(>=1) WARMUP(>=0)\n" % argv[0])
        return 2
    runs, warmup = int(argv[2]), int(argv[3])
    graph = xir.Graph.deserialize(argv[1])
    subgraphs = [
        s
        for s in graph.get_root_subgraph().toposort_child_subgraph()
        if s.has_attr("device") and s.get_attr("device").upper() == "DPU"
    ]
    if len(subgraphs) != 1:
        sys.stderr.write("ofa_hw: expected one DPU subgraph, found %d\n" % len(subgraphs))
        return 3
    runner = vart.Runner.create_runner(subgraphs[0], "run")
    inputs = [np.zeros(tuple(t.dims), dtype=np.int8) for t in runner.get_input_tensors()]
    outputs = [np.zeros(tuple(t.dims), dtype=np.int8) for t in runner.get_output_tensors()]
    for i in range(warmup + runs):
        start = time.monotonic()
        job = runner.execute_async(inputs, outputs)
        runner.wait(job)
        if i >= warmup:
            print("#ofa_hw e2e_us %d %.1f" % (i - warmup, (time.monotonic() - start) * 1e6))
    print("#ofa_hw done")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
