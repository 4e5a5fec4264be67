FROM kiln-bench-debian
# bench/compile-vs-peers: compile.spec's steps with a command that does nothing (each tool's own cost)
WORKDIR /src
COPY . ./
RUN true
