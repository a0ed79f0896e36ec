"""HTTP/1.1 keep-alive server for bench/run's http suite on eventlet.wsgi or
gevent.pywsgi, request logging off: GET / gets 200, Content-Type text/plain,
body "Hello, World!\\n"; GET /json gets 200, Content-Type application/json,
the document of http_body.json and the request's X-Request-Id echoed.

usage: python3 http_green.py eventlet|gevent PORT     (binds 127.0.0.1:PORT)
"""
import os
import socket
import sys

BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_body.json"), "rb") as _f:
    JSON = _f.read()
JSON_LEN = str(len(JSON))


def app(environ, start_response):
    if environ["PATH_INFO"] == "/json":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", JSON_LEN),
                                  ("X-Request-Id", environ.get("HTTP_X_REQUEST_ID", ""))])
        return [JSON]
    start_response("200 OK", HEADERS)
    return [BODY]


def main(lib, port):
    if lib == "eventlet":
        import eventlet
        import eventlet.wsgi
        sock = eventlet.listen(("127.0.0.1", port), backlog=4096)
        # without TCP_NODELAY the header and body writes meet Nagle + delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        eventlet.wsgi.server(sock, app, log_output=False, debug=False)
    elif lib == "gevent":
        from gevent import pywsgi
        import gevent.socket
        sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        pywsgi.WSGIServer(sock, app, log=None).serve_forever()
    else:
        sys.exit("unknown library %s" % lib)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
