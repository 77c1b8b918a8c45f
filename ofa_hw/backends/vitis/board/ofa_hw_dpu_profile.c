/*
 * ofa_hw board-side profiler for DNNDK (N2Cube). Shipped with ofa_hw, built on the board with
 *     gcc -O2 -o ofa_hw_dpu_profile ofa_hw_dpu_profile.c -ln2cube -lpthread
 * and run as
 *     LD_LIBRARY_PATH=<dir of libdpumodel<KERNEL>.so> ./ofa_hw_dpu_profile KERNEL RUNS WARMUP
 *
 * 1. WARMUP runs on a normal-mode task (caches, DDR pages, instruction fetch warmed; not reported),
 *    then RUNS timed normal-mode runs: "#ofa_hw e2e_us <i> <us>" (latency outside profile mode);
 * 2. RUNS runs on a profile-mode task (T_MODE_PROFILE): N2Cube prints one per-node table per run,
 *    each preceded by "#ofa_hw profile_run <i>";
 * 3. "#ofa_hw done" last, so the host can tell a complete log from a truncated one.
 * Exit codes: 2 usage, 3 dpuOpen, 4 dpuLoadKernel, 5 dpuCreateTask, 6 dpuRunTask.
 * The DPU's input buffer is left as allocated: the DPU's runtime does not depend on the data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <dnndk/n2cube.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int parse_count(const char *text, int min, int *out) {
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < min || value > 100000) return -1;
    *out = (int)value;
    return 0;
}

int main(int argc, char **argv) {
    int runs = 0, warmup = 0, i;
    if (argc != 4 || parse_count(argv[2], 1, &runs) || parse_count(argv[3], 0, &warmup)) {
        fprintf(stderr, "usage: %s KERNEL RUNS(>=1) WARMUP(>=0)\n", argv[0]);
        return 2;
    }
    if (dpuOpen() != 0) {
        fprintf(stderr, "ofa_hw: dpuOpen failed (is the DPU driver loaded?)\n");
        return 3;
    }
    DPUKernel *kernel = dpuLoadKernel(argv[1]);
    if (kernel == NULL) {
        fprintf(stderr, "ofa_hw: dpuLoadKernel(%s) failed (libdpumodel%s.so on LD_LIBRARY_PATH?)\n", argv[1], argv[1]);
        dpuClose();
        return 4;
    }
    DPUTask *task = dpuCreateTask(kernel, T_MODE_NORMAL);
    if (task == NULL) {
        fprintf(stderr, "ofa_hw: dpuCreateTask(T_MODE_NORMAL) failed\n");
        dpuDestroyKernel(kernel);
        dpuClose();
        return 5;
    }
    for (i = 0; i < warmup + runs; i++) {
        double start = now_us();
        if (dpuRunTask(task) != 0) {
            fprintf(stderr, "ofa_hw: dpuRunTask failed (normal mode, run %d)\n", i);
            return 6;
        }
        if (i >= warmup) printf("#ofa_hw e2e_us %d %.1f\n", i - warmup, now_us() - start);
    }
    dpuDestroyTask(task);

    task = dpuCreateTask(kernel, T_MODE_PROFILE);
    if (task == NULL) {
        fprintf(stderr, "ofa_hw: dpuCreateTask(T_MODE_PROFILE) failed\n");
        dpuDestroyKernel(kernel);
        dpuClose();
        return 5;
    }
    for (i = 0; i < runs; i++) {
        printf("#ofa_hw profile_run %d\n", i);
        fflush(stdout);
        if (dpuRunTask(task) != 0) {
            fprintf(stderr, "ofa_hw: dpuRunTask failed (profile mode, run %d)\n", i);
            return 6;
        }
        fflush(stdout);
    }
    dpuDestroyTask(task);
    dpuDestroyKernel(kernel);
    dpuClose();
    printf("#ofa_hw done\n");
    fflush(stdout);
    return 0;
}
