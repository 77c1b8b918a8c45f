"""Hardware-aware evolutionary search over OFA subnets under a DPU latency budget."""

from ofa_hw.search.evolution import Candidate, Evaluated, EvolutionFinder, EvolutionParams, SearchResult
from ofa_hw.search.floor import Floor, table_floor
from ofa_hw.search.genes import GeneOps
from ofa_hw.search.latency import InfeasibleBudgetError, LatencyConstraint, TableLatency, block_table_of

__all__ = [
    "Candidate",
    "EvolutionFinder",
    "EvolutionParams",
    "Evaluated",
    "Floor",
    "GeneOps",
    "InfeasibleBudgetError",
    "LatencyConstraint",
    "SearchResult",
    "TableLatency",
    "block_table_of",
    "table_floor",
]
