"""A job keeps torch and faiss to the threads it was given (sweep runs and tuning workers share one helper)."""

import faiss
import torch

from benchmark.sweep.job import use_threads


def test_use_threads_sets_torch_and_faiss_and_none_leaves_them():
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    try:
        use_threads(1)
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (1, 1)
        use_threads(None)
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (1, 1)
        use_threads(2)
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (2, 2)
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
