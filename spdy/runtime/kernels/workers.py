"""One task loop per worker thread, so that what a task needs as scratch is allocated once per worker.

A TIR buffer of 1 KB or more allocated inside a parallel loop's body is not a stack slot: the
lowering turns it into a TVMBackendAllocWorkspace/FreeWorkspace pair per iteration, whose pool
search grows with what is allocated. In the AMX int8 kernels five such buffers per task (the
accumulator dumps, the stage tile) cost more than the tiles' multiply-adds on MiniLM's layers
(a 384x384 layer at 64 rows: 0.0119 -> 0.0084 ms alone, the whole int8 model 1.48 -> 1.16 ms).
Kernels that need such scratch open `worker_loop` instead of `T.parallel(tasks)`, allocate
between its two lines, and index their task by `t` as before: each worker runs a contiguous
share of the tasks, as TVM's parallel loop would have handed them out.
"""
from __future__ import annotations


def worker_loop(tasks: int, threads: int, ind: str = "    ") -> tuple[str, str]:
    """(parallel loop over min(threads, tasks) workers `th` at ind, loop over that worker's
    tasks `t` at ind + 4); the task body goes at ind + 8."""
    workers = max(1, min(int(threads), int(tasks)))
    chunk = -(-int(tasks) // workers)
    return (f"{ind}for th in T.parallel({workers}):",
            f"{ind}    for t in range(th * {chunk}, T.min(th * {chunk} + {chunk}, {tasks})):")
