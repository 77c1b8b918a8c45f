/*
 * Fake libn2cube for the loopback board (written for ofa_hw tests). dpuLoadKernel(name) dlopen()s
 * libdpumodel<name>.so from the library path, as N2Cube does, and reads the DNNDK profile table the
 * fake compiler embedded in the ELF (symbol ofa_hw_fake_profile); a profile-mode dpuRunTask prints it.
 * Every call is appended to $FAKE_N2CUBE_LOG. Failure injection: FAKE_N2CUBE_SLEEP_MS (per profile
 * run), FAKE_N2CUBE_GARBAGE=1 (prints junk instead of the table), FAKE_N2CUBE_FAIL=open|load|run.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dnndk/n2cube.h"

struct fake_dpu_kernel { void *lib; const char *profile; char name[128]; };
struct fake_dpu_task { struct fake_dpu_kernel *kernel; int mode; int runs; };

static int opened = 0;

static void trace(const char *fmt, const char *s, int n) {
    const char *path = getenv("FAKE_N2CUBE_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, fmt, s, n);
    fputc('\n', f);
    fclose(f);
}

static int failing(const char *what) {
    const char *f = getenv("FAKE_N2CUBE_FAIL");
    return f && strcmp(f, what) == 0;
}

int dpuOpen(void) {
    trace("dpuOpen%s%d", "", 0);
    if (failing("open")) { fprintf(stderr, "[DNNDK] Fail to open DPU device\n"); return -1; }
    opened = 1;
    return 0;
}

int dpuClose(void) { trace("dpuClose%s%d", "", 0); opened = 0; return 0; }

DPUKernel *dpuLoadKernel(const char *name) {
    char file[300];
    trace("dpuLoadKernel %s %d", name, 0);
    if (!opened || failing("load")) return NULL;
    snprintf(file, sizeof file, "libdpumodel%s.so", name);
    void *lib = dlopen(file, RTLD_NOW);
    if (!lib) { fprintf(stderr, "[DNNDK] %s\n", dlerror()); return NULL; }
    const char *profile = (const char *)dlsym(lib, "ofa_hw_fake_profile");
    if (!profile) { fprintf(stderr, "[DNNDK] %s is not a DPU kernel\n", file); return NULL; }
    DPUKernel *k = calloc(1, sizeof *k);
    k->lib = lib;
    k->profile = profile;
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

int dpuDestroyKernel(DPUKernel *k) { trace("dpuDestroyKernel%s%d", "", 0); if (k) { dlclose(k->lib); free(k); } return 0; }

DPUTask *dpuCreateTask(DPUKernel *k, int mode) {
    trace("dpuCreateTask %s %d", k ? k->name : "?", mode);
    if (!k) return NULL;
    DPUTask *t = calloc(1, sizeof *t);
    t->kernel = k;
    t->mode = mode;
    return t;
}

int dpuDestroyTask(DPUTask *t) { trace("dpuDestroyTask%s%d", "", 0); free(t); return 0; }

int dpuRunTask(DPUTask *t) {
    trace("dpuRunTask mode%s %d", "", t->mode);
    if (failing("run")) { fprintf(stderr, "[DNNDK] DPU timeout\n"); return -1; }
    t->runs++;
    if (t->mode & T_MODE_PROFILE) {
        const char *ms = getenv("FAKE_N2CUBE_SLEEP_MS");
        if (ms) usleep(1000 * atoi(ms));
        if (getenv("FAKE_N2CUBE_GARBAGE")) printf("\x01\x02 segfault at 0x0 ?? [DNNDK] Performance prof\n");
        else fputs(t->kernel->profile, stdout);
        fflush(stdout);
    }
    return 0;
}
