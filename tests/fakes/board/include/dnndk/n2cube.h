/*
 * Fake dnndk/n2cube.h for the loopback board (written for ofa_hw tests), shaped like the real header
 * of Vitis-AI 1.x: it includes C++ headers, so it compiles only as C++, and the API has C++ linkage
 * except dpuOpen/dpuClose (the exported symbols of the real libn2cube.so are listed in
 * tests/data/real_tool_outputs/libn2cube_v1.0_exported_symbols.txt). Only the calls ofa_hw's board
 * profiler makes are declared.
 */
#ifndef OFA_HW_FAKE_N2CUBE_H
#define OFA_HW_FAKE_N2CUBE_H

#include <atomic>
#include <mutex>
#include <stdint.h>

struct dpu_kernel;
struct dpu_task;
typedef struct dpu_kernel DPUKernel;
typedef struct dpu_task DPUTask;

#define T_MODE_NORMAL 0
#define T_MODE_PROFILE (1 << 0)
#define T_MODE_DEBUG (1 << 1)

extern "C" {
int dpuOpen();
int dpuClose();
}

DPUKernel *dpuLoadKernel(const char *netName);
int dpuDestroyKernel(DPUKernel *kernel);
DPUTask *dpuCreateTask(DPUKernel *kernel, int mode);
int dpuDestroyTask(DPUTask *task);
int dpuRunTask(DPUTask *task);

#endif
