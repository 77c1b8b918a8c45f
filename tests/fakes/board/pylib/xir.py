"""Fake ``xir`` for the loopback board: deserializes the fake compiler's JSON xmodel (its DPU subgraphs
and the hardware time the compiler's DPU model gave each, which the fake ``vart`` runner takes)."""

import json


class Subgraph:
    def __init__(self, name, device, children=()):
        self.name, self._attrs, self._children = name, {"device": device}, list(children)

    def has_attr(self, key):
        return key in self._attrs

    def get_attr(self, key):
        return self._attrs[key]

    def toposort_child_subgraph(self):
        return list(self._children)


class Graph:
    def __init__(self, data):
        self.data = data
        children = [Subgraph("input", "USER")]
        for row in data["subgraphs"]:
            sub = Subgraph(row["name"], "DPU")
            sub.hw_ms = row["hw_ms"]
            children.append(sub)
        children.append(Subgraph("output", "CPU"))
        self._root = Subgraph("root", "USER", children)

    @staticmethod
    def deserialize(path):
        with open(path) as f:
            data = json.load(f)
        if data.get("format") != "fake-compiled-xmodel":
            raise RuntimeError("[XIR] %s is not a compiled xmodel" % path)
        return Graph(data)

    def get_root_subgraph(self):
        return self._root
