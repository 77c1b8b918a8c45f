"""Fake ``vart`` for the loopback board: a runner that counts executions and takes the subgraph's time.

An execution lasts the DPU time the fake compiler's model gave the subgraph plus the software overhead
vaitrace shows on a real board (SW_RT - HW_RT, 0.055-0.07 ms on the Ultra96 blocks), so the runner's
own timing measures the network it runs.
"""

import time

SOFTWARE_S = 0.06e-3


class _Tensor:
    def __init__(self, dims):
        self.dims = dims


class Runner:
    def __init__(self, subgraph):
        self.subgraph, self.jobs = subgraph, 0

    @staticmethod
    def create_runner(subgraph, mode):
        if mode != "run" or subgraph.get_attr("device") != "DPU":
            raise RuntimeError("cannot create a runner for %s" % subgraph.name)
        return Runner(subgraph)

    def get_input_tensors(self):
        return [_Tensor((1, 8, 8, 3))]

    def get_output_tensors(self):
        return [_Tensor((1, 10))]

    def execute_async(self, inputs, outputs):
        self.jobs += 1
        end = time.perf_counter() + self.subgraph.hw_ms * 1e-3 + SOFTWARE_S
        while time.perf_counter() < end:  # sleep() overshoots by more than a small net's time
            pass
        return (self.jobs, 0)

    def wait(self, job):
        return 0
