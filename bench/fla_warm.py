"""fla's Triton autotuning, split across warm-up processes: with LINA_FLA_WARM=I/N set, every
autotuner fla has created so far keeps only its configs I, I+N, ... (at least one), so N processes
run side by side each time a slice and fill the shared Triton cache; the timed process then finds
every config cached. Import after fla's ops, call slice_autotuners(); it returns the I/N string
(None when LINA_FLA_WARM is unset: a timed run)."""
import gc
import os

import triton


def slice_autotuners():
    warm = os.environ.get("LINA_FLA_WARM")
    if not warm:
        return None
    part, parts = (int(x) for x in warm.split("/"))
    for tuner in [o for o in gc.get_objects() if isinstance(o, triton.runtime.autotuner.Autotuner)]:
        configs = list(tuner.configs)
        tuner.configs = configs[part::parts] or configs[part % len(configs):][:1]
    return warm
