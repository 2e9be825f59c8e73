"""Child process of the n-scaling benchmark: peak memory of one predict in a fresh process.

    python -m benchmarks.memprobe MODEL.pkl N MODE SEED

Prints JSON: predict seconds, peak RSS growth during predict (VmHWM, reset before predict, minus RSS
before) and the tracemalloc peak of Python/numpy allocations during predict.
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
import time
import tracemalloc

import torch


def main():
    path, n, mode, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(1)
    from benchmarks.cost import _tabular
    from dymo_sklearn.datasets import apply_missing

    with open(path, "rb") as handle:
        model = pickle.load(handle)
    X, _ = _tabular(n, 3, 10, seed + 1)
    test = apply_missing(X, 2 / 3, random_state=seed)
    model.set_params(selection=mode)
    model.predict({k: v[:64] for k, v in test.items()})  # warm-up: lazy allocations, not n-dependent
    with open("/proc/self/statm") as handle:
        before = int(handle.read().split()[1]) * resource.getpagesize()
    try:  # reset the kernel's high-water mark (VmHWM) so it covers predict only
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    tracemalloc.start()
    start = time.perf_counter()
    model.predict(test)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    print(json.dumps(dict(predict_s=seconds, peak_rss_delta_mb=max(0, peak - before) / 2**20,
                          tracemalloc_peak_mb=traced_peak / 2**20,
                          input_mb=sum(a.nbytes for a in test.values()) / 2**20)))


if __name__ == "__main__":
    main()
