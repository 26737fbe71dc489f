"""Reading what runs and checkpoints show.

* :mod:`~laperm.analysis.profiles`: weight profiles, and whether weights are a permutation;
* :mod:`~laperm.analysis.locations`: how far weights move, and which;
* :mod:`~laperm.analysis.profile_scores`: Section 2's profile scores beside θ0 and a null;
* :mod:`~laperm.analysis.authors_code`: what the cross-check with the authors' code shows;
* :mod:`~laperm.analysis.records`: the committed run records as tables;
* :mod:`~laperm.analysis.verdict`: the paper's table against the records, with statistics;
* :mod:`~laperm.analysis.speed`: throughput and cost records;
* :mod:`~laperm.analysis.weights`: a run's trained weights against θ0 (Sections 5.1, 5.4, 5.5);
* :mod:`~laperm.analysis.sawtooth`: what a sync does to the accuracy, step by step (5.3).
"""

from laperm._lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, ("authors_code", "locations", "profile_scores",
                                           "profiles", "records", "sawtooth", "speed", "verdict",
                                           "weights"))
