FROM busybox
# bench/build-vs-peers workload (b): (a) followed by six more runs, 10 steps
RUN echo 1 > /step1
COPY input.txt /work/
RUN echo 2 > /step2
RUN echo 3 > /step3
RUN echo 4 > /step4
RUN echo 5 > /step5
RUN echo 6 > /step6
RUN echo 7 > /step7
RUN echo 8 > /step8
RUN echo 9 > /step9
