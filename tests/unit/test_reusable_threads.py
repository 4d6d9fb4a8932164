"""rpyc.lib.reusable_threads: one job per thread at a time, threads kept waiting for the next."""

import threading
import time

import pytest

from rpyc.lib.reusable_threads import ReusableThreads


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class _Recorder:
    """Jobs that note which thread ran them and signal when done."""

    def __init__(self):
        self.threads = []
        self.done = threading.Semaphore(0)

    def job(self, value=None):
        self.threads.append((threading.current_thread(), value))
        self.done.release()

    def wait(self, count=1):
        for _ in range(count):
            assert self.done.acquire(timeout=5), "a job did not run"


class _Blocker:
    """Jobs that note their thread, then block until released (at teardown at the latest)."""

    def __init__(self):
        self.started = []
        self.release = threading.Event()

    def job(self, *_):
        self.started.append(threading.current_thread())
        self.release.wait(5)


@pytest.fixture
def make_pool():
    """``make_pool(max_idle, idle_timeout)``: a ReusableThreads stopped at teardown."""
    pools = []

    def make(max_idle=4, idle_timeout=5):
        pools.append(ReusableThreads(max_idle=max_idle, idle_timeout=idle_timeout))
        return pools[-1]

    yield make
    for pool in pools:
        pool.stop()


@pytest.fixture
def blocker():
    b = _Blocker()
    yield b
    b.release.set()


def test_a_job_runs_in_another_thread_with_its_arguments(make_pool):
    pool = make_pool()
    rec = _Recorder()
    pool.run(rec.job, 42)
    rec.wait()
    thread, value = rec.threads[0]
    assert value == 42
    assert thread is not threading.current_thread()
    assert thread.daemon


def test_a_waiting_thread_takes_the_next_job(make_pool):
    pool = make_pool()
    rec = _Recorder()
    pool.run(rec.job, 1)
    rec.wait()
    assert _wait_for(lambda: pool.idle_count() == 1)
    pool.run(rec.job, 2)
    rec.wait()
    assert rec.threads[0][0] is rec.threads[1][0]
    assert [v for _, v in rec.threads] == [1, 2]


def test_busy_threads_are_not_shared(make_pool, blocker):
    pool = make_pool()
    for k in range(3):
        pool.run(blocker.job, k)
    assert _wait_for(lambda: len(blocker.started) == 3)
    assert len(set(blocker.started)) == 3  # the three run at once, each in its own thread


def _assert_thread_of_one_job_exits(pool, rec):
    """Run one job; its thread must exit without waiting for another. Returns the thread."""
    pool.run(rec.job)
    rec.wait()
    thread = rec.threads[-1][0]
    assert _wait_for(lambda: not thread.is_alive())
    assert pool.idle_count() == 0
    return thread


def test_max_idle_zero_gives_every_job_a_new_thread(make_pool):
    pool = make_pool(max_idle=0)
    rec = _Recorder()
    first = _assert_thread_of_one_job_exits(pool, rec)
    pool.run(rec.job)
    rec.wait()
    assert rec.threads[1][0] is not first


def test_at_most_max_idle_threads_wait(make_pool, blocker):
    pool = make_pool(max_idle=2)
    for _ in range(4):
        pool.run(blocker.job)
    assert _wait_for(lambda: len(blocker.started) == 4)
    blocker.release.set()
    assert _wait_for(lambda: sum(t.is_alive() for t in blocker.started) == 2)
    assert pool.idle_count() == 2


def test_an_idle_thread_exits_after_the_timeout(make_pool):
    _assert_thread_of_one_job_exits(make_pool(idle_timeout=0.1), _Recorder())


def test_stop_ends_the_waiting_threads_and_later_jobs_still_run(make_pool):
    pool = make_pool(idle_timeout=30)
    rec = _Recorder()
    pool.run(rec.job)
    rec.wait()
    assert _wait_for(lambda: pool.idle_count() == 1)
    thread = rec.threads[0][0]
    pool.stop()
    assert _wait_for(lambda: not thread.is_alive())
    pool.run(rec.job)  # after stop: a thread of its own that does not wait afterwards
    rec.wait()
    later = rec.threads[1][0]
    assert later is not thread
    assert _wait_for(lambda: not later.is_alive())


def test_a_job_that_raises_ends_its_thread(monkeypatch, make_pool):
    pool = make_pool(idle_timeout=30)
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    ran_in = []

    def failing():
        ran_in.append(threading.current_thread())
        raise RuntimeError("job failed")

    pool.run(failing)
    assert _wait_for(lambda: ran_in and not ran_in[0].is_alive())
    assert seen == [RuntimeError]
    assert pool.idle_count() == 0


@pytest.mark.parametrize("idle_timeout", [0.0005, 0.002])
def test_every_job_runs_once_while_threads_time_out(make_pool, idle_timeout):
    # Jobs handed over just as a waiting thread gives up must still run, exactly once.
    pool = make_pool(max_idle=3, idle_timeout=idle_timeout)
    lock = threading.Lock()
    counts = {}
    done = threading.Semaphore(0)

    def job(k):
        with lock:
            counts[k] = counts.get(k, 0) + 1
        done.release()

    for k in range(400):
        pool.run(job, k)
        if k % 7 == 0:
            time.sleep(idle_timeout)
    for _ in range(400):
        assert done.acquire(timeout=10), f"jobs lost: {400 - len(counts)}"
    assert counts == {k: 1 for k in range(400)}
