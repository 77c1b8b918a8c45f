/*
 * ofa_hw board-side profiler for DNNDK (N2Cube). Shipped with ofa_hw. N2Cube's header includes C++
 * headers and its API has C++ linkage (all but dpuOpen/dpuClose), so this is C++, built on the board with
 *     g++ -O2 -o ofa_hw_dpu_profile ofa_hw_dpu_profile.cpp -ln2cube -lpthread
 * and run in the directory holding libdpumodel<KERNEL>.so (N2Cube looks in the executable's
 * directory, ./ and the system library directories, not on LD_LIBRARY_PATH):
 *     ofa_hw_dpu_profile time    KERNEL RUNS WARMUP   (a normal-mode ELF: the deployable latency)
 *     ofa_hw_dpu_profile profile KERNEL RUNS WARMUP   (a debug-mode ELF: per-node tables)
 *
 * time:    WARMUP untimed then RUNS timed runs of a T_MODE_NORMAL task, each printed as
 *          "#ofa_hw e2e_us <i> <us>". A debug-mode kernel runs node by node in any task mode, so only
 *          a normal-mode ELF gives the latency a deployed model has.
 * profile: WARMUP runs of a T_MODE_NORMAL task (not reported), then RUNS runs of a T_MODE_PROFILE
 *          task: N2Cube prints one per-node table per run, each preceded by "#ofa_hw profile_run <i>".
 * Last line "#ofa_hw done <mode>", so the host can tell a complete log from a truncated one.
 * Exit codes: 2 usage, 3 dpuOpen, 4 dpuLoadKernel, 5 dpuCreateTask, 6 dpuRunTask.
 * The DPU's input buffer is left as allocated: the DPU's runtime does not depend on the data.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <dnndk/n2cube.h>

namespace {

double now_us() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

bool parse_count(const char *text, int min, int *out) {
    char *end = nullptr;
    long value = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < min || value > 100000) return false;
    *out = static_cast<int>(value);
    return true;
}

int fail(const char *message, int code, DPUKernel *kernel = nullptr) {
    std::fprintf(stderr, "ofa_hw: %s\n", message);
    if (kernel != nullptr) dpuDestroyKernel(kernel);
    dpuClose();
    return code;
}

/* Runs a task of `kernel` in `task_mode` `count` times; prints e2e times from run `first_timed` on. */
int run_task(DPUKernel *kernel, int task_mode, int count, int first_timed, bool markers) {
    DPUTask *task = dpuCreateTask(kernel, task_mode);
    if (task == nullptr) return fail("dpuCreateTask failed", 5, kernel);
    for (int i = 0; i < count; i++) {
        if (markers) std::printf("#ofa_hw profile_run %d\n", i);
        std::fflush(stdout);
        double start = now_us();
        if (dpuRunTask(task) != 0) {
            std::fprintf(stderr, "ofa_hw: dpuRunTask failed (task mode %d, run %d)\n", task_mode, i);
            dpuDestroyTask(task);
            return fail("giving up", 6, kernel);
        }
        double took = now_us() - start;
        if (first_timed >= 0 && i >= first_timed) std::printf("#ofa_hw e2e_us %d %.1f\n", i - first_timed, took);
        std::fflush(stdout);
    }
    dpuDestroyTask(task);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    int runs = 0, warmup = 0;
    bool timing = argc == 5 && std::strcmp(argv[1], "time") == 0;
    bool profile = argc == 5 && std::strcmp(argv[1], "profile") == 0;
    if (!(timing || profile) || !parse_count(argv[3], 1, &runs) || !parse_count(argv[4], 0, &warmup)) {
        std::fprintf(stderr, "usage: %s time|profile KERNEL RUNS(>=1) WARMUP(>=0)\n", argv[0]);
        return 2;
    }
    if (dpuOpen() != 0) {
        std::fprintf(stderr, "ofa_hw: dpuOpen failed (is the DPU driver loaded?)\n");
        return 3;
    }
    DPUKernel *kernel = dpuLoadKernel(argv[2]);
    if (kernel == nullptr) {
        std::fprintf(stderr, "ofa_hw: dpuLoadKernel(%s) failed (libdpumodel%s.so in ./?)\n", argv[2], argv[2]);
        dpuClose();
        return 4;
    }
    int status = timing ? run_task(kernel, T_MODE_NORMAL, warmup + runs, warmup, false)
                        : run_task(kernel, T_MODE_NORMAL, warmup, -1, false);
    if (status != 0) return status;
    if (profile && (status = run_task(kernel, T_MODE_PROFILE, runs, -1, true)) != 0) return status;
    dpuDestroyKernel(kernel);
    dpuClose();
    std::printf("#ofa_hw done %s\n", argv[1]);
    std::fflush(stdout);
    return 0;
}
