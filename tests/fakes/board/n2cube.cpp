/*
 * Fake libn2cube for the loopback board (written for ofa_hw tests), built with g++ like the real one:
 * C++ linkage for everything but dpuOpen/dpuClose. dpuLoadKernel(name) finds libdpumodel<name>.so
 * where N2Cube looks (the executable's directory, ./, then <sysroot>/usr/local/lib, /usr/lib, /lib;
 * not LD_LIBRARY_PATH) and reads what the fake compiler embedded in the ELF: the DNNDK profile table
 * (symbol ofa_hw_fake_profile, N2Cube's real title-first layout) and the compile mode (symbol
 * ofa_hw_fake_mode: "debug" or "normal"). A profile-mode dpuRunTask of a debug-mode kernel prints
 * the table, as N2Cube does; a normal-mode kernel has no per-node profile to print.
 * Every call is appended to $FAKE_N2CUBE_LOG. Failure injection: FAKE_N2CUBE_SLEEP_MS (per profile
 * run), FAKE_N2CUBE_GARBAGE=1 (prints junk instead of the table), FAKE_N2CUBE_FAIL=open|load|run.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "dnndk/n2cube.h"

struct dpu_kernel { void *lib; const char *profile; std::string mode; std::string name; };
struct dpu_task { DPUKernel *kernel; int mode; int runs; };

static std::atomic<int> opened(0);
static std::mutex log_mutex;

static void trace(const std::string &line) {
    const char *path = getenv("FAKE_N2CUBE_LOG");
    if (!path) return;
    std::lock_guard<std::mutex> guard(log_mutex);
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s\n", line.c_str());
    fclose(f);
}

static bool failing(const char *what) {
    const char *f = getenv("FAKE_N2CUBE_FAIL");
    return f && strcmp(f, what) == 0;
}

static void *find_model(const std::string &file) {
    std::string dirs[5];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        std::string e(exe);
        dirs[0] = e.substr(0, e.rfind('/'));
    }
    dirs[1] = ".";
    const char *root = getenv("FAKE_N2CUBE_SYSROOT");
    std::string sysroot = root ? root : "";
    dirs[2] = sysroot + "/usr/local/lib";
    dirs[3] = sysroot + "/usr/lib";
    dirs[4] = sysroot + "/lib";
    for (const std::string &dir : dirs) {
        if (dir.empty()) continue;
        std::string path = dir + "/" + file;
        if (access(path.c_str(), R_OK) != 0) continue;
        void *lib = dlopen(path.c_str(), RTLD_NOW);
        if (!lib) fprintf(stderr, "[DNNDK] %s\n", dlerror());
        return lib;
    }
    fprintf(stderr, "[DNNDK] Fail to locate %s\n", file.c_str());
    return nullptr;
}

extern "C" int dpuOpen() {
    trace("dpuOpen");
    if (failing("open")) { fprintf(stderr, "[DNNDK] Fail to open DPU device\n"); return -1; }
    opened = 1;
    return 0;
}

extern "C" int dpuClose() { trace("dpuClose"); opened = 0; return 0; }

DPUKernel *dpuLoadKernel(const char *name) {
    trace(std::string("dpuLoadKernel ") + name);
    if (!opened || failing("load")) return nullptr;
    std::string file = std::string("libdpumodel") + name + ".so";
    void *lib = find_model(file);
    if (!lib) return nullptr;
    const char *profile = (const char *)dlsym(lib, "ofa_hw_fake_profile");
    const char *mode = (const char *)dlsym(lib, "ofa_hw_fake_mode");
    if (!profile || !mode) { fprintf(stderr, "[DNNDK] %s is not a DPU kernel\n", file.c_str()); return nullptr; }
    return new dpu_kernel{lib, profile, mode, name};
}

int dpuDestroyKernel(DPUKernel *k) {
    trace("dpuDestroyKernel");
    if (k) { dlclose(k->lib); delete k; }
    return 0;
}

DPUTask *dpuCreateTask(DPUKernel *k, int mode) {
    if (!k) return nullptr;
    trace("dpuCreateTask " + k->name + " " + k->mode + " " + std::to_string(mode));
    return new dpu_task{k, mode, 0};
}

int dpuDestroyTask(DPUTask *t) { trace("dpuDestroyTask"); delete t; return 0; }

int dpuRunTask(DPUTask *t) {
    trace("dpuRunTask " + t->kernel->mode + " " + std::to_string(t->mode));
    if (failing("run")) { fprintf(stderr, "[DNNDK] DPU timeout\n"); return -1; }
    t->runs++;
    if ((t->mode & T_MODE_PROFILE) && t->kernel->mode == "debug") {
        const char *ms = getenv("FAKE_N2CUBE_SLEEP_MS");
        if (ms) usleep(1000 * atoi(ms));
        if (getenv("FAKE_N2CUBE_GARBAGE")) printf("\x01\x02 segfault at 0x0 ?? [DNNDK] Performance prof\n");
        else fputs(t->kernel->profile, stdout);
        fflush(stdout);
    }
    return 0;
}
