"""The GPU check: the speed figures and the paper's CIFAR-10 claim in one command, within a time budget.

    bash gpu/check.sh --device cuda [--out DIR] [--budget 20m]     # on any CUDA machine
    bash gpu/check.sh --device cpu                                 # the same check at small sizes
    bash gpu/check.sh --bundle DIR                                 # wheels and data for an offline node
    bash gpu/check.sh --device cuda --from-bundle DIR              # on that node

Two steps, each in its own process group under its own time limit, then the summary from the files
they left (a step cut off or failed still reports what it measured); docs/gpu-check.md is the user page.

- options.py:     the command line and the sizes (GPU sizes, or small ones for --device cpu)
- plan.py:        the time plan: each step's limit, and the sweep's epochs from the measured speed
- commands.py:    what each step runs (`gpsbench perf`, `gpsbench sweep sweeps/gpu-check.yaml`)
- steps.py:       a step as a child process: cut off at its limit or when its watcher says so
- runs.py:        what the sweep's run folders hold so far
- projection.py:  the sweep's remaining seconds and the 200-epoch time, from the measured epochs
- watch.py:       the sweep's watcher: refreshes the summary, stops a sweep that cannot finish in time
- summary.py:     summary.json and runs.tar.gz from the files as they are
- report.py:      the summary as text
- check.py:       the check itself: the steps in order within the budget
- environment.py: the machine, the data, the children's environment; log.py: check.log
- closure.py, bundle.py, offline.py: the bundle for a node without internet, and using it there
"""
