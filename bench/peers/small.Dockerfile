FROM busybox
# bench/build-vs-peers workload (a): three runs and one copy; commands take ~0 s
RUN echo 1 > /step1
COPY input.txt /work/
RUN echo 2 > /step2
RUN echo 3 > /step3
