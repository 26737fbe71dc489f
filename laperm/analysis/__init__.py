"""Reading what runs and checkpoints show.

* :mod:`~laperm.analysis.profiles`: weight profiles, and whether weights are a permutation;
* :mod:`~laperm.analysis.locations`: how far weights move, and which;
* :mod:`~laperm.analysis.records`: the committed run records as tables;
* :mod:`~laperm.analysis.verdict`: the paper's table against the records, with statistics;
* :mod:`~laperm.analysis.speed`: throughput and cost records.
"""

from laperm._lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, ("locations", "profiles", "records", "speed", "verdict"))
