# Sourced by tests/lib.sh and tests/bench/lib.sh.
# free_port: a TCP port on 127.0.0.1 that no socket holds right now, picked by the kernel as for
# bind(0). (Probing with connect() misses ports held by client sockets, and the bind then fails.)
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
