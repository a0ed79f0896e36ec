"""Echo server on Python green threads: an accept loop and one green thread
per connection that reads up to 64 KiB and sends it back.

usage: python3 echo_green.py eventlet|gevent PORT     (binds 127.0.0.1:PORT)
"""
import socket
import sys


def serve(lib, port):
    if lib == "eventlet":
        import eventlet
        listener = eventlet.listen(("127.0.0.1", port), backlog=4096)
        spawn = eventlet.spawn_n
    elif lib == "gevent":
        import gevent
        import gevent.socket
        listener = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(4096)
        spawn = gevent.spawn
    else:
        sys.exit("unknown library %s" % lib)
    # accepted sockets inherit TCP_NODELAY from the listener on Linux
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo(conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = listener.accept()
        spawn(echo, conn)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    serve(sys.argv[1], int(sys.argv[2]))
