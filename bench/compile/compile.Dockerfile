FROM kiln-bench-debian
# bench/compile-vs-peers: the generated C project (bench/compile/gen-c-project) built with make -j2
WORKDIR /src
COPY . ./
RUN make -j2 && ./app
