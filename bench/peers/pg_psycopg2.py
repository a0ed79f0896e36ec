# bench/pg's peer: N `SELECT %s::int` from T OS threads through psycopg2's
# ThreadedConnectionPool of P (psycopg2 interpolates the parameter client-side).
# usage: python3 pg_psycopg2.py CONNINFO [N=10000] [T=4] [P=4]
import sys, threading, time
from psycopg2.pool import ThreadedConnectionPool

conninfo = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
size = int(sys.argv[4]) if len(sys.argv) > 4 else 4
pool = ThreadedConnectionPool(size, size, conninfo)
for c in [pool.getconn() for _ in range(size)]:
    c.autocommit = True
    pool.putconn(c)
lock = threading.Lock()
counter = [0]

def worker():
    while True:
        with lock:
            if counter[0] >= n:
                return
            counter[0] += 1
            i = counter[0]
        c = pool.getconn()
        try:
            with c.cursor() as cur:
                cur.execute("select %s::int as v", (i,))
                assert cur.fetchone()[0] == i
        finally:
            pool.putconn(c)

t0 = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
dt = time.monotonic() - t0
print("psycopg2: %d queries, %d threads, pool %d: %.3f s, %.0f queries/s" % (n, threads, size, dt, n / dt))
pool.closeall()
