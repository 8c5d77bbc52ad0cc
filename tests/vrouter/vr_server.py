"""The update server of the virtual router's harness, on 127.0.0.1."""
import http.server
import json
import os
import threading


class Server:
    """Serves OUT/www on 127.0.0.1. A gated file stops after `gate_at` bytes until released,
    so a power cut can land in the middle of a download that is being written to the slot."""

    def __init__(self, root):
        self.root = root
        self.requests = []  # (path, status)
        self.reports = []  # the outcome reports POSTed to /report, as JSON
        self.gate = None  # (path, bytes before the stall)
        self.gate_reached = threading.Event()
        self.gate_open = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.path.split("?")[0] != "/report":
                    self.send_error(404)
                    return
                server.reports.append(json.loads(body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def do_GET(self):
                path = self.path.split("?")[0]
                file = os.path.normpath(os.path.join(server.root, path.lstrip("/")))
                if not file.startswith(server.root + os.sep) or not os.path.isfile(file):
                    server.requests.append((path, 404))
                    self.send_error(404)
                    return
                data = open(file, "rb").read()
                server.requests.append((path, 200))
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                stop = len(data)
                if server.gate and server.gate[0] == path:
                    stop = server.gate[1]
                try:
                    self.wfile.write(data[:stop])
                    if stop < len(data):
                        self.wfile.flush()
                        server.gate_reached.set()
                        server.gate_open.wait()
                        self.wfile.write(data[stop:])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set_gate(self, path, at):
        self.gate = (path, at)
        self.gate_reached.clear()
        self.gate_open.clear()

    def release_gate(self):
        self.gate = None
        self.gate_open.set()

    def fetches(self, path):
        return sum(1 for p, s in self.requests if p == path and s == 200)
