"""Micro benchmarks on Python green threads: the same four phases as
bench/gl/micro.lua, on eventlet or gevent.

usage: python3 micro_green.py eventlet|gevent [N_SPAWN] [N_SWITCH] [N_MEM] [PHASE]
prints `key value` lines (see bench/README.md).  Times are process CPU time.
PHASE and the GC treatment as in bench/gl/micro.lua: gc.collect() before a
timed phase (not timed), the work and a gc.collect() after it (timed).
"""
import gc
import sys
import time


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def runtime(name):
    """spawn(fn, *a) -> handle, join(handle), Queue(n), sleep0(), Event()
    with send(v)/wait(), for the chosen library."""
    if name == "eventlet":
        import eventlet
        import eventlet.event
        import eventlet.queue

        class Event:
            def __init__(self):
                self._e = eventlet.event.Event()

            def send(self, v):
                self._e.send(v)

            def wait(self):
                return self._e.wait()

        return (eventlet.spawn, lambda th: th.wait(), eventlet.queue.Queue,
                lambda: eventlet.sleep(0), Event)
    if name == "gevent":
        import gevent
        import gevent.event
        import gevent.queue

        class Event:
            def __init__(self):
                self._r = gevent.event.AsyncResult()

            def send(self, v):
                self._r.set(v)

            def wait(self):
                return self._r.get()

        return (gevent.spawn, lambda th: th.get(), gevent.queue.Queue,
                lambda: gevent.sleep(0), Event)
    sys.exit("unknown library %s" % name)


def timed(work):
    """CPU seconds of work() plus the collection of what it left behind."""
    gc.collect()
    t0 = time.process_time()
    work()
    gc.collect()
    return time.process_time() - t0


def main():
    lib = sys.argv[1] if len(sys.argv) > 1 else "eventlet"
    n_spawn = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    n_switch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000000
    n_mem = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
    phase = sys.argv[5] if len(sys.argv) > 5 else "all"
    spawn, join, Queue, sleep0, Event = runtime(lib)
    every = phase == "all"

    if every or phase == "memory":
        # bytes per blocked green thread (first, before other phases grow the heap)
        ev = Event()
        started = [0]

        def blocked():
            started[0] += 1
            ev.wait()

        gc.collect()
        before = rss_bytes()
        threads = [spawn(blocked) for _ in range(n_mem)]
        while started[0] < n_mem:
            sleep0()
        gc.collect()
        after = rss_bytes()
        ev.send(True)
        for th in threads:
            join(th)
        del threads
        print("bytes_per_blocked %.0f" % ((after - before) / n_mem))

    if every or phase == "spawn":
        # spawn + wait of trivial threads
        def trivial():
            pass

        def spawn_wait():
            threads = [spawn(trivial) for _ in range(n_spawn)]
            for th in threads:
                join(th)

        print("spawn_wait_s %.4f" % timed(spawn_wait))

    if every or phase == "handoff":
        # hand-offs between two threads through two queues of size 1
        ping, pong = Queue(1), Queue(1)
        rounds = n_switch // 2

        def pinger():
            for i in range(rounds):
                ping.put(i)
                pong.get()

        def ponger():
            for _ in range(rounds):
                pong.put(ping.get())

        def handoff():
            a, b = spawn(pinger), spawn(ponger)
            join(a)
            join(b)

        print("handoffs_per_s %.0f" % (n_switch / timed(handoff)))

    if every or phase == "yield":
        # sleep(0) yields, split over two threads
        def yielder(k):
            for _ in range(k):
                sleep0()

        def yields():
            a, b = spawn(yielder, n_switch // 2), spawn(yielder, n_switch - n_switch // 2)
            join(a)
            join(b)

        print("yields_per_s %.0f" % (n_switch / timed(yields)))
    print("n_spawn %d\nn_switch %d\nn_mem %d" % (n_spawn, n_switch, n_mem))


if __name__ == "__main__":
    main()
